"""Scenario 4: the tax authority (its sandbox, a separate process) is down for a simulated day.

The day's receipts are issued by the production worker. The close runs while nothing listens
on the authority's port: the 01/TH-BLĐT summary is built, signed and kept ``queued`` (pending,
not missing) and the close names a ``summary_late`` break. The retry the scheduler runs
(``reconciliation.resend_summaries`` → :func:`resolve_pending`) is played through the
simulated day (until 09:00 the next morning) while the authority stays down: still queued, nothing
sent twice. The sandbox then starts on the same port; the retry of the next morning sends the
same message (same MTDiep), it is accepted and marked late, and the next close shows it
late-but-accepted with no break left. The sandbox holds that one message, POSTed once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fault_invariants import check_invariants, report
from fault_stack import ROOT, Beat, CallbackPump, Stack
from infra.clock import subprocess_env
from infra.ports import free_port, wait_for_port
from sqlalchemy import select

from api.demo import DEMO_AGENCY
from einvoice.tax_authority import HttpTaxAuthorityClient
from payments.models import Agency
from reconciliation.close import latest_close
from reconciliation.models import TaxSubmission
from reconciliation.service import close_day
from reconciliation.tax_summary import resolve_pending
from settings.config import get_settings
from settings.db import session_scope, utcnow

SIZES = {"short": (20, 4), "long": (200, 48)}  # orders, retries while down
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _client(url: str, http: httpx.Client) -> HttpTaxAuthorityClient:
    return HttpTaxAuthorityClient(url, http, timeout=5, max_attempts=2, sleep=lambda _s: None)


@pytest.mark.faults
@pytest.mark.postgres
@pytest.mark.redis
def test_tax_authority_down_for_a_day(stack: Stack, variant: str) -> None:
    n_orders, retries = SIZES[variant]
    orders = stack.create_orders(n_orders)
    bodies, refs = stack.credit_bodies(orders)
    assert stack.worker_ready()
    with Beat(stack.redis.url), CallbackPump(stack.engine):
        sent = stack.sender().send(bodies, rate=50)
        stack.wait_settled(len(bodies), timeout=90)
    day = utcnow().astimezone(ZONE).date()
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # nothing listens yet: the authority is down
    settings = get_settings()
    http = httpx.Client()
    sandbox = None
    try:
        with session_scope(stack.engine) as s:
            down = close_day(s, settings, stack.agency_code, day, actor="faults",
                             client=_client(url, http))  # fmt: skip
            kinds = [b.kind for b in down.result.breaks]
            subs = s.scalars(select(TaxSubmission)).all()
            assert [(x.status, x.late) for x in subs] == [("queued", False)], subs
            message_id, covered = subs[0].message_id, subs[0].total
        assert kinds == ["summary_late"] * n_orders, kinds  # one per receipt: late, not missing
        # the scheduler's retry, spread over the rest of the simulated day until the next
        # morning's 09:00 (local): the authority stays down all along
        start = utcnow()
        morning = datetime.combine(day + timedelta(days=1), time(9, 0), ZONE)
        for k in range(1, retries + 1):
            with session_scope(stack.engine) as s:
                agency = s.get(Agency, stack.agency_id)
                assert agency is not None
                resolve_pending(
                    s,
                    agency,
                    day,
                    _client(url, http),
                    now=start + (morning - start) * k / (retries + 1),
                )
        with session_scope(stack.engine) as s:
            subs = s.scalars(select(TaxSubmission)).all()
            assert [(x.status, x.message_id) for x in subs] == [("queued", message_id)]
        # next morning the authority is back, on the same address
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
        env["MOTCUA_DATA_DIR"] = str(stack.tmp / "tax-data")
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "einvoice.tax_authority.sandbox", "--port", str(port),
             "--data-dir", str(stack.tmp / "tax")],
            env=subprocess_env(env), cwd=ROOT,  # a moved run's clock (tests/infra/clock.py)
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(port, timeout=30)
        with session_scope(stack.engine) as s:
            agency = s.get(Agency, stack.agency_id)
            assert agency is not None
            resolve_pending(s, agency, day, _client(url, http), now=morning)
        with session_scope(stack.engine) as s:
            sub = s.scalars(select(TaxSubmission)).one()
            assert (sub.status, sub.late, sub.message_id) == ("accepted", True, message_id)
            back = close_day(s, settings, stack.agency_code, day, actor="faults",
                             client=_client(url, http))  # fmt: skip
            after_kinds = [b.kind for b in back.result.breaks]
            close = latest_close(s, stack.agency_id, day)
            assert close is not None
            shown = close.totals["tax_summaries"]
        held = httpx.get(f"{url}/agencies/{DEMO_AGENCY.tax_code}/days/{day}", timeout=10).json()
    finally:
        http.close()
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=15)
    counts = check_invariants(stack.engine, stack.receiver, bank_refs=refs)
    msgs = held["messages"]
    report(
        f"tax-outage[{variant}]",
        counts,
        f"summary #0 {shown[0]['status']} late={shown[0]['late']} total={covered} "
        f"retries-while-down={retries} held={len(msgs)} posts={[m['posts'] for m in msgs]}",
        f"close while down: {dict(Counter(kinds))}; after: {dict(Counter(after_kinds))}",
        sent.line(),
    )
    assert shown == [
        {**shown[0], "supplement_no": 0, "status": "accepted", "late": True, "total": covered}
    ]
    assert "summary_late" not in after_kinds and not after_kinds, after_kinds
    assert [(m["message_id"], m["status"], m["posts"]) for m in msgs] == [
        (message_id, "accepted", 1)
    ]
    assert counts.receipts == n_orders
    assert not counts.violations, counts.violations
