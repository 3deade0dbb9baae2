"""HTTP benchmarks (issue 4 "Speed"): order creation throughput, and bank notification → receipt.

Both run against real servers on 127.0.0.1 started here and stopped at the end, even on failure:
PostgreSQL (``tests/infra``), Redis, our app under uvicorn (1 worker, uvloop + httptools, access
log off, log level warning) and, for receipts, ``motcua worker --concurrency 2`` and
``motcua scheduler`` processes.
Every figure stands beside a baseline measured in the same run (performance.md):

1. **Order creation throughput.** ``wrk -t2 -c10 -d10s --latency`` POSTs README's order to
   ``/api/v1/payment-orders`` (demo agency seeded by ``api.demo.seed``, embedded profile on
   PostgreSQL; each request has its own Idempotency-Key and the demo Bearer key, see
   ``bench/lua/post_json.lua``). Baseline: the bare FastAPI ``async def`` JSON POST of
   ``bench/bare_app.py``, the same body, headers, wrk settings and server settings. Reported:
   ``order req/s ÷ bare req/s`` (goal ≥ 0.20) as the median of three alternating rounds (bare,
   ours, bare, ours, ...; every round's ratio is printed too) and both p99 latencies. Any
   non-2xx answer from our app fails the benchmark. Printed too: CPU per request of the app
   process and of PostgreSQL (from /proc), which says whether the app or the database is the
   limit.

2. **Bank notification → receipt available**, production profile (PostgreSQL, Redis broker, a
   separate worker, an agency signing with a non-development test certificate). 6,000 orders are
   created beforehand through the service layer; then SePay-shaped webhooks, one per order, are
   sent open-loop at a steady 200/s for 30 s (each request has its own scheduled send time, so a
   slow server does not lower the offered rate; asyncio with a minimal keep-alive client, because
   httpx's pool collapsed under a stalled server, see ``loadgen._Http``). The stack is the
   production one: ``motcua scheduler`` runs too, as its sweep is what retries a failed task.
   Latency per notification = ``Receipt.created_at`` (set in the worker's issuing transaction) −
   the wall-clock moment the webhook was sent (same machine, same clock). Reported: p50/p95/p99/
   max, receipts arrived within the bound (we wait 60 s after the sender is done; a notification
   without a receipt then counts as infinitely late and a percentile that falls on one is shown
   as "> N s", N being how long the last one sent had waited), the achieved send rate. Printed
   too: the stages (journaled by the webhook, event processed by the worker), the worker's task
   failures (PostgreSQL deadlocks among them), the CPU of each process, and what PostgreSQL
   sessions waited on while webhooks came in (``pg_stat_activity`` sampled every 0.2 s).

   Baseline chosen: **the Celery round trip**, i.e. ``apply_async`` of a no-op task → the task
   body running, for 2,000 tasks sent open-loop at the same 200/s through the same Redis broker to
   a worker with the same concurrency (2, prefork) and the same delivery settings
   (``acks_late``, prefetch 1). The no-op task lives in ``bench/loadgen.py`` and is served by its
   own worker on its own queue (our ``motcua worker`` only loads our task modules and we do not
   change app code for a benchmark); it runs after our stack is stopped, on a quiet machine. It is
   the floor of one hop through the queue; our path has an HTTP request, two task hops
   (process the bank event, then issue the receipt) and the signing in between. A second row
   compares the webhook's own HTTP response p99 with a bare FastAPI POST under the same 200/s.

Run alone: ``.venv/bin/python -m bench.bench_http [--only orders|receipts]`` (about 3 minutes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bench import loadgen
from bench.common import Table, ms

sys.path.insert(0, str(loadgen.ROOT / "tests"))
from infra import PostgresServer, RedisServer, free_port
from infra.pki import org_certificate

from api.demo import DEMO_AGENCY, DEMO_API_KEY
from settings.config import get_settings

MOTCUA = str(Path(sys.executable).with_name("motcua"))
CATALOG = loadgen.ROOT / "payments" / "data" / "demo_catalog.csv"

WRK_THREADS, WRK_CONNECTIONS, WRK_SECONDS, WRK_WARMUP_SECONDS = 2, 10, 10, 2
ORDER_ROUNDS = 3
RATE, SEND_SECONDS = 200, 30
N_ORDERS = RATE * SEND_SECONDS  # 6,000 notifications, one per order
N_WARMUP = 40
RECEIPT_WAIT_SECONDS = 60
WARMUP_WAIT_SECONDS = 40
NOOP_TASKS = 2000
BARE_AT_RATE_SECONDS = 5

ORDER_BODY = {
    "dossier_code": "H01.22-261121-0001",
    "procedure_code": "1.001612",
    "payer": {"name": "Nguyễn Văn An", "id_number": "001090012345"},
    "fees": [{"fee_code": "CT-BS", "quantity": 3}],
}


# ---------------------------------------------------------------- helpers


def say(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any MOTCUA_* variable, plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}, **env}


@contextlib.contextmanager
def patched_env(env: Mapping[str, str]) -> Iterator[None]:
    """Runs the block with exactly ``env`` as MOTCUA_* settings, then restores them."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MOTCUA_")}
    for k in saved:
        del os.environ[k]
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("MOTCUA_")]:
            del os.environ[k]
        os.environ.update(saved)
        get_settings.cache_clear()


