"""Tables of the callback outbox: one row per event to deliver, one row per delivery attempt.

The event row is written in the same transaction as the change it reports (the transactional
outbox), so a commit can never be followed by a lost notification, and a rollback can never be
followed by a notification about something that did not happen. The body is stored as the exact
bytes that are sent: every retry and every replay posts the same bytes, so a receiver that
de-duplicates on ``Motcua-Event-Id`` or logs bodies sees one message, and signatures can be
recomputed from the stored row.

``callback_attempts`` is append-only: it is the delivery log a one-stop vendor's support desk
asks for ("did you call us at 10:15, and what did we answer?"), and it records manual replays
with the person who asked for them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

import payments.onestop_models  # noqa: F401  (the table ``partner_id`` refers to)
from settings.db import Base, UTCDateTime, utcnow

__all__ = ["CallbackAttempt", "CallbackEvent"]


class CallbackEvent(Base):
    """One event for one one-stop system, and where its delivery stands.

    ``state`` is ``pending`` (an attempt is due at ``next_attempt_at``, or one is in flight while
    ``lease_until`` lies in the future), ``delivered`` (a 2xx came back) or ``failed`` (the
    published schedule ran out, or the URL/client was refused; only a replay sends it again).
    """

    __tablename__ = "callback_events"
    __table_args__ = (
        CheckConstraint("state in ('pending', 'delivered', 'failed')", name="state"),
        CheckConstraint("attempt_count >= 0 AND round_attempts >= 0", name="attempts_nonneg"),
        # The delivery worker's query: due rows first, oldest first.
        Index("ix_callback_events_due", "state", "next_attempt_at"),
        Index("ix_callback_events_client_created", "client_id", "enqueued_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    """``evt_<32 hex>``; also inside the body and in the ``Motcua-Event-Id`` header."""
    client_id: Mapped[str | None] = mapped_column(ForeignKey("api_clients.id"), default=None)
    """Whose ``callback_secret`` signs the request (read at send time, so a rotated secret
    applies to retries too); ``None`` for a PP-DVCQG CONFIRM (``partner_id``)."""
    kind: Mapped[str] = mapped_column(String(16), default="motcua", server_default="motcua")
    """``motcua``: our signed JSON event (contract.md); ``pp_confirm``: a PP-DVCQG CONFIRM whose
    body carries its own checksum, acknowledged only by ``MaLoi`` ``00``."""
    partner_id: Mapped[str | None] = mapped_column(
        ForeignKey("onestop_partners.id"), default=None, index=True
    )
    url: Mapped[str] = mapped_column(String(1000))
    """Destination frozen at enqueue; re-checked against the allow-list at every attempt."""
    event: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    """``data["id"]`` (order or receipt id) so support can find every callback about it."""
    body: Mapped[bytes] = mapped_column(LargeBinary)
    """The exact request body, serialised once at enqueue."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the reported change happened (the body's ``created``)."""
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    """Attempts ever started, across replays; numbers the rows of the delivery log."""
    round_attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Attempts started since enqueue or the last replay; indexes the retry schedule."""
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """When the next attempt is due; ``None`` once delivered or failed."""
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """A worker holds the event until then; a crashed worker's claim simply runs out."""
    lease_token: Mapped[str | None] = mapped_column(String(32), default=None)
    """Proves the worker recording a result still owns the claim."""
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class CallbackAttempt(Base):
    """One line of the delivery log: an attempt (sent, failed, or refused) or a manual replay."""

    __tablename__ = "callback_attempts"
    __table_args__ = (
        # One log row per attempt number: a double send would fail loudly here.
        UniqueConstraint("event_id", "attempt_no"),
        CheckConstraint(
            "outcome in ('delivered', 'http_error', 'timeout', 'network_error', 'refused', "
            "'replay')",
            name="outcome",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("callback_events.id"), index=True)
    attempt_no: Mapped[int | None] = mapped_column(Integer, default=None)
    """1, 2, … for attempts; ``None`` on a replay request (it is not itself an attempt)."""
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(1000))
    signature_t: Mapped[int | None] = mapped_column(BigInteger, default=None)
    """The ``t=`` the request was signed with, so the signature can be recomputed later."""
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    response_excerpt: Mapped[str | None] = mapped_column(String(500), default=None)
    actor: Mapped[str | None] = mapped_column(String(255), default=None)
    """Who asked for a replay (``None`` for the worker's own attempts)."""
