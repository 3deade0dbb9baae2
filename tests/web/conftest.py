"""Browser journeys (issue 6): the real app under uvicorn on 127.0.0.1, Debian's Chromium
driven by Playwright (``executable_path``; Playwright cannot download browsers here).

The server runs in a thread of the test process with eager tasks, so a bank notification
issues its receipt inside the webhook request, as the embedded install does in its worker.
Screenshots of the key screens go to ``test-artifacts/screenshots/`` (or
``$MOTCUA_ARTIFACTS/screenshots``), kept after the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from browser_kit import CHROMIUM, COUNTER, PHONE, LiveServer
from infra.ports import free_port
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from api.demo import seed
from settings.config import Settings

pytestmark = pytest.mark.browser


@pytest.fixture
def backend() -> str:
    """Journeys run on the embedded default (SQLite), what a fresh install gets."""
    return "sqlite"


@pytest.fixture
def live(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """The demo agency with its staff accounts, served on a free loopback port."""
    port = free_port()
    monkeypatch.setenv("MOTCUA_PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    from settings.config import get_settings

    get_settings.cache_clear()
    current = get_settings()
    seed(current)
    with LiveServer(current, port) as server:
        yield server


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    b = playwright_session.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    yield b
    b.close()


def _context(browser: Browser, viewport: dict[str, int], **kwargs: object) -> BrowserContext:
    ctx = browser.new_context(
        viewport=viewport, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh", **kwargs
    )  # type: ignore[arg-type]
    ctx.set_default_timeout(15_000)
    return ctx


@pytest.fixture
def counter_page(browser: Browser) -> Iterator[Page]:
    """A 1366 px counter screen."""
    ctx = _context(browser, COUNTER)
    yield ctx.new_page()
    ctx.close()


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    """A 390 px wide phone."""
    ctx = _context(browser, PHONE, is_mobile=True, has_touch=True, accept_downloads=True)
    yield ctx.new_page()
    ctx.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[dict[str, int]], Page]]:
    """More pages (a second screen, a second accountant), each in its own browser context."""
    contexts: list[BrowserContext] = []

    def make(viewport: dict[str, int]) -> Page:
        ctx = _context(browser, viewport, accept_downloads=True)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()
