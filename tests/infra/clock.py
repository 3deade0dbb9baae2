"""The suite's one clock: every date a test needs is derived from here, never typed as a literal.

Why one place: the product's days are agency-local business days and its series follow the
year of issue, so a test that writes "2026-11-21" passes on that day and fails on every other
(issue 12). Tests ask this module for *now*, *today* and times relative to them; the product
reads the time through ``settings.db.utcnow`` (and ``datetime.now``), so both sides agree.

The clock can be **moved** for a whole run with ``pytest --clock=WHEN`` (or
``MOTCUA_TEST_CLOCK=WHEN``). In-process, the move is made by ``time-machine`` (it patches the
C-level ``time.time``/``datetime.now`` of the interpreter, so every thread sees it); processes
the tests start (the ``motcua`` CLI, the tax-authority sandbox) get the same offset through
Debian's libfaketime (:func:`subprocess_env`). Servers that do not take part in the product's
reckoning of days (PostgreSQL, Redis, Chromium) keep the real time. Each test starts at the
moved moment itself (``conftest._moved_clock``), and time then flows normally, so the moments
just before midnight are exercised as they are, not frozen.

``WHEN`` is an ISO time with an offset (``2026-12-31T23:50:00+07:00``) or one of the named
moments in :data:`MOMENTS`, computed from the real date at start-up.
"""

from __future__ import annotations

import calendar
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

__all__ = [
    "MOMENTS",
    "ZONE",
    "Clock",
    "bank_time",
    "libfaketime_path",
    "local",
    "moment",
    "now",
    "real_now",
    "run_start",
    "series_now",
    "set_run_start",
    "subprocess_env",
    "today",
]

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
"""The demo agency's zone (and the default one): business days are reckoned here."""

GO_LIVE = date(2027, 1, 1)
"""Deliberate literal: paper receipts end on 2026-12-31 (Decree 254/2026), e-receipts only from
2027-01-01 00:00 local. The New Year moments below are about this fixed date, not about today."""


def now() -> datetime:
    """The current instant, UTC-aware (moved when the run's clock is moved)."""
    return datetime.now(UTC)


def local_now(zone: ZoneInfo = ZONE) -> datetime:
    return now().astimezone(zone)


def today(zone: ZoneInfo = ZONE) -> date:
    """The agency-local business day of *now*."""
    return local_now(zone).date()


def local(day: date, hh: int = 0, mm: int = 0, ss: int = 0, zone: ZoneInfo = ZONE) -> datetime:
    """An agency-local wall-clock time on ``day``, as an aware datetime."""
    return datetime.combine(day, time(hh, mm, ss), tzinfo=zone)


def bank_time(at: datetime | None = None, *, sep: str = " ", zone: ZoneInfo = ZONE) -> str:
    """A bank feed's timestamp (SePay ``transactionDate``, Casso ``transactionDateTime``): the
    local wall-clock time without an offset, as Vietnamese banks write it. Default: now."""
    moment_ = (at or now()).astimezone(zone)
    return moment_.strftime(f"%Y-%m-%d{sep}%H:%M:%S")


def series_now(configured: str = "26TAB", at: datetime | None = None, zone: ZoneInfo = ZONE) -> str:
    """The series a receipt issued ``at`` (default now) carries: the configured series with its
    2-digit year replaced by the agency-local year of issue (``26TAB`` → ``27TAB`` in 2027)."""
    year = (at or now()).astimezone(zone).year
    return f"{year % 100:02d}{configured[2:]}"


def _next_month_end(real: datetime) -> datetime:
    """23:55 local on the last day of the month after the real one: a month-end that is never
    the New Year moment (unless the real month is November) and always ahead of the real date."""
    year, month = (real.year + 1, 1) if real.month == 12 else (real.year, real.month + 1)
    last = calendar.monthrange(year, month)[1]
    return local(date(year, month, last), 23, 55)


def _next_sunday(real: datetime) -> datetime:
    """10:30 local on the next Sunday (today if it is one): a day no agency works."""
    days = (6 - real.date().weekday()) % 7
    return local(real.date() + timedelta(days=days), 10, 30)


