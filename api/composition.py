"""The composition root: the one module that knows every package and wires them to ``settings``.

``settings`` is the ground floor and imports nothing above it, yet four things in it need facts
about every package: the shared metadata must hold every table (Alembic, backups, the audit
chain, tests), the one Celery app must know which task modules a worker loads and what beat
runs, the audit chain must know which tables are audit records, and backup must know where the
signing-key references live. This module, at the top (``api``; nothing imports ``api``), states
those facts and hands them down through registries that ``settings`` defines. Importing it is
enough (idempotent); every process that needs the whole application imports it first:

* Celery workers and beat are started on it: ``celery -A api.composition:celery_app``
  (``motcua worker``, ``motcua scheduler``, the worker ``motcua serve`` starts);
* the ``motcua`` commands that need every table or the audit sources (backup, restore, audit);
* the test session (``tests/conftest.py``), and Alembic's autogenerate through
  ``-x composition=api.composition`` or :func:`alembic_config`.

Why one list here rather than each package registering itself into ``settings``: the audit
sources' order is the sealing order and must not depend on import order; the beat schedule is
deployment policy best read in one place; and a package registering itself only takes effect
if something imports it, so a list would be needed anyway to import them. The task modules
themselves are still defined by their packages (``tasks.py`` decorates with
``settings.worker.celery_app``); only their names and cadence are listed here.
"""

from __future__ import annotations

from typing import Any

from alembic.config import Config
from celery import Celery
from sqlalchemy import MetaData

import api.staff.models
import einvoice.models
import payments.callback_models
import payments.claim_models
import payments.models
import payments.onestop_models
import reconciliation.models
import settings.audit_chain
from settings.audit_chain import Source, register_sources
from settings.backup import KeyReferences, register_key_references
from settings.db import Base, complete_metadata, declare_metadata_complete
from settings.migrate import alembic_config as _alembic_config
from settings.worker import celery_app, register_tasks

__all__ = [
    "AUDIT_SOURCES",
    "BEAT_SCHEDULE",
    "KEY_REFERENCES",
    "MODEL_MODULES",
    "TASK_MODULES",
    "alembic_config",
    "celery_app",
    "compose",
    "import_tasks",
    "metadata",
]

MODEL_MODULES = (
    api.staff.models,
    einvoice.models,
    payments.models,
    payments.callback_models,
    payments.claim_models,
    payments.onestop_models,
    reconciliation.models,
    settings.audit_chain,
)
"""Every module that declares tables on the shared ``Base`` (imported above, named here so a
module added to a package without being listed is visible in review and in the layers test)."""

TASK_MODULES = ("payments.tasks", "reconciliation.tasks", "settings.audit_tasks")
"""Imported by each worker when it starts (Celery ``include``), not by this module: a process
that only migrates or backs up need not import every task. ``payments.tasks`` also connects the
worker hooks (``worker_process_init``, the journal poller on ``worker_ready``)."""

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "sweep": {"task": "payments.sweep", "schedule": 15.0},
    "expire-orders": {"task": "payments.expire_orders", "schedule": 60.0},
    "deliver-callbacks": {"task": "payments.deliver_callbacks", "schedule": 5.0},
    "receipt-emails": {"task": "payments.send_receipt_emails", "schedule": 30.0},
    "close-due": {"task": "reconciliation.close_due", "schedule": 300.0},
    "error-notices": {"task": "reconciliation.send_error_notices", "schedule": 300.0},
    "resend-summaries": {"task": "reconciliation.resend_summaries", "schedule": 300.0},
    "audit-seal": {"task": "settings.audit_seal", "schedule": 300.0},
}
"""Seconds between runs. The daily close itself is due per agency at its local close time;
``close-due`` only looks every 5 minutes for agencies whose close is due."""

AUDIT_SOURCES: tuple[Source, ...] = (
    Source("receipt_audit_events", "id", ("id",)),
    Source("payment_exception_actions", "id", ("id",)),
    Source("recon_corrections", "id", ("requested_at", "id"), "state", ("applied",)),
    Source("staff_sign_ins", "id", ("id",)),
    Source("callback_attempts", "id", ("id",)),
    Source("staff_admin_events", "id", ("id",)),
    Source("onestop_pp_messages", "id", ("id",)),
    Source("transfer_claim_events", "id", ("id",)),
)
"""The audit tables, in sealing order. Append only: moving or changing an existing entry
changes how already-sealed records are ordered or hashed. A correction is final (sealable)
only when ``applied``: its approval is part of what is sealed."""

KEY_REFERENCES = KeyReferences(table="agencies", code="code", ref="signing_key_ref")
"""Where backup finds each agency's signing-key reference (``payments.models.Agency``)."""


def compose(app: Celery = celery_app) -> None:
    """Hands the facts above to ``settings``; runs on import, safe to call again."""
    declare_metadata_complete(__name__)
    register_sources(*AUDIT_SOURCES)
    register_key_references(KEY_REFERENCES)
    register_tasks(app, TASK_MODULES, BEAT_SCHEDULE)


def metadata() -> MetaData:
    """The shared metadata with every package's tables."""
    return complete_metadata()


def import_tasks() -> None:
    """Imports every task module now (a worker does it itself at start; tests check names)."""
    celery_app.loader.import_default_modules()


def alembic_config(database_url: str) -> Config:
    """Alembic config whose autogenerate compares with every package's tables."""
    return _alembic_config(database_url, target_metadata=Base.metadata)


compose()