class WaitSampler:
    """Samples ``pg_stat_activity`` every 0.2 s (one connection, in a thread): what the
    sessions of ``dbname`` that are in a statement or in an open transaction wait on, and their
    (last) statement."""

    QUERY = """
        SELECT CASE WHEN state <> 'active' THEN 'idle in transaction (client busy)'
                    ELSE coalesce(wait_event_type || ':' || wait_event, 'on CPU') END,
               left(regexp_replace(query, '\\s+', ' ', 'g'), 48)
        FROM pg_stat_activity
        WHERE datname = %s AND state IN ('active', 'idle in transaction')
          AND pid <> pg_backend_pid()"""

    def __init__(self, pg: PostgresServer, dbname: str) -> None:
        self.pg, self.dbname = pg, dbname
        self.counts: Counter[tuple[str, str]] = Counter()
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.pg.connect(self.dbname, autocommit=True) as conn:
            while not self.stop.wait(0.2):
                self.samples += 1
                for wait, query in conn.execute(self.QUERY, (self.dbname,)):
                    self.counts[(wait, query)] += 1

    def __enter__(self) -> WaitSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def summary(self, top: int = 5) -> str:
        """Average number of sessions in each (wait, statement), the most frequent first."""
        n = max(self.samples, 1)
        busiest = self.counts.most_common(top)
        return "; ".join(f"{c / n:.1f} × {wait} in '{query}'" for (wait, query), c in busiest)


# ---------------------------------------------------------------- 1. order creation


