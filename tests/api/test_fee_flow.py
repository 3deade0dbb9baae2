"""One fee end to end: order → VietQR → SePay credit → succeeded → signed receipt (issue 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from api_flow import ORDER, count, create, sepay
from fastapi.testclient import TestClient
from infra.clock import series_now
from sqlalchemy import select

from api.demo import DEMO_SEPAY_KEY
from einvoice.models import Receipt
from payments import reference, vietqr
from payments.models import BankCredit, BankEvent, PaymentOrder
from settings.db import session_scope


def test_order_is_priced_from_the_catalogue_with_reference_and_vietqr(
    client: TestClient, auth: dict[str, str]
) -> None:
    res = create(client, auth, "flow-1")
    assert res.status_code == 201, res.text
    order = res.json()
    assert order["status"] == "pending"
    assert order["currency"] == "VND"
    # CT-BS (Circular 226/2016): 2 pages × 2,000 đ + 1 page × 1,000 đ
    assert order["amount"] == 5000
    assert order["lines"][0]["quantity"] == 3 and order["lines"][0]["unit_price"] == 2000
    assert reference.is_valid(order["reference"])
    parsed = vietqr.parse_payload(order["vietqr"]["payload"])
    assert parsed["54"] == "5000"
    assert order["reference"] in order["vietqr"]["payload"]
    assert (
        order["payer"]["id_number"].endswith("2345")
        and "0010900" not in order["payer"]["id_number"]
    )
    png = client.get(order["vietqr"]["image_url"].removeprefix("http://testserver"))
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    page = client.get(order["pay_url"].removeprefix("http://testserver"))
    assert (
        page.status_code == 200
        and "Chờ thanh toán" in page.text
        and order["reference"] in page.text
    )


def test_per_page_fee_is_capped(client: TestClient, auth: dict[str, str]) -> None:
    body = {**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": 5000}]}
    res = create(client, auth, "cap-1", body)
    assert res.status_code == 201, res.text
    assert res.json()["amount"] == 200_000


def test_exempt_line_is_zero_and_recorded(client: TestClient, auth: dict[str, str]) -> None:
    body = {
        **ORDER,
        "fees": [
            {
                "fee_code": "CT-BS",
                "quantity": 2,
                "exemption": {
                    "category": "Hộ nghèo",
                    "legal_basis": "Điều 5 Thông tư 226/2016/TT-BTC",
                },
            }
        ],
    }
    res = create(client, auth, "exempt-1", body)
    assert res.status_code == 201, res.text
    data = res.json()
    assert data["amount"] == 0 and data["status"] == "succeeded"
    assert data["lines"][0]["exemption"]["category"] == "Hộ nghèo"
    again = client.get(f"/api/v1/payment-orders/{data['id']}", headers=auth).json()
    assert again["receipt"]["number"] == 1


def test_idempotency_key_replays_and_conflicts(client: TestClient, auth: dict[str, str]) -> None:
    first = create(client, auth, "idem-1")
    second = create(client, auth, "idem-1")
    assert second.status_code == 201
    assert second.json() == first.json()
    assert count(PaymentOrder) == 1
    other = create(client, auth, "idem-1", {**ORDER, "dossier_code": "H01.22-261121-0002"})
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["code"] == "idempotency_conflict"
    assert count(PaymentOrder) == 1


def test_transfer_pays_the_order_and_issues_a_signed_receipt(
    client: TestClient, auth: dict[str, str], tmp_path: Path
) -> None:
    order = create(client, auth, "pay-1").json()
    memo = f"MBVCB.3278123.{order['reference'].lower()}NGUYEN VAN AN chuyen tien.CT tu 0011004"
    res = sepay(client, 5000, memo, sepay_id=4242)
    assert res.status_code == 200 and res.json() == {"success": True}
    # SePay retries the same notification: journaled once, no second payment.
    assert sepay(client, 5000, memo, sepay_id=4242).json() == {"success": True}
    assert sepay(client, 5000, memo, sepay_id=4242).json() == {"success": True}
    assert count(BankEvent) == 1 and count(BankCredit) == 1

    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded" and got["payment_method"] == "transfer"
    receipt = got["receipt"]
    assert (
        receipt["number"] == 1
        and receipt["template"] == "EBL01"
        and receipt["series"] == series_now()
    )
    assert count(Receipt) == 1

    xml = client.get(receipt["xml_url"].removeprefix("http://testserver"))
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
    body = xml.content
    assert "Nguyễn Văn An".encode() in body and b"<SCTu>1</SCTu>" in body
    assert (
        b"REC-xml-c14n-20010315" in body and b"X509SubjectName" in body and b"SigningTime" in body
    )
    if shutil.which("xmlsec1"):
        path = tmp_path / "receipt.xml"
        path.write_bytes(body)
        done = subprocess.run(
            [
                "xmlsec1",
                "--verify",
                "--enabled-key-data",
                "x509",
                "--insecure",
                "--id-attr:Id",
                "DLBLai",
                "--id-attr:Id",
                "SignatureProperties",
                "--id-attr:Id",
                "Object",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    # The next paid order takes the next number.
    order2 = create(client, auth, "pay-2", {**ORDER, "dossier_code": "H01.22-261121-0002"}).json()
    sepay(client, 5000, f"{order2['reference']} FT24012345")
    got2 = client.get(f"/api/v1/payment-orders/{order2['id']}", headers=auth).json()
    assert got2["receipt"]["number"] == 2


def test_underpayment_and_unknown_reference_leave_orders_pending(
    client: TestClient, auth: dict[str, str]
) -> None:
    order = create(client, auth, "under-1").json()
    assert sepay(client, 4000, f"ND {order['reference']}").status_code == 200
    assert sepay(client, 5000, "chuyen tien le phi khong co ma").status_code == 200
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "pending" and got["receipt"] is None
    with session_scope() as session:
        statuses = sorted(c.match_status for c in session.scalars(select(BankCredit)))
    assert statuses == ["underpayment", "unknown_reference"]


def test_credit_to_another_account_never_matches(client: TestClient, auth: dict[str, str]) -> None:
    order = create(client, auth, "acct-1").json()
    sepay(client, 5000, order["reference"], account="999999999")
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "pending"
    with session_scope() as session:
        assert [c.match_status for c in session.scalars(select(BankCredit))] == ["wrong_account"]


def test_sandbox_transfer_goes_through_the_webhook_path(
    client: TestClient, auth: dict[str, str]
) -> None:
    order = create(client, auth, "sb-1").json()
    res = client.post(
        "/sandbox/bank/transfer",
        json={"agency": "DEMO-HUYEN", "amount": 5000, "content": f"IBFT {order['reference']}"},
    )
    assert res.status_code == 200, res.text
    assert res.json()["new"] is True
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded" and got["receipt"]["number"] == 1


def test_cancel_pending_then_paid_is_409(client: TestClient, auth: dict[str, str]) -> None:
    order = create(client, auth, "c-1").json()
    res = client.post(f"/api/v1/payment-orders/{order['id']}/cancel", headers=auth)
    assert res.status_code == 200 and res.json()["status"] == "cancelled"
    paid = create(client, auth, "c-2", {**ORDER, "dossier_code": "X-2"}).json()
    sepay(client, 5000, paid["reference"])
    res = client.post(f"/api/v1/payment-orders/{paid['id']}/cancel", headers=auth)
    assert res.status_code == 409 and res.json()["code"] == "invalid_state_transition"


def test_list_by_dossier_code(client: TestClient, auth: dict[str, str]) -> None:
    create(client, auth, "l-1")
    create(client, auth, "l-2", {**ORDER, "dossier_code": "OTHER"})
    res = client.get(
        "/api/v1/payment-orders", params={"dossier_code": ORDER["dossier_code"]}, headers=auth
    )
    assert res.status_code == 200
    assert [o["dossier_code"] for o in res.json()["data"]] == [ORDER["dossier_code"]]


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_openapi_lists_the_contract(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/payment-orders",
        "/api/v1/payment-orders/{order_id}",
        "/api/v1/payment-orders/{order_id}/cancel",
        "/api/v1/bank-feeds/sepay",
        "/api/v1/receipts/{receipt_id}",
        "/api/v1/receipts/{receipt_id}/xml",
        "/healthz",
    ):
        assert path in paths, path


def test_openapi_documents_the_key_and_the_idempotency_header(client: TestClient) -> None:
    """The API key is a bearer security scheme (Swagger's "Authorize" works) on every client
    route, and order creation declares its required Idempotency-Key, although both are read
    from the request directly on that hot path."""
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key",
        "description": "The one-stop client's API key, shown once by `motcua client add`.",
    }
    create = doc["paths"]["/api/v1/payment-orders"]["post"]
    assert create["security"] == [{"ApiKey": []}]
    assert doc["paths"]["/api/v1/payment-orders/{order_id}"]["get"]["security"] == [{"ApiKey": []}]
    (key,) = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and key["required"] is True
    assert not [p for p in create.get("parameters", []) if p["name"].lower() == "authorization"]


def _raw(client: TestClient, auth: dict[str, str], data: bytes, key: str = "raw-1") -> Any:
    return client.post(
        "/api/v1/payment-orders",
        content=data,
        headers={**auth, "Idempotency-Key": key, "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({**ORDER, "procedure_code": "9.999999"}, 422, "unknown_procedure"),
        ({**ORDER, "fees": [{"fee_code": "NOPE", "quantity": 1}]}, 422, "unknown_fee"),
        ({**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": 0}]}, 422, "validation_error"),
        ({**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": -2}]}, 422, "validation_error"),
        ({**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": 1.5}]}, 422, "validation_error"),
        ({**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": "3"}]}, 422, "validation_error"),
        ({**ORDER, "fees": []}, 422, "validation_error"),
        ({**ORDER, "surprise": 1}, 422, "validation_error"),
        ({**ORDER, "callback_url": "ftp://x.example/cb"}, 422, "invalid_input"),
    ],
)
def test_bad_orders_are_refused_and_write_nothing(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], status: int, code: str
) -> None:
    res = _raw(client, auth, json.dumps(body).encode())
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    problem = res.json()
    assert problem["code"] == code and problem["status"] == status and problem["title"]
    assert count(PaymentOrder) == 0


def test_malformed_json_and_auth_failures(client: TestClient, auth: dict[str, str]) -> None:
    res = _raw(client, auth, b'{"dossier_code": ')
    assert res.status_code == 400 and res.json()["code"] == "malformed_json"
    res = client.post("/api/v1/payment-orders", json=ORDER, headers={"Idempotency-Key": "k"})
    assert res.status_code == 401 and res.json()["code"] == "unauthorized"
    res = client.post(
        "/api/v1/payment-orders",
        json=ORDER,
        headers={"Authorization": "Bearer wrong", "Idempotency-Key": "k"},
    )
    assert res.status_code == 401
    res = client.post("/api/v1/payment-orders", json=ORDER, headers=auth)
    assert res.status_code == 422 and res.json()["code"] == "idempotency_key_invalid"
    res = client.post(
        "/api/v1/payment-orders", json=ORDER, headers={**auth, "Idempotency-Key": "bad key!"}
    )
    assert res.status_code == 422
    res = client.post(
        "/api/v1/bank-feeds/sepay", json={"id": 1}, headers={"Authorization": "Apikey nope"}
    )
    assert res.status_code == 401
    res = client.post(
        "/api/v1/bank-feeds/sepay",
        content=b"x" * 2_000_000,
        headers={"Authorization": f"Apikey {DEMO_SEPAY_KEY}"},
    )
    assert res.status_code == 413
    res = client.post(
        "/api/v1/bank-feeds/sepay",
        content=b"{not json",
        headers={"Authorization": f"Apikey {DEMO_SEPAY_KEY}"},
    )
    assert res.status_code == 422 and res.json()["code"] == "invalid_bank_payload"
    assert count(PaymentOrder) == 0 and count(BankEvent) == 0
