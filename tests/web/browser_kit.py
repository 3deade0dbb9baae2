"""What the browser journeys share (imported by name: ``from browser_kit import ...``; a
module called ``conftest`` would be ambiguous, every test folder has one): viewports, the live
server, screenshots as artifacts, signing in."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import uvicorn
from infra.clock import local, local_now
from infra.ports import wait_for_port
from playwright.sync_api import Page

from api.app import create_app
from api.demo import DEMO_STAFF_PASSWORD
from settings.config import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("MOTCUA_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
SCREENSHOTS = ARTIFACTS / "screenshots"
PHONE = {"width": 390, "height": 844}
COUNTER = {"width": 1366, "height": 768}


class LiveServer:
    def __init__(self, settings: Settings, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_for_port(self.port, timeout=30)
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def clear_of_midnight(minutes: float = 3) -> None:
    """A journey about *today* (payments, then today's close or till) must not straddle the
    agency's midnight: if the local day ends within ``minutes``, wait for the next one to begin."""
    at = local_now()
    left = (local(at.date() + timedelta(days=1)) - at).total_seconds()
    if left < minutes * 60:
        time.sleep(left + 1)


def shot(page: Page, name: str) -> Path:
    """Saves a full-page screenshot as a test artifact and returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^a-z0-9_-]+", "-", name.lower()) + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base_url: str, username: str, password: str = DEMO_STAFF_PASSWORD) -> None:
    page.goto(f"{base_url}/staff/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/(?!login).*"))


def no_horizontal_scroll(page: Page) -> bool:
    """Readable on the viewport: nothing forces the page wider than the screen."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))
