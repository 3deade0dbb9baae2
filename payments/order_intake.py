"""Creating payment orders on PostgreSQL in one statement: the hot path behind
``POST /api/v1/payment-orders`` (issue 4's speed goal).

Why it exists: the ORM path (:func:`payments.orders.create_order` inside
:func:`api.idempotent.run_idempotent`) spends about 7 ms of Python per order on a session, a
unit of work and seven round trips. One-stop systems create orders in bursts when a counter
opens, so this path does the same work with plain SQL on an async connection:

* the catalogue entry (procedure + fee items in force on the agency's local date) is cached in
  process, and the write **re-checks it in the same statement**: the insert happens only if the
  fee items in force are still exactly the cached ones and the procedure name is unchanged. A
  stale cache therefore never prices an order: the statement inserts nothing, the entry is
  reloaded and the order is priced again. (The agency's bank account comes from the
  authenticated client, cached for 30 s by :mod:`api.deps`, as on the ORM path);
* the idempotency record, the order and its lines are inserted by one statement (data-modifying
  CTEs chained so the order exists only if the idempotency key was free), so the effect and the
  remembered answer commit together, exactly as the ORM path guarantees;
* validation, pricing, the VietQR payload and the JSON answer are not written here: the order
  is :func:`payments.order_draft.draft_order`'s draft, the same one the ORM path writes, and
  :func:`payments.presenters.order_json` presents it; the API tests run both paths (SQLite
  takes the ORM path).

Orders with nothing to collect (every line exempt) are rare and need a receipt straight away;
they take the ORM path (``None`` from :meth:`OrderIntake.create`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

import payments.reference as transfer_reference
from payments.errors import (
    AmountTooLarge,
    IdempotencyConflict,
    InvalidInput,
    TariffInputInvalid,
    UnknownFee,
    UnknownProcedure,
)
from payments.order_draft import (
    AgencyTerms,
    FeeRequest,
    FeeSpec,
    OrderDraft,
    OrderRequest,
    ProcedureSpec,
    check_fee_requests,
    draft_order,
)
from payments.presenters import order_json

__all__ = ["AgencySnapshot", "IntakeResult", "OrderIntake", "libpq_conninfo"]

CACHE_SIZE = 4096
MAX_STALE_RETRIES = 3
MAX_BATCH = 64
MAX_WRITERS = 1
"""Batches in flight at once (per process). One: while a batch is being written the next one
fills, which is what makes group commit work. Measured (``bench/bench_http.py`` prints orders
per transaction): the statement costs PostgreSQL ~170 µs however few orders it carries plus
~70 µs per order, and with two writers a busy server wrote 1-2 orders per transaction
(~250 µs of database CPU per order) against ~5 with one (~150 µs), at no cost in p99."""


AgencySnapshot = AgencyTerms
"""The agency fields an order needs; taken from the cached API client."""


@dataclass(frozen=True)
class _Procedure:
    """A procedure and its fee items in force on one day, as cached in process."""

    spec: ProcedureSpec
    fees: dict[str, FeeSpec]


@dataclass(frozen=True)
class IntakeResult:
    status: int
    body_json: str
    """The answer as JSON text: the exact text remembered with the idempotency key, so the
    first answer and every replay are byte-identical and nothing is serialised twice."""
    replayed: bool


def libpq_conninfo(database_url: str) -> str:
    """``postgresql+psycopg://u:p@h:port/db?x=y`` as a libpq conninfo string for psycopg."""
    url = make_url(database_url)
    parts = {
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
        **{k: v for k, v in url.query.items() if isinstance(v, str)},
    }
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in parts.items() if v is not None})


_LOAD_PROCEDURE = """
SELECT p.id, p.code, p.name, f.id, f.code, f.kind, f.name, f.amount, f.unit, f.max_amount,
       f.retention_percent, f.legal_basis, f.tariff
FROM procedures p
LEFT JOIN LATERAL (
    SELECT DISTINCT ON (fi.code) fi.*
    FROM fee_items fi
    WHERE fi.procedure_id = p.id AND fi.effective_from <= %(day)s
      AND (fi.effective_to IS NULL OR fi.effective_to >= %(day)s)
    ORDER BY fi.code, fi.effective_from DESC
) f ON true
WHERE p.agency_id = %(agency_id)s AND p.code = %(code)s
"""
"""Same rule as :func:`payments.catalog.fee_item_on`: the latest price whose period covers the
day."""

