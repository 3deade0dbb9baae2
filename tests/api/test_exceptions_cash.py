"""Exceptions queue resolutions, cash at the counter and expiry that asks before it acts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from api_flow import ORDER, create, sepay
from fastapi.testclient import TestClient
from sqlalchemy import select
from staff_flow import sign_in

from payments.expiry import expire_due
from payments.models import BankEvent, PaymentOrder
from settings.db import session_scope, utcnow


@pytest.fixture
def ha(client: TestClient) -> dict[str, str]:
    """Accountant ``ketoan`` signed in on ``client``: the queue is staff work."""
    return sign_in(client, "ketoan")


def exceptions(client: TestClient, state: str | None = None) -> list[Any]:
    """The queue as the signed-in accountant sees it (the client's API key is not enough)."""
    params = {"state": state} if state else {}
    res = client.get("/api/v1/payment-exceptions", params=params)
    assert res.status_code == 200, res.text
    return list(res.json()["data"])


def test_every_unmatched_credit_opens_a_typed_exception(
    client: TestClient, auth: dict[str, str], ha: dict[str, str]
) -> None:
    paid = create(client, auth, "e-1").json()
    sepay(client, 5000, paid["reference"])
    sepay(client, 5000, f"lan 2 {paid['reference']}")  # duplicate transfer
    under = create(client, auth, "e-2", {**ORDER, "dossier_code": "U"}).json()
    sepay(client, 4000, under["reference"])
    over = create(client, auth, "e-3", {**ORDER, "dossier_code": "O"}).json()
    sepay(client, 9000, over["reference"])
    sepay(client, 5000, "khong co ma")
    sepay(client, 5000, paid["reference"], account="000111222")
    kinds = sorted(e["kind"] for e in exceptions(client, "open"))
    assert kinds == [
        "duplicate_transfer",
        "overpayment",
        "underpayment",
        "unknown_reference",
        "wrong_account",
    ]
    assert all(e["actions"][0]["action"] == "opened" for e in exceptions(client))


def test_underpayment_then_topup_completes_the_order(
    client: TestClient, auth: dict[str, str], ha: dict[str, str]
) -> None:
    order = create(client, auth, "t-1").json()
    sepay(client, 4000, order["reference"])
    [exc] = exceptions(client, "open")
    res = client.post(
        f"/api/v1/payment-exceptions/{exc['id']}/request-topup",
        json={"reason": "Công dân chuyển thiếu 1.000 đ"},
        headers=ha,
    )
    assert res.status_code == 200 and res.json()["state"] == "awaiting_topup"
    assert res.json()["actions"][-1]["data"] == {"missing": 1000}
    sepay(client, 1000, f"bo sung {order['reference']}")
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded" and got["receipt"]["number"] == 1
    [done] = exceptions(client, "resolved")
    assert done["resolution"] == "completed_by_topup"


def test_unknown_reference_matched_by_hand_is_audited(
    client: TestClient, auth: dict[str, str], ha: dict[str, str]
) -> None:
    order = create(client, auth, "m-1").json()
    sepay(client, 5000, "NGUYEN VAN AN NOP LE PHI HO SO H01")
    [exc] = exceptions(client, "open")
    body = {
        "order_id": order["id"],
        "reason": "Đối chiếu tên người nộp và số hồ sơ",
    }
    res = client.post(f"/api/v1/payment-exceptions/{exc['id']}/match", json=body, headers=ha)
    assert res.status_code == 200, res.text
    assert res.json()["resolution"] == "matched_manually"
    assert res.json()["actions"][-1]["actor"] == "ketoan"  # the signed-in accountant
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded" and got["receipt"] is not None
    again = client.post(f"/api/v1/payment-exceptions/{exc['id']}/match", json=body, headers=ha)
    assert again.status_code == 409


def test_wrong_amount_cannot_be_matched_and_refund_is_recorded(
    client: TestClient, auth: dict[str, str], ha: dict[str, str]
) -> None:
    order = create(client, auth, "r-1").json()
    sepay(client, 9000, order["reference"])
    [exc] = exceptions(client, "open")
    res = client.post(
        f"/api/v1/payment-exceptions/{exc['id']}/match",
        json={"order_id": order["id"], "reason": "thử khớp"},
        headers=ha,
    )
    assert res.status_code == 422 and res.json()["code"] == "amount_mismatch"
    res = client.post(
        f"/api/v1/payment-exceptions/{exc['id']}/refund",
        json={
            "amount": 9000,
            "reason": "Hoàn trả toàn bộ cho người nộp",
            "payer_account": "0011004",
            "payer_bank": "VCB",
        },
        headers=ha,
    )
    assert res.status_code == 200 and res.json()["resolution"] == "refund_instructed"
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "pending"


def test_overpayment_accepted_with_excess_refund(
    client: TestClient, auth: dict[str, str], ha: dict[str, str]
) -> None:
    order = create(client, auth, "o-1").json()
    sepay(client, 9000, order["reference"])
    [exc] = exceptions(client, "open")
    res = client.post(
        f"/api/v1/payment-exceptions/{exc['id']}/match",
        headers=ha,
        json={
            "order_id": order["id"],
            "refund_excess": True,
            "reason": "Nhận đủ phí, hoàn 4.000 đ thừa",
        },
    )
    assert res.status_code == 200, res.text
    assert res.json()["actions"][-1]["data"]["refund_excess"] == 4000


def test_cash_at_the_counter_issues_the_receipt_at_once(
    client: TestClient, auth: dict[str, str]
) -> None:
    order = create(client, auth, "cash-1").json()
    res = client.post(
        f"/api/v1/payment-orders/{order['id']}/cash",
        json={"amount": 4000, "clerk": "Lan"},
        headers=auth,
    )
    assert res.status_code == 422 and res.json()["code"] == "amount_mismatch"
    res = client.post(
        f"/api/v1/payment-orders/{order['id']}/cash",
        json={"amount": 5000, "clerk": "Lan"},
        headers=auth,
    )
    assert res.status_code == 200, res.text
    data = res.json()
    assert data["status"] == "succeeded" and data["payment_method"] == "cash"
    assert data["receipt"]["number"] == 1
    twice = client.post(
        f"/api/v1/payment-orders/{order['id']}/cash",
        json={"amount": 5000, "clerk": "Lan"},
        headers=auth,
    )
    assert twice.status_code == 409
    xml = client.get(data["receipt"]["xml_url"].removeprefix("http://testserver")).content
    assert b"<SCTu>1</SCTu>" in xml


def test_expiry_asks_the_bank_journal_first_and_late_money_is_an_exception(
    client: TestClient, auth: dict[str, str], ha: dict[str, str]
) -> None:
    order = create(client, auth, "x-1").json()
    later = utcnow() + timedelta(days=2)
    with session_scope() as s:
        # An unprocessed bank event might be this order's money: do not expire yet.
        agency_id = s.get(PaymentOrder, order["id"]).agency_id  # type: ignore[union-attr]
        s.add(BankEvent(agency_id=agency_id, source="sepay", dedup_key="pending-1", raw=b"{}"))
    with session_scope() as s:
        assert expire_due(s, now=later) == ([], [order["id"]])
    with session_scope() as s:
        for ev in s.scalars(select(BankEvent)):
            ev.processed_at = utcnow()
    with session_scope() as s:
        assert expire_due(s, now=later) == ([order["id"]], [])
    assert (
        client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()["status"]
        == "expired"
    )
    sepay(client, 5000, order["reference"])
    [exc] = exceptions(client, "open")
    assert exc["kind"] == "order_closed"


def test_cash_retry_with_the_same_key_gets_the_original_answer(
    client: TestClient, auth: dict[str, str]
) -> None:
    order = create(client, auth, "cash-idem").json()
    headers = {**auth, "Idempotency-Key": "cash-idem-1"}
    first = client.post(
        f"/api/v1/payment-orders/{order['id']}/cash",
        json={"amount": 5000, "clerk": "Lan"},
        headers=headers,
    )
    again = client.post(
        f"/api/v1/payment-orders/{order['id']}/cash",
        json={"amount": 5000, "clerk": "Lan"},
        headers=headers,
    )
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = client.post(
        f"/api/v1/payment-orders/{order['id']}/cash",
        json={"amount": 5000, "clerk": "Mai"},
        headers=headers,
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"


def test_order_over_the_configured_maximum_is_422(
    client: TestClient, auth: dict[str, str], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    client.app.state.settings.max_order_amount = 4000  # type: ignore[attr-defined]
    res = create(client, auth, "max-1")
    assert res.status_code == 422 and res.json()["code"] == "amount_too_large"
