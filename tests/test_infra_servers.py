"""The throw-away PostgreSQL and Redis servers of tests/infra work end to end.

Self-contained: the servers here are this module's own (no conftest fixtures), so restarting
them cannot disturb other tests.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis
import sqlalchemy as sa

# `infra`, not `tests.infra`: pytest puts tests/ (no __init__.py) on sys.path, so this works
# under plain `pytest` as well as `python -m pytest`.
from infra import PostgresServer, RedisServer, ServerNotManagedError, free_port, port_is_open


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _require_managed(server: PostgresServer | RedisServer) -> None:
    if not server.managed:
        pytest.skip("external server from the environment: not ours to inspect or restart")


# ---------------------------------------------------------------------------- ports


def test_free_port_is_bindable_on_loopback() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


# ---------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_postgres_answers_version(own_postgres: PostgresServer) -> None:
    with psycopg.connect(own_postgres.dsn(), connect_timeout=5) as conn:
        row = conn.execute("SELECT version()").fetchone()
    assert row is not None
    assert str(row[0]).startswith("PostgreSQL ")


@pytest.mark.postgres
def test_postgres_listens_on_loopback_only(own_postgres: PostgresServer) -> None:
    _require_managed(own_postgres)
    assert own_postgres.host == "127.0.0.1"
    with own_postgres.connect() as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
        encoding = conn.execute("SHOW server_encoding").fetchone()
    assert listen == ("127.0.0.1",)
    assert fsync == ("off",)
    assert encoding == ("UTF8",)


@pytest.mark.postgres
def test_postgres_create_use_and_drop_database(own_postgres: PostgresServer) -> None:
    name = _unique_name("motcua_infra")
    url = own_postgres.create_database(name)
    try:
        assert url.startswith("postgresql+psycopg://")
        assert url.endswith(f"/{name}")
        if own_postgres.managed:
            assert url == f"postgresql+psycopg://postgres@127.0.0.1:{own_postgres.port}/{name}"
        assert own_postgres.database_exists(name)

        # The URL is what the application gets: it must work with SQLAlchemy as is.
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE fee (id int PRIMARY KEY, label text)"))
                conn.execute(sa.text("INSERT INTO fee VALUES (1, 'Lệ phí hộ tịch')"))
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT label FROM fee")).scalar_one() == (
                    "Lệ phí hộ tịch"
                )
            # An open connection must not block the drop (WITH (FORCE)).
            held = engine.connect()
            own_postgres.drop_database(name)
            held.invalidate()
        finally:
            engine.dispose()
        assert not own_postgres.database_exists(name)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(own_postgres.dsn(name), connect_timeout=5).close()
    finally:
        own_postgres.drop_database(name)


@pytest.mark.postgres
def test_postgres_create_database_from_template(own_postgres: PostgresServer) -> None:
    template, copy = _unique_name("motcua_tpl"), _unique_name("motcua_copy")
    own_postgres.create_database(template)
    try:
        with own_postgres.connect(template) as conn:
            conn.execute("CREATE TABLE marker (x int)")
            conn.execute("INSERT INTO marker VALUES (42)")
        own_postgres.create_database(copy, template=template)
        with own_postgres.connect(copy) as conn:
            assert conn.execute("SELECT x FROM marker").fetchall() == [(42,)]
    finally:
        own_postgres.drop_database(copy)
        own_postgres.drop_database(template)


@pytest.mark.postgres
def test_postgres_rejects_unsafe_database_names(own_postgres: PostgresServer) -> None:
    for bad in ["", "x; DROP DATABASE postgres", "a-b", "1abc", "x" * 64]:
        with pytest.raises(ValueError, match="invalid database name"):
            own_postgres.create_database(bad)


@pytest.mark.postgres
def test_postgres_restart_keeps_data_and_port(own_postgres: PostgresServer) -> None:
    _require_managed(own_postgres)
    name = _unique_name("motcua_restart")
    own_postgres.create_database(name)
    try:
        with own_postgres.connect(name, autocommit=True) as conn:
            conn.execute("CREATE TABLE receipt (no text)")
            conn.execute("INSERT INTO receipt VALUES ('BL-0001')")
        port, url = own_postgres.port, own_postgres.url

        old = own_postgres.connect(name)
        own_postgres.restart()
        # The connection opened before the restart is dead ...
        with pytest.raises(psycopg.OperationalError):
            old.execute("SELECT 1")
        old.close()

        # ... a new one on the same URL works, and committed data survived.
        assert (own_postgres.port, own_postgres.url) == (port, url)
        with own_postgres.connect(name) as conn:
            assert conn.execute("SELECT no FROM receipt").fetchall() == [("BL-0001",)]
    finally:
        own_postgres.drop_database(name)


@pytest.mark.postgres
def test_postgres_shutdown_then_start_simulates_an_outage(own_postgres: PostgresServer) -> None:
    _require_managed(own_postgres)
    own_postgres.shutdown("immediate")  # crash-like: recovery on the next start
    try:
        assert not own_postgres.running
        assert not port_is_open(own_postgres.port)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(own_postgres.dsn(), connect_timeout=2).close()
    finally:
        own_postgres.start()
    with own_postgres.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.postgres
def test_postgres_stop_removes_process_and_directory() -> None:
    server = PostgresServer(use_env=False)
    with server:
        base, port = server.base_dir, server.port
        assert base is not None and base.is_dir()
        assert port_is_open(port)
    assert not server.running
    assert server.base_dir is None
    assert not base.exists()
    assert not port_is_open(port)
    server.stop()  # idempotent


def test_postgres_external_url_is_used_as_is() -> None:
    server = PostgresServer(
        external_url="postgresql://app:s3cret@127.0.0.1:5999/admin?sslmode=disable"
    )
    assert not server.managed
    assert (server.host, server.port, server.user) == ("127.0.0.1", 5999, "app")
    assert server.url == "postgresql+psycopg://app:s3cret@127.0.0.1:5999/admin?sslmode=disable"
    assert server.dsn("x") == "postgresql://app:s3cret@127.0.0.1:5999/x?sslmode=disable"
    server.stop()  # no-op for an external server
    with pytest.raises(ServerNotManagedError):
        server.restart()


# ---------------------------------------------------------------------------- Redis


@pytest.mark.redis
def test_redis_ping_and_roundtrip(own_redis: RedisServer) -> None:
    if own_redis.managed:
        assert own_redis.url == f"redis://127.0.0.1:{own_redis.port}/0"
    client = redis.Redis.from_url(own_redis.url, socket_timeout=5)
    try:
        assert client.ping() is True
        key = _unique_name("motcua:infra")
        client.set(key, "biên lai", ex=60)
        assert client.get(key) == "biên lai".encode()
        client.delete(key)
    finally:
        client.close()


@pytest.mark.redis
def test_redis_config_is_loopback_and_volatile(own_redis: RedisServer) -> None:
    _require_managed(own_redis)
    client = own_redis.client()
    try:
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
    finally:
        client.close()


@pytest.mark.redis
def test_redis_restart_keeps_port_and_drops_data(own_redis: RedisServer) -> None:
    _require_managed(own_redis)
    port = own_redis.port
    client = own_redis.client(db=1)
    try:
        client.set("motcua:before-restart", "1")
        own_redis.restart()
        assert own_redis.port == port
        # redis-py reconnects by itself; the data is gone (no persistence).
        assert client.ping() is True
        assert client.get("motcua:before-restart") is None
    finally:
        client.close()


@pytest.mark.redis
def test_redis_stop_removes_process_and_directory() -> None:
    server = RedisServer(use_env=False)
    with server:
        base, port = server.base_dir, server.port
        assert base is not None and base.is_dir()
        with server.client() as client:
            assert client.ping() is True
    assert not server.running
    assert not base.exists()
    assert not port_is_open(port)
    server.stop()  # idempotent
