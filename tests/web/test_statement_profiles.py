"""The bank-statement admin page in Chromium (issue 18): the agency admin uploads a sample XLSX
export, sees the columns found and the parsed lines, adjusts a column, sees the import report
preview, saves the profile under a name, and then imports a statement with it.

The sample is written in the (unconfirmed) Vietcombank layout of
tests/payments/test_statement_bank_layouts.py, dated yesterday by the suite's clock.
"""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from browser_kit import LiveServer, no_horizontal_scroll, shot, sign_in
from infra.clock import Clock
from playwright.sync_api import Page

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payments"))
from test_statement_bank_layouts import statement_file, transactions

pytestmark = pytest.mark.browser


def test_admin_makes_a_profile_from_a_sample_and_imports_with_it(
    live: LiveServer, counter_page: Page, clock: Clock, tmp_path: Path
) -> None:
    page = counter_page
    txs = transactions(clock.today() - timedelta(days=1), clock)
    sample = tmp_path / "sao-ke-vcb.xlsx"
    sample.write_bytes(statement_file("vietcombank", txs, "xlsx", "dots"))

    sign_in(page, live.url, "quantri")
    page.click("#statements-link")
    page.wait_for_url(re.compile(r".*/staff/admin/statements$"))
    assert page.locator("h1").inner_text() == "Sao kê ngân hàng"
    assert "Chưa xác nhận" in page.locator("#built-in-profiles").inner_text()

    page.set_input_files("#sample-file", str(sample))
    page.select_option("#sample-base", "auto")
    page.click("#sample-form button[type=submit]")
    lines = page.locator("#parsed-lines")
    lines.wait_for()
    assert page.locator("#header_row").input_value() == "9"
    assert page.locator("#col_credit").input_value() == "4"  # "Số tiền ghi có", detected
    table = lines.inner_text()
    for tx in txs:
        assert tx.reference in table
    assert "1.250.000 đ" in table and "13.750.000 đ" in table
    assert page.locator('#report-preview [data-k="credits_new"]').inner_text() == "2"
    shot(page, "admin-statement-preview-1366")

    # adjust: no description column, then put it back; the lines follow each choice
    page.select_option("#col_description", "")
    page.click("#apply")
    page.wait_for_load_state()
    assert txs[0].memo not in page.locator("#parsed-lines").inner_text()
    page.select_option("#col_description", "6")
    page.click("#apply")
    page.wait_for_load_state()
    assert txs[0].memo in page.locator("#parsed-lines").inner_text()

    page.fill("#name", "vcb-huyen")
    page.fill("#description", "Sao kê Vietcombank của huyện")
    page.click("#save")
    page.wait_for_url(re.compile(r".*/staff/admin/statements\?done=saved$"))
    assert "vcb-huyen" in page.locator("#own-profiles").inner_text()
    shot(page, "admin-statement-profiles-1366")

    page.set_input_files("#import-file", str(sample))
    page.select_option("#import-profile", "vcb-huyen")
    page.click("#import-form button[type=submit]")
    report = page.locator("#import-report")
    report.wait_for()
    assert report.locator('[data-k="lines"]').inner_text() == "3"
    assert report.locator('[data-k="credits_new"]').inner_text() == "2"
    assert report.locator('[data-k="debits_ignored"]').inner_text() == "1"
    assert "OK" in report.locator('[data-k="balance"]').inner_text()
    shot(page, "admin-statement-imported-1366")


def test_statements_page_fits_a_phone(live: LiveServer, phone_page: Page) -> None:
    sign_in(phone_page, live.url, "quantri")
    phone_page.goto(live.url + "/staff/admin/statements")
    assert no_horizontal_scroll(phone_page)
    shot(phone_page, "admin-statements-390")
