"""The counter clerk's day in real Chromium (issue 6 item 2): create an order by picking a
procedure, show the QR and the citizen's second screen, take cash and print the receipt; and a
bank transfer that arrives while the order page is open turns both screens paid by themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from browser_kit import PHONE, LiveServer, clear_of_midnight, no_horizontal_scroll, shot, sign_in
from infra.clock import ZONE, now
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

TOTAL = "105.000 đ"  # CT-BS × 3 pages (5.000 đ, Circular 226) + HKD-TL (100.000 đ), demo catalogue


def receipt_number() -> re.Pattern[str]:
    """``EBL01 · 26TAB · n``: the series carries the year of issue (agency-local), so a receipt
    issued from now until the page's wait gives up is of this year, or of the next one if New
    Year falls in between."""
    start, end = now(), now() + timedelta(seconds=30)
    years = sorted({f"{t.astimezone(ZONE).year % 100:02d}" for t in (start, end)})
    return re.compile(rf"^EBL01 · (?:{'|'.join(years)})TAB · \d+$")


def create_order(page: Page, base_url: str, dossier: str) -> str:
    """Fills the new-order form the way a clerk does; returns the order page's URL."""
    page.goto(f"{base_url}/staff/counter/new")
    page.fill("#procedure", "1.001612")  # a catalogue code: the fee lines load by themselves
    copies = page.locator("tr[data-line]", has_text="CT-BS")
    expect(copies).to_be_visible()
    expect(page.locator("#total")).to_have_text("102.000 đ")  # both lines at quantity 1
    copies.locator("input[data-quantity]").fill("3")
    expect(page.locator("#total")).to_have_text(TOTAL)
    page.fill("#dossier_code", dossier)
    page.fill("#payer_name", "Nguyễn Văn An")
    page.fill("#payer_id_number", "001090012345")
    page.fill("#payer_phone", "0912345678")
    return page.url


def test_cash_at_the_counter(live: LiveServer, counter_page: Page) -> None:
    page = counter_page
    clear_of_midnight()  # the till at the end counts today's cash
    sign_in(page, live.url, "thuquy")
    assert page.url.endswith("/staff/counter")
    expect(page.locator("h1")).to_have_text("Quầy thu phí, lệ phí")
    shot(page, "counter-home-1366")

    create_order(page, live.url, "H01.22-261121-0777")
    shot(page, "counter-new-order-1366")
    page.click("#create-order")
    page.wait_for_url(re.compile(r".*/staff/counter/orders/[0-9a-f]{32}\?done=created$"))
    order_url = page.url.split("?")[0]
    expect(page.locator("#status-badge")).to_have_text("Chờ thanh toán")
    expect(page.locator("#order-total")).to_have_text(TOTAL)
    expect(page.locator("img.qr-large")).to_be_visible()
    assert page.evaluate("document.querySelector('img.qr-large').naturalWidth") > 0
    assert "*********345" in page.inner_text("main")
    assert "001090012345" not in page.content()
    shot(page, "counter-order-qr-1366")

    screen = page.context.new_page()  # the second monitor, same signed-in browser
    screen.goto(f"{order_url}/screen")
    expect(screen.locator("#pay-panel .screen-amount")).to_have_text(TOTAL)
    expect(screen.locator("img.screen-qr")).to_be_visible()
    shot(screen, "counter-second-screen-1366")

    page.once("dialog", lambda dialog: dialog.accept())
    number = receipt_number()
    page.click("#record-cash")
    page.wait_for_url(re.compile(r".*\?done=cash$"))
    expect(page.locator("#status-badge")).to_have_text("Đã thanh toán")
    expect(page.locator("#receipt-number")).to_have_text(number)
    expect(page.locator("#cash-form")).to_have_count(0)
    shot(page, "counter-paid-cash-1366")

    # The second screen was left open: it turns paid by itself, with the receipt number.
    expect(screen.locator("#paid-panel")).to_be_visible()
    expect(screen.locator("#paid-panel")).to_contain_text("Đã thanh toán")
    expect(screen.locator("#receipt-number")).to_have_text(page.inner_text("#receipt-number"))
    shot(screen, "counter-second-screen-paid-1366")

    href = page.get_attribute("#print-receipt", "href")
    assert href is not None
    pdf = page.request.get(f"{live.url}{href}")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")

    page.click("a[href='/staff/counter/till']")
    expect(page.locator("#till-cash [data-count]")).to_have_text("1")
    expect(page.locator("#till-cash [data-total]")).to_have_text(TOTAL)
    expect(page.locator("#till-interval")).to_contain_text("00:00")
    shot(page, "counter-till-1366")


def test_transfer_arrives_while_the_order_is_open(
    live: LiveServer, counter_page: Page, new_page: Callable[[dict[str, int]], Page]
) -> None:
    page = counter_page
    sign_in(page, live.url, "thuquy")
    create_order(page, live.url, "H01.22-261121-0888")
    page.keyboard.press("Enter")  # keyboard only: Enter in a field submits the form
    page.wait_for_url(re.compile(r".*/staff/counter/orders/[0-9a-f]{32}\?done=created$"))
    order_url = page.url.split("?")[0]
    memo = page.locator("dd.memo").evaluate("el => el.firstChild.textContent.trim()")
    assert re.fullmatch(r"[0-9A-Z]{13}", memo)
    screen = page.context.new_page()
    screen.goto(f"{order_url}/screen")
    expect(screen.locator("#pay-panel")).to_be_visible()

    phone = new_page(PHONE)  # the same pages on a 390 px screen: no sideways scrolling
    sign_in(phone, live.url, "thuquy")
    for path in (
        order_url,
        f"{order_url}/screen",
        f"{live.url}/staff/counter/new?procedure=1.001612",
    ):
        phone.goto(path)
        assert no_horizontal_scroll(phone), path
    phone.goto(order_url)
    shot(phone, "counter-order-qr-390")
    phone.goto(f"{order_url}/screen")
    shot(phone, "counter-second-screen-390")

    number = receipt_number()
    delivered = httpx.post(
        f"{live.url}/sandbox/bank/transfer",
        json={
            "agency": "DEMO-HUYEN",
            "amount": 105_000,
            "content": f"MBVCB.3278123.{memo}.CHUYEN TIEN",
        },
        timeout=30,
    )
    assert delivered.status_code == 200, delivered.text

    # No reload: both pages poll and turn paid, with the receipt number.
    expect(page.locator("#status-badge")).to_have_text("Đã thanh toán")
    expect(page.locator("#paid-panel")).to_be_visible()
    expect(page.locator("#pay-panel")).to_be_hidden()
    expect(page.locator("#receipt-number")).to_have_text(number)
    expect(page.locator("[data-paid-method]")).to_contain_text("Chuyển khoản")
    assert page.url.endswith("?done=created")  # the same page, never reloaded
    shot(page, "counter-paid-transfer-1366")
    expect(screen.locator("#paid-panel")).to_contain_text("Đã thanh toán")
    expect(screen.locator("#receipt-number")).to_have_text(page.inner_text("#receipt-number"))
    expect(screen.locator("#pay-panel")).to_be_hidden()
    shot(screen, "counter-second-screen-paid-transfer-1366")

    phone.goto(order_url)
    assert no_horizontal_scroll(phone)
    phone.goto(f"{live.url}/staff/counter/till")
    assert no_horizontal_scroll(phone)
    shot(phone, "counter-till-390")
