"""Shared request helpers for the API tests (an order body, order creation, SePay credits)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from infra.clock import bank_time
from sqlalchemy import func, select

from api.demo import DEMO_SEPAY_KEY
from api.routes.bankfeeds import receive_sepay
from payments.agencies import agency_by_code
from settings.config import Settings
from settings.db import engine_for, session_scope

ORDER = {
    "dossier_code": "H01.22-000001-0001",  # a dossier code is an opaque string to us
    "procedure_code": "1.001612",
    "payer": {
        "name": "Nguyễn Văn An",
        "id_number": "001090012345",
        "address": "Số 5 ngõ 12 phố Huế, Hà Nội",
        "email": "an@example.vn",
        "phone": "0912345678",
    },
    "fees": [{"fee_code": "CT-BS", "quantity": 3}],
}

_sepay_id = iter(range(900_001, 999_999))


def create(client: TestClient, auth: dict[str, str], key: str, body: dict[str, Any] = ORDER) -> Any:
    return client.post(
        "/api/v1/payment-orders", json=body, headers={**auth, "Idempotency-Key": key}
    )


def sepay(
    client: TestClient,
    amount: int,
    content: str,
    *,
    sepay_id: int | None = None,
    ref: str | None = None,
    account: str = "113000012345",
    booked: str | None = None,
) -> Any:
    """A SePay notification as SePay sends it; booked now (agency-local wall time) unless
    ``booked`` gives the bank's own ``transactionDate``."""
    sid = sepay_id or next(_sepay_id)
    body = {
        "id": sid,
        "gateway": "VietinBank",
        "transactionDate": booked or bank_time(),
        "accountNumber": account,
        "code": None,
        "content": content,
        "transferType": "in",
        "transferAmount": amount,
        "accumulated": 5_000_000,
        "subAccount": None,
        "referenceCode": ref or f"FT26325{sid:07d}",
        "description": content,
    }
    return client.post(
        "/api/v1/bank-feeds/sepay", json=body, headers={"Authorization": f"Apikey {DEMO_SEPAY_KEY}"}
    )


def count(model: Any) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def journal_sepay(demo: Settings, orders: list[dict[str, Any]], first_id: int) -> list[int]:
    """SePay notifications paying ``orders``, journaled as the webhook does: the journal ids.
    The webhook's wake-up is dispatched as usual; tests that run the issuer themselves stub
    ``payments.usecases.follow_ups.dispatch``."""
    with session_scope() as s:
        agency_id = agency_by_code(s, "DEMO-HUYEN").id
    engine = engine_for(demo.effective_database_url)
    ids = []
    for i, order in enumerate(orders):
        raw = json.dumps(
            {"id": first_id + i, "gateway": "VietinBank", "transactionDate": bank_time(),
             "accountNumber": "113000012345", "content": f"CK {order['reference']}",
             "transferType": "in", "transferAmount": order["amount"],
             "referenceCode": f"FT-JOURNAL-{first_id + i}"}
        ).encode()  # fmt: skip
        ids.append(receive_sepay(engine, agency_id, raw)[0])
    return ids
