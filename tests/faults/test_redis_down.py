"""Scenario 3: Redis stops while bank webhooks keep arriving.

The journal is the database, not the broker: with Redis down every webhook must still be
journaled and answered 200 at the first attempt (``settings.worker.dispatch`` logs the broker
failure and leaves the event to the sweep). Redis then comes back empty on the same port (no
persistence: whatever was queued is gone), the worker reconnects, and the sweep must finish
everything.
"""

from __future__ import annotations

import time

import pytest
from fault_invariants import check_invariants, report
from fault_stack import Beat, CallbackPump, Stack, say

SIZES = {"short": (20, 30, 6.0), "long": (100, 200, 40.0)}  # before, during, seconds down


@pytest.mark.faults
@pytest.mark.postgres
@pytest.mark.redis
def test_redis_down_while_webhooks_arrive(stack: Stack, variant: str) -> None:
    before, during, seconds = SIZES[variant]
    orders = stack.create_orders(before + during)
    first, first_refs = stack.credit_bodies(orders[:before], strays=1)
    second, second_refs = stack.credit_bodies(orders[before:], strays=1)
    assert stack.worker_ready()
    # no retry: each must be 200 at once; 16 threads as each answer may take a broker timeout
    sender = stack.sender(deadline=120, max_attempts=1, threads=16)
    with Beat(stack.redis.url) as beat, CallbackPump(stack.engine):
        up = sender.send(first, rate=before / 2)
        stack.redis.shutdown()
        say("Redis stopped")
        t0 = time.monotonic()
        down = sender.send(second, rate=len(second) / seconds)
        took = time.monotonic() - t0
        journaled_while_down = stack.progress()["events"]
        stack.redis.start()
        say(f"Redis back after {time.monotonic() - t0:.1f} s (empty)")
        progress = stack.wait_settled(len(first) + len(second), timeout=120)
        say(f"progress after wait: {progress}; beat sent {beat.sent}, lost {beat.failed}")
    counts = check_invariants(stack.engine, stack.receiver, bank_refs=first_refs + second_refs)
    report(
        f"redis-down[{variant}]",
        counts,
        f"while down: {down.line()} in {took:.1f}s, journaled={journaled_while_down}",
        f"before: {up.line()}",
        stack.worker_log_summary(),
    )
    assert up.acked == len(first)
    assert down.acked == len(second) and down.first_try_ok == len(second), down.line()
    assert journaled_while_down == len(first) + len(second)
    assert counts.credits == len(first) + len(second)
    assert counts.payments == len(orders)
    assert not counts.violations, counts.violations
