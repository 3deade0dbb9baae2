"""A real HTTP server on 127.0.0.1 that plays a one-stop system receiving callbacks.

    with CallbackReceiver() as rx:
        rx.url                       # http://127.0.0.1:<port>/callbacks
        rx.fail_next(2)              # answer 500 twice, then the default 200
        rx.sleep_next(1, 2.0)        # next request: wait 2 s before answering (timeout tests)
        rx.delay = 0.02              # every request takes at least 20 ms (concurrency tests)
        rx.wait_for(3, timeout=5)    # block until 3 requests arrived (bounded)
        rx.requests                  # what arrived: method, path, headers, exact body bytes

Binding port 0 lets the kernel pick a free port atomically, so there is no race to retry.
Sleeps wait on an event that ``close()`` sets, so shutting down never waits for a sleeper.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from .ports import LOOPBACK

__all__ = ["CallbackReceiver", "ReceivedRequest"]

_MAX_BODY = 1_000_000


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes
    received_at: float
    """``time.time()`` on arrival."""
    status: int
    """What the receiver was told to answer (recorded on arrival, before any planned sleep)."""


@dataclass
class _Plan:
    status: int = 200
    sleep: float = 0.0


class CallbackReceiver:
    """Records every request; answers per a queue of planned responses, else ``default_status``."""

    def __init__(self, path: str = "/callbacks", default_status: int = 200) -> None:
        self.path = path
        self.default_status = default_status
        self.response_body = b'{"ok":true}'
        self.delay = 0.0
        self._plans: deque[_Plan] = deque()
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next ``count`` requests get ``status``."""
        with self._lock:
            self._plans.extend(_Plan(status=status) for _ in range(count))

    def sleep_next(self, count: int, seconds: float, status: int = 200) -> None:
        """The next ``count`` requests wait ``seconds`` before answering ``status``."""
        with self._lock:
            self._plans.extend(_Plan(status=status, sleep=seconds) for _ in range(count))

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Blocks until ``count`` requests arrived; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._requests)} of {count} requests arrived")
                self._arrived.wait(left)
            return list(self._requests)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.path}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("receiver not started")
        return int(self._server.server_address[1])

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                receiver._handle(self)

            def do_GET(self) -> None:
                receiver._handle(self)

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="callback-receiver",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ handling

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = min(int(handler.headers.get("Content-Length") or 0), _MAX_BODY)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            plan = self._plans.popleft() if self._plans else _Plan(status=self.default_status)
            delay = self.delay
        record = ReceivedRequest(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            received_at=time.time(),
            status=plan.status,
        )
        with self._arrived:
            self._requests.append(record)
            self._arrived.notify_all()
        wait = max(plan.sleep, delay)
        if wait:
            self._closing.wait(wait)
        try:
            handler.send_response(plan.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(self.response_body)))
            handler.end_headers()
            handler.wfile.write(self.response_body)
        except OSError:
            pass  # the client gave up (timeout test): nothing to answer to
