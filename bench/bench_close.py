"""The daily close at scale (issue 5 "Scale"): one business day of N receipts and N bank lines.

Goal: 1M receipts and 1M bank lines close in ≤ 20 s on PostgreSQL on this machine with a peak
memory ≤ 1 GiB, and 10× the data costs ≤ 11× the time. For each size (100k and 1M by default):

1. A throw-away PostgreSQL on 127.0.0.1 (``tests/infra``; the harness's settings: fsync and
   synchronous_commit off, otherwise the stock configuration), a fresh database migrated to
   every head, the demo agency (``api.demo.DEMO_AGENCY``) and two fee items added via the ORM.
2. One day of payments written set-based (``INSERT … SELECT … FROM generate_series``), every
   constraint, foreign key and trigger in force: N + k statement lines (``bank_events``) and
   their credits, N + k succeeded transfer orders each matched by one credit and with one fee
   line (phí with 30 % retention and lệ phí alternately), N receipts (numbers 1..N, one per
   order), an accepted 01/TH-BLĐT summary for the day listing them, then ``VACUUM ANALYZE``.
   k = N / 1000 deliberate breaks of each of four kinds: a credit matching no order (with its
   open payment exception), a paid order without a receipt, a receipt missing from the
   summary, a receipt whose total differs from its order.
3. ``reconciliation.close.run_close`` (no signing key: signing is measured by bench_signing) and
   the commit, timed in a fresh child Python process that reports its own peak RSS
   (``ru_maxrss``) and the time of every SQL statement. The close must report exactly the
   injected breaks (kinds and references) and the day's totals, or the benchmark fails.
4. Baseline, same server and data, same run: the reference query of performance.md, a full
   outer join of the day's bank credits and receipts on the transfer reference (a credit's memo
   is the order reference, which the receipt carries) counting mismatches (median of 3).

Run alone: ``.venv/bin/python -m bench.bench_close [--sizes 100000,1000000] [--explain]``
(about 3 minutes, most of it writing the 1M day). ``--explain`` prints the EXPLAIN ANALYZE of
the close's slowest statements (printed anyway when a goal is missed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from infra import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (100_000, 1_000_000)
BREAK_EVERY = 1000  # 0.1 % of each kind
GOAL_SECONDS, GOAL_MIB, GOAL_SCALING = 20.0, 1024.0, 11.0
CHILD_TIMEOUT = 600
SERVER_SETTINGS = {"max_wal_size": "8GB"}  # fewer checkpoints while loading; no effect on reads

# the day, in SQL: order/line i = 1..m (m = n + k); orders n+1..m have no receipt; statement
# lines j = 1..m + k, line j ≤ m pays order j, lines above m match no order
AMOUNT = "(2000 * (1 + {i} %% 50))::bigint"
PAID_AT = "(%(start)s::timestamptz + make_interval(secs => ({i} - 1) * %(step)s))"
MISSING_FROM_SUMMARY, AMOUNT_DIFFERS = 1, 2  # i % BREAK_EVERY of the receipts concerned


def say(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def human(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


# ---------------------------------------------------------------- the day's data


def setup_agency(url: str) -> tuple[str, str, str, str]:
    """The demo agency and two fee items (phí, lệ phí), through the ORM; returns
    (agency id, its time zone, phí item id, lệ phí item id)."""
    from api.demo import DEMO_AGENCY
    from payments.agencies import add_agency
    from payments.models import FeeItem, Procedure
    from settings.db import make_engine, session_scope

    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            agency = add_agency(s, DEMO_AGENCY)
            proc = Procedure(
                agency_id=agency.id,
                code="1.001612",
                name="Chứng thực bản sao từ bản chính",
                field="Chứng thực",
            )
            s.add(proc)
            s.flush()
            items = [
                FeeItem(
                    procedure_id=proc.id,
                    code=code,
                    kind=kind,
                    name=name,
                    amount=2000,
                    retention_percent=retention,
                    legal_basis="Thông tư 226/2016/TT-BTC",
                    effective_from=date(2026, 1, 1),
                )
                for code, kind, name, retention in (
                    ("CT-BS", "phi", "Phí chứng thực bản sao", 30),
                    ("HT-KS", "le_phi", "Lệ phí đăng ký khai sinh", 0),
                )
            ]
            s.add_all(items)
            s.flush()
            return agency.id, agency.time_zone, items[0].id, items[1].id
    finally:
        engine.dispose()


def generate_day(
    pg: PostgresServer, dbname: str, n: int, agency_id: str, phi: str, le_phi: str,
    start: datetime, day: date,
) -> dict[str, float]:  # fmt: skip
    """Writes the day set-based; returns seconds per step."""
    k = n // BREAK_EVERY
    m = n + k
    from api.demo import DEMO_AGENCY

    p: dict[str, Any] = {
        "agency": agency_id,
        "m": m,
        "n": n,
        "lines": m + k,
        "start": start,
        "step": (86400 - 10) / (m + k),  # every timestamp (+2 s) stays inside the day
        "phi": phi,
        "le_phi": le_phi,
        "account": DEMO_AGENCY.bank_account,
        "day": day,
        "year": day.year,
        "every": BREAK_EVERY,
        "missing": MISSING_FROM_SUMMARY,
        "differs": AMOUNT_DIFFERS,
        "tax_code": DEMO_AGENCY.tax_code,
    }
    order_amount = AMOUNT.format(i="i")
    line_amount = AMOUNT.format(i="j")
    paid_at = PAID_AT.format(i="i")
    booked_at = PAID_AT.format(i="j")
    receipt_total = (
        f"({order_amount} + CASE WHEN i %% %(every)s = %(differs)s THEN 1000 ELSE 0 END)"
    )
    steps = {
        "bank_events": f"""
            INSERT INTO bank_events (id, agency_id, source, dedup_key, raw, received_at,
                                     processed_at, duplicates)
            SELECT j, %(agency)s, 'statement', 'VCB-' || lpad(j::text, 12, '0'),
                   convert_to('{{"line":' || j || ',"amount":' || {line_amount} || '}}', 'UTF8'),
                   {booked_at} + interval '1 second', {booked_at} + interval '1 second', 0
            FROM generate_series(1, %(lines)s) j;
            SELECT setval('bank_events_id_seq', %(lines)s)""",
        "payment_orders": f"""
            INSERT INTO payment_orders (id, agency_id, dossier_code, procedure_code,
                procedure_name, reference, status, amount, payer, vietqr_payload, created_at,
                expires_at, paid_at, payment_method, receipt_id)
            SELECT md5('order' || i), %(agency)s, 'H01.22-261121-' || lpad(i::text, 7, '0'),
                   '1.001612', 'Chứng thực bản sao từ bản chính', 'MC' || lpad(i::text, 11, '0'),
                   'succeeded', {order_amount},
                   json_build_object('name', 'Nguyễn Văn An', 'id_number', '001090012345'),
                   '00020101021238570010A000000727012700069704150113113000012345'
                       || '0208QRIBFTTA530370454' || {order_amount} || '5802VN62170813MC'
                       || lpad(i::text, 11, '0') || '6304ABCD',
                   {paid_at} - interval '10 minutes', {paid_at} + interval '1 day',
                   {paid_at}, 'transfer',
                   CASE WHEN i <= %(n)s THEN md5('receipt' || i) END
            FROM generate_series(1, %(m)s) i""",
        "order_lines": f"""
            INSERT INTO order_lines (id, order_id, position, fee_item_id, fee_code, fee_name,
                kind, unit, quantity, unit_price, amount, retention_percent, legal_basis)
            SELECT md5('line' || i), md5('order' || i), 0,
                   CASE WHEN i %% 2 = 0 THEN %(phi)s ELSE %(le_phi)s END,
                   CASE WHEN i %% 2 = 0 THEN 'CT-BS' ELSE 'HT-KS' END,
                   CASE WHEN i %% 2 = 0 THEN 'Phí chứng thực bản sao'
                        ELSE 'Lệ phí đăng ký khai sinh' END,
                   CASE WHEN i %% 2 = 0 THEN 'phi' ELSE 'le_phi' END,
                   NULL, 1, {order_amount}, {order_amount},
                   CASE WHEN i %% 2 = 0 THEN 30 ELSE 0 END, 'Thông tư 226/2016/TT-BTC'
            FROM generate_series(1, %(m)s) i""",
        "bank_credits": f"""
            INSERT INTO bank_credits (id, agency_id, event_id, bank_reference, account_number,
                amount, memo, booked_at, order_id, match_status, created_at)
            SELECT md5('credit' || j), %(agency)s, j, 'FT' || lpad(j::text, 14, '0'),
                   %(account)s, {line_amount},
                   CASE WHEN j <= %(m)s THEN 'MC' || lpad(j::text, 11, '0')
                        ELSE 'CHUYEN TIEN ' || j END,
                   {booked_at},
                   CASE WHEN j <= %(m)s THEN md5('order' || j) END,
                   CASE WHEN j <= %(m)s THEN 'matched' ELSE 'unknown_reference' END,
                   {booked_at} + interval '1 second'
            FROM generate_series(1, %(lines)s) j""",
        "payment_exceptions": f"""
            INSERT INTO payment_exceptions (id, agency_id, credit_id, order_id, kind, amount,
                state, created_at)
            SELECT md5('exception' || j), %(agency)s, md5('credit' || j), NULL,
                   'unknown_reference', {line_amount}, 'open', {booked_at} + interval '1 second'
            FROM generate_series(%(m)s + 1, %(lines)s) j""",
        "receipts": f"""
            INSERT INTO receipts (id, agency_id, source_key, template, series, year, number,
                issued_at, total, payer_name, payment_method, payment_reference, verify_code,
                lines, xml, signer_subject, created_at, collector_tax_code)
            SELECT md5('receipt' || i), %(agency)s, 'order:' || md5('order' || i), 'EBL01',
                   '26TAB', %(year)s, i, {paid_at} + interval '2 seconds', {receipt_total},
                   'Nguyễn Văn An', 'transfer', 'MC' || lpad(i::text, 11, '0'),
                   'V' || lpad(i::text, 15, '0'),
                   json_build_array(json_build_object('fee_code',
                       CASE WHEN i %% 2 = 0 THEN 'CT-BS' ELSE 'HT-KS' END,
                       'quantity', 1, 'amount', {order_amount})),
                   '\\x3c48446f6e2f3e'::bytea,
                   'CN=Ủy ban nhân dân huyện Sơn Hà,UID=MST:0108424452',
                   {paid_at} + interval '2 seconds', %(tax_code)s
            FROM generate_series(1, %(n)s) i;
            INSERT INTO receipt_counters (agency_id, template, series, year, last_number)
            VALUES (%(agency)s, 'EBL01', '26TAB', %(year)s, %(n)s)""",
        "tax_summary": f"""
            INSERT INTO tax_submissions (id, agency_id, business_day, supplement_no, message_id,
                status, late, total, xml, created_at, sent_at, answered_at)
            SELECT md5('summary'), %(agency)s, %(day)s, 0, 'V0108424452' || md5('summary'),
                   'accepted', false, sum({receipt_total}), '\\x3c54446965702f3e'::bytea,
                   %(start)s::timestamptz + interval '1 day 1 hour',
                   %(start)s::timestamptz + interval '1 day 1 hour',
                   %(start)s::timestamptz + interval '1 day 1 hour 1 minute'
            FROM generate_series(1, %(n)s) i
            WHERE i %% %(every)s <> %(missing)s;
            INSERT INTO tax_submission_rows (submission_id, receipt_id, template, series,
                number, amount, status)
            SELECT md5('summary'), md5('receipt' || i), 'EBL01', '26TAB', i, {receipt_total},
                   '1'
            FROM generate_series(1, %(n)s) i
            WHERE i %% %(every)s <> %(missing)s""",
    }
    took: dict[str, float] = {}
    with pg.connect(dbname) as conn:
        for name, sql in steps.items():
            t0 = time.perf_counter()
            for statement in sql.split(";"):
                conn.execute(statement, p)  # type: ignore[arg-type]
            conn.commit()
            took[name] = time.perf_counter() - t0
    with pg.connect(dbname, autocommit=True) as conn:
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        took["vacuum_analyze"] = time.perf_counter() - t0
    return took


def expected_breaks(n: int) -> dict[str, set[str]]:
    """The references of the injected breaks, computed here independently of the SQL."""
    k = n // BREAK_EVERY
    m = n + k
    return {
        "credit_without_payment": {md5(f"credit{j}") for j in range(m + 1, m + k + 1)},
        "payment_without_receipt": {md5(f"order{i}") for i in range(n + 1, m + 1)},
        "receipt_missing_from_summary": {
            md5(f"receipt{i}") for i in range(1, n + 1) if i % BREAK_EVERY == MISSING_FROM_SUMMARY
        },
        "amount_mismatch": {
            md5(f"receipt{i}") for i in range(1, n + 1) if i % BREAK_EVERY == AMOUNT_DIFFERS
        },
    }


def check_close(n: int, report: dict[str, Any]) -> None:
    """Fails loudly unless the close found exactly the injected breaks and the day's totals."""
    k = n // BREAK_EVERY
    m = n + k
    found: dict[str, set[str]] = {}
    for kind, ref in report["breaks"]:
        found.setdefault(kind, set()).add(ref)
    want = expected_breaks(n)
    problems = []
    for kind in sorted(set(found) | set(want)):
        got, exp = found.get(kind, set()), want.get(kind, set())
        if got != exp:
            problems.append(
                f"{kind}: found {len(got)}, injected {len(exp)} "
                f"({len(got - exp)} unexpected, {len(exp - got)} missed)"
            )
    injected = sum(len(v) for v in want.values())
    if len(report["breaks"]) != injected:
        problems.append(f"{len(report['breaks'])} breaks reported, {injected} injected")
    totals = report["totals"]
    amounts = [2000 * (1 + i % 50) for i in range(1, m + 1)]
    receipts_total = sum(amounts[:n]) + 1000 * len(want["amount_mismatch"])
    credits_total = sum(amounts) + sum(2000 * (1 + j % 50) for j in range(m + 1, m + k + 1))
    checks = {
        "receipts": (totals["receipts"], {"count": n, "amount": receipts_total}),
        "bank credits": (totals["bank_credits"], {"count": m + k, "amount": credits_total}),
        "payments": (totals["payments"], {"transfer": {"count": m, "amount": sum(amounts)}}),
        "collected": (totals["treasury"]["collected"], sum(amounts)),
        "status": (report["status"], "breaks"),
        "breaks_open": (report["breaks_open"], 4 * k),
    }
    for name, (got, exp) in checks.items():
        if got != exp:
            problems.append(f"{name}: close says {got}, expected {exp}")
    if problems:
        raise RuntimeError(f"the close of {n:,} is wrong: " + "; ".join(problems))


