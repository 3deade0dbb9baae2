"""One-stop partners that speak PP-DVCQG, and the CONFIRM each is sent when its order moves.

A partner belongs to one agency. Its secret key is random, shown once, and kept in clear as a
callback secret is (the protocol's checksums are SHA-256 over fields and the key, so both ends
need the key itself); it is never logged, and only its prefix is shown afterwards.

CONFIRM goes through the callback outbox (:mod:`payments.callbacks`, kind ``pp_confirm``):
written in the transaction that pays (or expires, or cancels) the order, sent by the same
worker on the same retry schedule, logged attempt by attempt. Its body carries its own
checksum, so it is frozen at enqueue like every callback body.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.callback_models import CallbackEvent
from payments.credentials import check_callback_url
from payments.errors import InvalidInput, NotFound
from payments.models import Agency, PaymentOrder
from payments.onestop_models import OnestopPartner, OnestopTransaction
from payments.onestop_pp import (
    BILL_DIALECTS,
    REPLY_DIALECTS,
    confirm_message,
    local_timestamp,
)
from payments.states import OrderStatus
from settings.db import utcnow

__all__ = [
    "CONFIRM_RESULT",
    "DEFAULT_SKEW_SECONDS",
    "IssuedPartner",
    "PartnerInput",
    "add_partner",
    "agency_partners",
    "confirm_deliveries",
    "enqueue_confirm",
    "ip_allowed",
    "parse_ip_list",
    "parse_map",
    "partner_by_code",
    "payment_bank_code",
    "prefetch_transactions",
    "revoke_partner",
    "transaction_of_order",
]

log = logging.getLogger(__name__)

DEFAULT_SKEW_SECONDS = 300
MAX_SKEW_SECONDS = 30 * 86_400
"""OpenCPS stamps INIT, QUERY and GET_BILL with its payment file's creation time and keeps
querying for 3 days: its partner needs an accepted age of days."""
CONFIRM_KIND = "pp_confirm"
CONFIRM_RESULT: dict[str, str] = {
    OrderStatus.SUCCEEDED.value: "00",
    OrderStatus.EXPIRED.value: "99",
    OrderStatus.CANCELLED.value: "99",
    OrderStatus.FAILED.value: "99",
}
"""``MaLoi`` of the CONFIRM per order state: ``00`` paid; any other code tells the one-stop
system that no payment will come for this ``MaThamChieu`` (inferred: the platform sends only
``00`` and "not 00"). Pending orders are not confirmed."""
_PAYMENT_BANK = {"transfer": "VIETQR", "card": "CARD", "cash": "CASH", "exempt": "EXEMPT"}


@dataclass(frozen=True)
class PartnerInput:
    code: str
    confirm_url: str
    name: str = ""
    reply_dialect: str = "maloi"
    bill_dialect: str = "url"
    allowed_ips: tuple[str, ...] = ()
    clock_skew_seconds: int = DEFAULT_SKEW_SECONDS
    fee_map: dict[str, str] | None = None
    procedure_map: dict[str, str] | None = None


@dataclass(frozen=True)
class IssuedPartner:
    partner: OnestopPartner
    secret: str


def parse_ip_list(text: str) -> tuple[str, ...]:
    """``"203.0.113.5, 198.51.100.0/24"`` → normalised entries; a bad entry is refused."""
    found = []
    for part in text.replace(";", ",").replace("\n", ",").split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            found.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError as exc:
            raise InvalidInput(f"not an IP address or network: {entry!r}") from exc
    return tuple(found)


def parse_map(text: str, what: str) -> dict[str, str]:
    """``"THEIRS=OURS"`` pairs (one a line, or comma-separated) or a JSON object."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"{what}: not JSON: {exc}") from exc
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise InvalidInput(f"{what}: a JSON object of strings is expected")
        return {k.strip(): v.strip() for k, v in data.items()}
    found: dict[str, str] = {}
    for part in text.replace("\n", ",").split(","):
        if not part.strip():
            continue
        theirs, sep, ours = part.partition("=")
        if not sep or not theirs.strip() or not ours.strip():
            raise InvalidInput(f"{what}: expected THEIRS=OURS, got {part.strip()!r}")
        found[theirs.strip()] = ours.strip()
    return found


