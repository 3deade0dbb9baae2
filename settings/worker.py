"""The one Celery app.

Embedded: the broker is a SQLite file (kombu's SQLAlchemy transport), so ``motcua serve`` can
run a worker with beat beside the web app with no service to install. Production: Redis.
Durability never rests on the broker: every task's input is a database row (a journaled bank
event, a paid order without receipt) and the periodic sweep re-dispatches what is left over,
so a lost message only delays work.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery

from settings.config import Settings, get_settings

log = logging.getLogger(__name__)

TASK_MODULES = ["payments.tasks", "reconciliation.tasks", "settings.audit_tasks"]


def configure(app: Celery, settings: Settings) -> None:
    """(Re)applies settings; tests call it after changing the environment."""
    url = settings.effective_broker_url
    app.conf.update(
        broker_url=url,
        task_always_eager=settings.task_eager,
        # kombu's SQLAlchemy transport hands every transport option to create_engine(), so
        # the Redis-only tuning must not reach it.
        broker_transport_options=(
            {"visibility_timeout": 3600, "socket_timeout": 5} if url.startswith("redis") else {}
        ),
    )
    if settings.effective_broker_url.startswith("sqla+"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)


def make_celery() -> Celery:
    settings = get_settings()
    app = Celery("motcua", include=TASK_MODULES)
    app.conf.update(
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_publish_retry=False,
        beat_schedule={
            "sweep": {"task": "payments.sweep", "schedule": 15.0},
            "expire-orders": {"task": "payments.expire_orders", "schedule": 60.0},
            "deliver-callbacks": {"task": "payments.deliver_callbacks", "schedule": 5.0},
            "receipt-emails": {"task": "payments.send_receipt_emails", "schedule": 30.0},
            "close-due": {"task": "reconciliation.close_due", "schedule": 300.0},
            "error-notices": {"task": "reconciliation.send_error_notices", "schedule": 300.0},
            "resend-summaries": {"task": "reconciliation.resend_summaries", "schedule": 300.0},
            "audit-seal": {"task": "settings.audit_seal", "schedule": 300.0},
        },
        timezone="UTC",
    )
    configure(app, settings)
    return app


celery_app = make_celery()


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
