"""The accountant's day in real Chromium (issue 6 item 4): a day with one break is closed red,
the break is resolved by a correction that a second accountant approves in another browser,
the close is re-run and the day turns green; charts, an export and the tax submissions.

The tax-authority sandbox runs as its own process (as in tests/api/test_close_tax.py) and the
app is pointed at it before it is created, so the 01/TH-BLĐT summaries are really acknowledged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from browser_kit import (
    COUNTER,
    PHONE,
    LiveServer,
    clear_of_midnight,
    no_horizontal_scroll,
    shot,
    sign_in,
)
from infra.clock import today
from infra.tax_sandbox import tax_sandbox_process
from playwright.sync_api import Page, expect

from api.demo import DEMO_API_KEY

pytestmark = pytest.mark.browser

ORDER = {
    "dossier_code": "H01.22-261121-0901",
    "procedure_code": "1.001612",
    "payer": {"name": "Nguyễn Văn An", "id_number": "001090012345", "address": "Hà Nội"},
    "fees": [{"fee_code": "CT-BS", "quantity": 3}],
}


@pytest.fixture
def tax_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with tax_sandbox_process(tmp_path / "tax") as url:
        monkeypatch.setenv("MOTCUA_TAX_AUTHORITY_URL", url)
        yield url


@pytest.fixture
def desk_live(tax_sandbox: str, live: LiveServer) -> LiveServer:
    """``live`` created after the sandbox's URL is in the environment (argument order)."""
    return live


def create_order(base: str, key: str, dossier: str) -> dict[str, object]:
    res = httpx.post(
        f"{base}/api/v1/payment-orders",
        json={**ORDER, "dossier_code": dossier},
        headers={"Authorization": f"Bearer {DEMO_API_KEY}", "Idempotency-Key": key},
        timeout=30,
    )
    assert res.status_code == 201, res.text
    return dict(res.json())


def transfer(base: str, amount: object, content: str) -> None:
    res = httpx.post(
        f"{base}/sandbox/bank/transfer",
        json={"agency": "DEMO-HUYEN", "amount": amount, "content": content},
        timeout=60,
    )
    assert res.status_code == 200, res.text


def test_accountant_closes_a_day_red_to_green(
    desk_live: LiveServer, new_page: Callable[[dict[str, int]], Page]
) -> None:
    base = desk_live.url
    clear_of_midnight()  # pays, then closes *today*: all on one local day
    day = today().isoformat()
    paid = create_order(base, "journey-paid", "H01.22-261121-0901")
    transfer(base, paid["amount"], str(paid["reference"]))
    waiting = create_order(base, "journey-waiting", "H01.22-261121-0902")
    # The payer forgot the reference: money arrives, no order is paid, an exception opens.
    transfer(base, waiting["amount"], "NGUYEN VAN AN NOP LE PHI HO SO")

    page = new_page(COUNTER)
    sign_in(page, base, "ketoan")
    assert page.url.endswith("/staff/desk")
    expect(page.locator("h1")).to_contain_text("Đối soát cuối ngày")
    page.fill("#close-day", day)
    page.click("#close-today")
    page.wait_for_url(re.compile(rf".*/staff/desk/days/{day}\?ok=closed$"))
    expect(page.locator("#day-status")).to_have_attribute("data-status", "red")
    open_rows = page.locator('#breaks tr[data-state="open"]')
    expect(open_rows).to_have_count(1)
    expect(open_rows.first).to_contain_text("Tiền về chưa khớp khoản thu")
    page.goto(f"{base}/staff/desk")
    expect(page.locator(f'a.day[data-day="{day}"]')).to_have_attribute("data-status", "red")
    expect(page.locator("#today-status")).to_contain_text("Đỏ")
    shot(page, "desk-home-red-1366")

    page.goto(f"{base}/staff/desk/days/{day}")
    page.locator('#breaks tr[data-state="open"] a.break-link').click()
    page.wait_for_url(re.compile(r".*/staff/desk/breaks/[0-9a-f]{32}$"))
    break_url = page.url
    expect(page.locator("#break-state")).to_have_attribute("data-state", "open")
    expect(page.locator("main")).to_contain_text("NGUYEN VAN AN NOP LE PHI HO SO")
    shot(page, "desk-break-detail-1366")
    page.select_option("#action", "match_to_order")
    page.click(f'button[data-value="{waiting["reference"]}"]')  # the suggested pending order
    expect(page.locator("#order")).to_have_value(str(waiting["reference"]))
    page.fill("#reason", "Đối chiếu tên người nộp và số tiền với hồ sơ H01.22-261121-0902")
    page.click("#correction-form button[type=submit]")
    page.wait_for_url(re.compile(r".*\?ok=proposed$"))
    expect(page.locator(".correction .badge-warn")).to_have_text("Chờ duyệt")
    expect(page.locator("button.approve")).to_be_disabled()
    expect(page.locator(".correction .why")).to_contain_text("kế toán khác phê duyệt")
    shot(page, "desk-approval-proposer-1366")

    second = new_page(COUNTER)  # another accountant, another browser
    sign_in(second, base, "ketoan2")
    second.goto(break_url)
    expect(second.locator("button.approve")).to_be_enabled()
    shot(second, "desk-approval-second-accountant-1366")
    second.click("button.approve")
    second.wait_for_url(re.compile(r".*\?ok=approved$"))
    expect(second.locator("#break-state")).to_have_attribute("data-state", "resolved")
    expect(second.locator(".correction")).to_contain_text("ketoan2")
    shot(second, "desk-approved-1366")

    page.goto(break_url)
    page.click("#rerun")
    page.wait_for_url(re.compile(rf".*/staff/desk/days/{day}\?ok=closed$"))
    expect(page.locator("#day-status")).to_have_attribute("data-status", "green")
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    page.goto(f"{base}/staff/desk")
    expect(page.locator(f'a.day[data-day="{day}"]')).to_have_attribute("data-status", "green")
    expect(page.locator("#today-status")).to_contain_text("Xanh")
    shot(page, "desk-home-green-1366")

    page.goto(f"{base}/staff/desk/charts")
    expect(page.locator("svg.chart")).to_have_count(3)
    expect(page.locator("#chart-days > title")).to_contain_text("Số tiền thu theo ngày")
    shot(page, "desk-charts-1366")
    with page.expect_download() as download:
        page.click("#export-xlsx")
    got = download.value
    assert got.suggested_filename.startswith("Báo cáo thu phí lệ phí DEMO-HUYEN")
    assert got.suggested_filename.endswith(".xlsx")
    assert Path(got.path()).read_bytes()[:2] == b"PK"

    page.goto(f"{base}/staff/desk/tax")
    rows = page.locator("#submissions tbody tr")
    expect(rows).to_have_count(2)  # the first summary and the supplement for the matched order
    expect(page.locator('#submissions tr[data-status="accepted"]')).to_have_count(2)
    shot(page, "desk-tax-submissions-1366")

    phone = new_page(PHONE)
    sign_in(phone, base, "ketoan")
    for url in ("/staff/desk", f"/staff/desk/days/{day}", "/staff/desk/charts"):
        phone.goto(base + url)
        assert no_horizontal_scroll(phone), url
    phone.goto(f"{base}/staff/desk")
    shot(phone, "desk-home-green-390")
