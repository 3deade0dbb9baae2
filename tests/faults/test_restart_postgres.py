"""Scenario 2: PostgreSQL restarts (fast shutdown, start on the same port and data) during a
burst of webhooks while the worker is issuing.

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


@pytest.mark.faults
@pytest.mark.postgres
@pytest.mark.redis
def test_restart_postgres_during_a_burst(stack: Stack, variant: str) -> None:
    restarts, n_orders, seconds = SIZES[variant]
    orders = stack.create_orders(n_orders)
    bodies, refs = stack.credit_bodies(orders, strays=2)
    assert stack.worker_ready()
    sender = stack.sender(deadline=180, retry_delay=0.5)
    downtime = []
    with Beat(stack.redis.url), CallbackPump(stack.engine) as pump:
        thread, out = sender.send_in_background(bodies, rate=len(bodies) / seconds)
        for i in range(restarts):
            time.sleep(seconds / (restarts + 1) if i else seconds / (restarts + 2))
            t0 = time.monotonic()
            stack.pg.restart("fast")
            downtime.append(time.monotonic() - t0)
            say(f"PostgreSQL restarted in {downtime[-1]:.1f} s")
        thread.join(timeout=240)
        sent = out[0]
        progress = stack.wait_settled(len(bodies), timeout=120 if variant == "short" else 240)
        say(f"progress after wait: {progress}; callback pump errors {pump.errors}")
    counts = check_invariants(stack.engine, stack.receiver, bank_refs=refs)
    report(
        f"restart-postgres[{variant}]",
        counts,
        f"restarts={restarts} down={'/'.join(f'{d:.1f}s' for d in downtime)}",
        sent.line(),
        stack.worker_log_summary(),
    )
    assert not sent.gave_up, sent.line()
    assert counts.credits == len(bodies) and counts.payments == n_orders
    assert not counts.violations, counts.violations
