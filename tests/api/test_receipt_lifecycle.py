"""Receipt lifecycle over HTTP (issue 3): replacement, error notice 04/SS-CTĐT, no cancellation.

Runs on SQLite and PostgreSQL (``backend``), through the real payment path: order → transfer →
signed receipt → correction.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.demo import DEMO_AGENCY
from einvoice.audit import AuditAction
from einvoice.error_notice import load_error_notice_xml, validate_error_notice_xml
from einvoice.models import ReceiptAuditEvent
from einvoice.receipt_xml import parse_receipt_xml
from payments.agencies import AgencyInput, add_agency
from payments.credentials import add_client
from settings.db import session_scope
from signing.xmldsig import verify_enveloped

ORDER = {
    "dossier_code": "H01.22-261121-0001",
    "procedure_code": "1.001612",
    "payer": {"name": "Nguyễn Văn An", "id_number": "001090012345", "address": "Số 5 phố Huế"},
    "fees": [{"fee_code": "CT-BS", "quantity": 3}],
}
REASON = "Sai số trang: chứng thực 2 trang, biên lai ghi 3 trang"


def paid_receipt(
    client: TestClient, auth: dict[str, str], key: str, body: dict[str, Any] = ORDER
) -> dict[str, Any]:
    order = client.post(
        "/api/v1/payment-orders",
        json={**body, "dossier_code": f"H01-{key}"},
        headers={**auth, "Idempotency-Key": key},
    ).json()
    paid = client.post(
        "/sandbox/bank/transfer",
        json={"agency": DEMO_AGENCY.code, "amount": order["amount"], "content": order["reference"]},
    )
    assert paid.status_code == 200, paid.text
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["receipt"] is not None, got
    receipt: dict[str, Any] = client.get(f"/api/v1/receipts/{got['receipt']['id']}").json()
    return receipt


def do_replace(client: TestClient, auth: dict[str, str], receipt_id: str, **body: Any) -> Any:
    payload = {"reason": REASON, "actor": "Trần Thị Bình", **body}
    return client.post(f"/api/v1/receipts/{receipt_id}/replace", json=payload, headers=auth)


def test_receipt_json_has_status_and_links(client: TestClient, auth: dict[str, str]) -> None:
    receipt = paid_receipt(client, auth, "r-1")
    assert receipt["status"] == "valid"
    assert receipt["replaced_by"] is None and receipt["replaces"] is None
    assert receipt["error_notices"] == []
    assert receipt["verify_url"].startswith("http://testserver/r/")


def test_replace_over_http(client: TestClient, auth: dict[str, str]) -> None:
    original = paid_receipt(client, auth, "r-2")
    res = do_replace(client, auth, original["id"], lines=[{"fee_code": "CT-BS", "quantity": 2}])
    assert res.status_code == 201, res.text
    replacement = res.json()
    assert replacement["number"] == original["number"] + 1 == 2
    assert replacement["total"] == 4000 and replacement["status"] == "valid"
    assert replacement["replaces"]["id"] == original["id"]
    assert replacement["replaces"]["number"] == 1

    again = client.get(f"/api/v1/receipts/{original['id']}").json()
    assert again["status"] == "replaced"
    assert again["replaced_by"]["number"] == 2
    assert again["replaced_by"]["verify_url"] == replacement["verify_url"]

    xml = client.get(f"/api/v1/receipts/{replacement['id']}/xml").content
    parsed = parse_receipt_xml(xml)
    assert parsed.replaces == original["id"] and parsed.replaces_reference is not None
    assert parsed.replaces_reference.number == 1
    assert verify_enveloped(xml).valid

    refused = do_replace(client, auth, original["id"], lines=[{"fee_code": "CT-BS", "quantity": 1}])
    assert refused.status_code == 409
    assert refused.json()["code"] == "receipt_already_replaced"
    assert refused.json()["replaced_by"] == replacement["id"]

    third = do_replace(client, auth, replacement["id"], payer={"id_number": "001090099999"})
    assert third.status_code == 201, third.text
    assert third.json()["number"] == 3 and third.json()["total"] == 4000

    with session_scope() as session:
        entry = session.scalars(
            select(ReceiptAuditEvent).where(
                ReceiptAuditEvent.action == AuditAction.REPLACED,
                ReceiptAuditEvent.receipt_id == original["id"],
            )
        ).one()
        assert entry.actor == "Trần Thị Bình" and entry.reason == REASON


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"payer": {"name": "Nguyễn Văn Ân"}}, 422, "use_error_notice"),
        ({"payer": {"address": "Số 7 phố Huế"}}, 422, "use_error_notice"),
        ({}, 422, "nothing_to_correct"),
        ({"reason": "sai"}, 422, "validation_error"),
        ({"reason": "x" * 501}, 422, "validation_error"),
        ({"actor": ""}, 422, "validation_error"),
        ({"lines": [{"fee_code": "NEW", "quantity": 1}]}, 422, "invalid_lifecycle_input"),
        ({"lines": [{"fee_code": "CT-BS", "amount": -1}]}, 422, "validation_error"),
        ({"surprise": True}, 422, "validation_error"),
    ],
)
def test_replacement_refusals(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], status: int, code: str
) -> None:
    original = paid_receipt(client, auth, "r-3")
    res = do_replace(client, auth, original["id"], **body)
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert res.json()["code"] == code
    assert client.get(f"/api/v1/receipts/{original['id']}").json()["status"] == "valid"
    # nothing burned: the next receipt is number 2
    assert paid_receipt(client, auth, "r-3b")["number"] == 2


def test_staff_actions_need_the_agency_key(client: TestClient, auth: dict[str, str]) -> None:
    original = paid_receipt(client, auth, "r-4")
    assert do_replace(client, {}, original["id"]).status_code == 401
    with session_scope() as session:
        other = add_agency(
            session,
            AgencyInput(
                code="OTHER",
                name="UBND xã Khác",
                tax_code="0100109106",
                address="Xã Khác, tỉnh Mẫu Sơn",
                bank_bin="970415",
                bank_account="11300099",
                bank_account_name="UBND XA KHAC",
                series="26TAC",
            ),
        )
        key = add_client(session, other, "Một cửa xã", None, allow_loopback=True).api_key
    foreign = {"Authorization": f"Bearer {key}"}
    res = do_replace(client, foreign, original["id"], lines=[{"fee_code": "CT-BS", "quantity": 2}])
    assert res.status_code == 404 and res.json()["code"] == "receipt_not_found"
    res = client.post(f"/api/v1/receipts/{original['id']}/cancel", headers=foreign)
    assert res.status_code == 404


def test_receipts_cannot_be_cancelled_or_deleted(client: TestClient, auth: dict[str, str]) -> None:
    receipt = paid_receipt(client, auth, "r-5")
    for res in (
        client.post(f"/api/v1/receipts/{receipt['id']}/cancel", headers=auth),
        client.delete(f"/api/v1/receipts/{receipt['id']}", headers=auth),
    ):
        assert res.status_code == 409
        problem = res.json()
        assert problem["code"] == "receipt_cannot_be_cancelled"
        assert "Thông tư 91/2026/TT-BTC" in problem["title"] and "Điều 20" in problem["title"]
        assert "91/2026" in problem["title_en"] and "art. 20" in problem["title_en"]
    assert client.put(f"/api/v1/receipts/{receipt['id']}", json={}).status_code == 405
    assert client.get(f"/api/v1/receipts/{receipt['id']}").json()["status"] == "valid"


def test_error_notice_over_http(client: TestClient, auth: dict[str, str]) -> None:
    first = paid_receipt(client, auth, "n-1")
    second = paid_receipt(client, auth, "n-2")
    body = {
        "receipt_ids": [first["id"], second["id"]],
        "reason": "Sai địa chỉ người nộp: đúng là Số 7 phố Huế",
        "actor": "Lê Văn Cường",
        "tax_authority_name": "Chi cục Thuế khu vực Sơn Hà",
    }
    res = client.post(
        "/api/v1/receipts/error-notices", json=body, headers={**auth, "Idempotency-Key": "en-1"}
    )
    assert res.status_code == 201, res.text
    notice = res.json()
    assert notice["status"] == "queued" and notice["form"] == "04/SS-CTĐT"
    assert [r["number"] for r in notice["receipts"]] == [1, 2]
    replay = client.post(
        "/api/v1/receipts/error-notices", json=body, headers={**auth, "Idempotency-Key": "en-1"}
    )
    assert replay.status_code == 201 and replay.json()["id"] == notice["id"]

    xml = client.get(notice["xml_url"].removeprefix("http://testserver"), headers=auth).content
    validate_error_notice_xml(load_error_notice_xml(xml))
    status = verify_enveloped(xml)
    assert status.valid, status.problems
    assert status.tax_code == DEMO_AGENCY.tax_code

    got = client.get(f"/api/v1/receipts/{first['id']}").json()
    assert got["status"] == "valid" and got["number"] == 1  # no reissue
    assert [n["id"] for n in got["error_notices"]] == [notice["id"]]
    assert (
        client.get(f"/api/v1/receipts/error-notices/{notice['id']}", headers=auth).json()["status"]
        == "queued"
    )

    bad = client.post(
        "/api/v1/receipts/error-notices", json={**body, "receipt_ids": []}, headers=auth
    )
    assert bad.status_code == 422


def test_replacement_is_called_back(client: TestClient, auth: dict[str, str]) -> None:
    from payments.callback_models import CallbackEvent

    body = {**ORDER, "callback_url": "http://127.0.0.1:9/motcua/callback"}
    original = paid_receipt(client, auth, "cb-1", body)
    first = do_replace(client, auth, original["id"], lines=[{"fee_code": "CT-BS", "quantity": 2}])
    assert first.status_code == 201, first.text
    second = do_replace(client, auth, first.json()["id"], payer={"id_number": "001090099999"})
    assert second.status_code == 201, second.text
    with session_scope() as session:
        events = session.scalars(
            select(CallbackEvent)
            .where(CallbackEvent.event == "receipt.replaced")
            .order_by(CallbackEvent.enqueued_at)
        ).all()
        assert [e.url for e in events] == [body["callback_url"]] * 2
        payloads = [json.loads(e.body)["data"] for e in events]
    assert [p["id"] for p in payloads] == [first.json()["id"], second.json()["id"]]
    assert [p["replaces"] for p in payloads] == [original["id"], first.json()["id"]]
    assert payloads[0]["number"] == 2 and payloads[1]["number"] == 3
