"""Tables owned by ``payments``: agencies, clients, feed keys, catalogue, orders, bank events.

Money columns are integer VND (``BigInteger``); times are UTC via :class:`UTCDateTime`.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from payments.errors import InvalidTransition
from payments.states import OrderStatus, check_transition
from settings.db import Base, UTCDateTime, utcnow


def new_id() -> str:
    return uuid.uuid4().hex


class Agency(Base):
    """A collecting organisation (đơn vị thu): identity, bank account, receipt series."""

    __tablename__ = "agencies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    tax_code: Mapped[str] = mapped_column(String(14))
    address: Mapped[str] = mapped_column(String(500))
    bank_bin: Mapped[str] = mapped_column(String(6))
    bank_account: Mapped[str] = mapped_column(String(19))
    bank_account_name: Mapped[str] = mapped_column(String(255))
    receipt_template: Mapped[str] = mapped_column(String(5), default="EBL01")
    receipt_series: Mapped[str] = mapped_column(String(5))
    time_zone: Mapped[str] = mapped_column(String(64), default="Asia/Ho_Chi_Minh")
    signing_key_ref: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claim_auto_approve_days: Mapped[int | None] = mapped_column(Integer, default=None)
    """Citizens' transfer claims (issue 19) that fit exactly are approved without an
    accountant when the credit is at most this many days old; NULL: always by hand."""


class ApiClient(Base):
    """A one-stop system allowed to create orders for one agency.

    Only a SHA-256 of the API key is stored; the webhook secret must be kept to sign callbacks.
    """

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    name: Mapped[str] = mapped_column(String(255))
    key_prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    callback_url: Mapped[str | None] = mapped_column(String(1000), default=None)
    callback_secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    agency: Mapped[Agency] = relationship(lazy="joined", innerjoin=True)


class BankFeedCredential(Base):
    """The key a bank-feed aggregator (SePay, Casso) presents when it calls our webhook.

    SePay sends the key itself (stored hashed); Casso signs with it (kept: HMAC needs it).
    """

    __tablename__ = "bank_feed_credentials"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    provider: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str | None] = mapped_column(String(16), default=None)
    """The key's first characters, so an admin can tell keys apart (None before 0011)."""
    secret: Mapped[str | None] = mapped_column(String(128), default=None)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    agency: Mapped[Agency] = relationship(lazy="joined", innerjoin=True)


