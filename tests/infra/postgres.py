"""A throw-away PostgreSQL server for tests, run from the Debian binaries.

``initdb`` refuses to run as root, so when the tests run as root the cluster is created and
served by the ``postgres`` system user (``subprocess`` switches user in the child, the same
effect as ``runuser -u postgres --``). As any other user, the server runs as that user.

    with PostgresServer() as pg:
        url = pg.create_database("motcua_test")  # postgresql+psycopg://postgres@127.0.0.1:<port>/motcua_test
        ...
        pg.restart()                             # fast shutdown + start on the same port
        pg.drop_database("motcua_test")

Set ``MOTCUA_TEST_POSTGRES_URL`` (``postgresql://user[:password]@host:port/admin_db``, with or
without ``+psycopg``) to use an existing server instead; ``restart()``/``shutdown()`` then raise
``ServerNotManagedError``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from .ports import (
    LOOPBACK,
    ServerError,
    ServerNotManagedError,
    free_port,
    is_root,
    log_tail,
    stop_process,
)

ENV_URL = "MOTCUA_TEST_POSTGRES_URL"
ENV_BINDIR = "MOTCUA_TEST_POSTGRES_BINDIR"
SUPERUSER = "postgres"
SYSTEM_USER = "postgres"

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SHUTDOWN_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}
_START_ATTEMPTS = 3

ShutdownMode = Literal["smart", "fast", "immediate"]

DEFAULT_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


def find_postgres_bindir() -> Path:
    """Directory holding ``initdb`` and ``postgres``.

    Order: ``$MOTCUA_TEST_POSTGRES_BINDIR``, the highest ``/usr/lib/postgresql/<v>/bin``,
    ``pg_config --bindir``, the directory of ``initdb`` on ``PATH``.
    """
    candidates: list[Path] = []
    if os.environ.get(ENV_BINDIR):
        candidates.append(Path(os.environ[ENV_BINDIR]))
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
        reverse=True,
    )
    candidates.extend(versions)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise ServerError(
        "PostgreSQL server binaries (initdb, postgres) not found; install the Debian package "
        f"'postgresql' (scripts/ensure_system_packages.sh) or set {ENV_BINDIR}"
    )


def _traversable_by_others(path: Path) -> bool:
    """True when every directory from / to `path` is world-searchable (o+x)."""
    for part in [path, *path.parents]:
        try:
            if not os.stat(part).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


class PostgresServer:
    """PostgreSQL on 127.0.0.1:<free port>, in its own temporary directory.

    Attributes: ``host``, ``port``, ``user``, ``managed`` (False when an existing server from
    ``MOTCUA_TEST_POSTGRES_URL`` is used), ``base_dir``/``data_dir``/``socket_dir``/``log_path``
    (managed only).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        bindir: str | Path | None = None,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        external_url: str | None = None,
        use_env: bool = True,
    ) -> None:
        """
        port: fixed port (default: a free one, retried if taken meanwhile).
        settings: extra/overriding ``-c name=value`` server settings.
        startup_timeout: bound for each start (and for reaching an external server).
        external_url: use this existing server; by default ``$MOTCUA_TEST_POSTGRES_URL`` if set
            (``use_env=False`` ignores the variable, e.g. for tests that must restart a server).
        """
        if external_url is None and use_env:
            external_url = os.environ.get(ENV_URL) or None
        self.startup_timeout = startup_timeout
        self.managed = external_url is None
        self._fixed_port = port
        self._settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._bindir = Path(bindir) if bindir else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._initialized = False
        self.base_dir: Path | None = None
        self._query = ""
        if external_url is not None:
            parts = urlsplit(external_url)
            if parts.scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
                raise ValueError(f"{ENV_URL} must be a postgresql:// URL, got {parts.scheme}://")
            self.host = parts.hostname or LOOPBACK
            self.port = parts.port or 5432
            self.user = parts.username or SUPERUSER
            self._netloc = parts.netloc
            self._admin_db = parts.path.lstrip("/") or "postgres"
            self._query = parts.query
        else:
            self.host = LOOPBACK
            self.port = port or 0
            self.user = SUPERUSER
            self._netloc = ""
            self._admin_db = "postgres"

    # ------------------------------------------------------------------ URLs and connections

    def _url(self, scheme: str, dbname: str) -> str:
        netloc = self._netloc or f"{self.user}@{self.host}:{self.port}"
        return urlunsplit((scheme, netloc, "/" + quote(dbname, safe=""), self._query, ""))

    def sqlalchemy_url(self, dbname: str | None = None) -> str:
        """``postgresql+psycopg://postgres@127.0.0.1:<port>/<dbname>`` (default: admin db)."""
        return self._url("postgresql+psycopg", dbname or self._admin_db)

    def dsn(self, dbname: str | None = None) -> str:
        """libpq URL for psycopg/psql: ``postgresql://postgres@127.0.0.1:<port>/<dbname>``."""
        return self._url("postgresql", dbname or self._admin_db)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the admin database (``postgres``)."""
        return self.sqlalchemy_url()

    def connect(
        self, dbname: str | None = None, *, autocommit: bool = False, **kwargs: Any
    ) -> psycopg.Connection[TupleRow]:
        """A new psycopg connection to `dbname` (default: the admin database)."""
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, **kwargs)

    # ------------------------------------------------------------------ databases

    @staticmethod
    def _check_name(name: str) -> str:
        if not _DB_NAME.match(name):
            raise ValueError(f"invalid database name {name!r} (letters, digits, _; max 63)")
        return name

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """CREATE DATABASE `name` (optionally as a copy of `template`); return its SQLAlchemy URL.

        A template must have no open connections while it is copied.
        """
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self._check_name(name)))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(
                query, sql.Identifier(self._check_name(template))
            )
        with self.connect(autocommit=True) as conn:
            conn.execute(query)
        return self.sqlalchemy_url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS `name`, closing its open connections first."""
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(self._check_name(name))
        )
        with self.connect(autocommit=True) as conn:
            conn.execute(query)

    def database_exists(self, name: str) -> bool:
        with self.connect(autocommit=True) as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        if not self.managed:
            return True
        return self._proc is not None and self._proc.poll() is None

    @property
    def data_dir(self) -> Path | None:
        return self.base_dir / "data" if self.base_dir else None

    @property
    def socket_dir(self) -> Path | None:
        return self.base_dir / "sock" if self.base_dir else None

    @property
    def log_path(self) -> Path | None:
        return self.base_dir / "postgres.log" if self.base_dir else None

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
        return f"<PostgresServer {kind} {self.host}:{self.port} running={self.running}>"

    def start(self) -> None:
        """Create the cluster on first use, then start the server and wait until it accepts
        connections (at most `startup_timeout` seconds). No-op when already running."""
        if not self.managed:
            self._wait_ready(None)
            return
        if self.running:
            return
        if not self._initialized:
            self._init_cluster()
        if self.port:  # fixed port, or restart after shutdown(): keep the URLs valid
            self._launch(self.port)
        else:
            self._launch_on_free_port()

    def shutdown(self, mode: ShutdownMode = "fast") -> None:
        """Stop the server process but keep its data; ``start()`` brings it back on the same
        port. ``immediate`` simulates a crash (recovery on the next start)."""
        self._require_managed("shutdown")
        if self._proc is not None:
            stop_process(self._proc, _SHUTDOWN_SIGNALS[mode], timeout=30)
            self._proc = None

    def restart(self, mode: ShutdownMode = "fast") -> None:
        """``shutdown(mode)`` then ``start()`` on the same port; open connections are lost."""
        self._require_managed("restart")
        self.shutdown(mode)
        self.start()

    def stop(self) -> None:
        """Stop the server (fast) and delete its directory. Idempotent; no-op if external."""
        if not self.managed:
            return
        atexit.unregister(self.stop)
        if self._proc is not None:
            stop_process(self._proc, signal.SIGINT, timeout=30)
            self._proc = None
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
        self._initialized = False
        if self._fixed_port is None:
            self.port = 0

    # ------------------------------------------------------------------ internals

    def _require_managed(self, what: str) -> None:
        if not self.managed:
            raise ServerNotManagedError(f"cannot {what} an external PostgreSQL ({ENV_URL})")

    def _run_as(self) -> dict[str, Any]:
        """Popen arguments that run the child as the ``postgres`` user when we are root."""
        if not is_root():
            return {}
        try:
            pw = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise ServerError(
                "running as root, and initdb refuses root, but there is no 'postgres' system "
                "user; install the Debian package 'postgresql' or run the tests as non-root"
            ) from None
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _make_base_dir(self) -> Path:
        parent = Path(tempfile.gettempdir())
        if is_root() and not _traversable_by_others(parent):
            parent = Path("/tmp")  # the postgres user must be able to reach its data dir
        base = Path(tempfile.mkdtemp(prefix="motcua-pg-", dir=parent))
        (base / "sock").mkdir()
        run_as = self._run_as()
        if run_as:
            for path in (base, base / "sock"):
                os.chown(path, run_as["user"], run_as["group"])
        return base

    def _init_cluster(self) -> None:
        bindir = self._bindir or find_postgres_bindir()
        self._bindir = bindir
        self.base_dir = self._make_base_dir()
        atexit.register(self.stop)
        data = self.base_dir / "data"
        base_cmd = [
            str(bindir / "initdb"),
            "-D", str(data),
            "-U", SUPERUSER,
            "-A", "trust",
            "--encoding=UTF8",
            "--no-sync",
        ]  # fmt: skip
        errors: list[str] = []
        for locale_args in (["--locale=C.UTF-8"], ["--no-locale"]):
            shutil.rmtree(data, ignore_errors=True)
            result = subprocess.run(
                [*base_cmd, *locale_args],
                capture_output=True,
                text=True,
                cwd=self.base_dir,
                timeout=120,
                check=False,
                **self._run_as(),
            )
            if result.returncode == 0:
                self._initialized = True
                return
            errors.append(f"$ {' '.join([*base_cmd, *locale_args])}\n{result.stderr.strip()}")
        self.stop()
        raise ServerError("initdb failed:\n" + "\n\n".join(errors))

    def _launch_on_free_port(self) -> None:
        last: ServerError | None = None
        for _ in range(_START_ATTEMPTS):
            self.port = free_port()
            try:
                self._launch(self.port)
                return
            except ServerError as exc:  # most likely the port was taken meanwhile
                last = exc
        assert last is not None
        raise last

    def _launch(self, port: int) -> None:
        assert self._bindir is not None and self.base_dir is not None
        assert self.log_path is not None
        cmd = [
            str(self._bindir / "postgres"),
            "-D", str(self.data_dir),
            "-k", str(self.socket_dir),
            "-p", str(port),
            "-c", f"listen_addresses={LOOPBACK}",
        ]  # fmt: skip
        for name, value in self._settings.items():
            cmd += ["-c", f"{name}={value}"]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                **self._run_as(),
            )
        try:
            self._wait_ready(self._proc)
        except ServerError:
            stop_process(self._proc, signal.SIGQUIT, timeout=10)
            self._proc = None
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = ""
        while True:
            if proc is not None and proc.poll() is not None:
                raise ServerError(
                    f"postgres exited with code {proc.returncode} on port {self.port}:\n"
                    + (log_tail(self.log_path) if self.log_path else "")
                )
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last_error = str(exc).strip()
            if time.monotonic() > deadline:
                where = f"{self.host}:{self.port}"
                log = log_tail(self.log_path) if self.log_path else ""
                raise ServerError(
                    f"PostgreSQL at {where} not ready after {self.startup_timeout:.0f} s: "
                    f"{last_error}\n{log}"
                )
            time.sleep(0.1)
