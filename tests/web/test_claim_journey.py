"""A citizen's transfer claim in real Chromium (issue 19, part 1): the money arrived with the
wrong memo, the citizen claims it from the pay page on a phone, one accountant clicks once on
the desk and the citizen downloads the receipt; a refused claim and an unfound one read the same
and reveal nothing."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_kit import COUNTER, LiveServer, clear_of_midnight, no_horizontal_scroll, shot, sign_in
from infra.clock import today
from playwright.sync_api import Page, expect

from api.demo import DEMO_API_KEY

pytestmark = pytest.mark.browser

PHONE_NUMBER = "0912 345 678"
ORDER = {
    "procedure_code": "1.001612",
    "payer": {"name": "Nguyễn Văn An", "id_number": "001090012345", "phone": PHONE_NUMBER},
    "fees": [{"fee_code": "CT-BS", "quantity": 3}],
}


def create_order(base: str, dossier: str) -> dict[str, Any]:
    res = httpx.post(
        f"{base}/api/v1/payment-orders",
        json={**ORDER, "dossier_code": dossier},
        headers={"Authorization": f"Bearer {DEMO_API_KEY}", "Idempotency-Key": uuid.uuid4().hex},
        timeout=30,
    )
    assert res.status_code == 201, res.text
    return dict(res.json())


def stray_transfer(base: str, amount: int) -> str:
    """Money with a memo that names no order; returns the bank's reference."""
    ref = f"FT{secrets.randbelow(10**10):010d}"
    res = httpx.post(
        f"{base}/sandbox/bank/transfer",
        json={
            "agency": "DEMO-HUYEN",
            "amount": amount,
            "content": "NGUYEN VAN AN CHUYEN TIEN",
            "reference_code": ref,
        },
        timeout=60,
    )
    assert res.status_code == 200, res.text
    return ref


def fill_claim(page: Page, amount: int, ref: str) -> None:
    page.fill("#transfer_date", today().strftime("%d/%m/%Y"))
    page.fill("#claim-amount", str(amount))
    page.fill("#claim-bank", "Vietcombank")
    page.fill("#claim-reference", ref)
    page.fill("#claim-last4", PHONE_NUMBER.replace(" ", "")[-4:])
    page.click("#claim-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/pay/[0-9a-f]{32}/claim$"))


def test_citizen_claims_a_stray_transfer_and_downloads_the_receipt(
    live: LiveServer, phone_page: Page, new_page: Callable[[dict[str, int]], Page]
) -> None:
    base = live.url
    clear_of_midnight()  # the transfer's date is today's
    order = create_order(base, "H01.22-CLAIM-0001")
    ref = stray_transfer(base, order["amount"])

    page = phone_page
    page.goto(str(order["pay_url"]))
    page.click("#claim-link")
    page.wait_for_url(re.compile(r".*/claim$"))
    expect(page.locator("h1")).to_contain_text("Tôi đã chuyển khoản nhưng chưa được ghi nhận")
    fill_claim(page, order["amount"], ref)
    expect(page.locator("#claim-pending")).to_be_visible()
    assert no_horizontal_scroll(page)
    shot(page, "claim-pending-390")

    desk = new_page(COUNTER)
    sign_in(desk, base, "ketoan")
    desk.goto(f"{base}/staff/desk/exceptions")
    box = desk.locator("div.claim").first
    expect(box).to_contain_text(order["reference"])
    shot(desk, "desk-claim-1366")
    box.locator("form.claim-approve button").click()
    desk.wait_for_url(re.compile(r".*ok=claim_approved.*"))

    page.reload()
    pdf = page.locator("#claim-receipt-pdf")
    expect(pdf).to_be_visible()
    with page.expect_download() as info:
        pdf.click()
    assert Path(info.value.path()).read_bytes()[:5] == b"%PDF-"
    page.goto(str(order["pay_url"]))
    expect(page.locator("#receipt-pdf")).to_be_visible()


def test_refused_and_unfound_claims_read_alike_and_reveal_nothing(
    live: LiveServer, phone_page: Page, new_page: Callable[[dict[str, int]], Page]
) -> None:
    base = live.url
    clear_of_midnight()
    order = create_order(base, "H01.22-CLAIM-0002")
    ref = stray_transfer(base, order["amount"])

    page = phone_page
    page.goto(f"{base}/pay/{order['id']}/claim")
    fill_claim(page, order["amount"], ref)
    expect(page.locator("#claim-pending")).to_be_visible()

    desk = new_page(COUNTER)
    sign_in(desk, base, "ketoan")
    desk.goto(f"{base}/staff/desk/exceptions")
    box = desk.locator("div.claim").first
    box.locator("input[name=reason]").fill("Người nộp không khớp thông tin hồ sơ")
    box.locator("form.claim-refuse button").click()
    desk.wait_for_url(re.compile(r".*ok=claim_refused.*"))

    page.reload()
    refused = page.locator("#claim-state").inner_text()
    expect(page.locator("#claim-not-found")).to_be_visible()
    fill_claim(page, order["amount"], f"FT{secrets.randbelow(10**10):010d}")  # fits nothing
    unfound = page.locator("#claim-state").inner_text()
    assert refused == unfound
    body = page.content()
    assert ref not in body and "ketoan" not in body and "từ chối" not in body.lower()
    shot(page, "claim-not-found-390")
