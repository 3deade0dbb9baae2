"""The counter screen (issue 6 item 2) through its pages, on both database backends.

The clerk signs in with the demo account, fills the same forms a browser would, and every
refusal (other agency, no CSRF token, wrong role, no reason) is checked to change nothing.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from importlib import resources
from typing import Any

import pytest
from api_flow import count, sepay
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.demo import CATALOG_FROM as DEMO_CATALOG_FROM
from api.demo import DEMO_AGENCY, DEMO_STAFF_PASSWORD
from api.staff import create_staff
from einvoice.models import ErrorNotice, Receipt
from payments.agencies import add_agency
from payments.catalog import import_catalog
from payments.models import Agency, IdempotencyRecord, PaymentOrder
from payments.orders import FeeRequest, OrderRequest, create_order
from settings.db import session_scope

HTML = {"Accept": "text/html"}
ID_NUMBER = "001090012345"
PAGE_TOTAL = 2 * 2_000 + 1_000 + 100_000  # CT-BS × 3 pages (Circular 226) + HKD-TL once (demo)


def sign_in(client: TestClient, username: str = "thuquy") -> str:
    """Signs in through the real form and returns the session's CSRF token."""
    client.cookies.clear()
    response = client.post(
        "/staff/login",
        data={"username": username, "password": DEMO_STAFF_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    token = client.get("/staff/me").json()["csrf_token"]
    assert token
    return str(token)


def order_form(client: TestClient, procedure: str = "1.001612") -> dict[str, str]:
    """The new-order page's form token and fee lines, as the browser receives them."""
    page = client.get(f"/staff/counter/new?procedure={procedure}", headers=HTML)
    assert page.status_code == 200, page.text
    token = re.search(r'name="form_token" value="([0-9a-f]+)"', page.text)
    assert token is not None
    fields = {"form_token": token.group(1)}
    for index, code in re.findall(r'name="line-(\d+)-fee_code" value="([^"]+)"', page.text):
        fields[f"line-{index}-fee_code"] = code
        fields[f"line-{index}-quantity"] = "0"
    return fields


def line_index(fields: dict[str, str], code: str) -> str:
    return next(k.split("-")[1] for k, v in fields.items() if k.endswith("fee_code") and v == code)


def new_order(
    client: TestClient,
    csrf: str,
    *,
    dossier: str = "H01.22-261121-0101",
    quantities: dict[str, int] | None = None,
    extra: dict[str, str] | None = None,
) -> tuple[Any, dict[str, str]]:
    fields = order_form(client)
    for code, quantity in (quantities or {"CT-BS": 3, "HKD-TL": 1}).items():
        fields[f"line-{line_index(fields, code)}-quantity"] = str(quantity)
    fields.update(
        {
            "csrf_token": csrf,
            "procedure_code": "1.001612",
            "dossier_code": dossier,
            "payer_name": "Nguyễn Văn An",
            "payer_id_number": ID_NUMBER,
            "payer_phone": "0912345678",
            "payer_email": "an@example.vn",
            **(extra or {}),
        }
    )
    response = client.post(
        "/staff/counter/orders", data=fields, headers=HTML, follow_redirects=False
    )
    return response, fields


def order_id_of(response: Any) -> str:
    assert response.status_code == 303, response.text
    match = re.search(r"/staff/counter/orders/([0-9a-f]+)", response.headers["location"])
    assert match is not None
    return match.group(1)


def load(order_id: str) -> PaymentOrder:
    with session_scope() as session:
        order = session.get(PaymentOrder, order_id)
        assert order is not None
        session.expunge(order)
        return order


def pay_cash(client: TestClient, csrf: str, order_id: str, amount: int) -> Any:
    return client.post(
        f"/staff/counter/orders/{order_id}/cash",
        data={"csrf_token": csrf, "amount": str(amount)},
        headers=HTML,
        follow_redirects=False,
    )


def other_agency_order() -> str:
    """An order of another agency (same catalogue), made through the service directly."""
    catalog = resources.files("payments").joinpath("data/demo_catalog.csv").read_bytes()
    with session_scope() as session:
        other = add_agency(session, replace(DEMO_AGENCY, code="KHAC-XA", name="UBND xã Khác"))
        import_catalog(session, other, catalog, effective_from=DEMO_CATALOG_FROM)
        order = create_order(
            session,
            other,
            OrderRequest(
                dossier_code="X-0001",
                procedure_code="1.001612",
                payer={"name": "Trần Khác"},
                fees=(FeeRequest("HKD-TL"),),
            ),
            client_id=None,
            ttl=timedelta(hours=1),
            max_amount=10**9,
        )
        return order.id


# ---------------------------------------------------------------------------------------


def test_create_order_from_the_form_once_per_form(client: TestClient) -> None:
    csrf = sign_in(client)
    home = client.get("/staff/counter", headers=HTML)
    assert home.status_code == 200 and "Quầy thu phí, lệ phí" in home.text
    response, fields = new_order(client, csrf)
    order_id = order_id_of(response)
    assert response.headers["location"].endswith("done=created")
    order = load(order_id)
    assert order.amount == PAGE_TOTAL and order.status == "pending"
    assert order.dossier_code == "H01.22-261121-0101" and order.client_id is None
    assert order.payer["id_number"] == ID_NUMBER

    # The same form sent again (double click, resubmit after a lost answer): no second order.
    again = client.post("/staff/counter/orders", data=fields, headers=HTML, follow_redirects=False)
    assert order_id_of(again) == order_id
    assert again.headers["location"].endswith("done=repeat")
    assert count(PaymentOrder) == 1

    page = client.get(f"/staff/counter/orders/{order_id}", headers=HTML)
    assert page.status_code == 200
    assert "105.000 đ" in page.text
    assert ID_NUMBER not in page.text and "*********345" in page.text
    assert "0912345678" not in page.text
    assert f"/api/v1/payment-orders/{order_id}/vietqr.png" in page.text
    assert order.reference in page.text and "113000012345" in page.text
    assert f"/staff/counter/orders/{order_id}/screen" in page.text
    screen = client.get(f"/staff/counter/orders/{order_id}/screen", headers=HTML)
    assert screen.status_code == 200 and "105.000 đ" in screen.text
    assert 'class="topbar"' not in screen.text  # a clean view facing the citizen

    found = client.get("/staff/counter", params={"q": "H01.22-261121-0101"}, headers=HTML)
    assert f"/staff/counter/orders/{order_id}" in found.text
    by_ref = client.get("/staff/counter", params={"q": order.reference.lower()}, headers=HTML)
    assert f"/staff/counter/orders/{order_id}" in by_ref.text


def test_a_refused_form_changes_nothing_and_keeps_its_token(client: TestClient) -> None:
    csrf = sign_in(client)
    response, fields = new_order(client, csrf, extra={"payer_name": "", "payer_id_number": "12"})
    assert response.status_code == 422
    assert "Chưa tạo được đơn thu" in response.text
    assert "Họ tên người nộp" in response.text and "Số định danh" in response.text
    assert count(PaymentOrder) == 0 and count(IdempotencyRecord) == 0
    assert f'value="{fields["form_token"]}"' in response.text  # the retry is still one order

    unknown, _ = new_order(client, csrf, quantities={"CT-BS": 0, "HKD-TL": 0})
    assert unknown.status_code == 422 and count(PaymentOrder) == 0

    fields.update({"payer_name": "Nguyễn Văn An", "payer_id_number": ID_NUMBER})
    fixed = client.post("/staff/counter/orders", data=fields, headers=HTML, follow_redirects=False)
    order_id_of(fixed)
    assert count(PaymentOrder) == 1


def test_exempt_line_becomes_zero_and_is_recorded(client: TestClient) -> None:
    csrf = sign_in(client)
    fields = order_form(client)
    i = line_index(fields, "HKD-TL")
    response, _ = new_order(
        client,
        csrf,
        extra={
            f"line-{i}-exempt": "1",
            f"line-{i}-exempt_category": "Hộ nghèo",
            f"line-{i}-exempt_basis": "Nghị quyết 08/2023/NQ-HĐND tỉnh",
        },
    )
    order = load(order_id_of(response))
    assert order.amount == 5_000
    with session_scope() as session:
        fresh = session.get(PaymentOrder, order.id)
        assert fresh is not None
        line = next(x for x in fresh.lines if x.fee_code == "HKD-TL")
        assert (line.amount, line.exemption_category) == (0, "Hộ nghèo")
    missing_basis, _ = new_order(
        client, csrf, extra={f"line-{i}-exempt": "1", f"line-{i}-exempt_category": "Hộ nghèo"}
    )
    assert missing_basis.status_code == 422 and count(PaymentOrder) == 1


def test_cash_issues_the_receipt_and_prints(client: TestClient) -> None:
    csrf = sign_in(client)
    order_id = order_id_of(new_order(client, csrf)[0])
    wrong = pay_cash(client, csrf, order_id, PAGE_TOTAL - 1)
    assert wrong.status_code == 422 and "amount_mismatch" in wrong.text
    assert load(order_id).status == "pending" and count(Receipt) == 0

    paid = pay_cash(client, csrf, order_id, PAGE_TOTAL)
    assert paid.status_code == 303 and paid.headers["location"].endswith("done=cash")
    order = load(order_id)
    assert (order.status, order.payment_method, order.collected_by) == (
        "succeeded",
        "cash",
        "thuquy",
    )
    assert order.receipt_id is not None and count(Receipt) == 1

    status = client.get(f"/staff/counter/orders/{order_id}/status").json()
    assert status["paid"] is True and status["receipt"]["id"] == order.receipt_id
    page = client.get(f"/staff/counter/orders/{order_id}?done=cash", headers=HTML)
    assert status["receipt"]["label"] in page.text and "Đã ghi nhận tiền mặt" in page.text
    assert 'id="cash-form"' not in page.text

    pdf = client.get(status["receipt"]["pdf_url"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    twice = pay_cash(client, csrf, order_id, PAGE_TOTAL)  # a double click on "record cash"
    assert twice.headers["location"].endswith("done=cash_repeat") and count(Receipt) == 1

    cancel = client.post(
        f"/staff/counter/orders/{order_id}/cancel", data={"csrf_token": csrf}, headers=HTML
    )
    assert cancel.status_code == 409 and load(order_id).status == "succeeded"


def test_cancel_a_pending_order(client: TestClient) -> None:
    csrf = sign_in(client)
    order_id = order_id_of(new_order(client, csrf)[0])
    done = client.post(
        f"/staff/counter/orders/{order_id}/cancel",
        data={"csrf_token": csrf},
        headers=HTML,
        follow_redirects=False,
    )
    assert done.status_code == 303 and load(order_id).status == "cancelled"
    assert client.get(f"/staff/counter/orders/{order_id}/status").json()["status"] == "cancelled"


def test_another_agencys_order_is_404_and_untouched(client: TestClient) -> None:
    csrf = sign_in(client)
    foreign = other_agency_order()
    before = load(foreign)
    for path in ("", "/screen", "/status"):
        response = client.get(f"/staff/counter/orders/{foreign}{path}", headers=HTML)
        assert response.status_code == 404, path
    assert pay_cash(client, csrf, foreign, before.amount).status_code == 404
    cancel = client.post(
        f"/staff/counter/orders/{foreign}/cancel", data={"csrf_token": csrf}, headers=HTML
    )
    assert cancel.status_code == 404
    after = load(foreign)
    assert (after.status, after.collected_by, after.receipt_id) == ("pending", None, None)
    found = client.get("/staff/counter", params={"q": "X-0001"}, headers=HTML)
    assert foreign not in found.text


def test_missing_csrf_is_403_and_changes_nothing(client: TestClient) -> None:
    csrf = sign_in(client)
    fields = order_form(client)
    fields.update(
        {
            "procedure_code": "1.001612",
            "dossier_code": "H01-NO-CSRF",
            "payer_name": "A",
            f"line-{line_index(fields, 'HKD-TL')}-quantity": "1",
        }
    )
    refused = client.post("/staff/counter/orders", data=fields, headers=HTML)
    assert refused.status_code == 403 and "csrf_failed" in refused.text
    assert count(PaymentOrder) == 0
    forged = client.post(
        "/staff/counter/orders", data={**fields, "csrf_token": "x" * 43}, headers=HTML
    )
    assert forged.status_code == 403 and count(PaymentOrder) == 0

    order_id = order_id_of(new_order(client, csrf)[0])
    no_token = client.post(f"/staff/counter/orders/{order_id}/cash", data={"amount": PAGE_TOTAL})
    assert no_token.status_code == 403
    no_cancel = client.post(f"/staff/counter/orders/{order_id}/cancel")
    assert no_cancel.status_code == 403
    assert load(order_id).status == "pending" and count(Receipt) == 0


def test_accountant_gets_a_refusal_page(client: TestClient) -> None:
    sign_in(client, "ketoan")
    page = client.get("/staff/counter", headers=HTML)
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "không có quyền" in page.text
    assert client.get("/staff/counter/till", headers=HTML).status_code == 403
    csrf = client.get("/staff/me").json()["csrf_token"]
    response = client.post(
        "/staff/counter/orders", data={"csrf_token": csrf, "form_token": "abc"}, headers=HTML
    )
    assert response.status_code == 403 and count(PaymentOrder) == 0


def test_signed_out_is_sent_to_sign_in(client: TestClient) -> None:
    response = client.get("/staff/counter", headers=HTML, follow_redirects=False)
    assert response.status_code == 303 and "/staff/login" in response.headers["location"]


def test_till_counts_my_cash_and_the_agencys_transfers(client: TestClient) -> None:
    with session_scope() as session:
        agency = session.scalar(select(Agency).where(Agency.code == DEMO_AGENCY.code))
        assert agency is not None
        create_staff(session, agency.id, "thuquy2", "Clerk Two", DEMO_STAFF_PASSWORD, ("clerk",))
    csrf = sign_in(client)
    first = order_id_of(new_order(client, csrf, dossier="D-1")[0])
    second = order_id_of(new_order(client, csrf, dossier="D-2", quantities={"HKD-TL": 1})[0])
    by_transfer = order_id_of(new_order(client, csrf, dossier="D-3", quantities={"CT-BS": 2})[0])
    pay_cash(client, csrf, first, PAGE_TOTAL)
    pay_cash(client, csrf, second, 100_000)
    assert sepay(client, 4_000, f"CHUYEN TIEN {load(by_transfer).reference}").status_code == 200
    assert load(by_transfer).status == "succeeded"

    other_csrf = sign_in(client, "thuquy2")
    theirs = order_id_of(new_order(client, other_csrf, dossier="D-4")[0])
    pay_cash(client, other_csrf, theirs, PAGE_TOTAL)

    sign_in(client)
    till = client.get("/staff/counter/till", headers=HTML)
    assert till.status_code == 200
    text = re.sub(r"\s+", " ", till.text)
    cash_row = re.search(r'id="till-cash">(.*?)</tr>', text)
    transfer_row = re.search(r'id="till-transfer">(.*?)</tr>', text)
    assert cash_row is not None and transfer_row is not None
    assert re.search(r"data-count>2<", cash_row.group(1))
    assert f"data-total>{PAGE_TOTAL + 100_000:,} đ<".replace(",", ".") in cash_row.group(1)
    assert re.search(r"data-count>1<", transfer_row.group(1))
    assert "data-total>4.000 đ<" in transfer_row.group(1)
    assert "toàn đơn vị" in transfer_row.group(1)
    assert "D-4" not in text and "D-1" in text and "D-2" in text
    assert "Asia/Ho_Chi_Minh" in text and "UTC" in text


def _paid_order(client: TestClient, csrf: str) -> tuple[str, str]:
    order_id = order_id_of(new_order(client, csrf)[0])
    pay_cash(client, csrf, order_id, PAGE_TOTAL)
    receipt_id = load(order_id).receipt_id
    assert receipt_id is not None
    return order_id, receipt_id


def test_replacement_needs_a_reason(client: TestClient) -> None:
    csrf = sign_in(client)
    order_id, receipt_id = _paid_order(client, csrf)
    form = client.get(f"/staff/counter/receipts/{receipt_id}/replace", headers=HTML)
    assert form.status_code == 200 and ID_NUMBER not in form.text
    fields = dict(
        re.findall(
            r'name="(line-\d+-(?:quantity|unit_price|amount))" inputmode="numeric" value="(\d+)"',
            form.text,
        )
    )
    index = next(k.split("-")[1] for k, v in fields.items() if k.endswith("quantity") and v == "3")
    changed = {**fields, f"line-{index}-quantity": "4", f"line-{index}-amount": ""}
    url = f"/staff/counter/receipts/{receipt_id}/replace"

    no_reason = client.post(url, data={"csrf_token": csrf, "reason": " ", **changed}, headers=HTML)
    assert no_reason.status_code == 422 and "Lý do là bắt buộc" in no_reason.text
    assert count(Receipt) == 1
    no_csrf = client.post(url, data={"reason": "Sai số trang", **changed}, headers=HTML)
    assert no_csrf.status_code == 403 and count(Receipt) == 1
    nothing = client.post(
        url, data={"csrf_token": csrf, "reason": "Không đổi gì", **fields}, headers=HTML
    )
    assert nothing.status_code == 422 and count(Receipt) == 1

    done = client.post(
        url,
        data={"csrf_token": csrf, "reason": "Sai số trang bản sao: 4 trang", **changed},
        headers=HTML,
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].endswith("done=replaced")
    with session_scope() as session:
        original = session.get(Receipt, receipt_id)
        assert original is not None and original.replaced_by_id is not None
        replacement = session.get(Receipt, original.replaced_by_id)
        assert (
            replacement is not None and replacement.total == PAGE_TOTAL + 1_000
        )  # 4th page at 1,000 đ (tariff tier)
        label = f"{replacement.template} · {replacement.series} · {replacement.number}"
    page = client.get(done.headers["location"], headers=HTML)
    assert "Đã lập biên lai thay thế số" in page.text and label in page.text
    status = client.get(f"/staff/counter/orders/{order_id}/status").json()
    assert status["receipt"]["label"] == label


def test_error_notice_needs_a_reason(client: TestClient) -> None:
    csrf = sign_in(client)
    order_id, receipt_id = _paid_order(client, csrf)
    form = client.get(f"/staff/counter/receipts/{receipt_id}/error-notice", headers=HTML)
    token = re.search(r'name="form_token" value="([0-9a-f]+)"', form.text)
    assert form.status_code == 200 and token is not None
    url = f"/staff/counter/receipts/{receipt_id}/error-notice"
    base = {"csrf_token": csrf, "form_token": token.group(1), "tax_authority_name": "Thuế cơ sở 1"}
    missing = client.post(url, data={**base, "reason": ""}, headers=HTML)
    assert missing.status_code == 422 and "Lý do là bắt buộc" in missing.text
    no_office = client.post(
        url, data={**base, "reason": "Sai tên", "tax_authority_name": ""}, headers=HTML
    )
    assert no_office.status_code == 422
    assert count(ErrorNotice) == 0

    data = {**base, "reason": "Sai tên người nộp: đúng là Nguyễn Văn Ân"}
    done = client.post(url, data=data, headers=HTML, follow_redirects=False)
    assert done.status_code == 303 and "done=notice" in done.headers["location"]
    again = client.post(url, data=data, headers=HTML, follow_redirects=False)  # double submit
    assert again.status_code == 303 and count(ErrorNotice) == 1
    with session_scope() as session:
        notice = session.scalars(select(ErrorNotice)).one()
        assert (notice.status, notice.actor) == ("queued", "thuquy")
    page = client.get(done.headers["location"], headers=HTML)
    assert "04/SS-CTĐT" in page.text and "queued" in page.text
    assert f"/staff/counter/orders/{order_id}" in done.headers["location"]


@pytest.mark.parametrize("path", ["/staff/counter/receipts/nope/pdf", "/staff/counter/orders/nope"])
def test_unknown_ids_are_404(client: TestClient, path: str) -> None:
    sign_in(client)
    assert client.get(path, headers=HTML).status_code == 404


def test_procedure_picker_without_script_and_english(client: TestClient) -> None:
    sign_in(client)
    by_name = client.get("/staff/counter/new", params={"procedure": "thành lập hộ kinh doanh"})
    assert by_name.status_code == 200
    assert 'name="procedure_code" value="1.001612"' in by_name.text
    assert (
        "100.000 đ/lần" in by_name.text and "tối đa 200.000 đ/bản" in by_name.text
    )  # tariffs in words
    fragment = client.get("/staff/counter/new/lines", params={"procedure": "1.001612"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'name="line-0-fee_code"' in fragment.text
    unknown = client.get("/staff/counter/new", params={"procedure": "không có thủ tục này"})
    assert "Không tìm thấy thủ tục" in unknown.text and "procedure_code" not in unknown.text

    csrf = client.get("/staff/me").json()["csrf_token"]
    order_id = order_id_of(new_order(client, csrf)[0])
    english = client.get(f"/staff/counter/orders/{order_id}?lang=en", headers=HTML)
    assert "Order details" in english.text and "Awaiting payment" in english.text
    assert "Totals by channel" in client.get("/staff/counter/till?lang=en").text
