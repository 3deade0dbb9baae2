"""The production stack the fault suite breaks: PostgreSQL, Redis, uvicorn, ``motcua worker``.

Everything runs on 127.0.0.1 from this test process, every loop is bounded in count and time,
and only processes started here are ever signalled (by their id or their own process group).

Two stand-ins, both documented in docs/faults.md:

- **Beat.** ``motcua scheduler`` sweeps every 15 s (hard-coded in ``settings/worker.py``) and,
  in production, also runs ``payments.deliver_callbacks``, which refuses loopback URLs by
  design. So :class:`Beat` sends the very same ``payments.sweep`` task through Redis to the real
  worker, more often (every ``sweep_every`` s, ``min_age_seconds`` shorter), to keep the suite
  short; the sweep code that recovers the work is the production one, run by the worker.
- **Callback egress.** :class:`CallbackPump` runs the outbox's own :func:`deliver_due` from this
  process with ``allow_loopback=True``, towards a :class:`CallbackReceiver` on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from celery import Celery
from infra import PostgresServer, RedisServer
from infra.callback_receiver import CallbackReceiver
from infra.clock import bank_time, subprocess_env
from infra.ports import free_port
from sqlalchemy import Engine, func, insert, select, text

ROOT = Path(__file__).resolve().parents[2]
MOTCUA = str(Path(sys.executable).with_name("motcua"))
LOOPBACK = "127.0.0.1"
CATALOG = ROOT / "payments" / "data" / "demo_catalog.csv"
WORKER_APP_NAME = "faults-worker"
"""``application_name`` of the worker's database sessions (see ``Stack.batches_in_flight``)."""


def say(line: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {line}", flush=True)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.25, what: str = ""
) -> bool:
    """Polls ``predicate`` until true or ``timeout`` s passed; returns whether it became true.

    Exceptions from the predicate (the database restarting) count as "not yet".
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:
            pass
        time.sleep(interval)
    if what:
        say(f"gave up waiting for {what} after {timeout:.0f} s")
    return False


# ---------------------------------------------------------------- processes


def spawn(argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            list(argv),
            env=subprocess_env(env),  # a moved run's clock (tests/infra/clock.py)
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """SIGTERM our child's own process group, SIGKILL it after ``timeout``; no-op if gone."""
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # prefork children left behind by the leader


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (the prefork pool of a Celery worker), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


# ---------------------------------------------------------------- SePay-shaped webhooks


def sepay_body(sepay_id: int, *, account: str, amount: int, content: str, ref: str) -> bytes:
    return json.dumps(
        {
            "id": sepay_id,
            "gateway": "VietinBank",
            "transactionDate": bank_time(),
            "accountNumber": account,
            "code": None,
            "content": content,
            "transferType": "in",
            "transferAmount": amount,
            "accumulated": amount,
            "subAccount": None,
            "referenceCode": ref,
            "description": "",
        }
    ).encode()


