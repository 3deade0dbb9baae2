"""The daily close and its breaks and corrections as the JSON API shows them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.models import Agency
from payments.presenters import iso
from reconciliation.day import BusinessDay
from reconciliation.models import Correction, DailyClose, ReconBreak
from settings.clock import utcnow

__all__ = ["breaks_of", "close_json", "correction_json"]


def _break_json(b: ReconBreak, now: datetime) -> dict[str, Any]:
    return {
        "id": b.id,
        "kind": b.kind,
        "ref": b.ref,
        "amount": b.amount,
        "detail": b.detail,
        "state": b.state,
        "owner": b.owner,
        "age_hours": round((now - b.first_seen_at).total_seconds() / 3600, 1),
        "first_seen_at": iso(b.first_seen_at),
        "resolved_at": iso(b.resolved_at),
    }


def close_json(close: DailyClose, agency: Agency, breaks: list[ReconBreak]) -> dict[str, Any]:
    bday = BusinessDay(close.business_day, ZoneInfo(agency.time_zone))
    now = utcnow()
    return {
        "object": "daily_close",
        "business_day": close.business_day.isoformat(),
        "window": {
            "local": [bday.start_local.isoformat(), bday.end_local.isoformat()],
            "utc": [iso(bday.start_utc), iso(bday.end_utc)],
            "described": bday.describe(),
        },
        "version": close.version,
        "status": close.status,
        "watermark": iso(close.watermark),
        "reopened_at": iso(close.reopened_at),
        "locked": close.locked,
        "actor": close.actor,
        "totals": close.totals,
        "diff": close.diff,
        "breaks": [_break_json(b, now) for b in breaks],
        "signed": close.document is not None,
    }


def breaks_of(session: Session, agency_id: str, day: date) -> list[ReconBreak]:
    """Every break ever found for the day (open first by state name order), for one agency."""
    return list(
        session.scalars(
            select(ReconBreak)
            .where(ReconBreak.agency_id == agency_id, ReconBreak.business_day == day)
            .order_by(ReconBreak.state, ReconBreak.kind, ReconBreak.ref)
        )
    )


def correction_json(c: Correction) -> dict[str, Any]:
    return {
        "id": c.id,
        "break_id": c.break_id,
        "action": c.action,
        "moves_money": c.moves_money,
        "state": c.state,
        "reason": c.reason,
        "requested_by": c.requested_by,
        "requested_at": iso(c.requested_at),
        "approved_by": c.approved_by,
        "approved_at": iso(c.approved_at),
        "outcome": c.outcome,
    }
