"""Shared fixtures: real PostgreSQL and Redis on loopback, and an app per test on either backend.

The same end-to-end tests run on SQLite and on PostgreSQL (``backend`` fixture). PostgreSQL is
started once per session (Debian's binaries, own data folder, as the ``postgres`` user); each
test gets a fresh database cloned from a migrated template, so tests never share state.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
import time_machine
from infra import PostgresServer, RedisServer
from infra.clock import ZONE, Clock, moment, run_start, set_run_start

os.environ.setdefault("MOTCUA_DATA_DIR", "/tmp/motcua-test-unused")
os.environ["MOTCUA_TASK_EAGER"] = "true"

import api.composition  # noqa: F401 - every table, task module, audit source (settings is a leaf)
from settings.config import Settings, get_settings
from settings.db import engine_for
from settings.migrate import upgrade

_counter = itertools.count()


def _pooled_rsa_keys() -> None:
    """Tests seed a demo agency (a development CA and an organisation certificate) hundreds of
    times; generating two RSA-2048 keys took about 0.5 s of each. The suite draws them from a
    small pool instead, cycling through four distinct keys so that keys made one after another
    (CA, then organisation) always differ. Certificates are still issued fresh every time, and
    the processes tests start (``motcua`` CLI, worker) still generate their own keys."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    import signing.certs as certs

    pool = [certs._new_rsa_key() for _ in range(4)]
    turn = itertools.count()

    def pooled() -> rsa.RSAPrivateKey:
        return pool[next(turn) % len(pool)]

    certs._new_rsa_key = pooled  # type: ignore[assignment]


_pooled_rsa_keys()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Here, at the root, so ``--long`` works from any invocation (pytest only reads options
    from the root conftest and plugins); used by tests/faults (see docs/faults.md)."""
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="fault suite: also run the long variants (x20 kills, 8x5,000 issuers, ...)",
    )
    parser.addoption(
        "--clock",
        default=os.environ.get("MOTCUA_TEST_CLOCK", ""),
        metavar="WHEN",
        help="move the clock for the whole run: now, new-year-eve, new-year, month-end, sunday "
        "or an ISO time with an offset; each test starts there (tests/infra/clock.py). "
        "Several, comma-separated: every test runs once at each (no session-wide move)",
    )


def _moments(config: pytest.Config) -> list[tuple[str, datetime]]:
    spec = str(config.getoption("--clock") or "")
    return [(name.strip(), moment(name.strip())) for name in spec.split(",") if name.strip()]


def pytest_configure(config: pytest.Config) -> None:
    """Move the clock before anything is collected, so module-level values and session
    fixtures (certificates, templates) are made in the moved time too."""
    moments = _moments(config)
    if not moments:
        return
    start = moments[0][1]
    set_run_start(start)
    if len(moments) > 1:
        return  # each test travels to its own moment (pytest_generate_tests)
    traveller = time_machine.travel(start, tick=True)
    traveller.start()
    config.stash[_TRAVELLER] = traveller


def pytest_unconfigure(config: pytest.Config) -> None:
    traveller = config.stash.get(_TRAVELLER, None)
    if traveller is not None:
        traveller.stop()
        set_run_start(None)


def pytest_report_header(config: pytest.Config) -> str:
    moments = _moments(config)
    if not moments:
        return "clock: real"
    zone = Clock().zone
    shown = ", ".join(f"{name} = {at.astimezone(zone).isoformat()}" for name, at in moments)
    return f"clock: moved, each test starts at {shown}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Several moments: every test runs once at each, its id saying which (``[new-year]``)."""
    moments = _moments(metafunc.config)
    if len(moments) > 1 and "_moved_clock" in metafunc.fixturenames:
        metafunc.parametrize(
            "_moved_clock",
            [at for _, at in moments],
            indirect=True,
            ids=[name for name, _ in moments],
        )


_TRAVELLER = pytest.StashKey[time_machine.travel]()

MIDNIGHT_GUARD = timedelta(minutes=5)


