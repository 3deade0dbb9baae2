"""Password hashing (argon2id) and the rules a new staff password must meet.

argon2-cffi's ``PasswordHasher`` defaults are the RFC 9106 low-memory profile of argon2id;
stored hashes carry their parameters, so :func:`needs_rehash` tells sign-in to upgrade a hash
after the defaults change, without anyone resetting a password.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from settings.errors import ProblemError

__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "WeakPassword",
    "check_password_rules",
    "hash_password",
    "needs_rehash",
    "verify_password",
    "waste_time",
]

MIN_LENGTH = 10
MAX_LENGTH = 256
"""Hashing is deliberately costly; an unbounded password would be a cheap denial of service."""

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("motcua-pay: not a real password")


class WeakPassword(ProblemError):
    code = "weak_password"
    status = 422
    title_vi = "Mật khẩu không đạt yêu cầu"
    title_en = "Password does not meet the rules"


def check_password_rules(password: str, *, username: str = "") -> None:
    """Length is what matters most (NIST SP 800-63B); composition rules only annoy clerks."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(
            f"Mật khẩu phải có ít nhất {MIN_LENGTH} ký tự / "
            f"the password must have at least {MIN_LENGTH} characters"
        )
    if len(password) > MAX_LENGTH:
        raise WeakPassword(
            f"Mật khẩu dài quá {MAX_LENGTH} ký tự / "
            f"the password must have at most {MAX_LENGTH} characters"
        )
    if username and password.strip().lower() == username.strip().lower():
        raise WeakPassword(
            "Mật khẩu không được trùng tên đăng nhập / the password must differ from the username"
        )
    if len(set(password)) < 3:
        raise WeakPassword(
            "Mật khẩu quá đơn giản / the password is too simple (too few distinct characters)"
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """False on a mismatch or an unreadable hash; never raises for a wrong password."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def waste_time(password: str) -> None:
    """Spends one verification when the username is unknown, so timing does not reveal it."""
    verify_password(_DUMMY_HASH, password[:MAX_LENGTH])