@dataclass
class SendReport:
    """What the bank saw while delivering its webhooks."""

    sent: int = 0
    acked: int = 0
    attempts: int = 0
    first_try_ok: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    """Every non-200 answer (or exception class name) seen, with its count."""
    gave_up: list[int] = field(default_factory=list)
    """Indexes of webhooks never answered 200 within the attempt and time bounds."""
    slowest: float = 0.0
    """Longest single attempt, in seconds."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note(self, key: str) -> None:
        with self.lock:
            self.statuses[key] = self.statuses.get(key, 0) + 1

    def line(self) -> str:
        bad = ", ".join(f"{k}×{v}" for k, v in sorted(self.statuses.items())) or "none"
        return (
            f"webhooks sent={self.sent} acked={self.acked} first-try={self.first_try_ok} "
            f"attempts={self.attempts} non-200={bad} gave-up={len(self.gave_up)} "
            f"slowest={self.slowest:.2f}s"
        )


class WebhookSender:
    """Posts SePay webhooks like SePay does: anything but 200 (or no answer) is retried.

    ``rate`` spreads the sends over time (open loop, one scheduled moment per webhook); each
    webhook is retried at most ``max_attempts`` times, ``retry_delay`` s apart, and the whole
    run stops at ``deadline`` seconds.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        threads: int = 4,
        max_attempts: int = 40,
        retry_delay: float = 0.5,
        timeout: float = 5.0,
        deadline: float = 120.0,
    ) -> None:
        self.url = url
        self.headers = {"Authorization": f"Apikey {api_key}", "Content-Type": "application/json"}
        self.threads = threads
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.deadline = deadline

    def post_once(self, http: httpx.Client, body: bytes) -> str:
        """One attempt: ``"200"``, another status, or the exception's class name."""
        try:
            res = http.post(self.url, content=body, headers=self.headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return str(res.status_code)

    def send(self, bodies: Sequence[bytes], *, rate: float | None = None) -> SendReport:
        report = SendReport(sent=len(bodies))
        start = time.monotonic()
        stop_at = start + self.deadline
        cursor = iter(range(len(bodies)))
        cursor_lock = threading.Lock()

        def run() -> None:
            with httpx.Client() as http:
                while True:
                    with cursor_lock:
                        index = next(cursor, None)
                    if index is None:
                        return
                    if rate:
                        delay = start + index / rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    for attempt in range(1, self.max_attempts + 1):
                        t0 = time.monotonic()
                        outcome = self.post_once(http, bodies[index])
                        took = time.monotonic() - t0
                        with report.lock:
                            report.attempts += 1
                            report.slowest = max(report.slowest, took)
                        if outcome == "200":
                            with report.lock:
                                report.acked += 1
                                report.first_try_ok += attempt == 1
                            break
                        report.note(outcome)
                        if time.monotonic() + self.retry_delay > stop_at:
                            break
                        time.sleep(self.retry_delay)
                    else:
                        outcome = "exhausted"
                    if outcome != "200":
                        with report.lock:
                            report.gave_up.append(index)

        workers = [threading.Thread(target=run, daemon=True) for _ in range(self.threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(timeout=self.deadline + 30)
        return report

    def send_in_background(
        self, bodies: Sequence[bytes], *, rate: float | None = None
    ) -> tuple[threading.Thread, list[SendReport]]:
        out: list[SendReport] = []
        thread = threading.Thread(target=lambda: out.append(self.send(bodies, rate=rate)))
        thread.start()
        return thread, out


# ---------------------------------------------------------------- stand-ins


class Beat:
    """Sends ``payments.sweep`` to the real worker every ``every`` seconds (see module doc)."""

    def __init__(self, broker_url: str, *, every: float = 2.0, min_age_seconds: int = 4) -> None:
        self.app = Celery("motcua-faults-beat", broker=broker_url)
        self.app.conf.update(
            broker_connection_timeout=1,
            broker_connection_retry=False,
            broker_transport_options={"socket_timeout": 2, "socket_connect_timeout": 2},
        )
        self.every = every
        self.min_age = min_age_seconds
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults-beat", daemon=True)

    def send(self, task: str, **kwargs: Any) -> bool:
        try:
            self.app.send_task(task, kwargs=kwargs, retry=False)
        except Exception:
            self.failed += 1
            return False
        self.sent += 1
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.send("payments.sweep", min_age_seconds=self.min_age)

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self.app.close()


class CallbackPump:
    """Delivers the outbox to the loopback receiver with the production :func:`deliver_due`."""

    def __init__(self, engine: Engine, *, every: float = 0.3) -> None:
        self.engine = engine
        self.every = every
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults-callbacks", daemon=True)

    def _run(self) -> None:
        from payments.callbacks import deliver_due
        from settings.db import session_factory, utcnow

        factory = session_factory(self.engine)
        with httpx.Client(follow_redirects=False) as http:
            while not self._stop.wait(self.every):
                try:
                    deliver_due(
                        factory,
                        now=utcnow(),
                        http=http,
                        allow_loopback=True,
                        batch=200,
                        timeout=5,
                        budget_seconds=5,
                    )
                except Exception:
                    self.errors += 1

    def __enter__(self) -> CallbackPump:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    pg: PostgresServer
    redis: RedisServer
    db_url: str
    engine: Engine
    env: dict[str, str]
    tmp: Path
    agency_id: str
    agency_code: str
    account: str
    api_client_id: str
    sepay_key: str
    receiver: CallbackReceiver
    port: int = 0
    app_proc: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    worker_starts: int = 0
    _sepay_ids: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**9)))
    _refs: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**9)))

    # ------------------------------------------------------------ processes

    def child_env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
        return {**base, **self.env}

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/api/v1/bank-feeds/sepay"

    def start_app(self) -> None:
        self.port = free_port()
        log = self.tmp / "uvicorn.log"
        argv = [
            sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
            "--host", LOOPBACK, "--port", str(self.port), "--workers", "1",
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        self.app_proc = spawn(argv, self.child_env(), log)
        ok = wait_until(self._app_answers, timeout=40, interval=0.1)
        if not ok:
            raise RuntimeError(f"the app did not start:\n{log_tail(log)}")

    def _app_answers(self) -> bool:
        assert self.app_proc is not None
        if self.app_proc.poll() is not None:
            raise RuntimeError(f"app exited:\n{log_tail(self.tmp / 'uvicorn.log')}")
        return httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200

    def start_worker(self, concurrency: int = 2) -> None:
        """``motcua worker`` (execs Celery, prefork pool) in its own process group; its
        database sessions are named :data:`WORKER_APP_NAME` (libpq's ``PGAPPNAME``), so the
        suite can tell them from the app's and its own in ``pg_stat_activity``."""
        self.worker = spawn(
            [MOTCUA, "worker", "--concurrency", str(concurrency)],
            {**self.child_env(), "PGAPPNAME": WORKER_APP_NAME},
            self.tmp / "worker.log",
        )
        self.worker_starts += 1

    def worker_alive(self) -> bool:
        return self.worker is not None and self.worker.poll() is None

    def pause_worker(self) -> set[int]:
        """SIGSTOP the worker's process group (parent and pool): messages and journal rows pile
        up meanwhile, so the batch that follows :meth:`resume_worker` is big. Returns the
        batches the stop froze after their number reservation (their transaction ids): they
        finish at once when resumed, so a test waiting for the next batch skips them."""
        if self.worker is None:
            return set()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.worker.pid, signal.SIGSTOP)
        time.sleep(0.02)  # a COMMIT already on its way is processed meanwhile
        with contextlib.suppress(Exception):
            return {b.xid for b in self.batches_in_flight()}
        return set()

    def resume_worker(self) -> None:
        if self.worker is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.worker.pid, signal.SIGCONT)

    def worker_ready(self, timeout: float = 40.0) -> bool:
        """True once the worker's pool is up (its children exist)."""
        assert self.worker is not None
        return wait_until(lambda: len(children_of(self.worker.pid)) > 0, timeout=timeout)  # type: ignore[union-attr]

    def kill_worker(self, mode: str, *, victim: int | None = None) -> str:
        """kill -9 the worker: ``group`` (parent and pool), ``parent`` then the orphans, or
        ``child`` (one pool process, ``victim`` if it is one, e.g. the one holding a batch;
        the parent replaces it). Returns what was killed."""
        assert self.worker is not None
        pid = self.worker.pid
        if mode == "child":
            kids = children_of(pid)
            if kids:
                victim = victim if victim in kids else random.choice(kids)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
                return f"child {victim}"
            mode = "group"
        if mode == "parent":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.worker.wait(timeout=10)
            time.sleep(0.3)  # the orphans may still be mid-task: then they die too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.worker.wait(timeout=10)
        self.worker = None
        return f"{mode} {pid}"

    def ensure_worker(self) -> None:
        if self.worker is None or self.worker.poll() is not None:
            self.worker = None
            self.start_worker()

    def stop(self) -> None:
        stop_group(self.worker)
        stop_group(self.app_proc)
        self.worker = None
        self.app_proc = None

    # ------------------------------------------------------------ orders and credits

    def create_orders(
        self, count: int, *, callbacks: bool = True, paid_cash: bool = False
    ) -> list[tuple[str, str, int]]:
        """``count`` orders through the service layer: (id, transfer reference, amount).

        The callback URL is the loopback receiver, stored directly: production refuses loopback
        callback URLs at the API (rightly), and the suite has only loopback.
        """
        from payments.models import Agency
        from payments.orders import FeeRequest, OrderRequest, create_order, mark_succeeded
        from settings.db import session_scope, utcnow

        out = []
        for start in range(0, count, 500):
            with session_scope(self.engine) as s:
                agency = s.get(Agency, self.agency_id)
                assert agency is not None
                for i in range(start, min(count, start + 500)):
                    request = OrderRequest(
                        dossier_code=f"H01.22-FAULT-{next(self._refs):06d}",
                        procedure_code="1.001612",
                        payer={"name": "Nguyễn Văn An", "id_number": "001090012345"},
                        fees=(FeeRequest(fee_code="CT-BS", quantity=1 + i % 3),),
                        callback_url=self.receiver.url if callbacks else None,
                    )
                    order = create_order(
                        s,
                        agency,
                        request,
                        client_id=self.api_client_id if callbacks else None,
                        ttl=timedelta(days=1),
                        max_amount=500_000_000,
                    )
                    if paid_cash:
                        mark_succeeded(order, method="cash", at=utcnow())
                    out.append((order.id, order.reference, order.amount))
        return out

    def paid_order_copies(self, count: int) -> list[str]:
        """``count`` paid (cash) orders without callbacks, fast: one order is made through the
        service layer and paid, then copied row by row with new ids and transfer references
        (bulk INSERTs; thousands of ``create_order`` calls would dominate the issuer test)."""
        from payments import reference as transfer_reference
        from payments.models import OrderLine, PaymentOrder, new_id
        from settings.db import session_scope

        [(template_id, _, _)] = self.create_orders(1, callbacks=False, paid_cash=True)
        ids = [template_id]
        with session_scope(self.engine) as s:
            order = s.get(PaymentOrder, template_id)
            assert order is not None
            base = {c.key: getattr(order, c.key) for c in PaymentOrder.__table__.columns}
            lines = [
                {c.key: getattr(line, c.key) for c in OrderLine.__table__.columns}
                for line in order.lines
            ]
        for start in range(1, count, 2000):
            orders, order_lines = [], []
            for _ in range(start, min(count, start + 2000)):
                oid = new_id()
                ids.append(oid)
                orders.append({**base, "id": oid, "reference": transfer_reference.generate()})
                order_lines += [{**line, "id": new_id(), "order_id": oid} for line in lines]
            with session_scope(self.engine) as s:
                s.execute(insert(PaymentOrder), orders)
                s.execute(insert(OrderLine), order_lines)
        return ids

    def credit_bodies(
        self, orders: Iterable[tuple[str, str, int]], *, strays: int = 0, short_by: int = 0
    ) -> tuple[list[bytes], list[str]]:
        """One webhook per order (mangled memo, exact amount), plus ``strays`` unknown credits
        and ``short_by`` under-payments (both exceptions). Returns bodies and bank refs."""
        bodies, refs = [], []
        orders = list(orders)
        for n, (_, reference, amount) in enumerate(orders):
            sid = next(self._sepay_ids)
            ref = f"FT26FAULT{sid:08d}"
            under = n < short_by
            bodies.append(
                sepay_body(
                    sid,
                    account=self.account,
                    amount=amount - 1000 if under else amount,
                    content=f"MBVCB.{3278000 + sid}.{reference}.NGUYEN VAN AN chuyen tien",
                    ref=ref,
                )
            )
            refs.append(ref)
        for _ in range(strays):
            sid = next(self._sepay_ids)
            ref = f"FT26STRAY{sid:08d}"
            bodies.append(
                sepay_body(sid, account=self.account, amount=77000, content="UNG HO QUY", ref=ref)
            )
            refs.append(ref)
        random.shuffle(combined := list(zip(bodies, refs, strict=True)))
        return [b for b, _ in combined], [r for _, r in combined]

    def sender(self, **kwargs: Any) -> WebhookSender:
        return WebhookSender(self.webhook_url, self.sepay_key, **kwargs)

    # ------------------------------------------------------------ progress

    def progress(self) -> dict[str, int]:
        """Where the work is: journaled/processed events, paid orders without receipt, pending
        callbacks (one query each)."""
        from payments.callback_models import CallbackEvent
        from payments.models import BankEvent, PaymentOrder
        from settings.db import session_scope

        with session_scope(self.engine) as s:
            events, processed = s.execute(
                select(func.count(), func.count(BankEvent.processed_at))
            ).one()
            unreceipted = s.scalar(
                select(func.count())
                .select_from(PaymentOrder)
                .where(PaymentOrder.status == "succeeded", PaymentOrder.receipt_id.is_(None))
            )
            pending = s.scalar(
                select(func.count())
                .select_from(CallbackEvent)
                .where(CallbackEvent.state == "pending")
            )
        return {
            "events": int(events),
            "processed": int(processed),
            "unreceipted": int(unreceipted or 0),
            "callbacks_pending": int(pending or 0),
        }

    def settled(self, expected_events: int) -> bool:
        p = self.progress()
        return (
            p["events"] >= expected_events
            and p["processed"] == p["events"]
            and p["unreceipted"] == 0
            and p["callbacks_pending"] == 0
        )

    def wait_settled(self, expected_events: int, timeout: float) -> dict[str, int]:
        """Waits (bounded) until every event is processed, every payment has its receipt and
        every callback left the outbox; returns the last progress seen."""
        wait_until(lambda: self.settled(expected_events), timeout=timeout, interval=0.5)
        with contextlib.suppress(Exception):
            return self.progress()
        return {}

    def worker_log_summary(self) -> str:
        """What the worker's log says about recovery: work the sweep re-dispatched, failed
        tasks, tasks lost with a killed pool process."""
        try:
            text_ = (self.tmp / "worker.log").read_text(errors="replace")
        except OSError:
            return "worker log unreadable"
        events = orders = 0
        for m in re.finditer(
            r"payments\.sweep\[[^\]]*\] succeeded[^{]*\{'events': (\d+), 'orders': (\d+)\}", text_
        ):
            events += int(m.group(1))
            orders += int(m.group(2))
        polled_events = polled_orders = 0
        for m in re.finditer(r"journal poller processed events=(\d+) orders=(\d+)", text_):
            polled_events += int(m.group(1))
            polled_orders += int(m.group(2))
        failed = len(re.findall(r"Task [\w.]+\[[^\]]*\] raised unexpected", text_))
        lost = text_.count("WorkerLostError")
        return (
            f"sweep re-dispatched events={events} orders={orders}; journal poller processed "
            f"events={polled_events} orders={polled_orders}; failed tasks={failed} lost={lost}"
        )

    def batches_in_flight(self) -> list[BatchInFlight]:
        """Worker transactions holding reserved receipt numbers, not committed yet.

        ``reserve_numbers`` writes ``receipt_counters`` (``INSERT … ON CONFLICT DO UPDATE``),
        which takes a ``RowExclusiveLock`` on the table until the transaction ends; only the
        batch issuer writes that table, so a worker session (``PGAPPNAME``) holding that lock
        is a batch between its number reservation and its commit: the moment a crash must not
        leave a gap or a duplicate. A transaction already executing its ``COMMIT`` is left
        out (nothing can cut it any more). The window is short (a few tens of ms for tens of
        receipts): act on it at once, or stop the worker inside it (:meth:`freeze_mid_batch`).
        """
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.pid, a.client_port, a.backend_xid::text::bigint "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE a.datname = current_database() AND a.application_name = :app "
                    "AND l.locktype = 'relation' AND l.granted "
                    "AND l.relation = 'receipt_counters'::regclass "
                    "AND l.mode = 'RowExclusiveLock' AND a.backend_xid IS NOT NULL "
                    "AND NOT (a.state = 'active' AND a.query ILIKE 'commit%')"
                ),
                {"app": WORKER_APP_NAME},
            ).all()
        return [BatchInFlight(int(backend), int(xid), port) for backend, port, xid in rows]

    def worker_pid_of(self, batch: BatchInFlight) -> int | None:
        """The worker process (parent or pool child) whose connection runs ``batch``, from its
        TCP client port (/proc; our own processes only), if found."""
        pids = [self.worker.pid, *children_of(self.worker.pid)] if self.worker else []
        return _pid_of_client_port(batch.client_port, pids)

    def wait_batch_in_flight(
        self, timeout: float, *, skip: Collection[int] = ()
    ) -> BatchInFlight | None:
        """Polls (every ms or so, at most ``timeout`` s) for a batch between reservation and
        commit, other than the transactions in ``skip``; the first one seen, or ``None``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # the database may be restarting
                found = [b for b in self.batches_in_flight() if b.xid not in skip]
                if found:
                    return found[0]
            time.sleep(0.001)
        return None

    def freeze_mid_batch(
        self, timeout: float, *, skip: Collection[int] = ()
    ) -> BatchInFlight | None:
        """Waits (at most ``timeout`` s) for a batch between reservation and commit and stops
        the worker (SIGSTOP) in the middle of it: confirmed once stopped (20 ms later, the
        batch still holds its numbers and has not sent its ``COMMIT``), else the worker is let
        go and the next batch is tried. Returns the frozen batch (the caller resumes the
        worker), or ``None`` with the worker running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = self.wait_batch_in_flight(max(0.0, deadline - time.monotonic()), skip=skip)
            if batch is None:
                return None
            if batch.xid in self.pause_worker():  # still holding its numbers, now stopped
                return batch
            self.resume_worker()
        return None

    def transaction_outcome(self, xid: int, timeout: float = 10.0) -> str:
        """``committed`` or ``aborted`` (``txid_status``), once the transaction has ended
        (a killed client's backend notices within moments); ``in progress`` after ``timeout``.
        The suite's cluster is fresh, so a 32-bit xid is its 64-bit one (epoch 0)."""
        status = "unknown"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                with self.engine.connect() as conn:
                    status = str(
                        conn.execute(text("SELECT txid_status(:x)"), {"x": xid}).scalar_one()
                    )
                if status != "in progress":
                    return status
            time.sleep(0.05)
        return status

    def receipts_count(self) -> int:
        from einvoice.models import Receipt
        from settings.db import session_scope

        with session_scope(self.engine) as s:
            return int(s.scalar(select(func.count()).select_from(Receipt)) or 0)


@dataclass(frozen=True)
class BatchInFlight:
    backend_pid: int
    """The PostgreSQL backend running the batch's transaction."""
    xid: int
    """That transaction's id: :meth:`Stack.transaction_outcome` tells how it ended."""
    client_port: int | None
    """The worker connection's TCP port (:meth:`Stack.worker_pid_of`)."""


def _pid_of_client_port(port: int | None, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` owns the TCP socket bound to local ``port`` (from /proc; our own
    processes only)."""
    if port is None:
        return None
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                if len(cols) > 9 and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return pid
    return None
