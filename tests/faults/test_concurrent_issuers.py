"""Scenario 6: 8 concurrent issuers on PostgreSQL, each issuing N real receipts.

Unlike ``tests/einvoice/test_numbering.py`` (the counter alone), each issuer runs the whole
production issuing path (:func:`payments.issuing.issue_for_order`: number, XML, XMLDSig with
the agency's non-development test certificate, the order link) for paid orders (copies of one
order made through the service layer, see ``Stack.paid_order_copies``). One attempt in ten
fails after its number was taken (rolled back, retried): numbers must still be 1..8N with no
gap and no duplicate, and each payment must have exactly one receipt. The issuers race on the
same orders too (a tenth of each issuer's orders is also offered to its neighbour), which the
idempotent ``source_key`` and the order's row lock must absorb.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from fault_invariants import check_invariants, report
from fault_stack import Stack

from payments.issuing import issue_for_order
from settings.config import get_settings
from settings.db import session_scope

SIZES = {"short": 300, "long": 5000}  # receipts per issuer
ISSUERS = 8


class InjectedFailure(RuntimeError):
    """Signing "failed" after the number was taken: the transaction rolls back."""


@pytest.mark.faults
@pytest.mark.postgres
def test_eight_concurrent_issuers(variant: str, stack_base: Stack) -> None:
    """No app, no worker: the issuers are the threads below."""
    stack = stack_base
    per_issuer = SIZES[variant]
    total = ISSUERS * per_issuer
    t0 = time.monotonic()
    orders = stack.paid_order_copies(total)
    created = time.monotonic() - t0
    settings = get_settings()
    # issuer i gets its own slice, plus the next issuer's slice in reverse (the race)
    slices = [orders[i::ISSUERS] for i in range(ISSUERS)]
    errors: list[BaseException] = []
    injected = [0] * ISSUERS
    races = [0] * ISSUERS

    def issuer(i: int) -> None:
        rnd = random.Random(i)
        todo = slices[i] + list(reversed(slices[(i + 1) % ISSUERS][: per_issuer // 10]))
        try:
            for order_id in todo:
                for _ in range(20):  # bounded retries of an injected failure
                    try:
                        with session_scope(stack.engine) as s:
                            receipt = issue_for_order(s, order_id, settings)
                            assert receipt is not None
                            if rnd.random() < 0.1:
                                injected[i] += 1
                                raise InjectedFailure(order_id)
                        break
                    except InjectedFailure:
                        continue
                else:
                    raise RuntimeError(f"order {order_id}: 20 injected failures in a row")
            races[i] = per_issuer // 10
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t1 = time.monotonic()
    threads = [threading.Thread(target=issuer, args=(i,)) for i in range(ISSUERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    took = time.monotonic() - t1
    counts = check_invariants(stack.engine, None)
    report(
        f"issuers-8x{per_issuer}[{variant}]",
        counts,
        f"rolled back after numbering={sum(injected)} raced re-issues={sum(races)} "
        f"issued in {took:.1f}s ({total / took:.0f}/s; orders made in {created:.1f}s)",
    )
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads)
    assert counts.payments == total and counts.receipts == total
    assert counts.gaps == 0 and counts.dups == 0
    assert not counts.violations, counts.violations
