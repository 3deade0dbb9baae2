"""JSON shapes of orders and receipts (contract.md), one place for the API and the callbacks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.lifecycle import error_notices_for
from einvoice.models import ErrorNotice, ErrorNoticeItem, Receipt
from payments.order_draft import line_breakdown


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def mask(value: str | None, keep: int = 4) -> str | None:
    """Personal data in API answers shows only its last digits (ID number, phone)."""
    if not value:
        return value
    return "*" * max(len(value) - keep, 0) + value[-keep:]


def receipt_links(receipt: Receipt, base_url: str) -> dict[str, Any]:
    base = base_url.rstrip("/")
    return {
        "id": receipt.id,
        "template": receipt.template,
        "series": receipt.series,
        "number": receipt.number,
        "issued_at": iso(receipt.issued_at),
        "total": receipt.total,
        "xml_url": f"{base}/api/v1/receipts/{receipt.id}/xml",
        "pdf_url": f"{base}/api/v1/receipts/{receipt.id}/pdf",
        "verify_url": f"{base}/r/{receipt.verify_code}",
        "status": "replaced" if receipt.replaced_by_id else "valid",
        "replaced_by": receipt.replaced_by_id,
    }


class AgencyView(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def bank_bin(self) -> str: ...
    @property
    def bank_account(self) -> str: ...
    @property
    def bank_account_name(self) -> str: ...


class LineView(Protocol):
    @property
    def fee_code(self) -> str: ...
    @property
    def fee_name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def unit(self) -> str | None: ...
    @property
    def unit_price(self) -> int: ...
    @property
    def amount(self) -> int: ...
    @property
    def retention_percent(self) -> int: ...
    @property
    def legal_basis(self) -> str: ...
    @property
    def exemption_category(self) -> str | None: ...
    @property
    def exemption_legal_basis(self) -> str | None: ...
    @property
    def pricing(self) -> dict[str, Any] | None: ...


class OrderView(Protocol):
    """What ``order_json`` reads: a :class:`PaymentOrder`, or the SQL path's plain record
    (:mod:`payments.order_intake`), so both answer with exactly the same shape."""

    @property
    def id(self) -> str: ...
    @property
    def reference(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def dossier_code(self) -> str: ...
    @property
    def procedure_code(self) -> str: ...
    @property
    def procedure_name(self) -> str: ...
    @property
    def agency(self) -> AgencyView: ...
    @property
    def payer(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def paid_at(self) -> datetime | None: ...
    @property
    def payment_method(self) -> str | None: ...
    @property
    def lines(self) -> Sequence[LineView]: ...
    @property
    def vietqr_payload(self) -> str: ...
    @property
    def callback_url(self) -> str | None: ...
    @property
    def receipt_error(self) -> str | None: ...


def order_json(order: OrderView, receipt: Receipt | None, base_url: str) -> dict[str, Any]:
    base = base_url.rstrip("/")
    payer = dict(order.payer)
    payer["id_number"] = mask(payer.get("id_number"))
    payer["phone"] = mask(payer.get("phone"))
    return {
        "id": order.id,
        "object": "payment_order",
        "reference": order.reference,
        "status": order.status,
        "amount": order.amount,
        "currency": "VND",
        "dossier_code": order.dossier_code,
        "procedure_code": order.procedure_code,
        "procedure_name": order.procedure_name,
        "agency": {"code": order.agency.code, "name": order.agency.name},
        "payer": payer,
        "created_at": iso(order.created_at),
        "expires_at": iso(order.expires_at),
        "paid_at": iso(order.paid_at),
        "payment_method": order.payment_method,
        "lines": [
            {
                "fee_code": line.fee_code,
                "fee_name": line.fee_name,
                "kind": line.kind,
                "quantity": line.quantity,
                "unit": line.unit,
                "unit_price": line.unit_price,
                "amount": line.amount,
                "retention_percent": line.retention_percent,
                "legal_basis": line.legal_basis,
                "exemption": (
                    {
                        "category": line.exemption_category,
                        "legal_basis": line.exemption_legal_basis,
                    }
                    if line.exemption_category
                    else None
                ),
                "breakdown": _breakdown(line),
            }
            for line in order.lines
        ],
        "vietqr": (
            {
                "payload": order.vietqr_payload,
                "image_url": f"{base}/api/v1/payment-orders/{order.id}/vietqr.png",
                "bank_bin": order.agency.bank_bin,
                "account_number": order.agency.bank_account,
                "account_name": order.agency.bank_account_name,
                "memo": order.reference,
            }
            if order.vietqr_payload
            else None
        ),
        "pay_url": f"{base}/pay/{order.id}",
        "callback_url": order.callback_url,
        "receipt": receipt_links(receipt, base) if receipt else None,
        "receipt_error": order.receipt_error,
    }


def _breakdown(line: LineView) -> dict[str, str] | None:
    """How the line's amount was reached (issue 14), in both languages; ``None`` when quantity x
    unit price says it (and on lines priced before the tariffs)."""
    exempt = bool(line.exemption_category)
    vi = line_breakdown(line.pricing, exempt=exempt)
    en = line_breakdown(line.pricing, exempt=exempt, lang="en")
    return {"vi": vi, "en": en or vi} if vi is not None else None


def _link(session: Session, receipt_id: str | None, base: str) -> dict[str, Any] | None:
    if receipt_id is None:
        return None
    other = session.get(Receipt, receipt_id)
    if other is None:
        return {"id": receipt_id}
    links = receipt_links(other, base)
    return {k: links[k] for k in ("id", "template", "series", "number", "issued_at", "verify_url")}


def _notice_summary(notice: ErrorNotice, base: str) -> dict[str, Any]:
    return {
        "id": notice.id,
        "form": "04/SS-CTĐT",
        "status": notice.status,
        "created_at": iso(notice.created_at),
        "xml_url": f"{base}/api/v1/receipts/error-notices/{notice.id}/xml",
    }


def receipt_json(session: Session, receipt: Receipt, base_url: str) -> dict[str, Any]:
    """The receipt as ``GET /api/v1/receipts/{id}`` shows it, lifecycle links included."""
    base = base_url.rstrip("/")
    return {
        **receipt_links(receipt, base),
        "object": "receipt",
        "payer_name": receipt.payer_name,
        "payment_method": receipt.payment_method,
        "payment_reference": receipt.payment_reference,
        "lines": receipt.lines,
        "status": receipt.status.value,
        "replaced_by": _link(session, receipt.replaced_by_id, base),
        "replaces": _link(session, receipt.replaces_id, base),
        "error_notices": [_notice_summary(n, base) for n in error_notices_for(session, receipt.id)],
        "signer": receipt.signer_subject,
    }


def notice_json(session: Session, notice: ErrorNotice, base_url: str) -> dict[str, Any]:
    base = base_url.rstrip("/")
    ids = session.scalars(
        select(ErrorNoticeItem.receipt_id)
        .where(ErrorNoticeItem.notice_id == notice.id)
        .order_by(ErrorNoticeItem.position)
    )
    return {
        **_notice_summary(notice, base),
        "object": "error_notice",
        "reason": notice.reason,
        "actor": notice.actor,
        "status_changed_at": iso(notice.status_changed_at),
        "message_id": notice.message_id,
        "receipts": [_link(session, receipt_id, base) for receipt_id in ids],
    }
