"""The agency admin pages in Chromium: the admin creates a clerk account and an API client
(the key shown once, with a copy button), and sees that the demo certificate is a
development one; the admin home fits a 390 px phone without sideways scrolling."""

from __future__ import annotations

import re

import pytest
from browser_kit import LiveServer, no_horizontal_scroll, shot, sign_in
from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_admin_creates_a_clerk_and_an_api_client(live: LiveServer, counter_page: Page) -> None:
    page = counter_page
    sign_in(page, live.url, "quantri")
    assert page.url.endswith("/staff/admin")
    assert page.locator("h1").inner_text() == "Quản trị đơn vị"
    shot(page, "admin-home-1366")

    page.click("text=Cán bộ và vai trò")
    page.wait_for_url(re.compile(r".*/staff/admin/users$"))
    page.fill("#username", "thuquy2")
    page.fill("#display_name", "Ngô Thị Quầy")
    page.check("#create-user input[name=roles][value=clerk]")
    page.fill("#password", "quay-thu-so-2-2026")
    page.click("#create-user button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/admin/users\?done=created$"))
    row = page.locator("#staff-table tr[data-username=thuquy2]")
    assert "Ngô Thị Quầy" in row.inner_text() and "Cán bộ một cửa" in row.inner_text()
    shot(page, "admin-users-1366")

    page.click("text=Khóa API và ngân hàng")
    page.wait_for_url(re.compile(r".*/staff/admin/keys$"))
    page.fill("#client-name", "Cổng một cửa điện tử huyện")
    page.click("#client-form button[type=submit]")
    secret = page.locator('[data-secret="api_key"]')
    secret.wait_for()
    key = secret.inner_text().strip()
    assert key.startswith("mcp_live_")
    assert "Chỉ hiển thị một lần" in page.locator(".notice").inner_text()
    copy = page.locator(f'button[data-copy="{key}"]')
    assert copy.is_visible()
    shot(page, "admin-api-key-shown-once-1366")

    page.click("text=Tôi đã lưu, quay lại")
    page.wait_for_url(re.compile(r".*/staff/admin/keys$"))
    listing = page.locator("#clients-table").inner_text()
    assert "Cổng một cửa điện tử huyện" in listing and key[:12] in listing
    assert key not in page.content()

    page.click("text=Chứng thư số")
    page.wait_for_url(re.compile(r".*/staff/admin/certificate$"))
    badge = page.locator("#dev-badge")
    assert "KHÔNG có giá trị pháp lý" in badge.inner_text()
    assert page.locator("#cert-status").get_attribute("data-level") == "warn"
    assert "Khớp MST đơn vị" in page.locator("#cert-status").inner_text()
    shot(page, "admin-certificate-1366")

    # the new clerk can sign in and lands on the counter, not on the admin pages
    clerk = page.context.browser.new_context(viewport={"width": 1366, "height": 768})  # type: ignore[union-attr]
    try:
        other = clerk.new_page()
        sign_in(other, live.url, "thuquy2", "quay-thu-so-2-2026")
        assert other.url.endswith("/staff/counter")
    finally:
        clerk.close()


def test_admin_home_fits_a_phone(live: LiveServer, phone_page: Page) -> None:
    sign_in(phone_page, live.url, "quantri")
    assert phone_page.url.endswith("/staff/admin")
    assert no_horizontal_scroll(phone_page)
    shot(phone_page, "admin-home-390")
    for path in (
        "/staff/admin/users",
        "/staff/admin/catalog",
        "/staff/admin/keys",
        "/staff/admin/certificate",
    ):
        phone_page.goto(live.url + path)
        assert no_horizontal_scroll(phone_page), path
    shot(phone_page, "admin-certificate-390")
