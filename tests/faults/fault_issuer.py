"""One issuer process of scenario 6 (``test_concurrent_issuers.py``), run as
``python tests/faults/fault_issuer.py INDEX WORKDIR`` with the stack's environment.

It calls the worker's batch step, :func:`payments.tasks.issue_ready`, in a bounded loop until
no paid order is left without a receipt: each call claims up to ``MAX_BATCH`` items with
``FOR UPDATE SKIP LOCKED`` (two calls in five name none, like ``payments.process_bank_event``
and the journal poller; two name a few of this issuer's own orders and one a few of its
neighbour's, like ``payments.issue_receipt`` names its order; the oldest ready orders fill
the rest) and issues them in one transaction, numbers reserved per series in one statement.
Its first batch with receipts, and one batch in ten after it, fails after its numbers were reserved and its receipts signed (the transaction rolls back,
numbers with it). Every process waits for ``WORKDIR/go`` so that all eight start together, and
writes what it did to ``WORKDIR/result-INDEX.json``: per committed batch its start and end
(``time.monotonic``, one clock for the whole machine), size and receipt numbers per series.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

OWN_CHUNK = 20
"""Orders an issuer names in each call (the rest of the batch is the oldest ready ones)."""
FAIL_RATE = 0.1
START_TIMEOUT = 180.0


class InjectedFailure(RuntimeError):
    """Signing "failed" after the numbers were taken: the batch's transaction rolls back."""


def main(index: int, workdir: Path) -> int:
    from sqlalchemy import func, select

    import payments.tasks as tasks
    from payments.issuing import issue_for_orders
    from payments.models import PaymentOrder
    from settings.db import session_scope

    plan = json.loads((workdir / "plan.json").read_text())
    own: list[str] = plan["slices"][index]
    neighbour: list[str] = plan["slices"][(index + 1) % len(plan["slices"])]
    deadline_s: float = plan["deadline"]
    rnd = random.Random(plan["seed"] * 100 + index)
    real_issue = issue_for_orders
    pending: list[dict[str, Any]] = []
    rolled_back: list[int] = []

    def issue_then_maybe_fail(session: Any, orders: Sequence[Any], settings: Any) -> Any:
        outcome = real_issue(session, orders, settings)
        # Each issuer's first batch with receipts always fails, the rest one in ten: with
        # batches shared well there are only a dozen or so, too few to rely on chance alone.
        first = not pending and not rolled_back
        if outcome.issued and (first or rnd.random() < FAIL_RATE):
            rolled_back.append(len(outcome.issued))
            raise InjectedFailure(f"{len(outcome.issued)} receipts")
        numbers: dict[str, list[int]] = {}
        for receipt in outcome.issued.values():
            numbers.setdefault(f"{receipt.template}/{receipt.series}/{receipt.year}", []).append(
                receipt.number
            )
        pending.append({"size": len(outcome.issued), "numbers": numbers})
        return outcome

    # what the batch step calls (PostgreSQL path), in this process only
    assert vars(tasks)["issue_for_orders"] is real_issue
    vars(tasks)["issue_for_orders"] = issue_then_maybe_fail

    def left() -> int:
        with session_scope() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(PaymentOrder)
                    .where(PaymentOrder.status == "succeeded", PaymentOrder.receipt_id.is_(None))
                )
                or 0
            )

    (workdir / f"ready-{index}").touch()
    waited = time.monotonic() + START_TIMEOUT
    while not (workdir / "go").exists():
        if time.monotonic() > waited:
            raise SystemExit("no start signal")
        time.sleep(0.01)

    batches: list[dict[str, Any]] = []
    calls = empty = 0
    cursor = 0
    stop_at = time.monotonic() + deadline_s
    while time.monotonic() < stop_at and calls < 1_000_000:
        calls += 1
        if calls % 5 == 0:
            start = rnd.randrange(max(1, len(neighbour) - OWN_CHUNK))
            named = neighbour[start : start + OWN_CHUNK]
        elif calls % 5 in (1, 3):
            named = []  # the bank-event / journal-poller call: the oldest ready orders only
        else:
            named = own[cursor : cursor + OWN_CHUNK]
            cursor = cursor + OWN_CHUNK if cursor + OWN_CHUNK < len(own) else 0
        pending.clear()
        t0 = time.monotonic()
        try:
            result = tasks.issue_ready(order_ids=named)
        except InjectedFailure:
            continue
        t1 = time.monotonic()
        if result["issued"]:
            for done in pending:
                batches.append({"start": t0, "end": t1, **done})
            continue
        empty += 1
        if left() == 0:
            break
        time.sleep(0.005)  # everything ready is claimed by the others: look again
    remaining = left()
    (workdir / f"result-{index}.json").write_text(
        json.dumps(
            {
                "index": index,
                "calls": calls,
                "empty": empty,
                "rolled_back": rolled_back,
                "batches": batches,
                "left": remaining,
            }
        )
    )
    return 0 if remaining == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]), Path(sys.argv[2])))
