"""The payment-order state machine, as data.

Every allowed move is an edge in :data:`TRANSITIONS` with the reason it exists; anything else
raises :class:`~payments.errors.InvalidTransition`. ``docs/order-states.md`` is generated from
this table by :func:`render_markdown`, so the documentation cannot drift from the code.
"""

from __future__ import annotations

from enum import StrEnum

from payments.errors import InvalidTransition

__all__ = ["FINAL", "TRANSITIONS", "OrderStatus", "check_transition", "render_markdown"]


class OrderStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"


TRANSITIONS: dict[tuple[OrderStatus, OrderStatus], str] = {
    (OrderStatus.PENDING, OrderStatus.SUCCEEDED): (
        "the exact amount was recognised (bank credit matched, card captured, cash recorded) "
        "or every line was exempt"
    ),
    (OrderStatus.PENDING, OrderStatus.EXPIRED): (
        "the order outlived expires_at and neither the bank feed nor the card gateway holds a "
        "payment for it"
    ),
    (OrderStatus.PENDING, OrderStatus.CANCELLED): "the one-stop system or a clerk withdrew it",
    (OrderStatus.PENDING, OrderStatus.FAILED): "the card gateway reported a final failure",
    (OrderStatus.EXPIRED, OrderStatus.SUCCEEDED): (
        "an accountant matched a transfer that arrived after expiry to it (by hand, or by "
        "approving the citizen's claim): the money came, the receipt is owed; never automatic"
    ),
}
FINAL = frozenset(
    {OrderStatus.SUCCEEDED, OrderStatus.EXPIRED, OrderStatus.CANCELLED, OrderStatus.FAILED}
)


def check_transition(current: str, target: OrderStatus) -> None:
    source = OrderStatus(current)
    if (source, target) not in TRANSITIONS:
        raise InvalidTransition(
            f"an order that is {source.value} cannot become {target.value}",
            extra={"from": source.value, "to": target.value},
        )


def render_markdown() -> str:
    rows = "\n".join(
        f"| `{a.value}` | `{b.value}` | {why} |" for (a, b), why in TRANSITIONS.items()
    )
    return (
        "# Payment order states\n\n"
        "Generated from `payments/states.py`; any move not listed is refused with "
        "`invalid_state_transition` (HTTP 409).\n\n"
        "| from | to | when |\n|---|---|---|\n" + rows + "\n"
    )
