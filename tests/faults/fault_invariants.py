"""The invariants every fault scenario must leave true, checked in one place.

1. Every bank credit is exactly one payment (an exact match linked to a succeeded order) or
   exactly one exception (open or resolved); every webhook the bank saw acknowledged is a credit.
2. No payment has two receipts; every payment has its receipt; no receipt without a payment.
3. Per (agency, template, series, year) the receipt numbers are exactly 1..max (no gap, no
   duplicate) and the counter row says max.
4. Every callback event to the (always acknowledging) receiver is delivered, and acknowledged
   exactly once by the receiver (``Motcua-Event-Id`` of the 2xx answers).

Each scenario's line starts with the three totals the issue counts: ``lost`` (an acknowledged
webhook without credit, a journaled event never processed, a payment without receipt, a
callback never acknowledged), ``duplicate`` (an order paid twice, a payment with two receipts,
a receipt number used twice, a callback acknowledged twice) and ``gap`` (missing numbers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from infra.callback_receiver import CallbackReceiver
from sqlalchemy import Engine, func, select

from einvoice.models import Receipt, ReceiptCounter
from payments.callback_models import CallbackEvent
from payments.models import BankCredit, BankEvent, PaymentException, PaymentOrder
from settings.db import session_scope


@dataclass
class Counts:
    credits: int = 0
    payments: int = 0
    exceptions: int = 0
    receipts: int = 0
    gaps: int = 0
    dups: int = 0
    callbacks: int = 0
    callbacks_acked: int = 0
    lost: int = 0
    """Acknowledged webhooks without credit, journaled events never processed, payments
    without receipt, callbacks never acknowledged."""
    duplicate: int = 0
    """Orders paid by two credits, payments with two receipts, duplicate receipt numbers,
    callbacks acknowledged twice."""
    violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"lost={self.lost} duplicate={self.duplicate} gap={self.gaps} | "
            f"credits={self.credits} payments={self.payments} exceptions={self.exceptions} "
            f"receipts={self.receipts} gaps={self.gaps} dups={self.dups} "
            f"callbacks acked={self.callbacks_acked}/{self.callbacks} "
            f"violations={len(self.violations)}"
        )


def _bad(counts: Counts, message: str, items: Iterable[object] = ()) -> None:
    sample = list(items)[:5]
    counts.violations.append(message + (f" e.g. {sample}" if sample else ""))


def check_invariants(
    engine: Engine,
    receiver: CallbackReceiver | None,
    *,
    bank_refs: Iterable[str] = (),
) -> Counts:
    """Checks all four invariants; ``bank_refs`` are the credits the bank got a 200 for."""
    counts = Counts()
    with session_scope(engine) as s:
        # 1. credits → one payment or one exception
        credits = s.execute(
            select(BankCredit.id, BankCredit.bank_reference, BankCredit.order_id,
                   BankCredit.match_status)
        ).all()  # fmt: skip
        counts.credits = len(credits)
        exceptions = Counter(s.scalars(select(PaymentException.credit_id)))
        counts.exceptions = sum(exceptions.values())
        order_status = dict(s.execute(select(PaymentOrder.id, PaymentOrder.status)).all())
        matched_per_order: Counter[str] = Counter()
        for credit_id, ref, order_id, status in credits:
            n_exc = exceptions.get(credit_id, 0)
            if status == "matched":
                if order_id is None or order_status.get(order_id) != "succeeded" or n_exc:
                    _bad(counts, "matched credit not a clean payment", [ref])
                else:
                    matched_per_order[order_id] += 1
            elif n_exc != 1 or order_id is not None:
                _bad(counts, f"unmatched credit with {n_exc} exceptions", [ref])
        doubly = [o for o, n in matched_per_order.items() if n > 1]
        counts.duplicate += len(doubly)
        if doubly:
            _bad(counts, f"{len(doubly)} orders paid by two matched credits", doubly)
        if set(exceptions) - {c[0] for c in credits}:
            _bad(counts, "exception without credit")
        refs = set(bank_refs)
        missing = refs - {c[1] for c in credits}
        counts.lost += len(missing)
        if missing:
            _bad(counts, f"{len(missing)} acknowledged webhooks have no credit", sorted(missing))
        unprocessed = s.scalar(
            select(func.count()).select_from(BankEvent).where(BankEvent.processed_at.is_(None))
        )
        counts.lost += int(unprocessed or 0)
        if unprocessed:
            _bad(counts, f"{unprocessed} journaled bank events never processed")

        # 2. payments ↔ receipts
        paid = {o for o, st in order_status.items() if st == "succeeded"}
        counts.payments = len(paid)
        receipts = s.execute(
            select(Receipt.id, Receipt.source_key, Receipt.agency_id, Receipt.template,
                   Receipt.series, Receipt.year, Receipt.number)
        ).all()  # fmt: skip
        counts.receipts = len(receipts)
        per_order = Counter(r.source_key.removeprefix("order:") for r in receipts)
        two = [o for o, n in per_order.items() if n > 1]
        counts.duplicate += len(two)
        if two:
            _bad(counts, f"{len(two)} payments with two receipts", two)
        orphan = set(per_order) - paid
        if orphan:
            _bad(counts, f"{len(orphan)} receipts without a payment", sorted(orphan))
        linked = dict(
            s.execute(select(PaymentOrder.id, PaymentOrder.receipt_id).where(
                PaymentOrder.status == "succeeded")).all()
        )  # fmt: skip
        by_id = {r.id: r for r in receipts}
        unreceipted = [o for o in paid if linked.get(o) is None]
        counts.lost += len(unreceipted)
        if unreceipted:
            _bad(counts, f"{len(unreceipted)} payments without receipt", unreceipted)
        mislinked = [
            o for o, rid in linked.items()
            if rid is not None and (rid not in by_id or by_id[rid].source_key != f"order:{o}")
        ]  # fmt: skip
        if mislinked:
            _bad(counts, f"{len(mislinked)} orders point at another order's receipt", mislinked)

        # 3. numbering
        series: dict[tuple[str, str, str, int], list[int]] = {}
        for r in receipts:
            series.setdefault((r.agency_id, r.template, r.series, r.year), []).append(r.number)
        counters = {
            (c.agency_id, c.template, c.series, c.year): c.last_number
            for c in s.scalars(select(ReceiptCounter))
        }
        for key, numbers in series.items():
            seen = Counter(numbers)
            dups = sorted(n for n, k in seen.items() if k > 1)
            top = max(numbers)
            gaps = sorted(set(range(1, top + 1)) - set(numbers))
            counts.dups += len(dups)
            counts.duplicate += len(dups)
            counts.gaps += len(gaps)
            if dups:
                _bad(counts, f"series {key[1:]} has duplicate numbers", dups)
            if gaps:
                _bad(counts, f"series {key[1:]} has gaps", gaps)
            if counters.get(key) != top:
                _bad(counts, f"series {key[1:]} counter {counters.get(key)} != max number {top}")

        # 4. callbacks
        events = s.execute(select(CallbackEvent.id, CallbackEvent.state)).all()
    if receiver is not None:
        counts.callbacks = len(events)
        acks = Counter(
            r.headers.get("motcua-event-id", "") for r in receiver.requests if 200 <= r.status < 300
        )
        undelivered = [e for e, st in events if st != "delivered"]
        if undelivered:
            _bad(counts, f"{len(undelivered)} callbacks not delivered", undelivered)
        once = [e for e, _ in events if acks.get(e) == 1]
        counts.callbacks_acked = len(once)
        twice = [e for e, _ in events if acks.get(e, 0) > 1]
        never = [e for e, _ in events if acks.get(e, 0) == 0]
        counts.duplicate += len(twice)
        counts.lost += len(never)
        if twice:
            _bad(counts, f"{len(twice)} callbacks acknowledged more than once", twice)
        if never:
            _bad(counts, f"{len(never)} callbacks never acknowledged", never)
        unknown = set(acks) - {e for e, _ in events}
        if unknown:
            _bad(counts, f"{len(unknown)} acknowledged callbacks not in the outbox", unknown)
    return counts


def report(scenario: str, counts: Counts, *extra: str) -> str:
    """The one-line summary each scenario prints (``-s`` and ``-rA`` both show it)."""
    line = f"FAULTS {scenario}: {counts.line()}" + "".join(f" | {x}" for x in extra)
    print(line, flush=True)
    for v in counts.violations:
        print(f"  VIOLATION {v}", flush=True)
    return line
