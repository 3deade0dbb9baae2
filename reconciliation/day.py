"""The agency's business day, defined once: a half-open local interval [00:00, next 00:00)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["BusinessDay"]


@dataclass(frozen=True)
class BusinessDay:
    day: date
    zone: ZoneInfo

    @classmethod
    def containing(cls, moment: datetime, zone: ZoneInfo) -> BusinessDay:
        """The local day ``moment`` (an aware instant) falls in."""
        return cls(moment.astimezone(zone).date(), zone)

    @property
    def start_local(self) -> datetime:
        return datetime.combine(self.day, time(0, 0), tzinfo=self.zone)

    @property
    def end_local(self) -> datetime:
        return datetime.combine(self.day + timedelta(days=1), time(0, 0), tzinfo=self.zone)

    @property
    def start_utc(self) -> datetime:
        return self.start_local.astimezone(ZoneInfo("UTC"))

    @property
    def end_utc(self) -> datetime:
        return self.end_local.astimezone(ZoneInfo("UTC"))

    def describe(self) -> str:
        """Both clocks, so nobody has to guess which midnight is meant."""
        fmt = "%Y-%m-%d %H:%M %Z"
        return (
            f"[{self.start_local.strftime(fmt)}, {self.end_local.strftime(fmt)}) = "
            f"[{self.start_utc.strftime(fmt)}, {self.end_utc.strftime(fmt)})"
        )
