"""Scenario 5: the same webhook delivered 3× at once, through uvicorn, to the production stack.

Extends ``tests/api/test_concurrent_webhooks.py`` (one notification, in-process, embedded) to
many notifications over real HTTP, with the Redis broker and the separate worker: for each
bank transaction, three threads released by one barrier POST identical bytes. One journal row
(with ``duplicates == 2``), one credit, one payment, one receipt, each callback once.
"""

from __future__ import annotations

import threading

import httpx
import pytest
from fault_invariants import check_invariants, report
from fault_stack import Beat, CallbackPump, Stack
from sqlalchemy import func, select

from payments.models import BankEvent
from settings.db import session_scope

SIZES = {"short": 30, "long": 300}  # distinct notifications, each delivered 3x at once


@pytest.mark.faults
@pytest.mark.postgres
@pytest.mark.redis
def test_same_webhook_three_times_at_once(stack: Stack, variant: str) -> None:
    n = SIZES[variant]
    orders = stack.create_orders(n)
    bodies, refs = stack.credit_bodies(orders, strays=2)
    assert stack.worker_ready()
    sender = stack.sender(max_attempts=20)
    statuses: list[str] = []
    lock = threading.Lock()
    with Beat(stack.redis.url), CallbackPump(stack.engine):
        clients = [httpx.Client() for _ in range(3)]
        try:
            for body in bodies:
                barrier = threading.Barrier(3)

                def deliver(
                    http: httpx.Client, raw: bytes = body, gate: threading.Barrier = barrier
                ) -> None:
                    gate.wait(timeout=10)
                    outcome = sender.post_once(http, raw)
                    with lock:
                        statuses.append(outcome)

                threads = [threading.Thread(target=deliver, args=(c,)) for c in clients]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=30)
        finally:
            for c in clients:
                c.close()
        stack.wait_settled(len(bodies), timeout=90 if variant == "short" else 240)
    with session_scope(stack.engine) as s:
        dup_counts = dict(
            s.execute(
                select(BankEvent.duplicates, func.count()).group_by(BankEvent.duplicates)
            ).all()
        )
    counts = check_invariants(stack.engine, stack.receiver, bank_refs=refs)
    report(
        f"webhook-3x[{variant}]",
        counts,
        f"posts={len(statuses)} answered-200={statuses.count('200')} "
        f"events by duplicates={dup_counts}",
    )
    assert statuses.count("200") == 3 * len(bodies), sorted(set(statuses))
    assert dup_counts == {2: len(bodies)}
    assert counts.credits == len(bodies) and counts.payments == n and counts.receipts == n
    assert not counts.violations, counts.violations
