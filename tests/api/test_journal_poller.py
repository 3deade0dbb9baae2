"""The journal is the queue (issue 16, the stuck journal): work the database says is left over
is done by the worker's poller without any broker message."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from api_flow import create
from fastapi.testclient import TestClient
from infra.clock import bank_time
from sqlalchemy import update

import payments.usecases.follow_ups as follow_ups
from api.routes.bankfeeds import receive_sepay
from payments.agencies import agency_by_code
from payments.models import BankEvent, PaymentOrder
from payments.tasks import drain_journal
from settings.config import Settings
from settings.db import engine_for, session_scope, utcnow


def test_a_journaled_event_without_its_message_is_processed_by_the_poller(
    client: TestClient, auth: dict[str, str], demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = create(client, auth, "poll-1").json()
    with session_scope() as s:
        agency_id = agency_by_code(s, "DEMO-HUYEN").id
    raw = json.dumps(
        {
            "id": 777001,
            "gateway": "VietinBank",
            "transactionDate": bank_time(),
            "accountNumber": "113000012345",
            "content": f"CK {order['reference']}",
            "transferType": "in",
            "transferAmount": order["amount"],
            "referenceCode": "FT-POLL-1",
        }
    ).encode()
    lost: list[tuple[str, tuple[object, ...]]] = []
    # The message is lost: journaled and answered, never delivered to any worker.
    monkeypatch.setattr(
        follow_ups, "dispatch", lambda task, *args, **_: lost.append((task.name, args))
    )
    event_id, _ = receive_sepay(engine_for(demo.effective_database_url), agency_id, raw)
    assert lost == [("payments.process_bank_event", (event_id,))]
    with session_scope() as s:
        event = s.get(BankEvent, event_id)
        assert event is not None and event.processed_at is None
    assert drain_journal() == {"events": 0, "orders": 0}  # too young: its message may come
    with session_scope() as s:
        s.execute(
            update(BankEvent)
            .where(BankEvent.id == event_id)
            .values(received_at=utcnow() - timedelta(seconds=30))
        )
    assert drain_journal() == {"events": 1, "orders": 0}
    with session_scope() as s:
        paid = s.get(PaymentOrder, order["id"])
        assert paid is not None and paid.status == "succeeded" and paid.receipt_id is not None
    assert drain_journal() == {"events": 0, "orders": 0}  # nothing left, nothing doubled
