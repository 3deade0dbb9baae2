"""Staff accounts, sign-in with lock-out, and server-side sessions.

Everything here takes ``now`` from the caller so tests (and the lock-out window) run on an
injected clock instead of sleeping. Functions only touch the given SQLAlchemy session; the
caller owns the transaction, which matters for the audit trail: a failed sign-in is recorded
and committed even though the request is refused.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from api.staff.models import Role, StaffAccount, StaffAdminEvent, StaffSession, StaffSignIn
from api.staff.passwords import (
    check_password_rules,
    hash_password,
    needs_rehash,
    verify_password,
    waste_time,
)
from payments.models import Agency
from settings.errors import ProblemError

__all__ = [
    "ABSOLUTE_TIMEOUT",
    "IDLE_TIMEOUT",
    "LOCKOUT_THRESHOLD",
    "LOCKOUT_WINDOW",
    "SelfLockout",
    "SignInResult",
    "StaffAccountError",
    "attempt_sign_in",
    "close_session",
    "create_staff",
    "delete_session",
    "generate_password",
    "hash_session_id",
    "is_locked",
    "last_sign_ins",
    "load_session",
    "normalize_username",
    "open_session",
    "record_admin_event",
    "reset_password",
    "revoke_sessions",
    "set_active",
    "set_roles",
]

IDLE_TIMEOUT = timedelta(hours=8)
"""A counter shift: a session left alone longer than this needs a new sign-in."""
ABSOLUTE_TIMEOUT = timedelta(hours=12)
"""Even an active session ends after a working day."""
LOCKOUT_THRESHOLD = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
"""5 wrong passwords for one username within 15 minutes lock it for 15 minutes."""

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")


class StaffAccountError(ProblemError):
    code = "staff_account_invalid"
    status = 422
    title_vi = "Tài khoản cán bộ không hợp lệ"
    title_en = "Invalid staff account"


def normalize_username(username: str) -> str:
    return username.strip().lower()


def hash_session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_staff(
    session: Session,
    agency_id: str,
    username: str,
    display_name: str,
    password: str,
    roles: Iterable[str | Role],
    *,
    password_hash: str | None = None,
) -> StaffAccount:
    """Adds a staff account (flushed, not committed); the shape ``motcua staff add`` needs.

    ``password_hash``: an argon2 hash of ``password`` computed by the caller, for seeding many
    accounts with one known password (the demo) without paying the deliberate cost each time.

    Raises :class:`StaffAccountError` (unknown agency, bad or taken username, no or unknown
    role) or :class:`~api.staff.passwords.WeakPassword`; nothing is written then.
    """
    name = normalize_username(username)
    if not _USERNAME.match(name):
        raise StaffAccountError(
            "Tên đăng nhập gồm 3–64 ký tự a-z, 0-9, dấu chấm, gạch dưới, gạch ngang / "
            "the username must be 3-64 characters of a-z, 0-9, '.', '_' or '-'"
        )
    if not display_name.strip():
        raise StaffAccountError("Thiếu họ tên / the display name is required")
    try:
        role_set = sorted({Role(r) for r in roles})
    except ValueError as exc:
        raise StaffAccountError(
            f"Vai trò không hợp lệ / unknown role; use {', '.join(r.value for r in Role)}"
        ) from exc
    if not role_set:
        raise StaffAccountError("Cần ít nhất một vai trò / at least one role is required")
    if session.get(Agency, agency_id) is None:
        raise StaffAccountError(
            "Không tìm thấy đơn vị / unknown agency", code="agency_not_found", status=404
        )
    if session.scalar(select(StaffAccount.id).where(StaffAccount.username == name)) is not None:
        raise StaffAccountError(
            "Tên đăng nhập đã được dùng / the username is taken",
            code="staff_username_taken",
            status=409,
        )
    check_password_rules(password, username=name)
    account = StaffAccount(
        agency_id=agency_id,
        username=name,
        display_name=display_name.strip(),
        password_hash=password_hash or hash_password(password),
        roles=" ".join(r.value for r in role_set),
    )
    session.add(account)
    session.flush()
    return account


def is_locked(session: Session, username: str, now: datetime) -> bool:
    """Counts wrong passwords in the last window, ignoring those before the last success."""
    name = normalize_username(username)
    since = now - LOCKOUT_WINDOW
    last_ok = session.scalar(
        select(func.max(StaffSignIn.at)).where(
            StaffSignIn.username == name, StaffSignIn.outcome == "ok", StaffSignIn.at > since
        )
    )
    failures = session.scalar(
        select(func.count()).where(
            StaffSignIn.username == name,
            StaffSignIn.outcome == "invalid",
            StaffSignIn.at > (last_ok if last_ok is not None and last_ok > since else since),
            StaffSignIn.at <= now,
        )
    )
    return (failures or 0) >= LOCKOUT_THRESHOLD


@dataclass(frozen=True)
class SignInResult:
    outcome: Literal["ok", "invalid", "locked"]
    staff: StaffAccount | None = None


def attempt_sign_in(
    session: Session, username: str, password: str, *, now: datetime, ip: str | None
) -> SignInResult:
    """Checks the lock, then the password; audits the attempt; never raises for bad input.

    An unknown username costs the same hashing time as a wrong password and is locked the
    same way, so neither the answer nor the timing tells whether an account exists.
    """
    name = normalize_username(username)[:64]
    outcome: Literal["ok", "invalid", "locked"]
    staff: StaffAccount | None = None
    if is_locked(session, name, now):
        outcome = "locked"
    else:
        account = session.scalar(select(StaffAccount).where(StaffAccount.username == name))
        if account is None or not account.active:
            waste_time(password)
            outcome = "invalid"
        elif verify_password(account.password_hash, password):
            outcome, staff = "ok", account
            if needs_rehash(account.password_hash):
                account.password_hash = hash_password(password)
        else:
            outcome = "invalid"
    session.add(StaffSignIn(at=now, username=name, success=outcome == "ok", outcome=outcome, ip=ip))
    session.flush()
    return SignInResult(outcome, staff)


def open_session(
    session: Session, staff: StaffAccount, *, now: datetime, ip: str | None = None
) -> tuple[str, StaffSession]:
    """Returns the cookie value (256 random bits) and the stored row (which keeps its hash)."""
    token = secrets.token_urlsafe(32)
    row = StaffSession(
        id_hash=hash_session_id(token),
        staff_id=staff.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        ip=ip,
    )
    session.add(row)
    session.flush()
    return token, row


def load_session(
    session: Session, token: str | None, *, now: datetime
) -> tuple[StaffSession, StaffAccount] | None:
    """The live session for a cookie, touched; an expired one is deleted and gives None."""
    if not token or len(token) > 128:
        return None
    row = session.get(StaffSession, hash_session_id(token))
    if row is None:
        return None
    staff = session.get(StaffAccount, row.staff_id)
    if (
        staff is None
        or not staff.active
        or now - row.last_seen_at >= IDLE_TIMEOUT
        or now - row.created_at >= ABSOLUTE_TIMEOUT
    ):
        session.delete(row)
        session.flush()
        return None
    row.last_seen_at = now
    return row, staff


def close_session(session: Session, token: str) -> None:
    """Signs out the holder of a cookie value."""
    delete_session(session, hash_session_id(token))


def delete_session(session: Session, id_hash: str) -> None:
    """Signs out by stored hash (what request handlers know once the cookie was checked)."""
    session.execute(delete(StaffSession).where(StaffSession.id_hash == id_hash))


# --- Account administration (the agency admin pages) -------------------------------------


class SelfLockout(StaffAccountError):
    code = "staff_self_lockout"
    status = 409
    title_vi = "Không thể tự khóa quyền quản trị của chính mình"
    title_en = "You cannot lock yourself out of administration"


_PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # noqa: S105 - an alphabet
"""No 0/o, 1/l/i: a generated password is read off a screen and typed by a colleague."""


def generate_password() -> str:
    """16 random characters (≈ 79 bits) in four groups, e.g. ``k7mq-x2pa-9rdw-hc3e``."""
    chars = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(16))
    return "-".join(chars[i : i + 4] for i in range(0, 16, 4))


def revoke_sessions(session: Session, staff_id: str) -> int:
    """Signs a member out everywhere (disabled account, new password); returns how many."""
    result = session.execute(delete(StaffSession).where(StaffSession.staff_id == staff_id))
    return int(getattr(result, "rowcount", 0) or 0)


def _roles_of(roles: Iterable[str | Role]) -> list[Role]:
    try:
        role_set = sorted({Role(r) for r in roles})
    except ValueError as exc:
        raise StaffAccountError(
            f"Vai trò không hợp lệ / unknown role; use {', '.join(r.value for r in Role)}"
        ) from exc
    if not role_set:
        raise StaffAccountError("Cần ít nhất một vai trò / at least one role is required")
    return role_set


def set_roles(
    session: Session, account: StaffAccount, roles: Iterable[str | Role], *, actor_id: str
) -> tuple[str, str]:
    """Replaces an account's roles; returns (before, after) for the audit trail.

    An admin may not drop their own admin role: the agency could be left with no one able to
    give it back (only the CLI on the server could).
    """
    role_set = _roles_of(roles)
    if account.id == actor_id and Role.ADMIN not in role_set:
        raise SelfLockout(
            "Bạn không thể bỏ vai trò quản trị của chính mình / "
            "you cannot remove your own admin role"
        )
    before = account.roles
    account.roles = " ".join(r.value for r in role_set)
    session.flush()
    return before, account.roles


def set_active(session: Session, account: StaffAccount, active: bool, *, actor_id: str) -> None:
    """Disables (signing the member out at once) or re-enables an account; never oneself."""
    if account.id == actor_id and not active:
        raise SelfLockout(
            "Bạn không thể vô hiệu hóa tài khoản của chính mình / "
            "you cannot disable your own account"
        )
    account.active = active
    if not active:
        revoke_sessions(session, account.id)
    session.flush()


def reset_password(
    session: Session, account: StaffAccount, password: str | None, *, actor_id: str
) -> str | None:
    """Sets a new password (the given one, or a generated one which is returned, to be shown
    once) and signs the member out everywhere, so whoever knew the old one is locked out.

    Resetting one's own password here is refused: it would end the admin's own session.
    """
    if account.id == actor_id:
        raise SelfLockout(
            "Không thể tự đặt lại mật khẩu của mình tại đây / "
            "you cannot reset your own password here"
        )
    generated = None
    if not password:
        password = generated = generate_password()
    check_password_rules(password, username=account.username)
    account.password_hash = hash_password(password)
    revoke_sessions(session, account.id)
    session.flush()
    return generated


def last_sign_ins(session: Session, usernames: Iterable[str]) -> dict[str, datetime]:
    """The last successful sign-in of each username that has one."""
    names = list(usernames)
    if not names:
        return {}
    rows = session.execute(
        select(StaffSignIn.username, func.max(StaffSignIn.at))
        .where(StaffSignIn.username.in_(names), StaffSignIn.outcome == "ok")
        .group_by(StaffSignIn.username)
    )
    return {name: at for name, at in rows if at is not None}


def record_admin_event(
    session: Session,
    *,
    agency_id: str,
    actor_id: str | None,
    actor_username: str,
    action: str,
    target_kind: str,
    target_id: str,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> StaffAdminEvent:
    """Appends one audit row in the caller's transaction: the change and its record commit
    together or not at all. ``detail`` must never carry a password or key."""
    event = StaffAdminEvent(
        agency_id=agency_id,
        actor_id=actor_id,
        actor_username=actor_username,
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        detail=dict(detail or {}),
    )
    if now is not None:
        event.at = now
    session.add(event)
    session.flush()
    return event
