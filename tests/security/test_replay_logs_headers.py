"""Webhook replay outside the tolerance, secrets in logs, and security headers (issue 7).

* A genuinely signed Casso notification captured and re-sent later (its signed timestamp is
  old) is refused and stores nothing; the card-gateway equivalent is covered end to end in
  tests/api/test_card_flow.py (old ``Stripe-Signature`` → 400, order still pending) and at
  unit level in tests/payments/test_card.py.
* A whole flow (order with ID number and phone, bank-feed webhook with its key, staff
  sign-ins with passwords, a new API client) leaves no secret, password or unmasked ID number
  in what the production log handler writes, and no password even in the raw records.
* Pages and API answers carry the security headers.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from infra.clock import bank_time, now
from sec_flow import AUTH, ID_NUMBER, PHONE, create_order, paid_order, row_counts, sign_in
from sqlalchemy import Engine
from typer.testing import CliRunner

from api.cli import app as cli
from api.demo import DEMO_API_KEY, DEMO_SEPAY_KEY, DEMO_STAFF_PASSWORD
from payments.agencies import agency_by_code
from payments.casso import sign
from payments.credentials import add_bank_feed
from settings.config import Settings
from settings.db import engine_for, session_scope
from settings.logging import JsonFormatter, MaskingFilter


def _casso_body(reference: str, amount: int, tx_id: int) -> dict[str, object]:
    return {
        "error": 0,
        "data": {
            "id": tx_id,
            "reference": f"FT2632{tx_id:08d}",
            "description": f"CT DEN:0241 {reference} nop phi",
            "amount": amount,
            "runningBalance": 5_000_000,
            "transactionDateTime": bank_time(now() - timedelta(minutes=2)),
            "accountNumber": "113000012345",
            "bankName": "VietinBank",
            "bankAbbreviation": "ICB",
            "virtualAccountNumber": "",
            "virtualAccountName": "",
            "counterAccountName": "NGUYEN VAN AN",
            "counterAccountNumber": "0011004",
            "counterAccountBankId": "970436",
            "counterAccountBankName": "VCB",
        },
    }


@pytest.mark.parametrize("age_s", [600, 3600 * 24])
def test_casso_replay_outside_tolerance_stores_nothing(
    client: TestClient, demo: Settings, age_s: int
) -> None:
    with session_scope() as s:
        _, secret = add_bank_feed(s, agency_by_code(s, "DEMO-HUYEN"), "casso")
    order = create_order(client, f"replay-{age_s}")
    body = _casso_body(order["reference"], order["amount"], 8000 + age_s % 1000)
    raw = json.dumps(body).encode()
    engine: Engine = engine_for(demo.effective_database_url)
    before = row_counts(engine)
    old = int((now() - timedelta(seconds=age_s)).timestamp() * 1000)
    res = client.post(
        "/api/v1/bank-feeds/casso",
        content=raw,
        headers={"X-Casso-Signature": sign(body, secret, old), "Content-Type": "application/json"},
    )
    assert 400 <= res.status_code < 500, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert row_counts(engine) == before
    status = client.get(f"/api/v1/payment-orders/{order['id']}", headers=AUTH).json()["status"]
    assert status == "pending"


def test_full_flow_leaves_no_secret_in_logs(
    client: TestClient, demo: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    paid_order(client, "logs-1")  # ID number and phone in the order; paid through the sandbox
    order = create_order(client, "logs-2")
    res = client.post(
        "/api/v1/bank-feeds/sepay",
        json={
            "id": 777_001,
            "gateway": "VietinBank",
            "transactionDate": bank_time(now() - timedelta(minutes=2)),
            "accountNumber": "113000012345",
            "code": None,
            "content": f"{order['reference']} CCCD {ID_NUMBER} SDT {PHONE}",
            "transferType": "in",
            "transferAmount": order["amount"],
            "accumulated": 5_000_000,
            "subAccount": None,
            "referenceCode": "FT26325777001",
            "description": f"{order['reference']} CCCD {ID_NUMBER}",
        },
        headers={"Authorization": f"Apikey {DEMO_SEPAY_KEY}"},
    )
    assert res.status_code == 200, res.text
    bad_key = client.get("/api/v1/payment-orders", headers={"Authorization": "Bearer mcp_x_bad"})
    assert bad_key.status_code == 401
    assert sign_in(client, "thuquy", "mat-khau-sai-bi-mat-9") == 401
    assert sign_in(client, "thuquy") == 303
    added = CliRunner().invoke(
        cli, ["client", "add", "--agency", "DEMO-HUYEN", "--name", "Một cửa thử"]
    )
    assert added.exit_code == 0, added.output
    new_key = added.output.strip().splitlines()[-1]
    secret_line = next(line for line in added.output.splitlines() if "secret" in line)
    callback_secret = secret_line.rsplit(" ", 1)[-1]

    records = list(caplog.records)
    assert len(records) > 10, "the flow logged almost nothing: the test would prove nothing"
    raw = "\n".join(r.getMessage() for r in records)
    for password in (DEMO_STAFF_PASSWORD, "mat-khau-sai-bi-mat-9"):
        assert password not in raw  # never logged at all, masked or not
    for key in (new_key, callback_secret):
        assert key not in raw
    formatter, masking = JsonFormatter(), MaskingFilter()
    written = []
    for record in records:  # exactly what the production handler writes
        copy = logging.makeLogRecord(vars(record))
        masking.filter(copy)
        written.append(formatter.format(copy))
    text = "\n".join(written)
    for secret in (
        ID_NUMBER,
        PHONE,
        DEMO_API_KEY,
        DEMO_SEPAY_KEY,
        DEMO_STAFF_PASSWORD,
        new_key,
        callback_secret,
        "an@example.vn",
    ):
        assert secret not in text, secret


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def test_security_headers_on_pages_and_api(client: TestClient) -> None:
    page = client.get("/staff/login")
    api = client.get("/api/v1/payment-orders", headers=AUTH)
    problem = client.get("/api/v1/payment-orders")  # 401 problem+json
    for response in (page, api, problem):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
        assert "camera=()" in response.headers["Permissions-Policy"]
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp
    assert page.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" not in api.headers  # JSON needs none
