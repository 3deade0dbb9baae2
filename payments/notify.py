"""What the one-stop system is told, written into the same transaction as the change itself.

Every state change that contract.md lists enqueues its callback here (transactional outbox,
:mod:`payments.callbacks`), so a crash after commit can never lose the news and a rollback can
never send news of something that did not happen.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, object_session

from einvoice.models import Receipt
from payments.callbacks import enqueue_event
from payments.models import PaymentOrder
from payments.onestop_partners import enqueue_confirm
from payments.presenters import order_json, receipt_links
from settings.config import get_settings
from settings.db import utcnow

__all__ = ["notify_order", "notify_receipt"]


def _session(order: PaymentOrder) -> Session:
    session = object_session(order)
    if session is None:
        raise RuntimeError("notify needs an order attached to a session")
    return session


def notify_order(order: PaymentOrder, event: str) -> None:
    # No flush here: the callback row joins the caller's transaction and is written by its
    # next flush; flushing per order made a batch of N matches N round trips (issue 16).
    session = _session(order)
    if order.callback_url:  # the order's JSON is built only for a callback that will carry it
        enqueue_event(
            session,
            client_id=order.client_id,
            url=order.callback_url,
            event=event,
            data=order_json(order, None, get_settings().public_base_url),
            occurred_at=utcnow(),
        )
    enqueue_confirm(order, event, session)  # an order a PP-DVCQG partner asked for: CONFIRM


def notify_receipt(order: PaymentOrder, receipt: Receipt, event: str = "receipt.issued") -> None:
    session = _session(order)
    if not order.callback_url:
        return  # nobody to tell (a counter order, or a client without a callback URL)
    data: dict[str, Any] = {
        **receipt_links(receipt, get_settings().public_base_url),
        "object": "receipt",
        "order_id": order.id,
        "dossier_code": order.dossier_code,
        "replaces": getattr(receipt, "replaces_id", None),
    }
    enqueue_event(
        session,
        client_id=order.client_id,
        url=order.callback_url,
        event=event,
        data=data,
        occurred_at=receipt.issued_at,
    )