def _check(data: PartnerInput, *, allow_loopback: bool) -> None:
    code = data.code.strip()
    if not code or len(code) > 64 or any(c.isspace() or c == "|" for c in code):
        raise InvalidInput("partner code (MaDoiTac): 1-64 characters, no spaces or '|'")
    if data.reply_dialect not in REPLY_DIALECTS:
        raise InvalidInput(f"reply dialect must be one of {', '.join(REPLY_DIALECTS)}")
    if data.bill_dialect not in BILL_DIALECTS:
        raise InvalidInput(f"bill dialect must be one of {', '.join(BILL_DIALECTS)}")
    if not 30 <= data.clock_skew_seconds <= MAX_SKEW_SECONDS:
        raise InvalidInput("accepted ThoiGianGD age must be between 30 s and 30 days")
    check_callback_url(data.confirm_url, allow_loopback=allow_loopback)


def add_partner(
    session: Session, agency: Agency, data: PartnerInput, *, allow_loopback: bool
) -> IssuedPartner:
    """A new partner of ``agency`` with a fresh secret key (returned once)."""
    _check(data, allow_loopback=allow_loopback)
    code = data.code.strip()
    if session.scalar(select(OnestopPartner.id).where(OnestopPartner.code == code)) is not None:
        raise InvalidInput(f"partner code {code!r} is already used", code="onestop_partner_exists")
    secret = "ppk_" + secrets.token_urlsafe(32)
    partner = OnestopPartner(
        agency_id=agency.id,
        code=code,
        name=(data.name or code).strip()[:255],
        secret=secret,
        key_prefix=secret[:10],
        confirm_url=data.confirm_url,
        reply_dialect=data.reply_dialect,
        bill_dialect=data.bill_dialect,
        allowed_ips=list(data.allowed_ips),
        clock_skew_seconds=data.clock_skew_seconds,
        fee_map=dict(data.fee_map or {}),
        procedure_map=dict(data.procedure_map or {}),
    )
    session.add(partner)
    session.flush()
    return IssuedPartner(partner, secret)


def partner_by_code(session: Session, code: str) -> OnestopPartner | None:
    """The active partner with this ``MaDoiTac``, or ``None``."""
    partner = session.scalar(select(OnestopPartner).where(OnestopPartner.code == code))
    return partner if partner is not None and partner.active else None


def agency_partners(session: Session, agency_id: str) -> list[OnestopPartner]:
    return list(
        session.scalars(
            select(OnestopPartner)
            .where(OnestopPartner.agency_id == agency_id)
            .order_by(OnestopPartner.created_at, OnestopPartner.id)
        )
    )


def revoke_partner(session: Session, agency_id: str, partner_id: str) -> OnestopPartner:
    partner = session.get(OnestopPartner, partner_id)
    if partner is None or partner.agency_id != agency_id:
        raise NotFound(f"no one-stop partner {partner_id!r}", code="onestop_partner_not_found")
    partner.active = False
    return partner


def ip_allowed(allowed_ips: Sequence[str], source_ip: str) -> bool:
    """No list: any address. Otherwise the source must fall in one of the networks."""
    if not allowed_ips:
        return True
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    for entry in allowed_ips:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


_NOT_PP = "onestop_pp.orders_without_transaction"
"""``session.info`` key: ids of orders known (in this session) to have no PP transaction."""


def prefetch_transactions(session: Session, order_ids: Iterable[str]) -> None:
    """Learns in one query which of ``order_ids`` a PP-DVCQG partner asked for.

    A batch of matched payments asks :func:`transaction_of_order` once per order (to enqueue
    a CONFIRM); without this that is one query per order, a sixth of the batch issuer's time
    (issue 16). Transactions are only created by INIT, before the order is ever paid, so an
    order found without one here cannot gain one later in the same session.
    """
    wanted = list(dict.fromkeys(order_ids))
    if not wanted:
        return
    with session.no_autoflush:
        found = set(
            session.scalars(
                select(OnestopTransaction.order_id).where(OnestopTransaction.order_id.in_(wanted))
            )
        )
    absent: set[str] = session.info.setdefault(_NOT_PP, set())
    absent.update(oid for oid in wanted if oid not in found)


