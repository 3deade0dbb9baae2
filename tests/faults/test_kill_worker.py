"""Scenario 1: kill -9 the worker at random moments while it issues receipts, restart it.

A stream of SePay webhooks (exact payments, a few under-payments and stray credits) arrives
through uvicorn while the worker is SIGKILLed: the whole process group (prefork parent and
pool), the parent alone (then its orphans), or one pool child. Each kill waits, at a random
point, for a worker session to be inside a transaction touching receipts when it can (so most
kills land mid-issuing). Messages held by a dead worker stay unacknowledged in Redis for the
visibility timeout (1 h): only the sweep can recover them, and it must.
"""

from __future__ import annotations

import random
import time

import pytest
from fault_invariants import check_invariants, report
from fault_stack import Beat, CallbackPump, Stack, say, wait_until

SIZES = {"short": (3, 60), "long": (20, 300)}  # kills, orders


@pytest.mark.faults
@pytest.mark.postgres
@pytest.mark.redis
def test_kill_worker_while_issuing(stack: Stack, variant: str) -> None:
    kills, n_orders = SIZES[variant]
    rnd = random.Random()
    seed = rnd.randrange(10**6)
    rnd.seed(seed)
    orders = stack.create_orders(n_orders)
    bodies, refs = stack.credit_bodies(orders, strays=3, short_by=2)
    assert stack.worker_ready()
    sender = stack.sender(deadline=240)
    rate = len(bodies) / (2.5 * kills + 4)  # the stream lasts through all the kills
    killed: list[str] = []
    mid_issuing = 0
    with Beat(stack.redis.url) as beat, CallbackPump(stack.engine):
        thread, out = sender.send_in_background(bodies, rate=rate)
        for _ in range(kills):
            stack.ensure_worker()
            stack.worker_ready()
            time.sleep(rnd.uniform(0.3, 1.5))
            caught = wait_until(stack.issuing_in_flight, timeout=1.0, interval=0.01)
            mid_issuing += caught
            killed.append(stack.kill_worker(rnd.choice(["group", "group", "parent", "child"])))
        stack.ensure_worker()
        thread.join(timeout=300)
        sent = out[0]
        progress = stack.wait_settled(len(bodies), timeout=120 if variant == "short" else 300)
        say(f"progress after wait: {progress}; beat sent {beat.sent}")
    counts = check_invariants(stack.engine, stack.receiver, bank_refs=refs)
    report(
        f"kill-worker[{variant}]",
        counts,
        f"kills={len(killed)} mid-issuing={mid_issuing} worker starts={stack.worker_starts}",
        sent.line(),
        stack.worker_log_summary(),
        f"seed={seed}",
    )
    assert not sent.gave_up, sent.line()
    assert counts.credits == len(bodies)
    assert counts.payments == n_orders - 2 and counts.exceptions == 5
    assert not counts.violations, counts.violations