_INSERT = """
WITH req AS (
    SELECT * FROM json_to_recordset(%(reqs)s::json) AS r(
        order_id text, proc_id text, day date,
        scope text, key text, digest text, response json, n_lines int)
), o AS (
    SELECT * FROM json_populate_recordset(null::payment_orders, %(orders)s::json)
), ls AS (
    SELECT * FROM json_populate_recordset(null::order_lines, %(lines)s::json)
), fresh AS (
    SELECT r.order_id FROM req r JOIN o ON o.id = r.order_id
    WHERE EXISTS (SELECT 1 FROM procedures p
                  WHERE p.id = r.proc_id AND p.name = o.procedure_name)
      AND (SELECT count(*) FROM (
              SELECT DISTINCT ON (fi.code) fi.id
              FROM fee_items fi
              WHERE fi.procedure_id = r.proc_id
                AND fi.code IN (SELECT l.fee_code FROM ls l WHERE l.order_id = r.order_id)
                AND fi.effective_from <= r.day
                AND (fi.effective_to IS NULL OR fi.effective_to >= r.day)
              ORDER BY fi.code, fi.effective_from DESC) cur
           WHERE cur.id IN (SELECT l.fee_item_id FROM ls l WHERE l.order_id = r.order_id)
          ) = r.n_lines
), idem AS (
    INSERT INTO idempotency_records
        (client_id, scope, key, body_hash, status_code, response, created_at)
    SELECT o.client_id, r.scope, r.key, r.digest, 201, r.response, o.created_at
    FROM fresh f JOIN req r ON r.order_id = f.order_id JOIN o ON o.id = f.order_id
    ON CONFLICT (client_id, scope, key) DO NOTHING
    RETURNING client_id, scope, key
), won AS (
    SELECT o.id FROM idem i
    JOIN req r ON r.scope = i.scope AND r.key = i.key
    JOIN o ON o.id = r.order_id AND o.client_id = i.client_id
), ord AS (
    INSERT INTO payment_orders SELECT o.* FROM o JOIN won ON won.id = o.id RETURNING id
), lines AS (
    INSERT INTO order_lines SELECT l.* FROM ls l JOIN ord ON ord.id = l.order_id
    RETURNING order_id
)
SELECT r.order_id,
       EXISTS (SELECT 1 FROM fresh f WHERE f.order_id = r.order_id),
       EXISTS (SELECT 1 FROM ord WHERE ord.id = r.order_id),
       (SELECT count(*) FROM lines WHERE lines.order_id = r.order_id)
FROM req r
"""
"""One statement for a whole batch of orders: one round trip, one implicit transaction, one
commit. Orders, lines and per-order checks travel as JSON rows (``json_populate_recordset``),
which costs the client a ``json.dumps`` instead of adapting dozens of arrays. Data-modifying
CTEs run once, to completion; each insert selects from the previous one, so an order is
written only if its catalogue entry is fresh and its idempotency key was free, and its
remembered answer commits with it. A batch never holds two requests with the same key (the
second waits for the next batch), so "free" is decided by the unique constraint alone."""

_JOURNAL = """
INSERT INTO bank_events (agency_id, source, dedup_key, raw, received_at, duplicates)
VALUES (%(agency_id)s, %(source)s, %(dedup)s, %(raw)s, %(now)s, 0)
ON CONFLICT (agency_id, source, dedup_key)
DO UPDATE SET duplicates = bank_events.duplicates + 1
RETURNING id, processed_at, (xmax = 0)
"""
"""``xmax = 0`` is PostgreSQL's way of telling an inserted row from an updated one."""

_FIND_IDEMPOTENT = """
SELECT body_hash, status_code, response::text FROM idempotency_records
WHERE client_id = %s AND scope = %s AND key = %s
"""