def transaction_of_order(session: Session, order_id: str) -> OnestopTransaction | None:
    # Without autoflush: asked once per paid order, and a batch of matches must not flush
    # the whole unit of work for each of them (issue 16); a row not flushed yet is found here.
    if order_id in session.info.get(_NOT_PP, ()):
        return None  # known from prefetch_transactions
    for pending in session.new:
        if isinstance(pending, OnestopTransaction) and pending.order_id == order_id:
            return pending
    with session.no_autoflush:
        return session.scalar(
            select(OnestopTransaction).where(OnestopTransaction.order_id == order_id)
        )


def payment_bank_code(order: PaymentOrder) -> str:
    """``MaNganHang`` we report: how the citizen paid (inferred; the protocol names banks)."""
    return _PAYMENT_BANK.get(order.payment_method or "", "PAYMENT")


def confirm_fields(
    partner: OnestopPartner,
    transaction: OnestopTransaction,
    order: PaymentOrder,
    *,
    kind: str,
    result_code: str,
    at: datetime,
) -> dict[str, Any]:
    """The CONFIRM fields (with their checksum) of ``order`` as ``kind`` (CONFIRM or QUERY)."""
    return confirm_message(
        kind=kind,
        result_code=result_code,
        partner_code=partner.code,
        reference=transaction.reference,
        amount=int(order.amount),
        transaction_id=order.reference,
        bank_code=payment_bank_code(order),
        stamp=local_timestamp(at, ZoneInfo(order.agency.time_zone)),
        description=transaction.description,
        secret=partner.secret,
    )


def enqueue_confirm(order: PaymentOrder, event: str, session: Session) -> CallbackEvent | None:
    """Adds the CONFIRM of a PP order to the caller's transaction (nothing for other orders,
    or for a state the protocol does not report)."""
    result_code = CONFIRM_RESULT.get(order.status)
    if result_code is None or order.client_id is not None:
        return None  # an API client's order is never a PP order: no look-up on the hot path
    with session.no_autoflush:  # the caller flushes when it is ready (one round trip a batch)
        transaction = transaction_of_order(session, order.id)
    if transaction is None:
        return None
    partner = session.get(OnestopPartner, transaction.partner_id)
    if partner is None:
        return None
    at = order.paid_at or utcnow()
    message = confirm_fields(
        partner, transaction, order, kind="CONFIRM", result_code=result_code, at=at
    )
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    now = utcnow()
    row = CallbackEvent(
        id="evt_" + uuid.uuid4().hex,
        client_id=None,
        kind=CONFIRM_KIND,
        partner_id=partner.id,
        url=partner.confirm_url,
        event=event,
        object_id=order.id,
        body=body,
        created_at=at,
        enqueued_at=now,
        state="pending",
        attempt_count=0,
        round_attempts=0,
        next_attempt_at=now,
    )
    session.add(row)  # written by the caller's next flush, with the change it reports
    return row


def confirm_deliveries(
    session: Session, agency_id: str, *, limit: int = 100
) -> list[tuple[CallbackEvent, OnestopPartner]]:
    """The agency's CONFIRM deliveries, newest first, with their partner."""
    rows = session.execute(
        select(CallbackEvent, OnestopPartner)
        .join(OnestopPartner, OnestopPartner.id == CallbackEvent.partner_id)
        .where(CallbackEvent.kind == CONFIRM_KIND, OnestopPartner.agency_id == agency_id)
        .order_by(CallbackEvent.enqueued_at.desc(), CallbackEvent.id.desc())
        .limit(limit)
    )
    return [(event, partner) for event, partner in rows.tuples()]
