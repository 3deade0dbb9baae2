"""A throw-away Redis server for tests: no persistence, 127.0.0.1 only, own directory.

    with RedisServer() as rs:
        rs.url          # redis://127.0.0.1:<port>/0
        rs.url_for(1)   # redis://127.0.0.1:<port>/1
        rs.restart()    # same port; all data is lost (no RDB/AOF)

Set ``MOTCUA_TEST_REDIS_URL`` to use an existing server instead; ``restart()``/``shutdown()``
then raise ``ServerNotManagedError``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import redis

from .ports import LOOPBACK, ServerError, ServerNotManagedError, free_port, log_tail, stop_process

ENV_URL = "MOTCUA_TEST_REDIS_URL"
_START_ATTEMPTS = 3


class RedisServer:
    """``redis-server`` on 127.0.0.1:<free port> with ``--save '' --appendonly no``.

    Attributes: ``host``, ``port``, ``managed`` (False when ``MOTCUA_TEST_REDIS_URL`` is used),
    ``base_dir``/``log_path`` (managed only).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        executable: str | None = None,
        extra_args: list[str] | None = None,
        startup_timeout: float = 30.0,
        external_url: str | None = None,
        use_env: bool = True,
    ) -> None:
        """
        port: fixed port (default: a free one, retried if taken meanwhile).
        extra_args: more ``redis-server`` arguments, e.g. ``["--maxmemory", "64mb"]``.
        external_url: use this existing server; by default ``$MOTCUA_TEST_REDIS_URL`` if set
            (``use_env=False`` ignores the variable).
        """
        if external_url is None and use_env:
            external_url = os.environ.get(ENV_URL) or None
        self.managed = external_url is None
        self.startup_timeout = startup_timeout
        self._fixed_port = port
        self._executable = executable
        self._extra_args = list(extra_args or [])
        self._proc: subprocess.Popen[bytes] | None = None
        self.base_dir: Path | None = None
        self._external = urlsplit(external_url) if external_url else None
        if self._external is not None:
            if self._external.scheme not in ("redis", "rediss", "unix"):
                raise ValueError(f"{ENV_URL} must be a redis:// URL")
            self.host = self._external.hostname or LOOPBACK
            self.port = self._external.port or 6379
        else:
            self.host = LOOPBACK
            self.port = port or 0

    # ------------------------------------------------------------------ URLs

    def url_for(self, db: int = 0) -> str:
        """``redis://127.0.0.1:<port>/<db>`` (external: the env URL with its path replaced)."""
        if self._external is not None:
            ext = self._external
            return urlunsplit((ext.scheme, ext.netloc, f"/{db}", ext.query, ""))
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``, or the env URL unchanged when external."""
        if self._external is not None:
            return urlunsplit(self._external)
        return self.url_for(0)

    def client(self, db: int = 0) -> redis.Redis:
        """A new ``redis.Redis`` client for database `db`."""
        return redis.Redis.from_url(self.url_for(db), socket_timeout=5)

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        if not self.managed:
            return True
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        return self.base_dir / "redis.log" if self.base_dir else None

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
        return f"<RedisServer {kind} {self.host}:{self.port} running={self.running}>"

    def start(self) -> None:
        """Start (or, external, reach) the server; waits for PING, at most `startup_timeout` s.
        No-op when already running."""
        if not self.managed:
            self._wait_ready(None)
            return
        if self.running:
            return
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="motcua-redis-"))
            atexit.register(self.stop)
        if self.port:
            self._launch(self.port)
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

    def shutdown(self) -> None:
        """Stop the server process (data is lost); ``start()`` brings it back on the same port."""
        if not self.managed:
            raise ServerNotManagedError(f"cannot shut down an external Redis ({ENV_URL})")
        if self._proc is not None:
            stop_process(self._proc, signal.SIGTERM, timeout=20)
            self._proc = None

    def restart(self) -> None:
        """``shutdown()`` then ``start()`` on the same port; connections are dropped."""
        if not self.managed:
            raise ServerNotManagedError(f"cannot restart an external Redis ({ENV_URL})")
        self.shutdown()
        self.start()

    def stop(self) -> None:
        """Stop the server and delete its directory. Idempotent; no-op if external."""
        if not self.managed:
            return
        atexit.unregister(self.stop)
        if self._proc is not None:
            stop_process(self._proc, signal.SIGTERM, timeout=20)
            self._proc = None
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
        if self._fixed_port is None:
            self.port = 0

    # ------------------------------------------------------------------ internals

    def _binary(self) -> str:
        exe = self._executable or shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(exe).is_file():
            raise ServerError(
                "redis-server not found; install the Debian package 'redis-server' "
                "(scripts/ensure_system_packages.sh)"
            )
        return exe

    def _launch(self, port: int) -> None:
        assert self.base_dir is not None and self.log_path is not None
        cmd = [
            self._binary(),
            "--port", str(port),
            "--bind", LOOPBACK,
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.base_dir),
            "--daemonize", "no",
            "--logfile", "",
            *self._extra_args,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
            )
        try:
            self._wait_ready(self._proc)
        except ServerError:
            stop_process(self._proc, signal.SIGKILL, timeout=10)
            self._proc = None
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = ""
        while True:
            if proc is not None and proc.poll() is not None:
                raise ServerError(
                    f"redis-server exited with code {proc.returncode} on port {self.port}:\n"
                    + (log_tail(self.log_path) if self.log_path else "")
                )
            client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
            try:
                if client.ping():
                    return
            except redis.RedisError as exc:
                last_error = str(exc)
            finally:
                client.close()
            if time.monotonic() > deadline:
                log = log_tail(self.log_path) if self.log_path else ""
                raise ServerError(
                    f"Redis at {self.host}:{self.port} not ready after "
                    f"{self.startup_timeout:.0f} s: {last_error}\n{log}"
                )
            time.sleep(0.05)
