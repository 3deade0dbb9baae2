"""The daily close: breaks named and tracked, corrections audited with four eyes, versions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from api_flow import count, create, sepay
from fastapi.testclient import TestClient
from infra.clock import today
from sqlalchemy import select
from staff_flow import sign_in

from api.demo import DEMO_AGENCY, DEMO_STAFF_PASSWORD
from api.staff.sessions import create_staff
from payments.agencies import add_agency, agency_by_code
from payments.models import PaymentOrder
from reconciliation.close import run_close
from reconciliation.corrections import approve_correction, request_correction
from reconciliation.errors import DayInFuture, SecondPersonRequired
from reconciliation.models import Correction, DailyClose, ReconBreak
from reconciliation.revenue import revenue_for
from settings.config import Settings
from settings.db import session_scope, utcnow
from signing.keys import load_key_source
from signing.xmldsig import verify_enveloped


def close_today(actor: str = "Kế toán Hà") -> tuple[object, list[ReconBreak]]:
    with session_scope() as s:
        agency = agency_by_code(s, "DEMO-HUYEN")
        key = load_key_source(agency.signing_key_ref) if agency.signing_key_ref else None
        result = run_close(s, agency, today(), actor=actor, key=key)
        return result.close, result.breaks


def test_stray_credit_and_unsent_receipts_are_named_breaks(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    order = create(client, auth, "close-1").json()
    sepay(client, 5000, order["reference"])
    sepay(client, 50000, "chuyen tien nham tai khoan")  # a stray credit
    close, breaks = close_today()
    kinds = sorted(b.kind for b in breaks)
    assert kinds == ["credit_without_payment", "receipt_missing_from_summary"]
    assert close.status == "breaks" and close.version == 1  # type: ignore[attr-defined]
    totals = close.totals  # type: ignore[attr-defined]
    assert totals["bank_credits"] == {"count": 2, "amount": 55000}
    assert totals["payments"]["transfer"] == {"count": 1, "amount": 5000}
    assert totals["receipts"] == {"count": 1, "amount": 5000}
    # The close report is signed by the agency and verifies.
    status = verify_enveloped(close.document)  # type: ignore[attr-defined]
    assert status.valid, status.problems

    again, breaks2 = close_today()
    assert again.version == 2 and {b.id for b in breaks2} == {b.id for b in breaks}  # type: ignore[attr-defined]
    assert again.diff["breaks_added"] == []  # type: ignore[attr-defined]


def test_refund_correction_needs_a_second_person(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    sepay(client, 50000, "chuyen tien nham tai khoan")
    _, breaks = close_today()
    stray = next(b for b in breaks if b.kind == "credit_without_payment")
    with session_scope() as s:
        agency_id = agency_by_code(s, "DEMO-HUYEN").id
        correction = request_correction(
            s,
            stray.id,
            agency_id=agency_id,
            action="refund_instruction",
            reason="Người dân chuyển nhầm, hoàn trả",
            actor="Hà",
        )
        assert correction.state == "requested"
        cid = correction.id
    with pytest.raises(SecondPersonRequired), session_scope() as s:
        approve_correction(s, cid, agency_id=agency_id, approver="hà")
    with session_scope() as s:
        done = approve_correction(s, cid, agency_id=agency_id, approver="Trưởng phòng Minh")
        assert done.state == "applied" and "refund" in (done.outcome or "")
    _, after = close_today()
    assert all(b.kind != "credit_without_payment" for b in after)
    with session_scope() as s:
        row = s.get(ReconBreak, stray.id)
        assert row is not None and row.state == "resolved" and row.owner == "Trưởng phòng Minh"


def test_payment_without_receipt_is_a_break_until_issued(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    order = create(client, auth, "close-3").json()
    with session_scope() as s:
        o = s.get(PaymentOrder, order["id"])
        assert o is not None
        agency = o.agency
        key_ref = agency.signing_key_ref
        agency.signing_key_ref = None  # issuance will fail: the payment stays recorded
    sepay(client, 5000, order["reference"])
    _, breaks = close_today()
    assert [b.kind for b in breaks] == ["payment_without_receipt"]
    with session_scope() as s:
        agency_by_code(s, "DEMO-HUYEN").signing_key_ref = key_ref
        req = request_correction(
            s,
            breaks[0].id,
            agency_id=agency.id,
            action="issue_receipt",
            reason="Cấp lại biên lai sau khi cấu hình chứng thư số",
            actor="Hà",
        )
        assert req.state == "applied"
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["receipt"]["number"] == 1


def test_future_day_is_refused(demo: Settings) -> None:
    with session_scope() as s, pytest.raises(DayInFuture):
        run_close(
            s,
            agency_by_code(s, "DEMO-HUYEN"),
            today() + timedelta(days=2),
            actor="x",
            key=None,
        )


def test_revenue_splits_phi_retention_and_le_phi(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    order = create(client, auth, "rev-1").json()
    client.post(
        f"/api/v1/payment-orders/{order['id']}/cash",
        json={"amount": 5000, "clerk": "Lan"},
        headers=auth,
    )
    with session_scope() as s:
        agency = agency_by_code(s, "DEMO-HUYEN")
        start = utcnow() - timedelta(days=1)
        report = revenue_for(s, agency.id, start, utcnow() + timedelta(minutes=1))
        lines = list(s.scalars(select(PaymentOrder)))
    assert lines and report.by_channel[0].key == "cash" and report.by_clerk[0].key == "Lan"
    [fee] = report.by_fee
    assert fee.amount == 5000 and fee.retained + fee.to_budget == 5000
    assert report.treasury_totals()["collected"] == 5000


def _staff_routes(day: str) -> list[tuple[str, str, dict[str, object] | None]]:
    return [
        ("POST", "/api/v1/closes", {"date": day}),
        ("GET", f"/api/v1/closes/{day}", None),
        ("GET", f"/api/v1/closes/{day}/document", None),
        ("POST", "/api/v1/breaks/b1/corrections", {"action": "explain", "reason": "giải thích"}),
        ("POST", "/api/v1/corrections/c1/approve", None),
        ("GET", f"/api/v1/reports/revenue?from={day}", None),
        ("GET", "/api/v1/payment-exceptions", None),
        ("POST", "/api/v1/payment-exceptions/e1/match", {"order_id": "o", "reason": "khớp tay"}),
        ("POST", "/api/v1/payment-exceptions/e1/request-topup", {"reason": "chuyển thiếu"}),
        ("POST", "/api/v1/payment-exceptions/e1/refund", {"amount": 1, "reason": "hoàn trả"}),
    ]


def test_staff_routes_refuse_the_client_key_and_clerks(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    """The one-stop client's key no longer reaches accountant work; a clerk is refused too, and
    an accountant's POST without the CSRF token is refused: nothing is closed or resolved."""
    day = today().isoformat()
    routes = _staff_routes(day)
    for method, url, body in routes:
        res = client.request(method, url, json=body, headers=auth)
        assert res.status_code == 401, (url, res.text)
        assert res.json()["code"] == "staff_unauthenticated"
    clerk = sign_in(client, "thuquy")
    for method, url, body in routes:
        res = client.request(method, url, json=body, headers=clerk)
        assert res.status_code == 403 and res.json()["code"] == "staff_forbidden", (url, res.text)
    sign_in(client, "ketoan")
    for method, url, body in routes:
        if method == "POST":
            res = client.request(method, url, json=body)  # no X-CSRF-Token
            assert res.status_code == 403 and res.json()["code"] == "csrf_failed", url
    actor_in_body = client.post(
        "/api/v1/closes", json={"date": day, "actor": "ai đó"}, headers=sign_in(client, "ketoan")
    )
    assert actor_in_body.status_code == 422  # the actor is the session, not a field
    assert count(DailyClose) == 0 and count(Correction) == 0


