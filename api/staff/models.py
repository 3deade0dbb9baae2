"""Tables for staff sign-in: accounts, server-side sessions and the sign-in audit trail.

Sessions live in the database (not in a signed cookie) so that sign-out, a disabled account
or an admin's revocation takes effect at once; only a SHA-256 of the session id is stored, so
a leaked table cannot be replayed as cookies.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from settings.db import Base, UTCDateTime, utcnow

__all__ = ["Role", "StaffAccount", "StaffAdminEvent", "StaffSession", "StaffSignIn"]


def _new_id() -> str:
    return uuid.uuid4().hex


class Role(enum.StrEnum):
    """What a staff member may do; one person may hold several roles."""

    CLERK = "clerk"
    """Cán bộ một cửa / counter clerk: orders, cash, printing."""
    ACCOUNTANT = "accountant"
    """Kế toán / accountant: daily close, breaks, exports, tax submissions."""
    ADMIN = "admin"
    """Quản trị đơn vị / agency admin: users, catalogue, keys, certificates."""


class StaffAccount(Base):
    """A person who signs in to one agency's pages.

    ``username`` is unique across agencies because the sign-in form asks only for it.
    ``roles`` is a space-separated list of :class:`Role` values (a handful at most, always read
    with the account, so a join table would buy nothing).
    """

    __tablename__ = "staff_accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def role_set(self) -> frozenset[Role]:
        return frozenset(Role(r) for r in self.roles.split())


class StaffSession(Base):
    """One signed-in browser. Expires after 8 h idle or 12 h in all (see ``sessions``)."""

    __tablename__ = "staff_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)


class StaffSignIn(Base):
    """Every sign-in attempt, kept for audit and read back for the lock-out rule.

    ``username`` is what was typed (lower-cased), not a foreign key: attempts on names that do
    not exist matter most. ``outcome`` is ``ok``, ``invalid`` or ``locked``; only ``invalid``
    counts toward a lock-out, so hammering a locked account does not extend the lock forever.
    """

    __tablename__ = "staff_sign_ins"
    __table_args__ = (Index("ix_staff_sign_ins_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    success: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(64), default=None)


class StaffAdminEvent(Base):
    """Every change an agency admin makes (accounts, catalogue, keys), append-only.

    ``detail`` holds what changed (roles before and after, old and new price, a key's prefix)
    and never a password or key: those are shown once and exist nowhere else in clear.
    ``actor_username`` is copied, not joined, so the trail still reads after renames.
    """

    __tablename__ = "staff_admin_events"
    __table_args__ = (Index("ix_staff_admin_events_agency_at", "agency_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    actor_id: Mapped[str | None] = mapped_column(String(32), default=None)
    actor_username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target_kind: Mapped[str] = mapped_column(String(24))
    target_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
