"""Idempotency-Key handling for every POST a client makes.

The first response is stored with a hash of the request body in the same transaction as the
effect, so "stored key" and "effect happened" cannot disagree. A racing duplicate loses on the
unique constraint and is answered from the winner's record.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.errors import IdempotencyConflict, InvalidInput
from payments.models import IdempotencyRecord

__all__ = ["KEY_RE", "body_hash", "check_key", "find", "remember"]

KEY_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")


def check_key(key: str | None) -> str:
    if key is None or not KEY_RE.match(key):
        raise InvalidInput(
            "Idempotency-Key header required: 1-255 of A-Z a-z 0-9 -",
            code="idempotency_key_invalid",
        )
    return key


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def find(
    session: Session, client_id: str, scope: str, key: str, digest: str
) -> tuple[int, dict[str, Any]] | None:
    """The remembered answer; the same key with another body is a conflict (409)."""
    record = _record(session, client_id, scope, key)
    if record is None:
        return None
    if record.body_hash != digest:
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was first used with another body")
    return record.status_code, record.response


def find_any(
    session: Session, client_id: str, scope: str, key: str
) -> tuple[int, dict[str, Any]] | None:
    """The remembered answer whatever the body (a form token names one submission)."""
    record = _record(session, client_id, scope, key)
    return (record.status_code, record.response) if record is not None else None


def _record(session: Session, client_id: str, scope: str, key: str) -> IdempotencyRecord | None:
    return session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.client_id == client_id,
            IdempotencyRecord.scope == scope,
            IdempotencyRecord.key == key,
        )
    )


def remember(
    session: Session,
    client_id: str,
    scope: str,
    key: str,
    digest: str,
    status_code: int,
    response: dict[str, Any],
) -> None:
    session.add(
        IdempotencyRecord(
            client_id=client_id,
            scope=scope,
            key=key,
            body_hash=digest,
            status_code=status_code,
            response=response,
        )
    )
    session.flush()
