"""SQLite's batch signs outside its write lock (issue 16, the embedded default).

On SQLite a write transaction locks the whole database, webhooks included, so the batch issuer
matches and reads in one short transaction, signs with none open, and stores in a second one
if no other issuer took a number or an order meanwhile; otherwise it issues under the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from api_flow import create, journal_sepay
from fastapi.testclient import TestClient
from sqlalchemy import select

import payments.tasks as tasks
import payments.usecases.follow_ups as follow_ups
from einvoice.models import Receipt
from payments.issuing import OrdersPlanned, OrdersSigned, issue_for_order
from payments.models import PaymentOrder
from settings.config import Settings, get_settings
from settings.db import session_scope

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def issued() -> list[tuple[str, int]]:
    with session_scope() as s:
        return [
            (str(order_id), int(number))
            for order_id, number in s.execute(
                select(PaymentOrder.id, Receipt.number)
                .join(Receipt, Receipt.id == PaymentOrder.receipt_id)
                .order_by(Receipt.number)
            )
        ]


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """No wake-up runs the issuer behind the test's back: the test calls it."""
    monkeypatch.setattr(follow_ups, "dispatch", lambda *_a, **_k: None)


def wrap_signing(monkeypatch: pytest.MonkeyPatch, during: Callable[[OrdersPlanned], None]) -> None:
    real = tasks.sign_for_orders

    def signing(planned: OrdersPlanned) -> OrdersSigned:
        during(planned)
        return real(planned)

    monkeypatch.setattr(tasks, "sign_for_orders", signing)


def test_a_webhook_is_journaled_while_the_batch_signs(
    client: TestClient,
    auth: dict[str, str],
    demo: Settings,
    quiet: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = tasks.sign_for_orders
    orders = [create(client, auth, f"ahead-{i}").json() for i in range(6)]
    journal_sepay(demo, orders[:5], 881000)
    late: list[int] = []

    def webhook_meanwhile(planned: OrdersPlanned) -> None:
        # With the write lock held across the signatures this would wait for the batch
        # (busy_timeout, 30 s) and then fail; outside it, it is journaled at once.
        late.extend(journal_sepay(demo, orders[5:], 881005))

    wrap_signing(monkeypatch, webhook_meanwhile)
    with caplog.at_level(logging.INFO, logger="payments.tasks"):
        first = tasks.issue_ready()
    assert first["events"] == 5 and first["issued"] == 5 and first["failed"] == 0
    assert "under the lock" not in caplog.text
    assert late, "the webhook during the signatures was journaled"
    monkeypatch.setattr(tasks, "sign_for_orders", real)
    second = tasks.issue_ready()
    assert second["events"] == 1 and second["issued"] == 1
    got = issued()
    assert [n for _, n in got] == [1, 2, 3, 4, 5, 6]  # gapless, in order
    assert sorted(o for o, _ in got) == sorted(o["id"] for o in orders)  # each once


def test_when_the_counter_moves_meanwhile_the_batch_is_issued_under_the_lock(
    client: TestClient,
    auth: dict[str, str],
    demo: Settings,
    quiet: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    orders = [create(client, auth, f"moved-{i}").json() for i in range(4)]
    journal_sepay(demo, orders, 882000)

    def counter_meanwhile(planned: OrdersPlanned) -> None:
        # The counter page (or a second issuer) issues one of the batch's orders meanwhile.
        with session_scope() as s:
            issue_for_order(s, planned.order_ids[2], get_settings())

    wrap_signing(monkeypatch, counter_meanwhile)
    with caplog.at_level(logging.INFO, logger="payments.tasks"):
        outcome = tasks.issue_ready()
    assert "under the lock" in caplog.text
    assert outcome["failed"] == 0
    got = issued()
    assert [n for _, n in got] == [1, 2, 3, 4]  # the discarded signatures took no number
    assert sorted(o for o, _ in got) == sorted(o["id"] for o in orders)
