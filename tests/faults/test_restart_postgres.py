"""Scenario 2: PostgreSQL restarts (fast shutdown, start on the same port and data) during a
burst of webhooks while the worker is issuing in batches.

Before each restart the worker is held (SIGSTOP) for 3 s so that webhooks pile up, then let
go; once the batch that takes them holds reserved receipt numbers (waited for at most 3 s) the
worker is stopped again, between two statements of that batch (``Stack.freeze_mid_batch``),
for the restart, so that the fast shutdown cuts the batch in the middle (``txid_status`` says ``aborted`` afterwards; the
worker, let go, finds its connection gone). Every restart must come while the burst is still
being sent.

During the restart the app cannot journal, so it answers 5xx or drops the connection; the
bank retries, as SePay does, until it gets 200. Tasks that fail on a dead connection are left
to the sweep. Afterwards every invariant must hold, and no acknowledged webhook may be lost.
"""

from __future__ import annotations

import time

import pytest
from fault_invariants import check_invariants, report
from fault_stack import Beat, CallbackPump, Stack, say

SIZES = {"short": (1, 80, 8.0), "long": (3, 300, 30.0)}  # restarts, orders, burst seconds
HOLD_SECONDS = 3.0


@pytest.mark.faults
@pytest.mark.postgres
@pytest.mark.redis
def test_restart_postgres_during_a_burst(stack: Stack, variant: str) -> None:
    restarts, n_orders, seconds = SIZES[variant]
    orders = stack.create_orders(n_orders)
    bodies, refs = stack.credit_bodies(orders, strays=2)
    assert stack.worker_ready()
    sender = stack.sender(deadline=180, retry_delay=0.5)
    downtime: list[float] = []
    during_burst: list[bool] = []
    outcomes: list[str] = []
    with Beat(stack.redis.url), CallbackPump(stack.engine) as pump:
        start = time.monotonic()
        thread, out = sender.send_in_background(bodies, rate=len(bodies) / seconds)
        for i in range(restarts):
            # restart i at (i + 1) / (restarts + 1) of the burst plus half a hold, the hold
            # just before it (some receipts committed already, the burst still going on)
            at = start + seconds * (i + 1) / (restarts + 1) - HOLD_SECONDS / 2
            time.sleep(max(0.0, at - time.monotonic()))
            # hold the worker a moment so that webhooks pile up, then restart while the batch
            # that takes them holds reserved numbers (if one shows up within 3 s)
            receipts = stack.receipts_count()
            held = stack.pause_worker()
            time.sleep(HOLD_SECONDS)
            stack.resume_worker()
            # frozen between two statements of that batch: the restart, not luck, ends it
            batch = stack.freeze_mid_batch(timeout=3.0, skip=held)
            during_burst.append(thread.is_alive())
            t0 = time.monotonic()
            stack.pg.restart("fast")
            downtime.append(time.monotonic() - t0)
            if batch:
                stack.resume_worker()
            outcome = stack.transaction_outcome(batch.xid) if batch else "no batch seen"
            outcomes.append(outcome)
            say(
                f"PostgreSQL restarted in {downtime[-1]:.1f} s with {receipts} of {n_orders} "
                f"receipts committed, burst {'on' if during_burst[-1] else 'over'}; "
                f"worker batch in flight: {outcome}"
            )
        thread.join(timeout=240)
        sent = out[0]
        progress = stack.wait_settled(len(bodies), timeout=120 if variant == "short" else 240)
        say(f"progress after wait: {progress}; callback pump errors {pump.errors}")
    counts = check_invariants(stack.engine, stack.receiver, bank_refs=refs)
    report(
        f"restart-postgres[{variant}]",
        counts,
        f"restarts={restarts} down={'/'.join(f'{d:.1f}s' for d in downtime)} during the "
        f"burst={sum(during_burst)} mid-batch (batch aborted by the restart)="
        f"{outcomes.count('aborted')}",
        sent.line(),
        stack.worker_log_summary(),
    )
    assert not sent.gave_up, sent.line()
    assert counts.credits == len(bodies) and counts.payments == n_orders
    assert counts.lost == 0 and counts.duplicate == 0 and counts.gaps == 0
    assert not counts.violations, counts.violations
    assert all(during_burst), "a restart came after the burst"
    assert outcomes.count("aborted") >= 1, outcomes  # at least one batch cut by a restart