class OrderIntake:
    """Per process: the catalogue cache and, once :meth:`open` has run (the app's lifespan), a
    pool of async connections on the server's event loop. Without it (a test client without
    lifespan) each order opens its own connection: correct, only slower."""

    def __init__(self, database_url: str, *, pool_size: int = 8) -> None:
        self._conninfo = libpq_conninfo(database_url)
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None
        self._cache: OrderedDict[tuple[str, str, date], _Procedure] = OrderedDict()
        self._queue: list[_Pending] = []
        self._writers = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        pool = AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True},
            open=False,
        )
        await pool.open(wait=True, timeout=30)
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def journal_bank_event(
        self, agency_id: str, source: str, dedup_key: str, raw: bytes, now: datetime
    ) -> tuple[int, bool, bool]:
        """Journals one bank notification in one statement: (event id, still to process, new).

        The SQL twin of :func:`payments.bankfeeds.journal_sepay`: the first delivery inserts,
        any repeat (a retry, a racing twin) counts itself on the same row, decided by the
        unique constraint rather than a look-up, so the webhook answers in one round trip.
        """
        async with self._connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(
                _JOURNAL,
                {
                    "agency_id": agency_id,
                    "source": source,
                    "dedup": dedup_key,
                    "raw": raw,
                    "now": now,
                },
            )
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), row[1] is None, bool(row[2])

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._pool is not None:
            async with self._pool.connection() as conn:
                yield conn
            return
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        async with conn:
            yield conn

    async def _procedure(self, agency_id: str, code: str, day: date) -> _Procedure | None:
        key = (agency_id, code, day)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        async with self._connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(_LOAD_PROCEDURE, {"day": day, "agency_id": agency_id, "code": code})
            rows = await cur.fetchall()
        found: _Procedure | None = None
        if rows:
            pid, pcode, pname = rows[0][0], rows[0][1], rows[0][2]
            fees = {
                r[4]: FeeSpec(
                    r[3], r[4], r[5], r[6], int(r[7]), r[8], r[9], int(r[10]), r[11], r[12]
                )
                for r in rows
                if r[3] is not None
            }
            found = _Procedure(ProcedureSpec(pid, pcode, pname), fees)
        if found is not None:  # an unknown procedure may be imported any moment: never cached
            self._cache[key] = found
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return found

    def _forget(self, agency_id: str, code: str, day: date) -> None:
        self._cache.pop((agency_id, code, day), None)

    async def create(
        self,
        *,
        agency: AgencySnapshot,
        client_id: str,
        scope: str,
        key: str,
        digest: str,
        dossier_code: str,
        procedure_code: str,
        payer: dict[str, Any],
        fees: Sequence[FeeRequest],
        callback_url: str | None,
        ttl: timedelta,
        max_amount: int,
        base_url: str,
        now: datetime,
    ) -> IntakeResult | None:
        """The answer to give, or ``None`` when the ORM path must handle this order."""
        try:
            return await self._create(
                agency,
                client_id,
                scope,
                key,
                digest,
                dossier_code,
                procedure_code,
                payer,
                fees,
                callback_url,
                ttl,
                max_amount,
                base_url,
                now,
            )
        except (InvalidInput, TariffInputInvalid, UnknownFee, UnknownProcedure, AmountTooLarge):
            # A retry of a request that once succeeded gets its original answer even if the
            # catalogue has changed since, as on the ORM path (which looks first).
            replay = await self._find(client_id, scope, key, digest)
            if replay is not None:
                return replay
            raise

    async def _create(
        self,
        agency: AgencySnapshot,
        client_id: str,
        scope: str,
        key: str,
        digest: str,
        dossier_code: str,
        procedure_code: str,
        payer: dict[str, Any],
        fees: Sequence[FeeRequest],
        callback_url: str | None,
        ttl: timedelta,
        max_amount: int,
        base_url: str,
        now: datetime,
    ) -> IntakeResult | None:
        request = OrderRequest(
            dossier_code=dossier_code,
            procedure_code=procedure_code,
            payer=payer,
            fees=tuple(fees),
            callback_url=callback_url,
        )
        check_fee_requests(request.fees)
        day = now.astimezone(ZoneInfo(agency.time_zone)).date()
        for _attempt in range(MAX_STALE_RETRIES):
            cached = (agency.id, procedure_code, day) in self._cache
            proc = await self._procedure(agency.id, procedure_code, day)
            if proc is None:
                raise UnknownProcedure(
                    f"procedure {procedure_code!r} is not in this agency's catalogue"
                )
            try:
                order = draft_order(
                    agency,
                    proc.spec,
                    proc.fees.get,
                    request,
                    reference=transfer_reference.generate(),
                    now=now,
                    ttl=ttl,
                    max_amount=max_amount,
                )
            except UnknownFee:
                if not cached:
                    raise
                # A fee item published since the entry was cached: ask the database again.
                self._forget(agency.id, procedure_code, day)
                continue
            if order.nothing_to_collect:
                return None
            body_json = dump_json(order_json(order, None, base_url))
            item = _Pending(
                order=order,
                proc_id=proc.spec.id,
                client_id=client_id,
                scope=scope,
                key=key,
                digest=digest,
                day=day,
                body_json=body_json,
                future=asyncio.get_running_loop().create_future(),
            )
            try:
                fresh, inserted = await self._submit(item)
            except psycopg.errors.UniqueViolation as exc:
                if "reference" in str(exc):  # ~1 in 4e14 draws; draw again
                    continue
                raise
            if not fresh:
                self._forget(agency.id, procedure_code, day)
                continue
            if inserted:
                return IntakeResult(201, body_json, replayed=False)
            replay = await self._find(client_id, scope, key, digest)
            if replay is None:  # the twin that held the key rolled back; try again
                continue
            return replay
        raise RuntimeError("the catalogue kept changing while the order was being created")

    # ------------------------------------------------------------ group commit

    async def _submit(self, item: _Pending) -> tuple[bool, bool]:
        """Queues the order for the next batch; (catalogue fresh, inserted) once written.

        No timer: a batch leaves as soon as a writer is free, so a lone order is written at
        once, and orders arriving while a batch is in flight share the next one (group
        commit). Up to ``MAX_WRITERS`` batches are in flight, each on its own connection.
        """
        self._queue.append(item)
        if self._writers < MAX_WRITERS:
            self._writers += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await item.future

    async def _drain(self) -> None:
        try:
            while self._queue:
                # One turn of the event loop first: requests whose bytes arrived in the same
                # poll as our wake-up (the previous batch's result) are priced and queued
                # before this batch leaves, instead of waiting a whole round trip for the next.
                await asyncio.sleep(0)
                batch: list[_Pending] = []
                waiting: list[_Pending] = []
                keys: set[tuple[str, str, str]] = set()
                for item in self._queue:
                    ident = (item.client_id, item.scope, item.key)
                    if ident in keys or len(batch) >= MAX_BATCH:
                        waiting.append(item)
                    else:
                        keys.add(ident)
                        batch.append(item)
                self._queue = waiting
                await self._write(batch)
        finally:
            self._writers -= 1

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            async with self._connection() as conn:
                cur = conn.cursor(row_factory=tuple_row)
                await cur.execute(_INSERT, _batch_params(batch))
                rows = await cur.fetchall()
        except psycopg.errors.UniqueViolation as exc:
            if len(batch) > 1:  # one order's reference clashed: write them one by one
                for item in batch:
                    await self._write([item])
                return
            _fail(batch, exc)
            return
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        results = {row[0]: (bool(row[1]), bool(row[2]), int(row[3])) for row in rows}
        for item in batch:
            fresh, inserted, n_lines = results.get(item.order.id, (False, False, 0))
            if inserted and n_lines != len(item.order.lines):  # cannot happen: same statement
                _fail([item], RuntimeError("order inserted without all its lines"))
            elif not item.future.done():
                item.future.set_result((fresh, inserted))

    async def _find(self, client_id: str, scope: str, key: str, digest: str) -> IntakeResult | None:
        async with self._connection() as conn:
            return await _find(conn, client_id, scope, key, digest)


