"""The one SQLAlchemy ``Base``, engines and sessions shared by every package.

Each package declares its own tables in its ``models.py`` on this ``Base``. This module is on
the ground floor and imports none of them: the composition root at the top imports every
package's models and then calls :func:`declare_metadata_complete`, after which
:func:`complete_metadata` hands the merged metadata to Alembic, backups and the audit chain.
SQLite is opened so that every transaction
takes the write lock up front (``BEGIN IMMEDIATE``): SQLite has one writer anyway, and this
turns "database is locked" upgrade failures into orderly waiting, which gapless receipt
numbering relies on.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from settings.clock import utcnow as utcnow  # noqa: PLC0414 - explicit re-export of the one clock

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always hands back aware UTC datetimes.

    SQLite has no time zones; without this a naive value read back would be ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            _begin_immediate(conn.connection.dbapi_connection)

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


BUSY_TIMEOUT_S = 30.0
_BUSY_STEPS_S = (0.0002, 0.0005, 0.001, 0.002)


def _begin_immediate(dbapi_conn: Any) -> None:
    """``BEGIN IMMEDIATE``, waiting for the one writer in steps of at most 2 ms.

    SQLite's own busy handler sleeps 1, 2, 5, 10, … up to 100 ms between tries, so a webhook
    that finds the issuer's batch writing often sleeps on long after the lock is free; with a
    few of them waiting, the database stood idle for much of a catch-up (issue 16). Only the
    BEGIN waits here (every write transaction starts with it and then holds the lock);
    other statements keep the ordinary busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        tries = 0
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(_BUSY_STEPS_S[min(tries, len(_BUSY_STEPS_S) - 1)])
                tries += 1
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.close()


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine() -> Engine:
    from settings.config import get_settings

    settings = get_settings()
    if settings.effective_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return engine_for(settings.effective_database_url)


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A unit of work: commits on success, rolls back on any exception."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_composed_by: list[str] = []
"""Who declared the metadata complete (the composition root); empty until then."""


def declare_metadata_complete(composer: str) -> None:
    """The composition root calls this once it has imported every package's models.

    ``settings`` is the ground floor and may not import the packages above it, so it cannot
    load their models itself; it can only be told. The flag turns "forgot to import the
    composition root" into a loud error instead of a backup or an audit verification that
    silently skips the tables it never heard of.
    """
    if composer not in _composed_by:
        _composed_by.append(composer)


def metadata_is_complete() -> bool:
    return bool(_composed_by)


def complete_metadata() -> MetaData:
    """The shared metadata with every package's tables (Alembic, backup, audit chain, tests).

    Raises when no composition root has been imported in this process: a partial metadata
    would make backups count too few tables and migrations compare against half the schema.
    """
    if not _composed_by:
        raise RuntimeError(
            "the shared metadata is incomplete: import the composition root (the top layer, "
            "which imports every package's models) before asking for every table"
        )
    return Base.metadata


def load_all_models() -> MetaData:
    """Former name of :func:`complete_metadata`, kept for callers outside ``settings``.

    It no longer imports anything (``settings`` may not import the packages above it): the
    composition root does, and this only checks it has.
    """
    return complete_metadata()