def order_throughput(pg: PostgresServer, tmp: Path, table: Table) -> None:
    from api.demo import seed
    from settings.db import engine_for
    from settings.migrate import upgrade

    db_url = pg.create_database("bench_orders")
    upgrade(db_url)
    env = {
        "MOTCUA_PROFILE": "embedded",
        "MOTCUA_DATABASE_URL": db_url,
        "MOTCUA_DATA_DIR": str(tmp / "orders-data"),
        "MOTCUA_LOG_LEVEL": "WARNING",
        "MOTCUA_RUN_WORKER_IN_SERVE": "false",
    }
    with patched_env(env):
        seed(get_settings())
    engine_for(db_url).dispose()
    body = json.dumps(ORDER_BODY, ensure_ascii=False)

    postmaster = loadgen.postmaster_pid(pg.data_dir) if pg.data_dir else None

    def orders_per_transaction(prefix: str) -> float | None:
        """How well group commit batched: the orders of one round (their idempotency keys start
        with ``prefix``) per transaction that wrote them. Rows written by one statement share
        their ``xmin``, so this is exact."""
        with pg.connect("bench_orders", autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT xmin::text) FROM idempotency_records"
                " WHERE key LIKE %s",
                (prefix + "-%",),
            ).fetchone()
        return row[0] / row[1] if row and row[1] else None

    def measure(app: str, path: str, *, factory: bool, auth: str, tag: str) -> loadgen.WrkResult:
        port = free_port()
        url = f"http://{loadgen.LOOPBACK}:{port}{path}"
        log = tmp / f"uvicorn-{tag}.log"
        with loadgen.uvicorn(app, port=port, env=child_env(env), log=log, factory=factory) as srv:
            kwargs = {"body": body, "auth": auth, "threads": WRK_THREADS}
            loadgen.wrk(
                url, idem_prefix=f"warm-{tag}", seconds=WRK_WARMUP_SECONDS,
                connections=WRK_CONNECTIONS, **kwargs,
            )  # fmt: skip
            say(f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s {path} ({tag}) ...")
            app_cpu = loadgen.cpu_seconds(srv.pid)
            db_cpu = loadgen.cpu_seconds(postmaster, with_children=True) if postmaster else 0.0
            result = loadgen.wrk(
                url, idem_prefix=f"run-{tag}", seconds=WRK_SECONDS,
                connections=WRK_CONNECTIONS, **kwargs,
            )  # fmt: skip
            app_cpu = loadgen.cpu_seconds(srv.pid) - app_cpu
            if postmaster:
                db_cpu = loadgen.cpu_seconds(postmaster, with_children=True) - db_cpu
        say(
            f"{tag}: {result.rps:,.0f} req/s, p50 {ms(result.p50_ms)}, p99 {ms(result.p99_ms)}, "
            f"{result.requests} requests, non-2xx {result.non2xx}, "
            f"socket errors: {result.socket_errors}"
        )
        n = max(result.requests, 1)
        per_txn = orders_per_transaction(f"run-{tag}") if tag.startswith("orders") else None
        batching = f", {per_txn:.1f} orders per transaction" if per_txn else ""
        say(
            f"{tag}: CPU per request: app process {app_cpu / n * 1000:.2f} ms "
            f"({app_cpu / result.seconds:.0%} of a core), PostgreSQL {db_cpu / n * 1000:.2f} ms "
            f"({db_cpu / result.seconds:.0%} of a core){batching}"
        )
        return result

    # Alternate rounds, median ratio: on a shared VM one 10 s pair swings by ±25 %.
    pairs: list[tuple[loadgen.WrkResult, loadgen.WrkResult]] = []
    for round_no in range(1, ORDER_ROUNDS + 1):
        bare = measure(
            "bench.bare_app:app", "/echo", factory=False, auth="", tag=f"bare-{round_no}"
        )
        if bare.non2xx != 0 or bare.wrk_non2xx != 0:
            raise RuntimeError(f"bare app answered {bare.non2xx} non-2xx: {bare.first_error}")
        ours = measure(
            "api.app:create_app",
            "/api/v1/payment-orders",
            factory=True,
            auth=f"Bearer {DEMO_API_KEY}",
            tag=f"orders-{round_no}",
        )
        print(
            f"    order create: non-2xx responses = {ours.non2xx} (script's count; wrk's own "
            f"'Non-2xx or 3xx responses' = {ours.wrk_non2xx}), socket errors: {ours.socket_errors}",
            flush=True,
        )
        if ours.non2xx != 0 or ours.wrk_non2xx != 0:
            raise RuntimeError(
                f"order creation answered {ours.non2xx} non-2xx of {ours.requests}: "
                f"{ours.first_error}"
            )
        pairs.append((bare, ours))
    pairs.sort(key=lambda pair: pair[1].rps / pair[0].rps)
    bare, ours = pairs[len(pairs) // 2]
    ratios = ", ".join(f"{o.rps / b.rps:.3f}" for b, o in pairs)
    with patched_env(env):
        from payments.models import PaymentOrder
        from settings.db import session_scope

        with session_scope(engine_for(db_url)) as session:
            stored = session.scalar(select(func.count()).select_from(PaymentOrder)) or 0
    engine_for(db_url).dispose()
    say(f"orders stored in PostgreSQL: {stored:,} (warm-up included)")
    table.add(
        "order create req/s (POST /api/v1/payment-orders, PostgreSQL) ÷ bare FastAPI POST req/s"
        f" (median of {ORDER_ROUNDS} alternating rounds; ratios {ratios})",
        f"{ours.rps:,.0f}/s",
        f"{bare.rps:,.0f}/s",
        f"{ours.rps / bare.rps:.3f}",
        "≥ 0.20",
    )
    table.add(
        "  p99 latency, wrk -t2 -c10 (order create vs bare POST)",
        ms(ours.p99_ms),
        ms(bare.p99_ms),
        f"{ours.p99_ms / bare.p99_ms:.1f}x",
        "",
    )


# ---------------------------------------------------------------- 2. notification → receipt


def sepay_body(index: int, reference: str, amount: int) -> bytes:
    now = datetime.now(UTC) + timedelta(hours=7)
    return json.dumps(
        {
            "id": index + 1,
            "gateway": "VietinBank",
            "transactionDate": now.strftime("%Y-%m-%d %H:%M:%S"),
            "accountNumber": DEMO_AGENCY.bank_account,
            "code": None,
            "content": f"MBVCB.{3278123 + index}.{reference}.NGUYEN VAN AN chuyen tien",
            "transferType": "in",
            "transferAmount": amount,
            "accumulated": amount,
            "subAccount": None,
            "referenceCode": f"FT26325{index:08d}",
            "description": "",
        }
    ).encode()


def receipt_latency(
    pg: PostgresServer, redis: RedisServer, tmp: Path, table: Table, rate: int = RATE
) -> None:
    from einvoice.models import Receipt
    from payments.agencies import add_agency
    from payments.catalog import import_catalog
    from payments.credentials import add_bank_feed
    from payments.models import BankEvent, PaymentOrder
    from payments.orders import FeeRequest, OrderRequest, create_order
    from settings.db import engine_for, session_scope
    from settings.migrate import upgrade
    from signing.certs import write_pkcs12

    n_orders = rate * SEND_SECONDS
    db_name = f"bench_receipts_{rate}"
    db_url = pg.create_database(db_name)
    upgrade(db_url)
    data_dir = tmp / f"receipts-data-{rate}"
    data_dir.mkdir()
    env = {
        "MOTCUA_PROFILE": "production",
        "MOTCUA_DATABASE_URL": db_url,
        "MOTCUA_BROKER_URL": redis.url,
        "MOTCUA_SECRET_KEY": "b" * 48,
        "MOTCUA_DATA_DIR": str(data_dir),
        "MOTCUA_PUBLIC_BASE_URL": "https://thuphi.example.vn",
        "MOTCUA_TASK_EAGER": "false",
        "MOTCUA_LOG_LEVEL": "WARNING",
    }
    engine = engine_for(db_url)
    total = n_orders + N_WARMUP
    with patched_env(env):
        key, cert, ca = org_certificate(DEMO_AGENCY.tax_code, DEMO_AGENCY.name)
        p12 = data_dir / "org.p12"
        write_pkcs12(p12, key, cert, (ca,), None)
        with session_scope(engine) as s:
            agency = add_agency(s, DEMO_AGENCY)
            agency.signing_key_ref = f"pkcs12:{p12}"
            catalog = CATALOG.read_bytes()
            import_catalog(s, agency, catalog, effective_from=datetime(2026, 1, 1).date())
            _, sepay_key = add_bank_feed(s, agency, "sepay")
        t0 = time.perf_counter()
        orders: list[tuple[str, str, int]] = []
        request = OrderRequest(
            dossier_code="H01.22-261121-0001",
            procedure_code="1.001612",
            payer={"name": "Nguyễn Văn An", "id_number": "001090012345"},
            fees=(FeeRequest(fee_code="CT-BS", quantity=3),),
        )
        for start in range(0, total, 1000):
            with session_scope(engine) as s:
                agency = add_agency(s, DEMO_AGENCY)
                for _ in range(start, min(total, start + 1000)):
                    order = create_order(
                        s, agency, request, client_id=None, ttl=timedelta(days=1),
                        max_amount=500_000_000,
                    )  # fmt: skip
                    orders.append((order.id, order.reference, order.amount))
        took = time.perf_counter() - t0
        say(f"{total:,} orders created through the service layer in {took:.1f} s")
    engine.dispose()

    bodies = [sepay_body(i, ref, amount) for i, (_, ref, amount) in enumerate(orders)]
    measured, warm = bodies[:n_orders], bodies[n_orders:]
    headers = {"Authorization": f"Apikey {sepay_key}", "Content-Type": "application/json"}
    port = free_port()
    url = f"http://{loadgen.LOOPBACK}:{port}/api/v1/bank-feeds/sepay"
    worker = scheduler = None
    ordered_ids = [oid for oid, _, _ in orders]
    measured_ids = ordered_ids[:n_orders]

    def receipts_for(ids: list[str]) -> int:
        with session_scope(engine) as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(PaymentOrder)
                    .where(PaymentOrder.id.in_(ids), PaymentOrder.receipt_id.is_not(None))
                )
                or 0
            )

    def processed_count() -> int:
        """Events processed plus receipts issued: the worker's two kinds of task."""
        with session_scope(engine) as s:
            events = s.scalar(select(func.count(BankEvent.processed_at))) or 0
            return events + (s.scalar(select(func.count()).select_from(Receipt)) or 0)

    def state() -> str:
        """Where the notifications are in the pipeline, for progress and failure messages."""
        from payments.models import BankCredit

        with session_scope(engine) as s:
            events = s.execute(
                select(func.count(), func.count(BankEvent.processed_at)).select_from(BankEvent)
            ).one()
            matches = dict(
                s.execute(
                    select(BankCredit.match_status, func.count()).group_by(BankCredit.match_status)
                ).all()
            )
            errors = s.scalars(
                select(PaymentOrder.receipt_error)
                .where(PaymentOrder.receipt_error.is_not(None))
                .limit(1)
            ).all()
            receipts = s.scalar(select(func.count()).select_from(Receipt)) or 0
        return (
            f"events journaled {events[0]:,}, processed {events[1]:,}; credits {matches}; "
            f"receipts {receipts:,}" + (f"; receipt error e.g. {errors[0]}" if errors else "")
        )

    try:
        with loadgen.uvicorn(
            "api.app:create_app",
            port=port,
            env=child_env(env),
            log=tmp / "uvicorn-receipts.log",
            factory=True,
        ) as app_proc:
            worker = loadgen.spawn(
                [MOTCUA, "worker", "--concurrency", "2"],
                env=child_env(env),
                log=tmp / "worker.log",
            )
            # production runs the scheduler too: its sweep (every 15 s) re-dispatches events
            # and paid orders whose task failed or whose message was lost
            scheduler = loadgen.spawn(
                [MOTCUA, "scheduler"], env=child_env(env), log=tmp / "scheduler.log"
            )
            # warm-up: the first notifications load the key and fill caches in every process
            warm_ids = ordered_ids[n_orders:]
            res = loadgen.open_loop(url, warm, headers=headers, rate=20)
            if res.non2xx:
                raise RuntimeError(f"warm-up webhooks failed: {res.errors}")
            deadline = time.monotonic() + WARMUP_WAIT_SECONDS
            while (warm_done := receipts_for(warm_ids)) < len(warm_ids):
                if worker.poll() is not None:
                    raise RuntimeError(
                        f"worker exited ({worker.poll()}): {state()}\n"
                        f"{loadgen.log_tail(tmp / 'worker.log')}"
                    )
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            say(f"warm-up: {warm_done}/{len(warm_ids)} receipts issued ({state()}); sending "
                f"{n_orders:,} SePay webhooks at {rate}/s for {SEND_SECONDS} s ...")  # fmt: skip
            postmaster = loadgen.postmaster_pid(pg.data_dir) if pg.data_dir else None

            def cpu() -> tuple[float, float, float, float]:
                """CPU seconds so far: app, worker (with its pool), PostgreSQL, this sender."""
                assert worker is not None
                return (
                    loadgen.cpu_seconds(app_proc.pid),
                    loadgen.cpu_seconds(worker.pid, with_children=True),
                    loadgen.cpu_seconds(postmaster, with_children=True) if postmaster else 0.0,
                    sum(os.times()[:2]),
                )

            def cpu_report(before: tuple[float, ...], seconds: float) -> str:
                used = [b - a for a, b in zip(before, cpu(), strict=True)]
                names = ("app", "worker", "PostgreSQL", "sender")
                return ", ".join(f"{n} {u / seconds:.0%}" for n, u in zip(names, used, strict=True))

            cpu0, t_send = cpu(), time.monotonic()
            with WaitSampler(pg, db_name) as waits:
                sent = loadgen.open_loop(url, measured, headers=headers, rate=rate, drain_s=35)
            app_per_hook = (cpu()[0] - cpu0[0]) / max(len(sent.sent_at), 1) * 1000
            say(
                f"CPU while sending (share of one core; the machine has {os.cpu_count()}): "
                f"{cpu_report(cpu0, time.monotonic() - t_send)}; app {app_per_hook:.1f} ms "
                "per webhook"
            )
            cpu1, t_wait, processed0 = cpu(), time.monotonic(), processed_count()
            answered = list(sent.response_ms.values())
            say(
                f"sent {len(sent.sent_at):,} at {sent.achieved_rate:.1f}/s; non-2xx "
                f"{sent.non2xx}; sender lag p99 {ms(loadgen.percentile(sent.lag_ms, 99))}; "
                f"webhook response p50 {ms(loadgen.percentile(answered, 50))}"
                f" p99 {ms(loadgen.percentile(answered, 99))}"
            )
            if sent.errors:
                say(f"sender errors: {sent.errors}")
            say(f"what PostgreSQL sessions were doing while webhooks came in: {waits.summary()}")
            deadline = time.monotonic() + RECEIPT_WAIT_SECONDS
            done, last_print = 0, 0.0
            with WaitSampler(pg, db_name) as draining:
                while time.monotonic() < deadline:
                    done = receipts_for(measured_ids)
                    if done >= n_orders or worker.poll() is not None:
                        break
                    if time.monotonic() - last_print > 5:
                        say(f"waiting: {done:,}/{n_orders:,} measured receipts; {state()}")
                        last_print = time.monotonic()
                    time.sleep(0.5)
                checked_at = time.time()
            say(f"{done:,}/{n_orders:,} receipts issued; {state()}")
            say(f"what PostgreSQL sessions were doing meanwhile: {draining.summary()}")
            worked = processed_count() - processed0
            worker_cpu = cpu()[1] - cpu1[1]
            say(
                f"CPU while waiting: {cpu_report(cpu1, time.monotonic() - t_wait)}; worker "
                f"{worker_cpu / max(worked, 1) * 1000:.0f} ms per event processed or receipt issued"
            )
    finally:
        loadgen.stop(scheduler)
        loadgen.stop(worker)

    index_of = {oid: i for i, oid in enumerate(measured_ids)}
    with session_scope(engine) as s:
        rows = s.execute(
            select(PaymentOrder.id, Receipt.created_at, PaymentOrder.receipt_error)
            .join(Receipt, Receipt.id == PaymentOrder.receipt_id, isouter=True)
            .where(PaymentOrder.id.in_(measured_ids))
        ).all()
        events = s.execute(
            select(BankEvent.dedup_key, BankEvent.received_at, BankEvent.processed_at)
        ).all()
    engine.dispose()
    latencies, from_schedule, errors = [], [], []
    for oid, created, error in rows:
        i = index_of[oid]
        if created is not None and i in sent.sent_at:
            latencies.append((created.timestamp() - sent.sent_at[i]) * 1000)
            from_schedule.append((created.timestamp() - sent.scheduled_at[i]) * 1000)
        elif error:
            errors.append(error)
    journaled, processed = [], []
    for dedup, received, processed_at in events:
        i = int(dedup) - 1
        if i in sent.sent_at and i < n_orders:
            journaled.append((received.timestamp() - sent.sent_at[i]) * 1000)
            if processed_at is not None:
                processed.append((processed_at.timestamp() - sent.sent_at[i]) * 1000)
    if errors:
        say(f"{len(errors)} orders with a receipt error, e.g. {errors[0]}")
    if not latencies:
        raise RuntimeError("no receipt was issued")
    worker_log = (tmp / "worker.log").read_text(errors="replace")
    deadlocks = worker_log.count("raised unexpected: OperationalError('(psycopg.errors.Deadlock")
    failed = worker_log.count("raised unexpected")
    say(f"worker: {failed} task failures, of which {deadlocks} PostgreSQL deadlocks")
    missing = n_orders - len(latencies)
    pct = loadgen.percentile
    # a notification still without a receipt at the last check is later than this
    at_least = (checked_at - sent.last_send) * 1000 if sent.sent_at else 0.0

    def lat(q: float) -> str:
        """Percentile over every notification; one without a receipt counts as infinitely late."""
        value = pct([*latencies, *([float("inf")] * missing)], q)
        return ms(value) if value != float("inf") else f"> {at_least / 1000:.0f} s (no receipt)"

    for name, values in (
        ("sent → journaled (webhook)", journaled),
        ("sent → event processed (worker)", processed),
        ("sent → receipt created", latencies),
        ("scheduled send → receipt created", from_schedule),
    ):
        if values:
            say(
                f"{name}: p50 {ms(pct(values, 50))}, p95 {ms(pct(values, 95))}, "
                f"p99 {ms(pct(values, 99))}, max {ms(max(values))} ({len(values):,})"
            )

    say(f"baseline: Celery round trip, {NOOP_TASKS:,} no-op tasks at {rate}/s, same Redis ...")
    trips = loadgen.celery_round_trip(
        redis.url, count=NOOP_TASKS, rate=rate, log=tmp / "noop-worker.log"
    )
    if not trips:
        raise RuntimeError("no no-op task came back")
    say(f"Celery round trip: p50 {ms(pct(trips, 50))}, p99 {ms(pct(trips, 99))} ({len(trips)})")

    bare_port = free_port()
    n_bare = rate * BARE_AT_RATE_SECONDS
    bare_body = json.dumps(ORDER_BODY, ensure_ascii=False).encode()
    with loadgen.uvicorn(
        "bench.bare_app:app",
        port=bare_port,
        env=child_env({}),
        log=tmp / "uvicorn-bare-rate.log",
    ):
        bare_url = f"http://{loadgen.LOOPBACK}:{bare_port}/echo"
        plain = {"Content-Type": "application/json"}
        loadgen.open_loop(bare_url, [bare_body] * 100, headers=plain, rate=rate)
        bare = loadgen.open_loop(bare_url, [bare_body] * n_bare, headers=plain, rate=rate)
    bare_ms = list(bare.response_ms.values())
    ours_ms = [sent.response_ms[i] for i in sent.response_ms if sent.status.get(i) == 200]
    say(
        f"bare FastAPI POST at {rate}/s: p50 {ms(pct(bare_ms, 50))}, p99 {ms(pct(bare_ms, 99))} "
        f"({bare.achieved_rate:.1f}/s, non-2xx {bare.non2xx})"
    )
    arrived = f"{len(latencies):,}/{n_orders:,}"
    p99 = pct([*latencies, *([float("inf")] * missing)], 99)
    table.add(
        f"bank notification → receipt p99 at {rate}/s for {SEND_SECONDS} s "
        f"(sent {sent.achieved_rate:.1f}/s; receipts {arrived} by {RECEIPT_WAIT_SECONDS} s "
        f"after the sender finished; p95 {lat(95)}, max {lat(100)})",
        f"p50 {lat(50)}, p99 {lat(99)}",
        f"Celery no-op round trip p50 {ms(pct(trips, 50))}, p99 {ms(pct(trips, 99))}",
        f"{p99 / pct(trips, 99):,.0f}x"
        if p99 != float("inf")
        else f"> {at_least / pct(trips, 99):,.0f}x",
        "",
    )
    if ours_ms:
        table.add(
            f"  SePay webhook HTTP response p99 at {rate}/s (vs bare FastAPI POST at {rate}/s)",
            ms(pct(ours_ms, 99)),
            ms(pct(bare_ms, 99)),
            f"{pct(ours_ms, 99) / pct(bare_ms, 99):.1f}x",
            "",
        )