# ---------------------------------------------------------------- the close, in a child


def close_child(url: str, agency_id: str, day: str, explain: int) -> None:
    """Runs in a fresh process: the close, timed, with peak RSS and per-statement times; one
    JSON object on stdout."""
    from sqlalchemy import event

    from payments.models import Agency
    from reconciliation.close import run_close
    from settings.db import make_engine, session_factory

    engine = make_engine(url)
    statements: list[tuple[float, str, Any]] = []
    started: list[float] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _before(*_: Any) -> None:
        started.append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((time.perf_counter() - started.pop(), statement, parameters))

    session = session_factory(engine)()
    agency = session.get(Agency, agency_id)
    assert agency is not None
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    statements.clear()
    t0 = time.perf_counter()
    result = run_close(session, agency, date.fromisoformat(day), actor="bench", key=None)
    session.commit()
    seconds = time.perf_counter() - t0
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    close = result.close
    sql_seconds, n_statements = sum(s[0] for s in statements), len(statements)
    timed = sorted(statements, key=lambda s: s[0], reverse=True)
    selects = [s for s in timed if s[1].lstrip().upper().startswith("SELECT")]
    plans = []
    with engine.connect() as conn:
        for _, statement, parameters in selects[:explain]:
            rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plans.append({"statement": statement, "plan": "\n".join(r[0] for r in rows)})
    engine.dispose()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "sql_seconds": sql_seconds,
                "statements": n_statements,
                "slowest": [[t, " ".join(s.split())[:150]] for t, s, _ in timed],
                "plans": plans,
                "rss_before_kib": rss_before,
                "rss_peak_kib": rss_peak,
                "status": close.status,
                "breaks_open": close.breaks_open,
                "totals": close.totals,
                "breaks": [[b.kind, b.ref] for b in result.breaks],
            },
            default=str,
        )
    )