@dataclass
class _Pending:
    order: OrderDraft
    proc_id: str
    client_id: str
    scope: str
    key: str
    digest: str
    day: date
    body_json: str
    future: asyncio.Future[tuple[bool, bool]]


def dump_json(body: Any) -> str:
    """JSON text exactly as Starlette's ``JSONResponse`` renders it (compact, UTF-8 as is),
    written by orjson: about ten times faster than :func:`json.dumps` and byte-identical for
    what an order holds (str, int, bool, None, lists and dicts with str keys; a test compares
    the two). Anything orjson refuses (an int beyond 64 bits) falls back to :mod:`json`,
    which then decides."""
    try:
        return orjson.dumps(body).decode()
    except orjson.JSONEncodeError:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)


async def _find(
    conn: psycopg.AsyncConnection[Any], client_id: str, scope: str, key: str, digest: str
) -> IntakeResult | None:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(_FIND_IDEMPOTENT, (client_id, scope, key))
    row = await cur.fetchone()
    if row is None:
        return None
    if row[0] != digest:
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was first used with another body")
    return IntakeResult(int(row[1]), row[2], replayed=True)


def _batch_params(batch: list[_Pending]) -> dict[str, str]:
    reqs: list[str] = []
    orders: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    for item in batch:
        order = item.order
        head = dump_json(
            {
                "order_id": order.id,
                "proc_id": item.proc_id,
                "day": item.day.isoformat(),
                "scope": item.scope,
                "key": item.key,
                "digest": item.digest,
                "n_lines": len(order.lines),
            }
        )
        reqs.append(f'{head[:-1]},"response":{item.body_json}}}')
        orders.append(
            {
                "id": order.id,
                "agency_id": order.agency.id,
                "client_id": item.client_id,
                "dossier_code": order.dossier_code,
                "procedure_code": order.procedure_code,
                "procedure_name": order.procedure_name,
                "reference": order.reference,
                "status": order.status,
                "amount": order.amount,
                "payer": order.payer,
                "callback_url": order.callback_url,
                "vietqr_payload": order.vietqr_payload,
                "created_at": order.created_at.isoformat(),
                "expires_at": order.expires_at.isoformat(),
            }
        )
        lines.extend(
            {
                "id": line.id,
                "order_id": order.id,
                "position": line.position,
                "fee_item_id": line.fee_item_id,
                "fee_code": line.fee_code,
                "fee_name": line.fee_name,
                "kind": line.kind,
                "unit": line.unit,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "amount": line.amount,
                "retention_percent": line.retention_percent,
                "legal_basis": line.legal_basis,
                "exemption_category": line.exemption_category,
                "exemption_legal_basis": line.exemption_legal_basis,
                "pricing": line.pricing,
            }
            for line in order.lines
        )
    return {
        "reqs": "[" + ",".join(reqs) + "]",
        "orders": dump_json(orders),
        "lines": dump_json(lines),
    }
