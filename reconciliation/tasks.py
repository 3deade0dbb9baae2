"""Scheduled close: each agency's day closes at ``close_time`` local; late summaries are re-sent.

Beat runs :func:`close_due` every few minutes; it closes a day once per day after the agency's
local close time (and again whenever records arrived after the last close re-opened it), and
closes, signed, every past day with nothing to reconcile that has no close yet
(:mod:`reconciliation.quiet`: the desk shows those grey, "Không phát sinh").
"""

from __future__ import annotations

import logging
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select

from payments.models import Agency
from reconciliation.close import latest_close, stale_closes
from reconciliation.quiet import close_quiet_days
from reconciliation.service import close_day, tax_client
from reconciliation.tax_summary import resolve_pending
from settings.config import get_settings
from settings.db import session_scope, utcnow
from settings.worker import celery_app

__all__ = ["close_due", "resend_summaries", "send_error_notices_task"]

log = logging.getLogger(__name__)


def _due(agency: Agency, now: datetime, close_time: time) -> bool:
    local = now.astimezone(ZoneInfo(agency.time_zone))
    return local.time() >= close_time


@celery_app.task(name="reconciliation.close_due")  # type: ignore[untyped-decorator]
def close_due() -> dict[str, int]:
    settings = get_settings()
    hh, mm = (int(x) for x in settings.close_time.split(":"))
    now = utcnow()
    closed = 0
    with session_scope() as session:
        agencies = list(session.scalars(select(Agency)))
        stale = {(c.agency_id, c.business_day) for c in stale_closes(session)}
    for agency in agencies:
        day = now.astimezone(ZoneInfo(agency.time_zone)).date()
        with session_scope() as session:
            done = latest_close(session, agency.id, day)
            if (done is None and _due(agency, now, time(hh, mm))) or (agency.id, day) in stale:
                report = close_day(session, settings, agency.code, day, actor="scheduler")
                log.info("closed %s %s: %s", agency.code, day, report.result.close.status)
                closed += 1
    for agency_id, day in stale:
        with session_scope() as session:
            agency_row = session.get(Agency, agency_id)
            if (
                agency_row is not None
                and day != now.astimezone(ZoneInfo(agency_row.time_zone)).date()
            ):
                close_day(session, settings, agency_row.code, day, actor="scheduler (re-opened)")
                closed += 1
    for agency in agencies:  # past days with nothing to reconcile: closed and signed too
        with session_scope() as session:
            agency_row = session.get(Agency, agency.id)
            if agency_row is not None:
                quiet = close_quiet_days(session, settings, agency_row, now=now)
                if quiet:
                    log.info("closed %d quiet day(s) of %s", len(quiet), agency_row.code)
                closed += len(quiet)
    return {"closed": closed}


@celery_app.task(name="reconciliation.resend_summaries")  # type: ignore[untyped-decorator]
def resend_summaries() -> None:
    """Outage rule: what could not be sent is sent once the authority answers again."""
    client = tax_client(get_settings())
    if client is None:
        return
    from reconciliation.models import TaxSubmission

    with session_scope() as session:
        pending = session.execute(
            select(TaxSubmission.agency_id, TaxSubmission.business_day)
            .where(TaxSubmission.status.in_(("queued", "unknown")))
            .distinct()
        ).all()
        for agency_id, day in pending:
            agency = session.get(Agency, agency_id)
            if agency is not None:
                resolve_pending(session, agency, day, client, now=utcnow())


@celery_app.task(name="reconciliation.send_error_notices")  # type: ignore[untyped-decorator]
def send_error_notices_task() -> dict[str, int]:
    settings = get_settings()
    client = tax_client(settings)
    if client is None:
        return {}
    from reconciliation.notices import send_error_notices
    from settings.db import session_factory

    return send_error_notices(session_factory(), settings, client)
