"""The same bank notification delivered three times at once: one event, one payment, one receipt."""

from __future__ import annotations

import json
import threading

from api_flow import count, create
from fastapi.testclient import TestClient
from infra.clock import bank_time
from sqlalchemy import select

from api.routes.bankfeeds import receive_sepay
from einvoice.models import Receipt
from payments.agencies import agency_by_code
from payments.models import BankCredit, BankEvent
from settings.config import Settings
from settings.db import engine_for, session_scope


def test_three_concurrent_deliveries_make_one_payment(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    order = create(client, auth, "race-1").json()
    with session_scope() as s:
        agency_id = agency_by_code(s, "DEMO-HUYEN").id
    raw = json.dumps(
        {
            "id": 515151,
            "gateway": "VietinBank",
            "transactionDate": bank_time(),
            "accountNumber": "113000012345",
            "content": f"CK {order['reference']}",
            "transferType": "in",
            "transferAmount": 5000,
            "referenceCode": "FT-RACE-1",
        }
    ).encode()
    engine = engine_for(demo.effective_database_url)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait(timeout=10)
            receive_sepay(engine, agency_id, raw)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert count(BankEvent) == 1 and count(BankCredit) == 1 and count(Receipt) == 1
    with session_scope() as s:
        event = s.scalar(select(BankEvent))
        assert event is not None and event.duplicates == 2
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded" and got["receipt"]["number"] == 1
