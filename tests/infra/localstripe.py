"""A throw-away localstripe (Stripe-compatible test server) on 127.0.0.1, in a subprocess.

    with LocalStripe() as ls:
        ls.url                                    # http://127.0.0.1:<port>
        ls.configure_webhook("wh1", url, secret)  # POST /_config/webhooks/wh1
        ls.flush()                                # DELETE /_config/data: forget every object

Why not ``localstripe --port N``: its ``start()`` binds ``::`` (every interface, IPv4 and IPv6)
and, unless ``--from-scratch``, reloads the previous run's objects. We run
``aiohttp.web.run_app(localstripe.server.app, host="127.0.0.1", port=N)`` instead, which binds
loopback only and never calls ``Store.try_load_from_disk()``.

State file: localstripe 1.15.10 pickles its whole store after every change to the hard-coded
path ``/tmp/localstripe.pickle`` (``resources.Store.dump_to_disk``), so ``TMPDIR`` does *not*
move it. Left alone, parallel test runs (xdist workers) would race on that file and clobber a
developer's own localstripe state. The child therefore redirects ``dump_to_disk`` to
``<own temp dir>/localstripe.pickle`` (still pickling, so an unpicklable object fails as it
would upstream) and disables loading; its ``TMPDIR`` is that directory too. Every instance
starts empty.

Set ``MOTCUA_TEST_LOCALSTRIPE_URL`` to use a server that is already running instead.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from .ports import LOOPBACK, ServerError, free_port, log_tail, stop_process

__all__ = ["ENV_URL", "TEST_SECRET_KEY", "LocalStripe"]

ENV_URL = "MOTCUA_TEST_LOCALSTRIPE_URL"
TEST_SECRET_KEY = "sk_test_motcua_localstripe"
"""localstripe accepts any key that starts with ``sk_`` and is longer than 5 characters."""

_START_ATTEMPTS = 3

# Runs in the child: isolate the state file, then serve on loopback only.
_BOOTSTRAP = """
import pickle, sys
from aiohttp import web
from localstripe import resources
from localstripe.server import app

state_file = sys.argv[3]

def dump_to_disk(self):
    with open(state_file, "wb") as f:
        pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

resources.Store.dump_to_disk = dump_to_disk
resources.Store.try_load_from_disk = lambda self: None
web.run_app(app, host=sys.argv[1], port=int(sys.argv[2]), handle_signals=True)
"""


class LocalStripe:
    """localstripe on 127.0.0.1:<free port> in a child process with its own temporary folder.

    Attributes: ``url``, ``port``, ``managed`` (False with ``MOTCUA_TEST_LOCALSTRIPE_URL``),
    ``base_dir``/``log_path``/``state_file`` (managed only).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        startup_timeout: float = 20.0,
        external_url: str | None = None,
        use_env: bool = True,
    ) -> None:
        if external_url is None and use_env:
            external_url = os.environ.get(ENV_URL) or None
        self.managed = external_url is None
        self.startup_timeout = startup_timeout
        self._fixed_port = port
        self._external_url = external_url.rstrip("/") if external_url else None
        self._proc: subprocess.Popen[bytes] | None = None
        self.base_dir: Path | None = None
        self.port = port or 0

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the ``api_base`` for ``StripeGateway``."""
        if self._external_url is not None:
            return self._external_url
        if not self.port:
            raise ServerError("localstripe is not running")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self.base_dir / "localstripe.log" if self.base_dir else None

    @property
    def state_file(self) -> Path | None:
        return self.base_dir / "localstripe.pickle" if self.base_dir else None

    @property
    def running(self) -> bool:
        if not self.managed:
            return True
        return self._proc is not None and self._proc.poll() is None

    def client(self, *, timeout: float = 10.0) -> httpx.Client:
        """An httpx client authenticated with :data:`TEST_SECRET_KEY` (for test set-up calls)."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {TEST_SECRET_KEY}"},
            timeout=timeout,
        )

    # ------------------------------------------------------------------ localstripe extras

    def configure_webhook(
        self, webhook_id: str, url: str, secret: str, events: list[str] | None = None
    ) -> None:
        """Register (or replace) a webhook endpoint; localstripe signs with ``secret``.

        localstripe keeps webhooks in memory only (not in its state file), never retries a
        delivery, and posts each event about one second after it happened.
        """
        form: list[tuple[str, str]] = [("url", url), ("secret", secret)]
        form += [(f"events[{i}]", name) for i, name in enumerate(events or [])]
        with self.client() as client:
            response = client.post(f"/_config/webhooks/{webhook_id}", data=dict(form))
        if response.status_code != 200:
            raise ServerError(f"webhook config refused: {response.status_code} {response.text}")

    def flush(self) -> None:
        """Forget every object (``DELETE /_config/data``); webhooks stay registered."""
        with self.client() as client:
            client.delete("/_config/data").raise_for_status()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        kind = "managed" if self.managed else "external"
        return f"<LocalStripe {kind} port={self.port} running={self.running}>"

    def start(self) -> None:
        """Start the child (or reach the external server) and wait until it answers the API,
        at most ``startup_timeout`` seconds. No-op when already running."""
        if not self.managed:
            self._wait_ready(None)
            return
        if self.running:
            return
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="motcua-localstripe-"))
            atexit.register(self.stop)
        if self._fixed_port:
            self._launch(self._fixed_port)
            return
        last: ServerError | None = None
        for _ in range(_START_ATTEMPTS):
            self.port = free_port()
            try:
                self._launch(self.port)
                return
            except ServerError as exc:  # most likely the port was taken meanwhile
                last = exc
        self.port = 0
        assert last is not None
        raise last

    def stop(self) -> None:
        """Stop the child (SIGTERM, aiohttp shuts down cleanly) and delete its folder.
        Idempotent; no-op when external."""
        if not self.managed:
            return
        atexit.unregister(self.stop)
        if self._proc is not None:
            stop_process(self._proc, signal.SIGTERM, timeout=10)
            self._proc = None
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
        if self._fixed_port is None:
            self.port = 0

    # ------------------------------------------------------------------ internals

    def _launch(self, port: int) -> None:
        assert self.base_dir is not None and self.log_path is not None
        assert self.state_file is not None
        env = {**os.environ, "TMPDIR": str(self.base_dir), "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)  # never let tests/infra/localstripe.py shadow the package
        cmd = [sys.executable, "-c", _BOOTSTRAP, LOOPBACK, str(port), str(self.state_file)]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=env,
            )
        try:
            self._wait_ready(self._proc)
        except ServerError:
            stop_process(self._proc, signal.SIGKILL, timeout=10)
            self._proc = None
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes] | None) -> None:
        """Poll an authenticated API read until it answers 200 (bounded by the deadline)."""
        deadline = time.monotonic() + self.startup_timeout
        last_error = ""
        while True:
            if proc is not None and proc.poll() is not None:
                raise ServerError(
                    f"localstripe exited with code {proc.returncode} on port {self.port}:\n"
                    + (log_tail(self.log_path) if self.log_path else "")
                )
            try:
                with self.client(timeout=1) as client:
                    response = client.get("/v1/payment_intents", params={"limit": "1"})
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                log = log_tail(self.log_path) if self.log_path else ""
                raise ServerError(
                    f"localstripe at {self.url} not ready after {self.startup_timeout:.0f} s: "
                    f"{last_error}\n{log}"
                )
            time.sleep(0.05)
