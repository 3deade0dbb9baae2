"""Helpers for the security and operations tests: a paid order with its receipt, row counts."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, inspect, select

from api.demo import DEMO_AGENCY, DEMO_API_KEY, DEMO_STAFF_PASSWORD
from settings.db import load_all_models

AUTH = {"Authorization": f"Bearer {DEMO_API_KEY}"}
ID_NUMBER = "001090012345"
PHONE = "0912345678"
ORDER: dict[str, Any] = {
    "dossier_code": "H01.22-261121-0001",
    "procedure_code": "1.001612",
    "payer": {
        "name": "Nguyễn Văn An",
        "id_number": ID_NUMBER,
        "address": "Số 5 ngõ 12 phố Huế, Hà Nội",
        "email": "an@example.vn",
        "phone": PHONE,
    },
    "fees": [{"fee_code": "CT-BS", "quantity": 3}],
}


def create_order(client: TestClient, key: str, **changes: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/payment-orders",
        json={**ORDER, "dossier_code": f"H01-{key}", **changes},
        headers={**AUTH, "Idempotency-Key": key},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def paid_order(client: TestClient, key: str) -> dict[str, Any]:
    """An order paid by a sandbox bank transfer; returns the order with its receipt."""
    order = create_order(client, key)
    paid = client.post(
        "/sandbox/bank/transfer",
        json={"agency": DEMO_AGENCY.code, "amount": order["amount"], "content": order["reference"]},
    )
    assert paid.status_code == 200, paid.text
    got: dict[str, Any] = client.get(f"/api/v1/payment-orders/{order['id']}", headers=AUTH).json()
    assert got["status"] == "succeeded" and got["receipt"], got
    return got


def sign_in(client: TestClient, username: str, password: str = DEMO_STAFF_PASSWORD) -> int:
    response = client.post(
        "/staff/login",
        data={"username": username, "password": password},
        follow_redirects=False,
    )
    return response.status_code


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows in every table: "nothing changed" is checked across the whole database."""
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            t.name: int(conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in load_all_models().sorted_tables
            if t.name in present
        }