class Procedure(Base):
    __tablename__ = "procedures"
    __table_args__ = (UniqueConstraint("agency_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(500))
    field: Mapped[str] = mapped_column(String(255))


class FeeItem(Base):
    """One published fee or charge of a procedure, valid over ``[effective_from, effective_to)``."""

    __tablename__ = "fee_items"
    __table_args__ = (
        UniqueConstraint("procedure_id", "code", "effective_from"),
        CheckConstraint("amount >= 0", name="amount_nonneg"),
        CheckConstraint("kind in ('phi', 'le_phi')", name="kind"),
        CheckConstraint(
            "retention_percent >= 0 AND retention_percent <= 100", name="retention_range"
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    procedure_id: Mapped[str] = mapped_column(ForeignKey("procedures.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(500))
    amount: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str | None] = mapped_column(String(32), default=None)
    max_amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    retention_percent: Mapped[int] = mapped_column(Integer, default=0)
    legal_basis: Mapped[str] = mapped_column(String(500))
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date, default=None)
    tariff: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """The tariff as the law writes it (``payments.tariffs`` JSON); NULL is the legacy tariff,
    ``amount`` per unit x quantity capped per line at ``max_amount`` (see ``tariff_of``)."""

    procedure: Mapped[Procedure] = relationship(lazy="joined", innerjoin=True)


class PaymentOrder(Base):
    """A request to pay for one dossier; the public ``status`` is one of five (see orders.py)."""

    __tablename__ = "payment_orders"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_nonneg"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    client_id: Mapped[str | None] = mapped_column(ForeignKey("api_clients.id"), default=None)
    dossier_code: Mapped[str] = mapped_column(String(64), index=True)
    procedure_code: Mapped[str] = mapped_column(String(32))
    procedure_name: Mapped[str] = mapped_column(String(500))
    reference: Mapped[str] = mapped_column(String(25), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    payer: Mapped[dict[str, Any]] = mapped_column(JSON)
    callback_url: Mapped[str | None] = mapped_column(String(1000), default=None)
    vietqr_payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    payment_method: Mapped[str | None] = mapped_column(String(16), default=None)
    receipt_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    receipt_error: Mapped[str | None] = mapped_column(String(500), default=None)
    collected_by: Mapped[str | None] = mapped_column(String(255), default=None)
    """Who took the money at the counter (cash), for the clerk's till and per-clerk reports."""

    agency: Mapped[Agency] = relationship(lazy="joined", innerjoin=True)
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.position", lazy="selectin"
    )

    def move_to(self, target: OrderStatus) -> None:
        """The one way an order changes state: refused unless the move is in the table."""
        self.status = target.value

    @validates("status")
    def _check_move(self, _key: str, value: str) -> str:
        """Guards every assignment, so no caller can skip the table: a new order starts
        pending; afterwards only the moves in :data:`payments.states.TRANSITIONS` pass."""
        target = OrderStatus(value)
        current = self.__dict__.get("status")
        if current is None:
            if target is not OrderStatus.PENDING:
                raise InvalidTransition(
                    f"a new order starts pending, not {target.value}",
                    extra={"from": None, "to": target.value},
                )
        else:
            check_transition(current, target)  # staying put is not a move either (409)
        return target.value


class OrderLine(Base):
    """A fee line frozen at order time: later catalogue changes never alter what was asked."""

    __tablename__ = "order_lines"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(ForeignKey("payment_orders.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    fee_item_id: Mapped[str] = mapped_column(ForeignKey("fee_items.id"))
    fee_code: Mapped[str] = mapped_column(String(32))
    fee_name: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(8))
    unit: Mapped[str | None] = mapped_column(String(32), default=None)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    retention_percent: Mapped[int] = mapped_column(Integer, default=0)
    legal_basis: Mapped[str] = mapped_column(String(500))
    exemption_category: Mapped[str | None] = mapped_column(String(255), default=None)
    exemption_legal_basis: Mapped[str | None] = mapped_column(String(500), default=None)
    pricing: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """What the line was priced with (input, tariff, breakdown), frozen like the rest so the
    receipt can show how ``amount`` was reached; NULL on lines written before issue 14."""

    order: Mapped[PaymentOrder] = relationship(back_populates="lines")


class IdempotencyRecord(Base):
    """The first response to a POST with a given key; the unique constraint settles races."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("client_id", "scope", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    body_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BankEvent(Base):
    """A raw inbound bank notification, journaled before anything is done with it.

    ``dedup_key`` is the provider's own transaction id, so webhook retries collapse to one row.
    """

    __tablename__ = "bank_events"
    __table_args__ = (UniqueConstraint("agency_id", "source", "dedup_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    dedup_key: Mapped[str] = mapped_column(String(128))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)


class BankCredit(Base):
    """Money that reached the agency's account, normalised from any feed.

    ``bank_reference`` is the bank's own transaction reference: the same credit seen by a webhook
    and later by the statement is one row. ``order_id`` is set only on an exact match.
    """

    __tablename__ = "bank_credits"
    __table_args__ = (
        UniqueConstraint("agency_id", "bank_reference"),
        CheckConstraint("amount > 0", name="amount_pos"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("bank_events.id"))
    bank_reference: Mapped[str] = mapped_column(String(128))
    account_number: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    memo: Mapped[str] = mapped_column(Text)
    booked_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    order_id: Mapped[str | None] = mapped_column(
        ForeignKey("payment_orders.id"), default=None, index=True
    )
    match_status: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PaymentException(Base):
    """A credit that could not be matched exactly: the staff's work queue (issue 4).

    One per credit. It is closed only by an audited resolution (:class:`ExceptionAction`); the
    credit itself is never edited away.
    """

    __tablename__ = "payment_exceptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    credit_id: Mapped[str] = mapped_column(ForeignKey("bank_credits.id"), unique=True)
    order_id: Mapped[str | None] = mapped_column(ForeignKey("payment_orders.id"), default=None)
    kind: Mapped[str] = mapped_column(String(24))
    amount: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(24), index=True, default="open")
    resolution: Mapped[str | None] = mapped_column(String(24), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ExceptionAction(Base):
    """Append-only audit of what staff did with an exception, with reason and actor."""

    __tablename__ = "payment_exception_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exception_id: Mapped[str] = mapped_column(ForeignKey("payment_exceptions.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BankStatement(Base):
    """An imported statement file; its fingerprint makes a second import of it a no-op."""

    __tablename__ = "bank_statements"
    __table_args__ = (UniqueConstraint("agency_id", "fingerprint"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    file_format: Mapped[str] = mapped_column(String(16))
    account_number: Mapped[str] = mapped_column(String(34))
    opening_date: Mapped[date] = mapped_column(Date)
    closing_date: Mapped[date] = mapped_column(Date)
    lines: Mapped[int] = mapped_column(Integer)
    new_lines: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StatementProfile(Base):
    """An agency's own column-mapping profile for its bank's spreadsheet exports (issue 18).

    ``profile`` is the JSON of :func:`payments.statement_profiles.profile_from_json`, checked
    before it is stored and again when read (a profile written by an older version that no
    longer passes is reported, never half-applied). Saved from the admin page after the
    agency's admin has seen a sample parsed with it; names are unique per agency and never a
    built-in name, so ``--profile NAME`` means one layout.
    """

    __tablename__ = "statement_profiles"
    __table_args__ = (UniqueConstraint("agency_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    name: Mapped[str] = mapped_column(String(40))
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
