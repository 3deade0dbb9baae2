"""Scheduled sealing of the audit trail (see :mod:`settings.audit_chain`).

The scheduler runs ``settings.audit_seal`` every 5 minutes: the beat entry ``audit-seal`` is
registered by the composition root, with every other task module and schedule, which is also
what registers the audit sources this task seals.
"""

from __future__ import annotations

from settings.audit_chain import seal
from settings.db import session_scope
from settings.worker import celery_app

__all__ = ["audit_seal"]

BATCHES = 20
"""At most this many batches of 5 000 per run; the next run carries on (bounded work)."""


@celery_app.task(name="settings.audit_seal")  # type: ignore[untyped-decorator]
def audit_seal() -> dict[str, int | str]:
    total = 0
    head_seq, head_hash = 0, ""
    for _ in range(BATCHES):
        with session_scope() as session:
            report = seal(session)
        total += report.total
        head_seq, head_hash = report.head_seq, report.head_hash
        if report.total == 0:
            break
    return {"sealed": total, "head_seq": head_seq, "head_hash": head_hash}
