"""The service's one clock: every "now" and every agency-local "today" comes from here.

Why one place: receipts take their number series from the year of issue and the close works on
agency-local business days, so a second way of reading the time (``date.today()`` is the
machine's zone, usually UTC, seven hours behind Vietnam) files a payment on the wrong day
between 00:00 and 07:00 local. Tests move this clock for whole runs (time-machine patches
``datetime.now`` underneath), so nothing here caches a time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

__all__ = ["local_today", "utcnow"]


def utcnow() -> datetime:
    """Now, UTC-aware: what is stored."""
    return datetime.now(UTC)


def local_today(zone: str | ZoneInfo, now: datetime | None = None) -> date:
    """The business day of ``now`` (default: now) in an agency's zone, e.g. Asia/Ho_Chi_Minh."""
    tz = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    return (now or utcnow()).astimezone(tz).date()
