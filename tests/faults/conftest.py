"""Fixtures of the fault suite (marker ``faults``; see docs/faults.md).

Short variants run in every ``python -m pytest``; the long ones only with ``--long`` (honoured
when pytest is pointed at this folder, e.g. ``pytest tests/faults --long``) or with
``MOTCUA_FAULTS_LONG=1`` (works for any invocation, including the README's ``make test``).

The suite has its own PostgreSQL and Redis (never ``$MOTCUA_TEST_*_URL`` servers): it restarts
and stops them, which must not disturb the servers the rest of the session shares.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fault_stack import CATALOG, Stack, say
from infra import PostgresServer, RedisServer
from infra.callback_receiver import CallbackReceiver
from infra.clock import today
from infra.pki import org_certificate

from api.demo import DEMO_AGENCY
from payments.agencies import add_agency
from payments.catalog import import_catalog
from payments.credentials import add_bank_feed, add_client
from payments.models import ApiClient
from settings.config import get_settings
from settings.db import engine_for, session_scope
from settings.migrate import upgrade
from signing.certs import write_pkcs12

LONG_ENV = "MOTCUA_FAULTS_LONG"
_db_counter = itertools.count()


def long_enabled(config: pytest.Config) -> bool:
    flag = False
    try:
        flag = bool(config.getoption("--long"))
    except ValueError:  # the option was not registered (conftest not loaded at start-up)
        flag = False
    return flag or os.environ.get(LONG_ENV, "").strip() in ("1", "true", "yes")


@pytest.fixture(params=["short", pytest.param("long", marks=pytest.mark.slow)])
def variant(request: pytest.FixtureRequest) -> str:
    """``short`` always; ``long`` only with ``--long`` / ``MOTCUA_FAULTS_LONG=1``."""
    if request.param == "long" and not long_enabled(request.config):
        pytest.skip(f"long fault variant: run with --long or {LONG_ENV}=1")
    return str(request.param)


@pytest.fixture(scope="session")
def fault_pg() -> Iterator[PostgresServer]:
    with PostgresServer(use_env=False) as server:
        yield server


@pytest.fixture(scope="session")
def fault_template(fault_pg: PostgresServer) -> str:
    url = fault_pg.create_database("faults_template")
    upgrade(url)
    engine_for(url).dispose()
    return "faults_template"


@pytest.fixture(scope="session")
def fault_redis() -> Iterator[RedisServer]:
    with RedisServer(use_env=False) as server:
        yield server


@pytest.fixture
def stack_base(
    variant: str,
    fault_pg: PostgresServer,
    fault_template: str,
    fault_redis: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    """A fresh database, an empty Redis, the agency signing with a non-development test
    certificate, the callback receiver; no process yet (``variant`` first: a skipped long
    variant costs nothing)."""
    fault_pg.start()  # a previous scenario may have left it down
    fault_redis.start()
    fault_redis.client().flushall()
    name = f"faults_{os.getpid()}_{next(_db_counter)}"
    db_url = fault_pg.create_database(name, template=fault_template)
    data = tmp_path / "data"
    data.mkdir()
    env = {
        "MOTCUA_PROFILE": "production",
        "MOTCUA_DATABASE_URL": db_url,
        "MOTCUA_BROKER_URL": fault_redis.url,
        "MOTCUA_SECRET_KEY": "f" * 48,
        "MOTCUA_DATA_DIR": str(data),
        "MOTCUA_PUBLIC_BASE_URL": "https://thuphi.example.vn",
        "MOTCUA_TASK_EAGER": "false",
        "MOTCUA_LOG_LEVEL": "WARNING",
    }
    for k in [k for k in os.environ if k.startswith("MOTCUA_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    get_settings()  # production checks pass in this process too
    engine = engine_for(db_url)
    key, cert, ca = org_certificate(DEMO_AGENCY.tax_code, DEMO_AGENCY.name)
    p12 = data / "org.p12"
    write_pkcs12(p12, key, cert, (ca,), None)
    receiver = CallbackReceiver()
    receiver.start()
    with session_scope(engine) as s:
        agency = add_agency(s, DEMO_AGENCY)
        agency.signing_key_ref = f"pkcs12:{p12}"
        import_catalog(
            s, agency, CATALOG.read_bytes(), effective_from=today() - timedelta(days=400)
        )
        issued = add_client(s, agency, "Một cửa (fault suite)", None, allow_loopback=False)
        client = s.get(ApiClient, issued.client.id)
        assert client is not None
        client.callback_url = receiver.url  # loopback: see Stack.create_orders
        _, sepay_key = add_bank_feed(s, agency, "sepay")
        ids = (agency.id, agency.code, agency.bank_account, issued.client.id)
    st = Stack(
        pg=fault_pg,
        redis=fault_redis,
        db_url=db_url,
        engine=engine,
        env=env,
        tmp=tmp_path,
        agency_id=ids[0],
        agency_code=ids[1],
        account=ids[2],
        api_client_id=ids[3],
        sepay_key=sepay_key,
        receiver=receiver,
    )
    try:
        yield st
    finally:
        st.stop()
        receiver.close()
        engine.dispose()
        get_settings.cache_clear()
        try:
            fault_pg.start()
            fault_pg.drop_database(name)
        except Exception as exc:
            say(f"could not drop {name}: {exc}")


@pytest.fixture
def stack(stack_base: Stack) -> Stack:
    """``stack_base`` plus uvicorn serving the app and one ``motcua worker`` (2 prefork pool
    processes); both are stopped by ``stack_base``'s teardown."""
    stack_base.start_app()
    stack_base.start_worker()
    return stack_base