def test_other_agency_gets_404_and_changes_nothing(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    sepay(client, 50000, "chuyen tien nham tai khoan")
    ha = sign_in(client, "ketoan")
    day = today().isoformat()
    close = client.post("/api/v1/closes", json={"date": day}, headers=ha).json()
    [stray] = close["breaks"]
    req = client.post(
        f"/api/v1/breaks/{stray['id']}/corrections",
        json={"action": "refund_instruction", "reason": "Hoàn trả người chuyển nhầm"},
        headers=ha,
    ).json()
    [exc] = client.get("/api/v1/payment-exceptions").json()["data"]
    with session_scope() as s:
        other = add_agency(s, replace(DEMO_AGENCY, code="KHAC-XA", name="UBND xã Khác"))
        create_staff(
            s, other.id, "ketoan.khac", "Kế toán xã khác", DEMO_STAFF_PASSWORD, ["accountant"]
        )
    them = sign_in(client, "ketoan.khac")
    assert client.get(f"/api/v1/closes/{day}").status_code == 404
    assert client.get("/api/v1/payment-exceptions").json()["data"] == []
    for url, body in (
        (f"/api/v1/breaks/{stray['id']}/corrections", {"action": "explain", "reason": "xóa đi"}),
        (f"/api/v1/corrections/{req['id']}/approve", None),
        (
            f"/api/v1/payment-exceptions/{exc['id']}/refund",
            {"amount": 50000, "reason": "hoàn trả nhầm"},
        ),
    ):
        res = client.post(url, json=body, headers=them)
        assert res.status_code == 404, (url, res.text)
    with session_scope() as s:
        row = s.get(ReconBreak, stray["id"])
        fix = s.get(Correction, req["id"])
        assert row is not None and row.state == "open"
        assert fix is not None and fix.state == "requested" and fix.approved_by is None
    assert count(Correction) == 1


def test_records_after_the_close_reopen_the_day(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    """A receipt or a bank credit of the closed day recorded after the close's watermark means
    the close no longer covers the day: the desk shows it red and the scheduler re-opens it."""
    from reconciliation.close import has_later_records, stale_closes

    order = create(client, auth, "late-1").json()
    sepay(client, 5000, order["reference"])
    close, _ = close_today()
    with session_scope() as s:
        closed = s.get(DailyClose, close.id)  # type: ignore[attr-defined]
        assert closed is not None
        assert not has_later_records(s, closed)
        assert stale_closes(s) == []

    sepay(client, 50000, "chuyen tien nham tai khoan")  # a credit after the close, same day
    with session_scope() as s:
        closed = s.get(DailyClose, close.id)  # type: ignore[attr-defined]
        assert closed is not None
        assert has_later_records(s, closed)
        assert [c.id for c in stale_closes(s)] == [closed.id]
        assert closed.reopened_at is not None

    again, _ = close_today()  # closing again covers the new credit
    with session_scope() as s:
        assert stale_closes(s) == []

    cash = create(client, auth, "late-2").json()  # a receipt after the close, and no credit
    paid = client.post(
        f"/api/v1/payment-orders/{cash['id']}/cash",
        json={"amount": cash["amount"], "clerk": "Thu quỹ"},
        headers={**auth, "Idempotency-Key": "late-2-cash"},
    )
    assert paid.status_code == 200 and paid.json()["receipt"], paid.text
    with session_scope() as s:
        latest = s.get(DailyClose, again.id)  # type: ignore[attr-defined]
        assert latest is not None and has_later_records(s, latest)
        assert [c.id for c in stale_closes(s)] == [latest.id]