def run_close_in_child(url: str, agency_id: str, day: date, explain: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.bench_close", "--child", url, agency_id, day.isoformat(),
           str(explain)]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the close failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- baseline


BASELINE_SQL = """
    SELECT count(*) FILTER (WHERE c.id IS NULL OR r.id IS NULL OR c.amount <> r.total),
           count(*)
    FROM bank_credits c
    FULL OUTER JOIN receipts r ON r.payment_reference = c.memo"""


def baseline_join(pg: PostgresServer, dbname: str, n: int) -> float:
    """performance.md's reference: full outer join of credits and receipts on the transfer
    reference, counting mismatches; median of 3 on the same server and data."""
    k = n // BREAK_EVERY
    times = []
    with pg.connect(dbname, autocommit=True) as conn:
        for _ in range(3):
            t0 = time.perf_counter()
            mismatches, rows = conn.execute(BASELINE_SQL).fetchone()  # type: ignore[misc]
            times.append(time.perf_counter() - t0)
    # credits without a receipt: k unmatched + k paid orders without receipt; plus k amounts
    if (mismatches, rows) != (3 * k, n + 2 * k):
        raise RuntimeError(f"baseline join counted {mismatches} mismatches in {rows} rows")
    return statistics.median(times)


# ---------------------------------------------------------------- entry points