MOMENTS: Mapping[str, Callable[[datetime], datetime]] = {
    "now": lambda real: real,
    "new-year-eve": lambda real: local(GO_LIVE - timedelta(days=1), 23, 50),
    "new-year": lambda real: local(GO_LIVE, 0, 5),
    "month-end": _next_month_end,
    "sunday": _next_sunday,
}
"""The moments the moved-clock runs use (issue 12): now; 2026-12-31 23:50 local; 2027-01-01
00:05 local; the last day of a month; a Sunday."""


def moment(spec: str, real: datetime | None = None) -> datetime:
    """``spec`` (a name in :data:`MOMENTS` or an ISO time with an offset) as a UTC instant."""
    real_local = (real or datetime.now(UTC)).astimezone(ZONE)
    if spec in MOMENTS:
        return MOMENTS[spec](real_local).astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(spec)
    except ValueError as exc:
        raise ValueError(
            f"--clock {spec!r}: give one of {', '.join(MOMENTS)} or an ISO time with an offset"
        ) from exc
    if parsed.tzinfo is None:
        raise ValueError(f"--clock {spec!r}: say the offset, e.g. {spec}+07:00")
    return parsed.astimezone(UTC)


_LIBFAKETIME = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
)


def libfaketime_path() -> str | None:
    for candidate in _LIBFAKETIME:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("faketime")
    if found:  # same package: the library sits beside the multiarch lib dir
        for lib in Path("/usr/lib").glob("*/faketime/libfaketime.so.1"):
            return str(lib)
    return None


def subprocess_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) for a child process, with the clock moved as much as
    this process's clock is, so a ``motcua close`` started by a test reckons the same day.

    Nothing is added when this process keeps the real time (neither ``--clock`` nor a test's
    own ``time_machine.travel``). The offset is taken now, in whole
    seconds (libfaketime's relative form). Monotonic clocks move by the same constant, which
    is harmless (their origin is arbitrary); ``FAKETIME_DONT_FAKE_MONOTONIC`` is *not* set
    because libfaketime 0.9.10 then fails Python's ``time.sleep`` (absolute
    ``clock_nanosleep`` on the monotonic clock) with EINVAL.
    """
    out = dict(os.environ if env is None else env)
    offset = round((datetime.now(UTC) - real_now()).total_seconds())
    if abs(offset) < 2:  # the real clock (a moved run's or a test's travel otherwise)
        return out
    library = libfaketime_path()
    if library is None:
        raise RuntimeError(
            "the run's clock is moved but libfaketime is missing: apt-get install faketime"
        )
    preload = out.get("LD_PRELOAD", "")
    out["LD_PRELOAD"] = f"{library}:{preload}" if preload else library
    out["FAKETIME"] = f"{offset:+d}"
    out["FAKETIME_DONT_RESET"] = "1"
    return out


_RUN_START: list[datetime] = []


def set_run_start(start: datetime | None) -> None:
    """Called once by the root conftest: where every test of a moved run starts (UTC)."""
    _RUN_START[:] = [start] if start is not None else []


def run_start() -> datetime | None:
    """The moved run's starting instant, or None when the run uses the real clock."""
    return _RUN_START[0] if _RUN_START else None


def real_now() -> datetime:
    """The machine's real time, whatever the travel (time-machine keeps the original C
    functions behind its escape hatch)."""
    import time_machine

    if not time_machine.escape_hatch.is_travelling():  # the hatch refuses when not travelling
        return datetime.now(UTC)
    return time_machine.escape_hatch.datetime.datetime.now(UTC)


@dataclass(frozen=True)
class Clock:
    """What the ``clock`` fixture hands a test: the helpers above, bound to one zone."""

    zone: ZoneInfo = ZONE

    @property
    def moved(self) -> bool:
        return run_start() is not None

    def now(self) -> datetime:
        return now()

    def local_now(self) -> datetime:
        return local_now(self.zone)

    def today(self) -> date:
        return today(self.zone)

    def local(self, day: date, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
        return local(day, hh, mm, ss, self.zone)

    def bank_time(self, at: datetime | None = None, *, sep: str = " ") -> str:
        return bank_time(at, sep=sep, zone=self.zone)
