"""The accountant desk pages (issue 6, item 4) through FastAPI's TestClient, on both backends:
who may use it, a day from red to green with four eyes, the exceptions queue, charts, exports
and the tax-submission list."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from api_flow import create, sepay
from fastapi.testclient import TestClient
from infra.clock import today as clock_today
from infra.ports import free_port
from staff_flow import sign_in

from api.demo import DEMO_AGENCY, DEMO_STAFF_PASSWORD
from api.staff.sessions import create_staff
from payments.agencies import add_agency
from payments.models import ExceptionAction, PaymentOrder
from reconciliation.models import Correction, ReconBreak
from settings.config import Settings
from settings.db import session_scope

HTML = {"Accept": "text/html"}


def today() -> str:
    """The agency-local business day of the suite's clock, as the forms send it."""
    return clock_today().isoformat()


def form_post(client: TestClient, url: str, token: str, **fields: str) -> object:
    return client.post(
        url, data={"csrf_token": token, **fields}, headers=HTML, follow_redirects=False
    )


def no_tax_authority(client: TestClient) -> None:
    """Nobody listens there: summaries stay queued (the close must still work)."""
    client.app.state.settings.tax_authority_url = f"http://127.0.0.1:{free_port()}"  # type: ignore[attr-defined]


def test_desk_is_for_signed_in_accountants(client: TestClient, auth: dict[str, str]) -> None:
    anon = client.get("/staff/desk", headers=HTML, follow_redirects=False)
    assert anon.status_code == 303 and anon.headers["location"].startswith("/staff/login?next=")
    assert client.get("/staff/desk", headers=auth).status_code == 401  # API key is not staff
    clerk = sign_in(client, "thuquy")
    page = client.get("/staff/desk", headers=HTML)
    assert page.status_code == 403 and "không có quyền" in page.text
    refused = form_post(client, "/staff/desk/close", clerk["X-CSRF-Token"], day=today())
    assert refused.status_code == 403
    sign_in(client, "ketoan")
    no_token = client.post("/staff/desk/close", data={"day": today()}, headers=HTML)
    assert no_token.status_code == 403 and "csrf_failed" in no_token.text
    home = client.get("/staff/desk", headers=HTML)
    assert home.status_code == 200
    assert "Đối soát cuối ngày" in home.text and 'data-status="red"' not in home.text
    assert "Không phát sinh" in home.text  # nothing happened: grey, nobody has to act
    english = client.get("/staff/desk?lang=en", headers=HTML)
    assert "Daily close" in english.text and "Nothing happened" in english.text


