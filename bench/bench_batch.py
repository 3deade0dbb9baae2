"""The batch issuer (issue 16): journaled bank credits → stored signed receipts, per second.

N orders are created and N SePay notifications paying them are journaled (the state a
province-wide install is in after an outage or when a statement arrives). Then W worker
processes run the worker's own batch step (:func:`payments.tasks.issue_ready`) until every
order has its receipt. Baseline in the same run: raw RSA-2048 signatures per second with the
same key on W processes (the limit the goal is stated against). SQL round trips per receipt
are counted by SQLAlchemy's ``before_cursor_execute`` in each worker (an executemany of a
whole batch is one round trip, which is the point of batching).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import Table

ROOT = Path(__file__).resolve().parents[1]


def run(table: Table, n: int = 10_000, workers: int = 2) -> None:
    saved = dict(os.environ)
    try:
        _run(table, n, workers)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _sign_loop(key_ref: str, seconds: float, out: Any) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from signing.keys import load_key_source

    private = load_key_source(key_ref).private_key
    n = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        private.sign(b"x" * 1300, padding.PKCS1v15(), hashes.SHA256())
        n += 1
    out.put(n / seconds)


def _worker(env: dict[str, str], out: Any) -> None:
    os.environ.update(env)
    from sqlalchemy import event

    import api.composition  # noqa: F401 - models and tasks, as a worker has them
    from payments.tasks import issue_ready
    from settings.db import get_engine

    statements = [0]
    timing = os.environ.get("BENCH_SQL_TIMES") == "1"  # wall time per kind of statement
    times: dict[str, list[float]] = {}
    started: list[float] = [0.0]

    @event.listens_for(get_engine(), "before_cursor_execute")
    def _count(*_: Any) -> None:
        statements[0] += 1
        started[0] = time.perf_counter()

    @event.listens_for(get_engine(), "after_cursor_execute")
    def _took(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if timing:
            kind = " ".join(statement.split()[:4])[:60]
            times.setdefault(kind, []).append(time.perf_counter() - started[0])

    batches = issued = 0
    idle = 0
    profile_to = os.environ.get("BENCH_PROFILE")  # a path: where this worker's cProfile goes
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    while idle < 3:  # bounded: stops after three empty rounds in a row
        result = issue_ready()
        batches += 1
        issued += result["issued"]
        idle = idle + 1 if not result["events"] and not result["issued"] else 0
    for kind, spent in sorted(times.items(), key=lambda kv: -sum(kv[1]))[:12]:
        print(f"    {sum(spent):7.3f} s {len(spent):6d}x  {kind}", flush=True)
    if profiler is not None and profile_to:
        profiler.disable()
        profiler.dump_stats(f"{profile_to}.{os.getpid()}")
    out.put({"batches": batches, "issued": issued, "statements": statements[0]})


def _run(table: Table, n: int, workers: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from infra import PostgresServer

    with PostgresServer() as pg, tempfile.TemporaryDirectory() as tmp:
        url = pg.create_database("bench_batch")
        env = {"MOTCUA_DATABASE_URL": url, "MOTCUA_DATA_DIR": tmp, "MOTCUA_TASK_EAGER": "true"}
        os.environ.update(env)
        from settings.config import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        import api.composition  # noqa: F401
        from api.demo import seed
        from payments.agencies import agency_by_code
        from payments.bankfeeds import journal_sepay
        from payments.orders import FeeRequest, OrderRequest, create_order
        from settings.db import get_engine, session_scope, utcnow
        from settings.migrate import upgrade

        upgrade(url)
        seed(settings)
        print(f"  creating {n} orders and journaling {n} credits ...", flush=True)
        with session_scope() as s:
            agency = agency_by_code(s, "DEMO-HUYEN")
            key_ref = agency.signing_key_ref or ""
            request = OrderRequest(
                dossier_code="B-1",
                procedure_code="1.001612",
                payer={"name": "Nguyễn Văn An", "id_number": "001090012345"},
                fees=(FeeRequest("CT-BS", 3),),
            )
            orders = [
                create_order(
                    s, agency, request, client_id=None, ttl=timedelta(days=1), max_amount=10**9
                )
                for _ in range(n)
            ]
            booked = utcnow().astimezone().strftime("%Y-%m-%d %H:%M:%S")
            for i, order in enumerate(orders):
                raw = json.dumps(
                    {
                        "id": 900_000 + i,
                        "gateway": "VietinBank",
                        "transactionDate": booked,
                        "accountNumber": agency.bank_account,
                        "content": f"CK {order.reference}",
                        "transferType": "in",
                        "transferAmount": order.amount,
                        "referenceCode": f"FT-BATCH-{i}",
                    }
                ).encode()
                journal_sepay(s, agency, raw)
        get_engine().dispose()
        ctx = mp.get_context("spawn")
        signs: Any = ctx.Queue()
        procs = [ctx.Process(target=_sign_loop, args=(key_ref, 3.0, signs)) for _ in range(workers)]
        for p in procs:
            p.start()
        raw_rate = sum(signs.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(timeout=30)
        print(f"  {workers} worker processes issuing ...", flush=True)
        results: Any = ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(env, results)) for _ in range(workers)]
        start = time.perf_counter()
        for p in procs:
            p.start()
        reports = [results.get(timeout=1800) for _ in procs]
        elapsed = time.perf_counter() - start
        for p in procs:
            p.join(timeout=30)
        with session_scope() as s:
            from sqlalchemy import func, select

            from einvoice.models import Receipt

            stored = s.scalar(select(func.count()).select_from(Receipt)) or 0
            numbers = list(s.scalars(select(Receipt.number).order_by(Receipt.number)))
        gapless = numbers == list(range(1, len(numbers) + 1))
    issued = sum(r["issued"] for r in reports)
    batches = sum(r["batches"] for r in reports)
    per_s = stored / elapsed
    statements = sum(r["statements"] for r in reports) / max(stored, 1)
    gaps = "gapless" if gapless else "WITH GAPS"
    table.add(
        f"receipts/s from {n:,} journaled credits to stored signed receipts, PostgreSQL, "
        f"{workers} worker processes ({stored:,} stored, {issued:,} by the workers in "
        f"{batches:,} batches, numbers 1..{len(numbers):,} {gaps}; "
        f"{statements:.2f} SQL round trips per receipt incl. process start; "
        "an executemany counts once)",
        f"{per_s:,.0f}/s",
        f"{raw_rate:,.0f}/s raw RSA-2048 on {workers} processes",
        f"{per_s / raw_rate:.3f}",
        "≥ 0.10",
    )


if __name__ == "__main__":
    t = Table()
    run(
        t,
        n=int(os.environ.get("BENCH_N", "10000")),
        workers=int(os.environ.get("BENCH_WORKERS", "2")),
    )
    print(t.markdown())
