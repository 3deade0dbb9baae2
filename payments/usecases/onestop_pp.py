"""Answering a one-stop system that speaks the national payment platform protocol (PP-DVCQG).

One action, :func:`answer`: a message's bytes in, the reply in the partner's dialect out. The
HTTP adapter (``api/routes/pp.py``) only reads the body and writes the reply.

Order of checks: the JSON, the partner (``MaDoiTac``), its IP allow-list, the checksum
(constant time, over the fields exactly as received), the freshness of ``ThoiGianGD``, and only
then the content. Every message is audited in ``onestop_pp_messages``; a refused one creates
nothing else.

INIT places an order exactly as the API does (:func:`payments.usecases.orders.place_order`,
once per ``MaThamChieu`` through :func:`run_once`) after pricing the partner's lines with the
same draft (:func:`payments.order_draft.draft_order`): a line whose amount is not what the
agency's published tariff gives, or a total that is not the sum of the lines, is refused —
an agency may not collect what its published fees do not say. PP-DVCQG lines carry an amount
but no count, so for a per-unit tariff the count is the one whose price is that amount
(``SoLuong``, when a client sends it, is used as is); an amount no count gives is refused, and
one several counts give (beyond a cap) is refused as ambiguous.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from einvoice.models import Receipt
from payments.catalog import fee_item_on, procedure_by_code
from payments.errors import IdempotencyConflict, UnknownFee, UnknownProcedure
from payments.models import Agency, FeeItem, PaymentOrder
from payments.onestop_models import OnestopMessage, OnestopPartner, OnestopTransaction
from payments.onestop_partners import confirm_fields, ip_allowed, partner_by_code
from payments.onestop_pp import (
    INIT_FIELDS,
    POLL_FIELDS,
    FeeLine,
    InitMessage,
    PollMessage,
    ProtocolError,
    Refusal,
    checksum_ok,
    error_reply,
    fresh_enough,
    parse_init,
    parse_json,
    parse_poll,
    success_reply,
)
from payments.onestop_pp.messages import message_type
from payments.order_draft import (
    AgencyTerms,
    FeeRequest,
    FeeSpec,
    OrderRequest,
    ProcedureSpec,
    draft_order,
    local_day,
    price_fee,
)
from payments.presenters import order_json
from payments.states import OrderStatus
from payments.usecases.follow_ups import FollowUp
from payments.usecases.orders import Answer, place_order, run_once
from payments.usecases.receipts import display_copy, display_copy_name, receipt_chain
from settings.config import Settings
from settings.db import session_scope, utcnow
from settings.errors import ProblemError

__all__ = [
    "STATE_CODES",
    "TRANSACTION_STATES",
    "PPReply",
    "answer",
    "init_digest",
    "refuse_unread",
]

log = logging.getLogger(__name__)

SCOPE_INIT = "onestop_pp.init"
TRANSACTION_STATES: dict[str, int] = {
    OrderStatus.SUCCEEDED.value: 1,
    OrderStatus.PENDING.value: 3,
    OrderStatus.EXPIRED.value: 4,
    OrderStatus.CANCELLED.value: 4,
    OrderStatus.FAILED.value: 4,
}
"""QUERY's ``TrangThaiGD``: 1 paid, 3 pending, 4 failed (expired, cancelled, card failure)."""
STATE_CODES: dict[int, str] = {1: "00", 3: "98", 4: "99"}
"""``MaLoi`` of the CONFIRM fields a QUERY reply carries: ``00`` only when paid."""
_MAX_UNITS = 100_000


@dataclass(frozen=True)
class PPReply:
    """What to answer: a JSON object, or (GET_BILL in the ``pdf`` dialect) the PDF's bytes."""

    status: int
    body: dict[str, Any] | bytes
    media_type: str = "application/json"
    filename: str | None = None
    follow_ups: tuple[FollowUp, ...] = field(default=())
    links: tuple[tuple[str, str], ...] = field(default=())
    """(rel, URL) for a ``Link`` header: the PDF answer names the XML legal original."""


