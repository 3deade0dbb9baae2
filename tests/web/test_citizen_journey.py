"""A citizen on a 390 px phone, no account: opens pay_url, copies the memo, the transfer
arrives and the page turns paid by itself, downloads the receipt (PDF and XML), finds it again
with /tra-cuu, verifies the downloaded file on /verify, and browses the fee catalogue."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from browser_kit import LiveServer, no_horizontal_scroll, shot
from playwright.sync_api import Page, expect

from api.demo import DEMO_API_KEY

pytestmark = pytest.mark.browser

ORDER = {
    "dossier_code": "H01.22-261121-0042",
    "procedure_code": "1.012752",
    "payer": {
        "name": "Nguyễn Thị Bình",
        "id_number": "001190054321",
        "phone": "0987 654 321",
    },
    "fees": [{"fee_code": "DD-LPCN", "quantity": 1}, {"fee_code": "DD-TDCN", "quantity": 1}],
}


def _create_order(base: str) -> dict[str, object]:
    res = httpx.post(
        f"{base}/api/v1/payment-orders",
        json=ORDER,
        headers={
            "Authorization": f"Bearer {DEMO_API_KEY}",
            "Idempotency-Key": f"journey-{uuid.uuid4().hex}",
        },
        timeout=30,
    )
    assert res.status_code == 201, res.text
    order: dict[str, object] = res.json()
    return order


def test_citizen_pays_downloads_finds_and_verifies(
    live: LiveServer, phone_page: Page, tmp_path: Path
) -> None:
    page = phone_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    order = _create_order(live.url)
    assert order["amount"] == 600_000
    reference = str(order["reference"])

    # 1. the pay page, pending
    page.goto(str(order["pay_url"]))
    expect(page.locator("#amount")).to_have_text("600.000 đ")
    expect(page.locator("#memo")).to_have_text(reference)
    qr = page.locator("#transfer img.qr")
    expect(qr).to_be_visible()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 200", qr.element_handle())
    box = qr.bounding_box()
    assert box is not None and box["width"] >= 300  # large on a 390 px phone
    assert no_horizontal_scroll(page)
    shot(page, "portal-pay-pending-390")

    page.click("#copy-memo")
    expect(page.locator("#copy-memo")).to_have_text("Đã chép")
    assert page.evaluate("navigator.clipboard.readText()") == reference

    # 2. the transfer arrives; the page turns paid by itself (no reload by the test)
    res = httpx.post(
        f"{live.url}/sandbox/bank/transfer",
        json={"agency": "DEMO-HUYEN", "amount": order["amount"], "content": f"CK {reference}"},
        timeout=30,
    )
    assert res.status_code == 200, res.text
    expect(page.locator("#pay")).to_have_attribute("data-status", "succeeded", timeout=20_000)
    expect(page.locator("#receipt-pdf")).to_be_visible(timeout=20_000)
    expect(page.locator("#status")).to_contain_text("Đã thanh toán")
    assert page.locator("#transfer").count() == 0
    assert no_horizontal_scroll(page)
    shot(page, "portal-pay-paid-390")

    # 3. the receipt downloads, PDF and signed XML
    with page.expect_download() as pdf_info:
        page.click("#receipt-pdf")
    pdf_path = tmp_path / "bien-lai.pdf"
    pdf_info.value.save_as(pdf_path)
    assert pdf_path.read_bytes().startswith(b"%PDF")
    with page.expect_download() as xml_info:
        page.click("#receipt-xml")
    xml_path = tmp_path / "bien-lai.xml"
    xml_info.value.save_as(xml_path)
    assert b"<ds:Signature" in xml_path.read_bytes()
    number = page.locator("#receipt-number").inner_text()

    # 4. find it again with the dossier code and the phone's last four digits
    page.goto(f"{live.url}/tra-cuu")
    page.fill("#dossier_code", ORDER["dossier_code"])  # type: ignore[arg-type]
    page.fill("#last4", "4321")
    page.click("#lookup-form button[type=submit]")
    expect(page.locator("#lookup-result .receipt-number")).to_have_text(number)
    expect(page.locator("#lookup-result .receipt-pdf")).to_be_visible()
    assert no_horizontal_scroll(page)
    shot(page, "portal-lookup-result-390")
    page.fill("#dossier_code", ORDER["dossier_code"])  # type: ignore[arg-type]
    page.fill("#last4", "9999")
    page.click("#lookup-form button[type=submit]")
    expect(page.locator("#nothing-found")).to_be_visible()

    # 5. verify the downloaded files on /verify
    page.goto(f"{live.url}/verify")
    page.set_input_files("#verify-file", str(xml_path))
    page.click("#verify-form button[type=submit]")
    expect(page.locator("#verify-verdict")).to_contain_text("Biên lai hợp lệ")
    expect(page.locator("#verify-result")).to_contain_text(f"– {number}")
    assert no_horizontal_scroll(page)
    shot(page, "portal-verify-result-390")
    page.set_input_files("#verify-file", str(pdf_path))
    page.click("#verify-form button[type=submit]")
    expect(page.locator("#verify-result")).to_contain_text("Tệp PDF là bản thể hiện")
    expect(page.locator("#verify-verdict")).to_contain_text("Biên lai hợp lệ")
    # scanning: this headless Chromium has no camera; the page says so instead of failing
    page.click("#scan-qr")
    expect(page.locator("#scan-message")).not_to_be_empty()

    # 6. the fee catalogue, filtered as one types
    page.goto(f"{live.url}/bang-phi/DEMO-HUYEN")
    total = page.locator("section.proc").count()
    assert total > 30
    page.fill("#q", "dat dai")
    expect(page.locator("section.proc:visible")).not_to_have_count(total)
    visible = page.locator("section.proc:visible")
    assert visible.count() >= 2
    for code in visible.evaluate_all("(els) => els.map((e) => e.dataset.code)"):
        assert re.fullmatch(r"[0-9.]+", code)
    expect(page.locator("section.proc[data-code='1.012752']")).to_be_visible()
    expect(page.locator("section.proc[data-code='2.000815']")).to_be_hidden()
    assert no_horizontal_scroll(page)
    shot(page, "portal-fee-catalogue-390")
    page.click("section.proc[data-code='1.012752'] h2 a")
    expect(page.locator("#procedure-code")).to_have_text("1.012752")
    assert no_horizontal_scroll(page)


def test_cancelled_order_page_is_clear_on_a_phone(live: LiveServer, phone_page: Page) -> None:
    order = _create_order(live.url)
    res = httpx.post(
        f"{live.url}/api/v1/payment-orders/{order['id']}/cancel",
        headers={"Authorization": f"Bearer {DEMO_API_KEY}"},
        timeout=30,
    )
    assert res.status_code == 200, res.text
    phone_page.goto(str(order["pay_url"]))
    expect(phone_page.locator("#status")).to_contain_text("Yêu cầu thanh toán đã bị hủy")
    assert phone_page.locator("#transfer").count() == 0
    assert no_horizontal_scroll(phone_page)
    shot(phone_page, "portal-pay-cancelled-390")
