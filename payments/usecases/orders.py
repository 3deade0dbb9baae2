"""Order actions: place an order (once per idempotency key), take cash, cancel.

The API, the counter and any protocol adapter call these; "nothing to collect → issue now",
"cash recorded → issue at once, or say on the order why not" and "same key → same answer" are
each written here only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payments import idempotency
from payments.cash import record_cash
from payments.issuing import issue_for_order
from payments.models import Agency, PaymentOrder
from payments.order_draft import OrderRequest
from payments.orders import cancel_order, create_order, get_order
from payments.states import OrderStatus
from payments.usecases.follow_ups import FollowUp, IssueReceipt
from settings.config import Settings
from settings.db import session_scope
from settings.errors import ProblemError

__all__ = [
    "Answer",
    "OrderPlaced",
    "TakeCash",
    "cancel",
    "issue_at_once",
    "place_order",
    "run_once",
    "take_cash",
]


@dataclass(frozen=True)
class Answer:
    """What an idempotent action answered: the first time, or replayed from its record."""

    status: int
    payload: dict[str, Any]
    replayed: bool = False
    follow_ups: tuple[FollowUp, ...] = ()


Action = Callable[[Session], Answer]


def run_once(
    engine: Engine,
    *,
    client_id: str,
    scope: str,
    key: str | None,
    digest: str,
    action: Action,
    required: bool = False,
    same_body: bool = True,
) -> Answer:
    """Runs ``action`` once per (client, scope, key): the key is looked up, the action run and
    its answer remembered in one transaction. A concurrent twin that commits first makes our
    INSERT fail on the unique constraint, and we answer as it did. Without a key (when
    optional) the action just runs. ``same_body=False``: a repeat with another body replays
    too (a form token identifies the submission, not its content)."""
    if key is None and not required:
        with session_scope(engine) as session:
            return action(session)
    key = idempotency.check_key(key)
    answer: Answer | None = None
    try:
        with session_scope(engine) as session:
            previous = _find(session, client_id, scope, key, digest, same_body)
            if previous is not None:
                return previous
            answer = action(session)
            idempotency.remember(
                session, client_id, scope, key, digest, answer.status, answer.payload
            )
    except IntegrityError:
        with session_scope(engine) as session:
            previous = _find(session, client_id, scope, key, digest, same_body)
        if previous is None:
            raise
        return previous
    return answer


def _find(
    session: Session, client_id: str, scope: str, key: str, digest: str, same_body: bool
) -> Answer | None:
    if same_body:
        found = idempotency.find(session, client_id, scope, key, digest)
    else:
        found = idempotency.find_any(session, client_id, scope, key)
    return Answer(found[0], found[1], replayed=True) if found is not None else None


@dataclass(frozen=True)
class OrderPlaced:
    order: PaymentOrder
    follow_ups: tuple[FollowUp, ...] = field(default=())


def place_order(
    session: Session,
    settings: Settings,
    agency: Agency,
    request: OrderRequest,
    *,
    client_id: str | None,
) -> OrderPlaced:
    """An order priced from the catalogue; one with nothing to collect is paid on creation and
    its receipt issued straight away (after the commit)."""
    order = create_order(
        session,
        agency,
        request,
        client_id=client_id,
        ttl=timedelta(minutes=settings.order_ttl_minutes),
        max_amount=settings.max_order_amount,
    )
    if order.status == OrderStatus.SUCCEEDED.value:
        return OrderPlaced(order, (IssueReceipt(order.id),))
    return OrderPlaced(order)


@dataclass(frozen=True)
class TakeCash:
    order_id: str
    agency_id: str
    amount: int
    clerk: str
    repeat_is_ok: bool = False
    """The counter's double click: cash already taken for this order answers "already done"
    instead of 409 (the API keeps its 409 and uses ``Idempotency-Key`` for retries)."""


def take_cash(session: Session, command: TakeCash) -> tuple[PaymentOrder, bool]:
    """Records the cash (the amount must equal the total); (order, was it a repeat)."""
    order = get_order(session, command.order_id, agency_id=command.agency_id, lock=True)
    if (
        command.repeat_is_ok
        and order.status == OrderStatus.SUCCEEDED.value
        and order.payment_method == "cash"
    ):
        return order, True
    order = record_cash(
        session,
        command.order_id,
        agency_id=command.agency_id,
        amount=command.amount,
        clerk=command.clerk,
    )
    return order, False


def issue_at_once(engine: Engine, settings: Settings, order_id: str) -> None:
    """Issues a paid order's receipt now, in its own transaction (cash at the counter: the
    citizen waits for it). A failure never undoes the payment: it is written on the order and
    the sweep retries."""
    try:
        with session_scope(engine) as session:
            issue_for_order(session, order_id, settings)
    except ProblemError as exc:
        with session_scope(engine) as session:
            get_order(session, order_id).receipt_error = f"{exc.code}: {exc.detail}"[:500]


def cancel(session: Session, order_id: str, agency_id: str) -> PaymentOrder:
    """Withdraws a pending order (twice is a no-op); a paid one answers 409."""
    return cancel_order(session, get_order(session, order_id, agency_id=agency_id, lock=True))