@dataclass(frozen=True)
class _Partner:
    """A partner read once, for use outside its session."""

    id: str
    code: str
    agency_id: str
    secret: str
    reply_dialect: str
    bill_dialect: str
    skew: int
    zone: ZoneInfo
    fee_map: dict[str, str]
    procedure_map: dict[str, str]
    bank_bin: str
    bank_account: str
    allowed_ips: tuple[str, ...]


@dataclass
class _Audit:
    message_type: str = "?"
    partner_code: str | None = None
    partner_id: str | None = None
    agency_id: str | None = None
    reference: str | None = None
    order_id: str | None = None


def init_digest(data: dict[str, Any]) -> str:
    """What "the same INIT" means: the whole message but its time and checksum (a client
    retrying rebuilds those), canonical JSON."""
    kept = {k: v for k, v in data.items() if k not in ("ThoiGianGD", "MaXacThuc")}
    canonical = json.dumps(kept, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def answer(
    engine: Engine,
    settings: Settings,
    raw: bytes,
    *,
    source_ip: str,
    expected_type: str | None = None,
    now: datetime | None = None,
) -> PPReply:
    """Checks and answers one message (see the module's docstring for the order of checks)."""
    now = now or utcnow()
    audit = _Audit()
    dialect: str | None = None
    try:
        data = parse_json(raw)
        audit.partner_code = _short(data.get("MaDoiTac"), 64)
        audit.reference = _short(data.get("MaThamChieu"), 100)
        audit.message_type = _short(data.get("LoaiBanTin"), 16) or "?"
        kind = message_type(data)
        partner = _partner(engine, data.get("MaDoiTac"))
        audit.partner_id, audit.agency_id = partner.id, partner.agency_id
        dialect = partner.reply_dialect
        if expected_type is not None and kind != expected_type:
            raise ProtocolError(
                ProtocolError.BAD_MESSAGE, f"this address takes {expected_type}, not {kind}"
            )
        if not ip_allowed(partner.allowed_ips, source_ip):
            raise ProtocolError(ProtocolError.IP_REFUSED, f"{source_ip} is not on the list")
        fields = INIT_FIELDS if kind == "INIT" else POLL_FIELDS
        if not checksum_ok(data, fields, partner.secret, data.get("MaXacThuc")):
            raise ProtocolError(ProtocolError.BAD_CHECKSUM, "MaXacThuc does not match")
        stamp = data.get("ThoiGianGD")
        if not isinstance(stamp, str) or not fresh_enough(stamp, partner.zone, now, partner.skew):
            raise ProtocolError(
                ProtocolError.STALE,
                f"ThoiGianGD {str(stamp)[:20]!r} is more than {partner.skew} s from our clock",
            )
        if kind == "INIT":
            reply, outcome = _init(engine, settings, partner, parse_init(data), data, audit, now)
        else:
            reply = _poll(engine, settings, partner, parse_poll(data), audit, now)
            outcome = "accepted"
    except ProtocolError as exc:
        _record(engine, audit, source_ip, "refused", exc.refusal.code, exc.detail, now)
        log.info(
            "pp-dvcqg message refused",
            extra={
                "event": "pp_refused",
                "partner": audit.partner_code,
                "code": exc.refusal.code,
                "reason": exc.detail[:200],
            },
        )
        return PPReply(exc.refusal.status, error_reply(dialect, exc))
    except Exception:  # the partner still gets the protocol's shape, never our problem+json
        log.exception("pp-dvcqg message failed", extra={"event": "pp_failed"})
        error = ProtocolError(ProtocolError.INTERNAL, "the message could not be processed")
        try:
            _record(engine, audit, source_ip, "failed", error.refusal.code, error.detail, now)
        except Exception:
            log.exception("pp-dvcqg message failed and could not be audited")
        return PPReply(error.refusal.status, error_reply(dialect, error))
    try:
        _record(engine, audit, source_ip, outcome, "00", None, now)
    except Exception:  # what was done is committed: the answer must still reach the partner
        log.exception("pp-dvcqg message answered but not audited")
    return reply


def _short(value: Any, length: int) -> str | None:
    return value[:length] if isinstance(value, str) and value else None


def _partner(engine: Engine, code: Any) -> _Partner:
    if not isinstance(code, str) or not code:
        raise ProtocolError(ProtocolError.UNKNOWN_PARTNER, "MaDoiTac is missing")
    with session_scope(engine) as session:
        partner = partner_by_code(session, code)
        if partner is None:
            raise ProtocolError(ProtocolError.UNKNOWN_PARTNER, f"no active partner {code[:64]!r}")
        agency = session.get(Agency, partner.agency_id)
        assert agency is not None
        return _Partner(
            id=partner.id,
            code=partner.code,
            agency_id=partner.agency_id,
            secret=partner.secret,
            reply_dialect=partner.reply_dialect,
            bill_dialect=partner.bill_dialect,
            skew=partner.clock_skew_seconds,
            zone=ZoneInfo(agency.time_zone),
            fee_map=dict(partner.fee_map or {}),
            procedure_map=dict(partner.procedure_map or {}),
            bank_bin=agency.bank_bin,
            bank_account=agency.bank_account,
            allowed_ips=tuple(partner.allowed_ips or ()),
        )


def _record(
    engine: Engine,
    audit: _Audit,
    source_ip: str,
    outcome: str,
    code: str,
    reason: str | None,
    now: datetime,
) -> None:
    with session_scope(engine) as session:
        session.add(
            OnestopMessage(
                at=now,
                message_type=audit.message_type,
                partner_code=audit.partner_code,
                partner_id=audit.partner_id,
                agency_id=audit.agency_id,
                reference=audit.reference,
                source_ip=source_ip[:64],
                outcome=outcome,
                code=code,
                reason=reason[:500] if reason else None,
                order_id=audit.order_id,
            )
        )


# --------------------------------------------------------------------------- INIT


def _init(
    engine: Engine,
    settings: Settings,
    partner: _Partner,
    msg: InitMessage,
    data: dict[str, Any],
    audit: _Audit,
    now: datetime,
) -> tuple[PPReply, str]:
    if msg.service != "2":
        raise ProtocolError(
            ProtocolError.SERVICE_REFUSED,
            f"MaDichVu {msg.service!r}: only 2 (fees and charges of a procedure) is collected here",
        )
    if msg.beneficiary_account and msg.beneficiary_account != partner.bank_account:
        raise ProtocolError(
            ProtocolError.ACCOUNT_REFUSED,
            f"TKThuHuong {msg.beneficiary_account!r} is not the agency's account",
        )
    bank = msg.beneficiary_bank
    if bank and bank.isdigit() and len(bank) == 6 and bank != partner.bank_bin:
        raise ProtocolError(
            ProtocolError.ACCOUNT_REFUSED, f"MaNHThuHuong {bank!r} is not the agency's bank"
        )
    if sum(line.amount for line in msg.lines) != msg.amount:
        raise ProtocolError(
            ProtocolError.AMOUNT_MISMATCH,
            f"SoTien {msg.amount} is not the sum of the PhiLePhi lines "
            f"({sum(line.amount for line in msg.lines)})",
        )
    procedure_code = partner.procedure_map.get(msg.procedure_code, msg.procedure_code)

    def action(session: Session) -> Answer:
        agency = session.get(Agency, partner.agency_id)
        assert agency is not None
        fees = _priced_requests(session, settings, agency, procedure_code, partner, msg, now)
        request = OrderRequest(
            dossier_code=msg.dossier_code,
            procedure_code=procedure_code,
            payer=msg.payer,
            fees=fees,
            callback_url=None,
        )
        try:
            placed = place_order(session, settings, agency, request, client_id=None)
        except ProblemError as exc:
            raise _refusal_of(exc) from exc
        order = placed.order
        if [line.amount for line in order.lines] != [line.amount for line in _payable(msg)]:
            raise ProtocolError(ProtocolError.AMOUNT_MISMATCH, "the order priced differently")
        session.add(
            OnestopTransaction(
                partner_id=partner.id,
                reference=msg.reference,
                order_id=order.id,
                description=msg.description,
                created_at=now,
            )
        )
        session.flush()
        fields = {
            "MaDoiTac": partner.code,
            "MaThamChieu": msg.reference,
            "MaGiaoDich": order.reference,
            "SoTien": int(order.amount),
            "UrlThanhToan": order_json(order, None, settings.public_base_url)["pay_url"],
        }
        return Answer(200, {"order_id": order.id, "fields": fields}, False, placed.follow_ups)

    try:
        answered = run_once(
            engine,
            client_id=partner.id,
            scope=SCOPE_INIT,
            key=hashlib.sha256(msg.reference.encode("utf-8")).hexdigest(),
            digest=init_digest(data),
            action=action,
            required=True,
        )
    except IdempotencyConflict as exc:
        raise ProtocolError(
            ProtocolError.DUPLICATE, f"MaThamChieu {msg.reference!r} came with another message"
        ) from exc
    except IntegrityError as exc:
        raise ProtocolError(
            ProtocolError.DUPLICATE, f"MaThamChieu {msg.reference!r} is already used"
        ) from exc
    audit.order_id = answered.payload["order_id"]
    return (
        PPReply(
            200,
            success_reply(partner.reply_dialect, answered.payload["fields"]),
            follow_ups=answered.follow_ups,
        ),
        "replayed" if answered.replayed else "accepted",
    )


def _refusal_of(exc: ProblemError) -> ProtocolError:
    if isinstance(exc, UnknownProcedure | UnknownFee):
        return ProtocolError(ProtocolError.NOT_IN_CATALOGUE, exc.detail or exc.title_en)
    return ProtocolError(ProtocolError.BAD_MESSAGE, f"{exc.code}: {exc.detail or exc.title_en}")


def _priced_requests(
    session: Session,
    settings: Settings,
    agency: Agency,
    procedure_code: str,
    partner: _Partner,
    msg: InitMessage,
    now: datetime,
) -> tuple[FeeRequest, ...]:
    """The partner's lines as our fee requests, each priced by the published tariff of the
    day through the one draft function; refused unless every amount is the tariff's."""
    try:
        procedure = procedure_by_code(session, agency.id, procedure_code)
    except ProblemError as exc:
        raise _refusal_of(exc) from exc
    day = local_day(agency.time_zone, now)

    def fee_on_day(code: str) -> FeeSpec | None:
        item = fee_item_on(session, procedure, code, day, required=False)
        return FeeSpec.of(item) if item is not None else None

    fees = []
    payable = _payable(msg)
    if not payable:
        raise ProtocolError(ProtocolError.BAD_MESSAGE, "no PhiLePhi line has an amount to pay")
    for position, line in enumerate(payable, start=1):
        code = partner.fee_map.get(line.code) or _by_kind(
            session, procedure.id, line, day, fee_on_day
        )
        spec = fee_on_day(code) if code else None
        if spec is None:
            raise ProtocolError(
                ProtocolError.NOT_IN_CATALOGUE,
                f"PhiLePhi {line.code!r} ({line.kind or '?'}, {line.name or '-'}) is not a "
                f"published fee of {procedure_code}: map it on the partner",
            )
        quantity = line.quantity if line.quantity else _units_for(spec, line, position)
        fees.append(FeeRequest(fee_code=spec.code, quantity=quantity))
    request = OrderRequest(
        dossier_code=msg.dossier_code,
        procedure_code=procedure.code,
        payer=msg.payer,
        fees=tuple(fees),
    )
    try:
        draft = draft_order(
            AgencyTerms.of(agency),
            ProcedureSpec(procedure.id, procedure.code, procedure.name),
            fee_on_day,
            request,
            reference="PREVIEW",
            now=now,
            ttl=timedelta(minutes=settings.order_ttl_minutes),
            max_amount=settings.max_order_amount,
        )
    except ProblemError as exc:
        raise _refusal_of(exc) from exc
    for position, (drafted, line) in enumerate(zip(draft.lines, payable, strict=True), 1):
        if drafted.amount != line.amount:
            raise ProtocolError(
                ProtocolError.AMOUNT_MISMATCH,
                f"PhiLePhi[{position}] {line.code!r}: {line.amount} đ sent, the published tariff "
                f"gives {drafted.amount} đ for {drafted.quantity} {drafted.unit or 'unit(s)'}",
            )
    if draft.amount != msg.amount:
        raise ProtocolError(
            ProtocolError.AMOUNT_MISMATCH,
            f"SoTien {msg.amount} đ, the published tariff gives {draft.amount} đ",
        )
    return tuple(fees)


def _payable(msg: InitMessage) -> list[FeeLine]:
    """The lines with something to pay: OpenCPS always sends a phí and a lệ phí line, one of
    them at 0 when the procedure has none."""
    return [line for line in msg.lines if line.amount > 0]


_KINDS = {"1": "phi", "phi": "phi", "2": "le_phi", "lephi": "le_phi"}
"""``LoaiPhiLePhi`` as the clients write it (``1``/``2``, ``Phi``/``LePhi``, ``Lệ phí``)."""


def _kind(text: str) -> str | None:
    plain = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(c for c in plain if c.isalnum() and not unicodedata.combining(c))
    return _KINDS.get(bare.lower())


def _by_kind(
    session: Session,
    procedure_id: str,
    line: FeeLine,
    day: date,
    fee_on_day: Callable[[str], FeeSpec | None],
) -> str | None:
    """The fee a line means when it is not mapped: our own fee code, as sent; else the
    procedure's only published fee of the line's kind (OpenCPS sends ``MaPhiLePhi`` ``2`` for
    both its phí and its lệ phí line, told apart by ``LoaiPhiLePhi``)."""
    if fee_on_day(line.code) is not None:
        return line.code
    kind = _kind(line.kind)
    if kind is None:
        return None
    codes = {
        code
        for code in session.scalars(
            select(FeeItem.code).where(
                FeeItem.procedure_id == procedure_id,
                FeeItem.kind == kind,
                FeeItem.effective_from <= day,
                or_(FeeItem.effective_to.is_(None), FeeItem.effective_to >= day),
            )
        )
    }
    return codes.pop() if len(codes) == 1 else None


def _units_for(spec: FeeSpec, line: FeeLine, position: int) -> int:
    """The count whose price under ``spec``'s tariff is ``line.amount`` (prices never fall as
    the count grows, so a binary search finds the smallest); 1 when none does (the draft then
    reports the mismatch)."""

    def price_of(units: int) -> int:
        try:
            return price_fee(spec, FeeRequest(fee_code=spec.code, quantity=units))[1].amount
        except ProblemError as exc:
            raise ProtocolError(
                ProtocolError.BAD_MESSAGE,
                f"PhiLePhi[{position}] {line.code!r}: the tariff needs more than an amount "
                f"({exc.detail or exc.title_en}); send SoLuong or map it to a simpler fee",
            ) from exc

    low, high = 1, _MAX_UNITS
    if price_of(high) < line.amount:
        return 1
    while low < high:
        middle = (low + high) // 2
        if price_of(middle) >= line.amount:
            high = middle
        else:
            low = middle + 1
    if price_of(low) != line.amount:
        return 1
    if low < _MAX_UNITS and price_of(low + 1) == line.amount:
        raise ProtocolError(
            ProtocolError.AMOUNT_MISMATCH,
            f"PhiLePhi[{position}] {line.code!r}: {line.amount} đ is the capped price of "
            f"{low} or more {spec.unit or 'units'}; send SoLuong to say how many",
        )
    return low


# --------------------------------------------------------------------------- QUERY, GET_BILL


def _poll(
    engine: Engine,
    settings: Settings,
    partner: _Partner,
    msg: PollMessage,
    audit: _Audit,
    now: datetime,
) -> PPReply:
    with session_scope(engine) as session:
        transaction = session.scalar(
            select(OnestopTransaction).where(
                OnestopTransaction.partner_id == partner.id,
                OnestopTransaction.reference == msg.reference,
            )
        )
        if transaction is None:
            raise ProtocolError(ProtocolError.NOT_FOUND, f"no transaction {msg.reference!r}")
        order = session.get(PaymentOrder, transaction.order_id)
        row = session.get(OnestopPartner, partner.id)
        assert order is not None and row is not None
        audit.order_id = order.id
        if msg.kind == "QUERY":
            state = TRANSACTION_STATES.get(order.status, 4)
            fields = confirm_fields(
                row,
                transaction,
                order,
                kind="QUERY",
                result_code=STATE_CODES[state],
                at=order.paid_at or now,
            )
            fields["TrangThaiGD"] = state
            return PPReply(200, _reply_keeping_state(partner.reply_dialect, fields))
        return _bill(session, settings, partner, transaction, order)


def _reply_keeping_state(dialect: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A QUERY answer: in the ``maloi`` dialect the CONFIRM fields are the top level (so
    ``MaLoi`` is the payment's, ``00`` only when paid); in the other they are the message."""
    if dialect == "error_code":
        return success_reply(dialect, fields)
    return {**fields, "MoTaLoi": _STATE_TEXT[fields["TrangThaiGD"]]}


_STATE_TEXT = {
    1: "Đã thanh toán / paid",
    3: "Chờ thanh toán / pending",
    4: "Không thành công (hết hạn hoặc đã hủy) / failed (expired or cancelled)",
}


def _bill(
    session: Session,
    settings: Settings,
    partner: _Partner,
    transaction: OnestopTransaction,
    order: PaymentOrder,
) -> PPReply:
    chain: list[Receipt] = receipt_chain(session, order.receipt_id)
    if not chain:
        raise ProtocolError(ProtocolError.NO_RECEIPT, f"order {order.reference} has no receipt")
    receipt = chain[-1]
    base = f"{settings.public_base_url.rstrip('/')}/pay/{order.id}"
    if partner.bill_dialect == "pdf":
        return PPReply(
            200,
            display_copy(session, settings, receipt),
            media_type="application/pdf",
            filename=display_copy_name(receipt, "pdf"),
            links=(("alternate", f"{base}/bien-lai.xml"),),
        )
    fields = {
        "MaDoiTac": partner.code,
        "MaThamChieu": transaction.reference,
        "MaGiaoDich": order.reference,
        "UrlBienLai": f"{base}/bien-lai.pdf",
        "UrlBienLaiXml": f"{base}/bien-lai.xml",
        "MauSo": receipt.template,
        "KyHieu": receipt.series,
        "SoBienLai": receipt.number,
        "MaTraCuu": receipt.verify_code,
    }
    return PPReply(200, success_reply(partner.reply_dialect, fields))


def refuse_unread(
    engine: Engine, refusal: Refusal, detail: str, *, source_ip: str, now: datetime | None = None
) -> PPReply:
    """A message refused before it could be read (too large, too many): audited, answered in
    both dialects (whose partner it is cannot be known)."""
    error = ProtocolError(refusal, detail)
    _record(engine, _Audit(), source_ip, "refused", refusal.code, detail, now or utcnow())
    return PPReply(refusal.status, error_reply(None, error))