# ---------------------------------------------------------------- entry points


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: every server started is stopped


def run(
    table: Table,
    parts: tuple[str, ...] = ("orders", "receipts"),
    rates: tuple[int, ...] = (20, RATE),
) -> None:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
            stack.callback(signal.signal, signal.SIGTERM, previous)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="motcua-bench-http-")))
        say("starting PostgreSQL and Redis on 127.0.0.1 ...")
        pg = stack.enter_context(PostgresServer())
        redis = stack.enter_context(RedisServer())
        try:
            if "orders" in parts:
                say("order creation throughput")
                order_throughput(pg, tmp, table)
            if "receipts" in parts:
                for rate in rates:  # the goals: p99 ≤ 100 ms at 20/s, ≤ 250 ms at 200/s
                    say(f"bank notification → receipt at {rate}/s")
                    receipt_latency(pg, redis, tmp, table, rate=rate)
        except BaseException:
            kept = Path(tempfile.mkdtemp(prefix="motcua-bench-http-logs-"))
            for log in sorted(tmp.glob("*.log")):
                shutil.copy(log, kept / log.name)
                text = log.read_text(errors="replace").splitlines()
                bad = [line for line in text if "ERROR" in line or "Error" in line][:10]
                print(f"--- {log.name}: first errors\n" + "\n".join(bad), flush=True)
                print(f"--- {log.name} (tail)\n{loadgen.log_tail(log)}", flush=True)
            print(f"--- logs kept in {kept}", flush=True)
            raise
    say(f"HTTP suite done in {time.monotonic() - started:.0f} s")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="HTTP benchmarks (bench/bench_http.py)")
    parser.add_argument("--only", choices=["orders", "receipts"], action="append")
    parser.add_argument(
        "--rate", type=int, action="append", help="notifications/s (default: 20 and 200)"
    )
    args = parser.parse_args()
    table = Table()
    run(table, tuple(args.only or ("orders", "receipts")), tuple(args.rate or (20, RATE)))
    print("\n" + table.markdown())


if __name__ == "__main__":
    main()