def one_size(
    pg: PostgresServer, n: int, explain: int
) -> tuple[dict[str, Any], float, dict[str, float]]:
    from settings.migrate import upgrade

    dbname = f"bench_close_{n}"
    url = pg.create_database(dbname)
    try:
        upgrade(url)
        agency_id, tz, phi, le_phi = setup_agency(url)
        zone = ZoneInfo(tz)
        day = datetime.now(zone).date() - timedelta(days=1)
        start = datetime.combine(day, datetime.min.time(), tzinfo=zone)
        k = n // BREAK_EVERY
        say(f"writing {n:,} receipts, {n + 2 * k:,} bank lines, {n + k:,} orders for {day} ...")
        t0 = time.perf_counter()
        took = generate_day(pg, f"bench_close_{n}", n, agency_id, phi, le_phi, start, day)
        rows = 2 * (n + 2 * k) + 2 * (n + k) + k + n + (n - k)
        total = time.perf_counter() - t0
        say(
            f"written in {total:.1f} s ({rows:,} rows, {rows / total:,.0f} rows/s): "
            + ", ".join(f"{name} {s:.1f} s" for name, s in took.items())
        )
        report = run_close_in_child(url, agency_id, day, explain)
        check_close(n, report)
        counts = Counter(kind for kind, _ in report["breaks"])
        say(
            f"close: {report['seconds']:.2f} s ({report['statements']} SQL statements, "
            f"{report['sql_seconds']:.2f} s in them), peak RSS "
            f"{report['rss_peak_kib'] / 1024:.0f} MiB (before the close "
            f"{report['rss_before_kib'] / 1024:.0f} MiB); breaks as injected: {dict(counts)}"
        )
        for seconds, statement in report["slowest"][:4]:
            say(f"  {seconds:6.2f} s  {statement}")
        join = baseline_join(pg, dbname, n)
        say(f"baseline full outer join credits ⋈ receipts: {join:.3f} s")
        took["total"] = total
        return report, join, took
    finally:
        pg.drop_database(dbname)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: the server started is stopped


