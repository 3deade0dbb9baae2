"""Scenario 3: Redis stops while bank webhooks keep arriving.

The journal is the database, not the broker: with Redis down every webhook must still be
journaled and answered 200 at the first attempt (``settings.worker.dispatch`` logs the broker
failure and leaves the event to the sweep and the journal pollers). Redis then comes back
empty on the same port (no persistence: whatever was queued is gone), and every journaled
event must be processed (and its payment receipted) within :data:`RECOVERY_SECONDS` of
Redis's return, with no lost credit, no second receipt and no gap.

Unlike the other scenarios, the beat stand-in runs here at production's cadence (a sweep every
15 s of events older than 10 s, ``api/composition.py`` and ``payments.sweep``) and in its
worst phase: none while Redis is down (a real beat's sends fail then), the first one 15 s
after Redis's return. The bound is the product's promise for *any* outage, so neither the
suite's faster beat nor a lucky phase may be what keeps it: the journal pollers of the worker
(``payments.tasks.drain_journal``) must.
"""

from __future__ import annotations

import time

import pytest
from fault_invariants import check_invariants, report
from fault_stack import Beat, CallbackPump, Stack, say

SIZES = {"short": (20, 30, 6.0), "long": (100, 200, 40.0)}  # before, during, seconds down
RECOVERY_SECONDS = 15.0
"""Issue 16: after a broker outage every journaled event is processed within 15 s of its
return."""
SWEEP_EVERY, SWEEP_MIN_AGE = 15.0, 10
"""Production's beat (``api/composition.py``) and ``payments.sweep``'s default age."""


@pytest.mark.faults
@pytest.mark.postgres
@pytest.mark.redis
def test_redis_down_while_webhooks_arrive(stack: Stack, variant: str) -> None:
    before, during, seconds = SIZES[variant]
    orders = stack.create_orders(before + during)
    first, first_refs = stack.credit_bodies(orders[:before], strays=1)
    second, second_refs = stack.credit_bodies(orders[before:], strays=1)
    expected = len(first) + len(second)
    assert stack.worker_ready()
    # no retry: each must be 200 at once; 16 threads as each answer may take a broker timeout
    sender = stack.sender(deadline=120, max_attempts=1, threads=16)
    with CallbackPump(stack.engine):
        up = sender.send(first, rate=before / 2)
        stack.redis.shutdown()
        say("Redis stopped")
        t0 = time.monotonic()
        down = sender.send(second, rate=len(second) / seconds)
        took = time.monotonic() - t0
        at_return = stack.progress()
        stack.redis.start()
        back = time.monotonic()
        say(f"Redis back after {back - t0:.1f} s (empty); at its return: {at_return}")
        # the beat's worst phase: its last sweep was lost in the outage, the next is 15 s on
        with Beat(stack.redis.url, every=SWEEP_EVERY, min_age_seconds=SWEEP_MIN_AGE) as beat:
            events_s, receipts_s = _recovery(stack, expected, since=back, timeout=120)
            say(
                f"all {expected} events processed {events_s:.1f} s after Redis returned, "
                f"all payments receipted after {receipts_s:.1f} s"
            )
            progress = stack.wait_settled(expected, timeout=120)
            say(f"progress after wait: {progress}; beat sent {beat.sent}, lost {beat.failed}")
    counts = check_invariants(stack.engine, stack.receiver, bank_refs=first_refs + second_refs)
    report(
        f"redis-down[{variant}]",
        counts,
        f"all processed {events_s:.1f}s and receipted {receipts_s:.1f}s after Redis returned "
        f"(bound {RECOVERY_SECONDS:.0f}s; unprocessed at its return "
        f"{at_return['events'] - at_return['processed']}, the last one answered "
        f"{back - t0 - took:.1f}s before it)",
        f"while down: {down.line()} in {took:.1f}s, journaled={at_return['events']}",
        f"before: {up.line()}",
        stack.worker_log_summary(),
    )
    assert up.acked == len(first)
    assert down.acked == len(second) and down.first_try_ok == len(second), down.line()
    assert at_return["events"] == expected
    assert counts.credits == expected
    assert counts.payments == len(orders)
    assert counts.lost == 0 and counts.duplicate == 0 and counts.gaps == 0
    assert not counts.violations, counts.violations
    assert events_s <= RECOVERY_SECONDS, f"events processed {events_s:.1f} s after Redis returned"
    assert receipts_s <= RECOVERY_SECONDS, f"receipts issued {receipts_s:.1f} s after it"


def _recovery(stack: Stack, expected: int, *, since: float, timeout: float) -> tuple[float, float]:
    """Seconds from ``since`` until every journaled event is processed, and until every
    payment has its receipt (polled every 0.1 s; ``inf`` if not within ``timeout``)."""
    events_at = receipts_at = float("inf")
    deadline = since + timeout
    while time.monotonic() < deadline:
        try:
            p = stack.progress()
        except Exception:  # pragma: no cover - the database is up in this scenario
            p = {"events": 0, "processed": 0, "unreceipted": 1}
        now = time.monotonic()
        if events_at == float("inf") and p["processed"] == p["events"] == expected:
            events_at = now - since
        if events_at != float("inf") and p["unreceipted"] == 0:
            receipts_at = now - since
            break
        time.sleep(0.1)
    return events_at, receipts_at