def clear_of_midnight() -> datetime | None:
    """On the real clock, a test never *starts* in the last five minutes of an agency-local day:
    it is started 5 s after midnight instead (moved forward by at most five minutes, its
    subprocesses too). Why: a test reads "today" more than once (pay, then close today), and
    the real run must pass at any hour; the minutes before midnight are exercised on purpose by
    the moved runs (each test starts at 23:50 there) and by tests/api/test_new_year.py."""
    local_now = datetime.now(ZONE)
    next_midnight = datetime.combine(local_now.date() + timedelta(days=1), time(0), tzinfo=ZONE)
    if next_midnight - local_now > MIDNIGHT_GUARD:
        return None
    return (next_midnight + timedelta(seconds=5)).astimezone(UTC)


CALENDAR = (
    "api/test_new_year.py",  # the rollover itself
    "api/test_fee_flow.py",  # orders, transfer, receipt
    "api/test_order_intake.py",  # orders on the fast path, prices of the local day
    "api/test_exceptions_cash.py",  # cash, exceptions, expiry
    "api/test_receipt_lifecycle.py",  # replacement, error notices
    "api/test_close.py",  # the close and its breaks
    "api/test_close_tax.py",  # 01/TH-BLĐT through the CLI and the sandbox process
    "api/test_pages_counter.py",  # the counter and the clerk's till
    "api/test_pages_desk.py",  # the accountant's days
    "api/test_quiet_days.py",  # days with nothing to reconcile, closed by the scheduler
    "api/test_pages_portal.py",  # the citizen's pages
    "einvoice/test_numbering.py",  # numbers and series per year
    "einvoice/test_lifecycle.py",
)
"""The named subset that ``scripts/test.sh`` runs again under moved clocks (marker
``calendar``): orders, issuance, numbering, the close, the tax summary, expiry and the pages."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    wanted = {str(root / path) for path in CALENDAR}
    for item in items:
        if str(item.path) in wanted:
            item.add_marker(pytest.mark.calendar)


@pytest.fixture(autouse=True)
def _moved_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """In a moved run, every test starts at the same moment (then time flows), so a test at
    23:50 gets its ten minutes before midnight whatever ran before it."""
    start: datetime | None = getattr(request, "param", None) or run_start()
    if start is None:
        start = clear_of_midnight()
    if start is None:
        yield
        return
    with time_machine.travel(start, tick=True):
        yield


@pytest.fixture
def clock() -> Clock:
    """The one clock tests derive dates from (tests/infra/clock.py)."""
    return Clock()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer) -> str:
    url = pg_server.create_database("motcua_template")
    upgrade(url)
    engine_for(url).dispose()
    return "motcua_template"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per worker, copied for each test (as PostgreSQL clones its
    template): running the migrations for every test cost about 0.35 s each."""
    path = tmp_path_factory.mktemp("sqlite-template") / "motcua.sqlite3"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine_for(url).dispose()
    with contextlib.closing(sqlite3.connect(path)) as raw:  # fold the WAL into the file
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "motcua.sqlite3"
        shutil.copyfile(template, path)
        url = f"sqlite:///{path}"
        yield url
        engine_for(url).dispose()
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    template: str = request.getfixturevalue("pg_template")
    name = f"t{os.getpid()}_{next(_counter)}"
    url = server.create_database(name, template=template)
    yield url
    engine_for(url).dispose()
    server.drop_database(name)


@pytest.fixture
def settings(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings for one test, also visible to code that calls ``get_settings()`` (tasks)."""
    monkeypatch.setenv("MOTCUA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MOTCUA_DATABASE_URL", database_url)
    monkeypatch.setenv("MOTCUA_PUBLIC_BASE_URL", "http://testserver")
    monkeypatch.setenv("MOTCUA_TASK_EAGER", "true")
    get_settings.cache_clear()
    current = get_settings()
    from settings.worker import celery_app, configure

    configure(celery_app, current)
    yield current
    get_settings.cache_clear()
