"""The shared layout in a real browser: sign-in and back to the page asked for, the language
switch, and both widths without sideways scrolling."""

from __future__ import annotations

import re

from browser_kit import COUNTER, LiveServer, shot, sign_in
from playwright.sync_api import Page


def test_sign_in_form_and_wrong_password(live: LiveServer, counter_page: Page) -> None:
    page = counter_page
    page.goto(f"{live.url}/staff/")
    assert "/staff/login" in page.url
    assert page.locator("h1").inner_text() == "Đăng nhập cán bộ"
    shot(page, "staff-login-1366")
    page.fill("#username", "thuquy")
    page.fill("#password", "wrong password!")
    page.click("button[type=submit]")
    assert "Tên đăng nhập hoặc mật khẩu không đúng" in page.locator(".error").inner_text()
    page.fill("#password", "motcua-demo-2026")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/counter$"))


def test_home_sends_each_role_to_its_page(live: LiveServer, new_page) -> None:  # type: ignore[no-untyped-def]
    for username, start in (
        ("thuquy", "/staff/counter"),
        ("ketoan", "/staff/desk"),
        ("quantri", "/staff/admin"),
    ):
        page = new_page(COUNTER)
        sign_in(page, live.url, username)
        assert page.url.endswith(start)
