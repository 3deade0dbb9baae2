"""Several issuers share the ready orders (issue 16): each takes ones the others do not hold.

The batch step picks the oldest paid orders without a receipt. Without ``SKIP LOCKED`` on
that pick, a second issuer running beside the first would choose the same oldest orders,
find them all locked when it claims them, and come back with nothing: one issuer working,
the rest spinning. PostgreSQL only (SQLite has one writer at a time and no row locks).
"""

from __future__ import annotations

import pytest
from api_flow import create, journal_sepay
from fastapi.testclient import TestClient
from sqlalchemy import select

import payments.tasks as tasks
import payments.usecases.follow_ups as follow_ups
from einvoice.models import Receipt
from payments.credits import process_events
from payments.issuing import claim_unreceipted
from payments.models import PaymentOrder
from settings.config import Settings
from settings.db import session_scope

pytestmark = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def test_a_second_issuer_takes_the_orders_the_first_does_not_hold(
    client: TestClient, auth: dict[str, str], demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow_ups, "dispatch", lambda *_a, **_k: None)
    orders = [create(client, auth, f"shared-{i}").json() for i in range(6)]
    events = journal_sepay(demo, orders, 883000)
    with session_scope() as s:  # paid, no receipt yet: the issuer's ready queue
        assert all(r.order_to_issue for r in process_events(s, events).values())
    with session_scope() as s:
        paid_first = list(
            s.scalars(select(PaymentOrder.id).order_by(PaymentOrder.paid_at, PaymentOrder.id))
        )
    assert len(paid_first) == 6

    with session_scope() as first:  # the first issuer holds the three oldest, mid-batch
        held = [o.id for o in claim_unreceipted(first, paid_first[:3])]
        assert held == paid_first[:3]
        second = tasks.issue_ready(3)
        assert second["issued"] == 3, second  # not 0: it skipped what the first holds
        with session_scope() as s:
            done = set(
                s.scalars(select(PaymentOrder.id).where(PaymentOrder.receipt_id.is_not(None)))
            )
        assert done == set(paid_first[3:])
    rest = tasks.issue_ready()
    assert rest["issued"] == 3
    with session_scope() as s:
        numbers = sorted(s.scalars(select(Receipt.number)))
    assert numbers == [1, 2, 3, 4, 5, 6]
