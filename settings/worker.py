"""The one Celery app.

Embedded: the broker is a SQLite file (kombu's SQLAlchemy transport), so ``motcua serve`` can
run a worker with beat beside the web app with no service to install. Production: Redis.
Durability never rests on the broker: every task's input is a database row (a journaled bank
event, a paid order without receipt) and the periodic sweep re-dispatches what is left over,
so a lost message only delays work.

The app is created here, on the ground floor, because every package's ``tasks.py`` decorates
its tasks with it; but which task modules a worker loads and what beat runs when are facts
about the packages above, so the composition root (top layer) registers them with
:func:`register_tasks`. A worker must therefore be started on the composition root's module,
never on this one: this app alone knows no task and no schedule.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping
from typing import Any

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy

from settings.config import Settings, get_settings

log = logging.getLogger(__name__)


EMBEDDED_BROKER_POLL_SECONDS = 0.1
"""How often the embedded worker looks for a message in its SQLite broker (kombu: 1 s)."""


class EmbeddedBrokerTransport(kombu_sqlalchemy.Transport):
    """kombu's SQLAlchemy transport, polled every 100 ms instead of every second.

    The embedded broker is a table the worker polls; with kombu's 1 s a lone notification
    waited up to a second for its wake-up, and the citizen at the counter with it (issue 16;
    ``bench.bench_embedded``: p50 513 ms before). A poll costs about 1.4 ms of CPU (kombu's ORM
    session on the broker file): an idle worker measured ~1 % of a core with kombu's 1 s,
    ~2.5 % at 100 ms and ~3.6 % at 50 ms; 100 ms is the middle. It cannot be set with
    ``broker_transport_options``: this transport hands every option it does not know to
    ``create_engine()``, which refuses it. So it is a subclass, reached through a URL scheme
    of its own (a URL-derived transport name must be an alias, kombu #2641).
    """

    polling_interval = EMBEDDED_BROKER_POLL_SECONDS


EMBEDDED_BROKER_SCHEME = "motcua-sqla"
TRANSPORT_ALIASES[EMBEDDED_BROKER_SCHEME] = f"{__name__}:EmbeddedBrokerTransport"


def _celery_broker_url(url: str) -> str:
    """The configured URL, with kombu's ``sqla+`` scheme served by our faster-polling
    subclass (the same transport otherwise)."""
    if url.startswith("sqla+"):
        return f"{EMBEDDED_BROKER_SCHEME}+{url[len('sqla+') :]}"
    return url


def configure(app: Celery, settings: Settings) -> None:
    """(Re)applies settings; tests call it after changing the environment."""
    url = settings.effective_broker_url
    app.conf.update(
        broker_url=_celery_broker_url(url),
        task_always_eager=settings.task_eager,
        # kombu's SQLAlchemy transport hands every transport option to create_engine(), so
        # the Redis-only tuning must not reach it.
        broker_transport_options=(
            {"visibility_timeout": 3600, "socket_timeout": 5} if url.startswith("redis") else {}
        ),
    )
    if settings.effective_broker_url.startswith("sqla+"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        _broker_file_in_wal_mode(url)
    if url.startswith("redis"):
        _keep_consumer_alive_when_redis_drops()


def _broker_file_in_wal_mode(url: str) -> None:
    """The embedded broker's SQLite file in WAL mode (a property of the file, set once).

    kombu opens it with SQLite's defaults: a rollback journal, so every publish (a webhook's
    wake-up) and every poll that takes a message cost several synced writes; in WAL mode one
    (issue 16). Best effort: a file another process holds busy is left as it is.
    """
    prefix = "sqla+sqlite:///"
    if not url.startswith(prefix) or url == prefix + ":memory:":
        return
    try:
        with contextlib.closing(sqlite3.connect(url[len(prefix) :], timeout=5)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error:
        log.warning("broker file left in its journal mode", exc_info=True)


def _keep_consumer_alive_when_redis_drops() -> None:
    """Do not "restore unacknowledged messages" into a Redis that has just gone away.

    kombu 5.7 does that when the consumer's connection drops, with the connection object
    already released, and fails with ``AttributeError: 'NoneType' object has no attribute
    'hostname'``; Celery calls that an unrecoverable error and stops the worker, pool and
    journal pollers with it (the fault suite's Redis-down test caught it: 31 journaled
    notifications left unprocessed). Nothing is lost by not restoring: a message still in
    Redis comes back through its unacked index after the visibility timeout, and the database
    (journal, paid orders without a receipt) is the real queue that the sweep and the pollers
    work from.
    """
    from kombu.transport import redis as kombu_redis

    kombu_redis.QoS.restore_at_shutdown = False


def make_celery() -> Celery:
    settings = get_settings()
    app = Celery("motcua")
    app.conf.update(
        task_ignore_result=True,
        # Acknowledged on receipt: a message is only a wake-up (the journal, the paid orders
        # without a receipt and the outboxes are the queue, found again by the sweep and the
        # journal pollers), and a late acknowledgement sent on the channel of a connection
        # that dropped meanwhile makes kombu 5.7 stop the worker ("Unrecoverable error:
        # 'NoneType' object has no attribute 'client'", the fault suite's Redis-down test).
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_publish_retry=False,
        timezone="UTC",
    )
    configure(app, settings)
    return app


celery_app = make_celery()


def register_tasks(
    app: Celery, modules: Iterable[str], beat_schedule: Mapping[str, Mapping[str, Any]]
) -> None:
    """Tells ``app`` which task modules a worker imports and what beat runs (composition root).

    Modules are given by name, not imported here: the worker imports them when it starts
    (Celery's ``include``), before its ``worker_process_init``/``worker_ready`` signals fire,
    so the hooks those modules connect run in every worker process, and a process that only
    migrates or backs up does not pay for importing every task. Idempotent: the composition
    root may be imported more than once (``celery -A`` and the CLI in the same process).
    """
    include = list(app.conf.include or ())
    include += [m for m in modules if m not in include]
    schedule = dict(app.conf.beat_schedule or {})
    schedule.update({name: dict(entry) for name, entry in beat_schedule.items()})
    app.conf.update(include=include, beat_schedule=schedule)


BROKER_BACKOFF_SECONDS = 5.0
_broker_down_until = [0.0]
"""Monotonic time before which ``dispatch`` does not try the broker (one per process)."""


def dispatch(task: Any, *args: Any, sweeping: bool = False) -> None:
    """Sends a task, or runs it inline when eager; a broker failure is logged, not raised.

    The caller has already committed the row the task works from, so the sweep will pick it up
    if the broker is unreachable: the HTTP request that triggered it must not fail for that.
    """
    if celery_app.conf.task_always_eager:
        task.apply(args=args)
        return
    if not sweeping and time.monotonic() < _broker_down_until[0]:
        # The broker failed moments ago: don't make every webhook wait for its connect
        # timeout (about 2 s each, found by the fault suite); the sweep sends it later. The
        # sweep itself always tries (``sweeping=True``): after a broker restart the first
        # publishes fail on stale pooled connections, and skipping would starve the backlog.
        log.info("broker recently unavailable; %s left for the sweep", task.name)
        return
    try:
        task.apply_async(args=args, retry=False)
    except Exception:
        _broker_down_until[0] = time.monotonic() + BROKER_BACKOFF_SECONDS
        log.warning("broker unavailable; %s left for the sweep", task.name, exc_info=True)
