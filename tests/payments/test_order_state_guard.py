"""The order's state table is enforced by the model itself, whoever assigns the status."""

from __future__ import annotations

import pytest

from payments.errors import InvalidTransition
from payments.models import PaymentOrder
from payments.states import FINAL, TRANSITIONS, OrderStatus


def _pending() -> PaymentOrder:
    return PaymentOrder(status=OrderStatus.PENDING.value)


def test_a_new_order_starts_pending() -> None:
    with pytest.raises(InvalidTransition):
        PaymentOrder(status=OrderStatus.SUCCEEDED.value)
    assert _pending().status == "pending"


@pytest.mark.parametrize("target", sorted(FINAL))
def test_every_move_in_the_table_passes(target: OrderStatus) -> None:
    assert (OrderStatus.PENDING, target) in TRANSITIONS
    order = _pending()
    order.move_to(target)
    assert order.status == target.value


@pytest.mark.parametrize("source", sorted(FINAL))
@pytest.mark.parametrize("target", sorted(OrderStatus))
def test_only_the_table_moves_out_of_a_final_state(
    source: OrderStatus, target: OrderStatus
) -> None:
    order = _pending()
    order.move_to(source)
    if (source, target) in TRANSITIONS:  # expired → paid: a late transfer a person matched
        order.move_to(target)
        assert order.status == target.value
        return
    with pytest.raises(InvalidTransition):  # staying put is refused too: paid twice is a 409
        order.move_to(target)
    with pytest.raises(InvalidTransition):
        order.status = target.value  # a direct assignment is checked the same way
    assert order.status == source.value