def run(table: Table, sizes: tuple[int, ...] = DEFAULT_SIZES, *, show_plans: bool = False) -> None:
    started = time.monotonic()
    results: dict[int, tuple[dict[str, Any], float]] = {}
    with contextlib.ExitStack() as stack:
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
            stack.callback(signal.signal, signal.SIGTERM, previous)
        say("starting PostgreSQL on 127.0.0.1 ...")
        pg = stack.enter_context(PostgresServer(settings=SERVER_SETTINGS))
        with pg.connect(autocommit=True) as conn:
            shown = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("server_version", "shared_buffers", "work_mem", "jit")
            }
        say("PostgreSQL " + ", ".join(f"{k} {v}" for k, v in shown.items()))
        for n in sorted(sizes):
            report, join, _ = one_size(pg, n, explain=2)
            results[n] = (report, join)
            seconds, mib = report["seconds"], report["rss_peak_kib"] / 1024
            table.add(
                f"daily close, {human(n)} receipts + {human(n)} bank lines (PostgreSQL; "
                f"{n // BREAK_EVERY:,} breaks of each of 4 kinds found; baseline: full outer "
                "join credits ⋈ receipts on the reference, counting mismatches)",
                f"{seconds:.2f} s, peak {mib:.0f} MiB",
                f"{join:.3f} s",
                f"{seconds / join:.0f}x",
                "≤ 20 s, ≤ 1 GiB",
            )
            if show_plans or seconds > GOAL_SECONDS or mib > GOAL_MIB:
                for plan in report["plans"]:
                    print(f"--- EXPLAIN ANALYZE\n{plan['statement']}\n{plan['plan']}", flush=True)
    if len(results) >= 2:
        small, large = min(results), max(results)
        factor = large / small
        t_ratio = results[large][0]["seconds"] / results[small][0]["seconds"]
        j_ratio = results[large][1] / results[small][1]
        table.add(
            f"scaling {factor:.0f}× data ({human(small)} → {human(large)}) → time ratio "
            "(baseline: the same for the join)",
            f"{t_ratio:.1f}x",
            f"{j_ratio:.1f}x",
            f"{t_ratio / j_ratio:.2f}",
            f"≤ {GOAL_SCALING * factor / 10:g}x",
        )
    say(f"close suite done in {time.monotonic() - started:.0f} s")


def main() -> None:
    import argparse

    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, agency_id, day, explain = sys.argv[2:6]
        close_child(url, agency_id, day, int(explain))
        return
    parser = argparse.ArgumentParser(description="daily close at scale (bench/bench_close.py)")
    parser.add_argument("--sizes", default=",".join(str(n) for n in DEFAULT_SIZES))
    parser.add_argument("--explain", action="store_true", help="print the slowest plans")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    if any(n < BREAK_EVERY for n in sizes):
        parser.error(f"sizes must be at least {BREAK_EVERY}")
    table = Table()
    run(table, sizes, show_plans=args.explain)
    print("\n" + table.markdown())


if __name__ == "__main__":
    main()