def test_day_goes_red_then_green_with_a_second_accountant(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    no_tax_authority(client)
    sepay(client, 50000, "chuyen tien nham tai khoan", ref="FT-STRAY-DESK")
    ha = sign_in(client, "ketoan")["X-CSRF-Token"]
    done = form_post(client, "/staff/desk/close", ha, day=today())
    assert done.status_code == 303 and done.headers["location"].endswith("?ok=closed")
    day = client.get(f"/staff/desk/days/{today()}", headers=HTML).text
    assert 'id="day-status" data-status="red"' in day
    assert "Tiền về chưa khớp khoản thu" in day and "50.000 đ" in day
    [break_id] = re.findall(r'data-break="([0-9a-f]{32})" data-state="open"', day)
    home = client.get("/staff/desk", headers=HTML).text
    assert f'data-day="{today()}" data-status="red"' in home

    page = client.get(f"/staff/desk/breaks/{break_id}", headers=HTML).text
    assert "FT-STRAY-DESK" in page and 'value="refund_instruction"' in page
    proposed = form_post(
        client,
        f"/staff/desk/breaks/{break_id}/corrections",
        ha,
        action="refund_instruction",
        amount="50.000",
        reason="Người dân chuyển nhầm, hoàn trả",
    )
    assert proposed.status_code == 303 and proposed.headers["location"].endswith("ok=proposed")
    page = client.get(f"/staff/desk/breaks/{break_id}", headers=HTML).text
    assert "Chờ duyệt" in page
    assert re.search(r'class="btn btn-primary approve" disabled', page)
    assert "Bạn là người đề xuất" in page
    with session_scope() as s:
        [c] = s.query(Correction).all()
        cid = c.id
        assert (c.requested_by, c.state, c.params) == ("ketoan", "requested", {"amount": 50000})
    same = form_post(client, f"/staff/desk/corrections/{cid}/approve", ha)
    assert same.status_code == 409 and "second_person_required" in same.text

    minh = sign_in(client, "ketoan2")["X-CSRF-Token"]
    page = client.get(f"/staff/desk/breaks/{break_id}", headers=HTML).text
    assert re.search(r'class="btn btn-primary approve" >', page)  # enabled for another person
    ok = form_post(client, f"/staff/desk/corrections/{cid}/approve", minh)
    assert ok.status_code == 303 and ok.headers["location"].endswith("ok=approved")
    with session_scope() as s:
        c = s.get(Correction, cid)
        row = s.get(ReconBreak, break_id)
        assert c is not None and c.state == "applied" and c.approved_by == "ketoan2"
        assert row is not None and row.state == "resolved" and row.owner == "ketoan2"
    # Resolved but not re-closed: still red, and it says why.
    assert "chạy lại đối soát" in client.get("/staff/desk", headers=HTML).text
    again = form_post(client, "/staff/desk/close", minh, day=today())
    assert again.status_code == 303
    day = client.get(f"/staff/desk/days/{today()}", headers=HTML).text
    assert 'id="day-status" data-status="green"' in day
    assert "ketoan2" in day and "Đã xử lý" in day  # version 2 by the approver; break resolved
    home = client.get("/staff/desk", headers=HTML).text
    assert f'data-day="{today()}" data-status="green"' in home


def test_exceptions_queue_match_by_reference_is_audited(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    order = create(client, auth, "desk-m1").json()
    sepay(client, 5000, "NGUYEN VAN AN NOP LE PHI HO SO")
    ha = sign_in(client, "ketoan")["X-CSRF-Token"]
    queue = client.get("/staff/desk/exceptions", headers=HTML).text
    [exc_id] = re.findall(r'id="exc-([0-9a-f]{32})" data-kind="unknown_reference"', queue)
    assert order["reference"] in queue  # suggested: a pending order of the same amount
    short = form_post(
        client, f"/staff/desk/exceptions/{exc_id}/match", ha, order=order["reference"], reason="x"
    )
    assert short.status_code == 422 and "reason" in short.text  # nothing changed
    res = form_post(
        client,
        f"/staff/desk/exceptions/{exc_id}/match",
        ha,
        order=order["reference"].lower(),
        reason="Đối chiếu tên người nộp và số hồ sơ",
    )
    assert res.status_code == 303 and "ok=matched" in res.headers["location"]
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded" and got["receipt"] is not None
    with session_scope() as s:
        last = s.query(ExceptionAction).order_by(ExceptionAction.id.desc()).first()
        assert last is not None and (last.action, last.actor) == ("matched_manually", "ketoan")
    resolved = client.get("/staff/desk/exceptions?state=resolved", headers=HTML).text
    assert f'id="exc-{exc_id}"' in resolved and "matched_manually" in resolved


def test_charts_and_exports(client: TestClient, auth: dict[str, str], demo: Settings) -> None:
    cash = create(client, auth, "desk-c1").json()
    client.post(
        f"/api/v1/payment-orders/{cash['id']}/cash",
        json={"amount": 5000, "clerk": "Lan"},
        headers=auth,
    )
    transfer = create(
        client, auth, "desk-t1", {**__import__("api_flow").ORDER, "dossier_code": "T"}
    )
    sepay(client, 5000, transfer.json()["reference"])
    sign_in(client, "ketoan")
    charts = client.get("/staff/desk/charts", headers=HTML).text
    assert charts.count('<svg class="chart"') == 3 and 'role="img"' in charts
    assert '<title id="chart-days-t">Số tiền thu theo ngày' in charts
    assert "Tiền mặt: 5.000 đ" in charts and "Chuyển khoản: 5.000 đ" in charts  # bar titles
    assert "Thẻ: 0 đ" in charts and "Lệ phí: 0 đ" in charts  # every channel and kind drawn
    assert "Bảng số liệu" in charts and "10.000 đ" in charts  # table fallback and total
    for fmt, ctype, magic in (
        ("csv", "text/csv", b"\xef\xbb\xbf"),
        ("xlsx", "spreadsheetml", b"PK"),
        ("pdf", "application/pdf", b"%PDF"),
    ):
        res = client.get(f"/staff/desk/exports/revenue?from={today()}&format={fmt}")
        assert res.status_code == 200 and ctype in res.headers["content-type"]
        assert res.content.startswith(magic)
        disposition = res.headers["content-disposition"]
        assert disposition.startswith("attachment; filename=")
        assert "filename*=UTF-8''B%C3%A1o%20c%C3%A1o%20thu%20ph%C3%AD" in disposition
        assert disposition.endswith(f".{fmt}")
    start, end = (
        clock_today(),
        clock_today() - timedelta(days=20),
    )  # a range that ends before it starts
    bad = client.get(f"/staff/desk/exports/revenue?from={start}&to={end}&format=csv")
    assert bad.status_code == 422


def test_tax_submissions_and_signed_close_document(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    no_tax_authority(client)
    order = create(client, auth, "desk-tax").json()
    sepay(client, 5000, order["reference"])
    ha = sign_in(client, "ketoan")["X-CSRF-Token"]
    form_post(client, "/staff/desk/close", ha, day=today())
    tax = client.get("/staff/desk/tax", headers=HTML).text
    assert 'data-status="queued"' in tax and "Chờ gửi lại" in tax and "Lần đầu" in tax
    day = client.get(f"/staff/desk/days/{today()}", headers=HTML).text
    assert "chưa được CQT tiếp nhận" in day and 'data-status="red"' in day
    doc = client.get(f"/staff/desk/days/{today()}/document")
    assert doc.status_code == 200 and doc.headers["content-type"].startswith("application/xml")
    assert b"Signature" in doc.content
    assert "Bi%C3%AAn%20b%E1%BA%A3n" in doc.headers["content-disposition"]


def test_other_agency_sees_nothing_of_ours(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    no_tax_authority(client)
    sepay(client, 50000, "chuyen nham")
    ha = sign_in(client, "ketoan")["X-CSRF-Token"]
    form_post(client, "/staff/desk/close", ha, day=today())
    with session_scope() as s:
        [row] = s.query(ReconBreak).all()
        other = add_agency(s, replace(DEMO_AGENCY, code="KHAC-XA", name="UBND xã Khác"))
        create_staff(
            s, other.id, "ketoan.khac", "Kế toán khác", DEMO_STAFF_PASSWORD, ["accountant"]
        )
    them = sign_in(client, "ketoan.khac")["X-CSRF-Token"]
    assert client.get(f"/staff/desk/breaks/{row.id}", headers=HTML).status_code == 404
    res = form_post(
        client,
        f"/staff/desk/breaks/{row.id}/corrections",
        them,
        action="explain",
        reason="không phải của chúng tôi",
    )
    assert res.status_code == 404
    with session_scope() as s:
        assert s.query(Correction).count() == 0
        assert s.query(PaymentOrder).count() == 0
    assert "chuyen nham" not in client.get("/staff/desk/exceptions", headers=HTML).text
