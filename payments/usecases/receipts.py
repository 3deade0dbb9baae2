"""Receipt actions after issuance: replace, notify an error (04/SS-CTĐT), render the display copy.

The JSON API, the counter and the citizen portal used to each hold a copy of these (the
line-correction arithmetic, the walk from a receipt back to its order, the key loading);
"replace a receipt" is now :func:`replace`, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.document import FeeKind, Payer, ReceiptLine
from einvoice.errors import InvalidLifecycleInput, ReceiptNotFound
from einvoice.lifecycle import (
    ReceiptCorrection,
    create_error_notice,
    original_content,
    replace_receipt,
)
from einvoice.models import ErrorNotice, Receipt
from einvoice.pdf import receipt_pdf
from einvoice.receipt_xml import ParsedLine
from payments.callbacks import enqueue_event
from payments.models import ApiClient, PaymentOrder
from payments.notify import notify_receipt
from payments.presenters import receipt_json
from payments.signer import signer_for
from payments.tariffs import line_input_from_json, price, tariff_from_json
from settings.config import Settings

__all__ = [
    "CHAIN_LIMIT",
    "KEEP",
    "LineCorrection",
    "ReplaceReceipt",
    "SendErrorNotice",
    "agency_receipt",
    "corrected_lines",
    "display_copy",
    "display_copy_name",
    "order_of_receipt",
    "order_repricer",
    "receipt_chain",
    "replace",
    "send_error_notice",
]

CHAIN_LIMIT = 50
"""A receipt is replaced at most a handful of times; the walk stops here whatever the data."""


class _Keep:
    """Marks a field the correction does not mention (``None`` is a value: "clear it")."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: _Keep = _Keep()


@dataclass(frozen=True)
class LineCorrection:
    """One fee line of the replacement; what is not given is taken from the original line.

    ``amount`` not given: the original's amount when quantity and unit price are unchanged,
    else quantity × unit price.
    """

    fee_code: str
    name: str | None = None
    kind: str | None = None
    quantity: int | None = None
    unit_price: int | None = None
    amount: int | None = None
    unit: str | _Keep | None = KEEP
    exemption: str | _Keep | None = KEEP


@dataclass(frozen=True)
class ReplaceReceipt:
    """Replace ``receipt_id`` (Circular 91/2026 art. 20). ``payer`` holds only the fields
    given (``name``, ``address``, ``id_number``); ``lines`` is the whole new list, or ``None``
    to keep the original's."""

    receipt_id: str
    agency_id: str
    reason: str
    actor: str
    payer: Mapping[str, str | None] | None = None
    lines: tuple[LineCorrection, ...] | None = None
    client: ApiClient | None = field(default=None, compare=False)
    """The one-stop client asking, told ``receipt.replaced`` when no order names the receipt."""


@dataclass(frozen=True)
class SendErrorNotice:
    receipt_ids: tuple[str, ...]
    agency_id: str
    reason: str
    actor: str
    tax_authority_name: str
    tax_authority_code: str | None = None
    place: str | None = None
    source_key: str | None = None


def agency_receipt(session: Session, receipt_id: str, agency_id: str | None) -> Receipt:
    """The receipt if it is ``agency_id``'s (any agency's when ``None``); 404 otherwise."""
    receipt: Receipt | None = session.get(Receipt, receipt_id)
    if receipt is None or (agency_id is not None and receipt.agency_id != agency_id):
        raise ReceiptNotFound(f"no receipt {receipt_id!r}")
    return receipt


def receipt_chain(session: Session, first_id: str | None) -> list[Receipt]:
    """A receipt followed by its replacements, oldest first."""
    chain: list[Receipt] = []
    next_id = first_id
    while next_id is not None and len(chain) < CHAIN_LIMIT:
        receipt = session.get(Receipt, next_id)
        if receipt is None or receipt in chain:
            break
        chain.append(receipt)
        next_id = receipt.replaced_by_id
    return chain


def order_of_receipt(session: Session, receipt: Receipt) -> PaymentOrder | None:
    """The order a receipt belongs to: the order keeps pointing at the first of the chain."""
    root, seen = receipt, {receipt.id}
    while root.replaces_id is not None and root.replaces_id not in seen and len(seen) < CHAIN_LIMIT:
        previous = session.get(Receipt, root.replaces_id)
        if previous is None:
            break
        root = previous
        seen.add(root.id)
    return session.scalar(select(PaymentOrder).where(PaymentOrder.receipt_id == root.id))


Repricer = Callable[[str, int], tuple[int, str | None] | None]
"""(fee code, new quantity) → (amount, breakdown) by the tariff the order froze, or ``None``."""


def corrected_lines(
    original: tuple[ParsedLine, ...],
    corrections: tuple[LineCorrection, ...],
    reprice: Repricer | None = None,
) -> tuple[ReceiptLine, ...]:
    """The replacement's lines: each correction completed from the original line of its code.

    An amount not given is the original's when quantity and unit price are unchanged; a new
    quantity is priced by the tariff the order was priced with (``reprice``: tiers, caps and
    reductions apply as they did), and only a line without one falls back to quantity × unit
    price.
    """
    by_code = {line.fee_code: line for line in original}
    result: list[ReceiptLine] = []
    for given in corrections:
        base = by_code.get(given.fee_code)
        name = given.name or (base.name if base else None)
        kind = given.kind or (base.kind.value if base else None)
        unit_price = given.unit_price
        if unit_price is None and base is not None:
            unit_price = base.unit_price
        if name is None or kind is None or unit_price is None:
            raise InvalidLifecycleInput(
                f"line {given.fee_code!r} is not on the original receipt: "
                "give its name, kind and unit_price",
                extra={"field": "lines"},
            )
        quantity = given.quantity or (base.quantity if base else 1)
        breakdown = base.breakdown if base else None
        unchanged = base is not None and (quantity, unit_price) == (base.quantity, base.unit_price)
        if given.amount is not None:
            amount = given.amount
            if not unchanged or amount != (base.amount if base else None):
                breakdown = None  # an amount typed by hand: no computation to show
        elif unchanged and base is not None:
            amount = base.amount
        else:
            repriced = (
                reprice(given.fee_code, quantity)
                if reprice is not None and (base is None or unit_price == base.unit_price)
                else None
            )
            if repriced is not None:
                amount, breakdown = repriced
            else:
                amount, breakdown = quantity * unit_price, None
        unit = (base.unit if base else None) if isinstance(given.unit, _Keep) else given.unit
        exemption = (
            (base.exemption if base else None)
            if isinstance(given.exemption, _Keep)
            else given.exemption
        )
        result.append(
            ReceiptLine(
                fee_code=given.fee_code,
                name=name,
                kind=FeeKind(kind),
                quantity=quantity,
                unit_price=unit_price,
                amount=amount,
                unit=unit,
                exemption=exemption,
                breakdown=breakdown,
            )
        )
    return tuple(result)


def order_repricer(order: PaymentOrder | None) -> Repricer | None:
    """Prices a new quantity of an order's line by the tariff and input that line froze."""
    if order is None:
        return None
    frozen = {line.fee_code: line for line in order.lines}

    def reprice(fee_code: str, quantity: int) -> tuple[int, str | None] | None:
        line = frozen.get(fee_code)
        record = line.pricing if line is not None else None
        if line is None or not record or "tariff" not in record or "input" not in record:
            return None
        given = line_input_from_json(record["input"])
        if given.originals:  # several originals: a single new page count does not say which
            return None
        if line.exemption_category:
            return 0, None
        priced = price(tariff_from_json(record["tariff"]), dc_replace(given, quantity=quantity))
        return priced.amount, (None if priced.simple else priced.text_vi)

    return reprice


def replace(session: Session, settings: Settings, command: ReplaceReceipt) -> Receipt:
    """Issues the replacement (next number of the current series, original stays signed) and
    queues ``receipt.replaced`` for the one-stop system, in the caller's transaction."""
    original = agency_receipt(session, command.receipt_id, command.agency_id)
    signer = signer_for(session, command.agency_id, settings)
    parsed = original_content(original)
    payer: Payer | None = None
    if command.payer is not None:
        given = command.payer
        payer = Payer(
            name=given.get("name") or parsed.payer_name,
            address=given.get("address", parsed.payer_address),
            id_number=given.get("id_number", parsed.payer_id_number),
        )
    lines = (
        corrected_lines(
            parsed.lines, command.lines, order_repricer(order_of_receipt(session, original))
        )
        if command.lines is not None
        else None
    )
    replacement = replace_receipt(
        session,
        original.id,
        ReceiptCorrection(payer=payer, lines=lines),
        command.reason,
        command.actor,
        signer.key,
        collector=signer.collector,
        series=signer.series,
        verify_url_base=signer.verify_url_base,
        allow_development_certificate=signer.allow_development_certificate,
        agency_id=command.agency_id,
    )
    _notify_replaced(session, command.client, replacement, settings.public_base_url)
    return replacement


def _notify_replaced(
    session: Session, client: ApiClient | None, replacement: Receipt, base_url: str
) -> None:
    """The order's callback URL, as for ``receipt.issued``; failing an order, the client's."""
    order = order_of_receipt(session, replacement)
    if order is not None:
        notify_receipt(order, replacement, "receipt.replaced")
        return
    if client is not None:
        enqueue_event(
            session,
            client_id=client.id,
            url=client.callback_url,
            event="receipt.replaced",
            data=receipt_json(session, replacement, base_url),
            occurred_at=replacement.issued_at,
        )


def send_error_notice(
    session: Session, settings: Settings, command: SendErrorNotice
) -> ErrorNotice:
    """Signs and queues a 04/SS-CTĐT (art. 20: name/address/amount-in-words errors, no reissue)."""
    signer = signer_for(session, command.agency_id, settings)
    return create_error_notice(
        session,
        list(command.receipt_ids),
        command.reason,
        command.actor,
        signer.key,
        collector=signer.collector,
        tax_authority_name=command.tax_authority_name,
        tax_authority_code=command.tax_authority_code,
        place=command.place,
        agency_id=command.agency_id,
        source_key=command.source_key,
        allow_development_certificate=signer.allow_development_certificate,
    )


def display_copy(session: Session, settings: Settings, receipt: Receipt) -> bytes:
    """The signed PDF display copy: rendered on first request, then cached by ``receipt_pdf``."""
    signer = signer_for(session, receipt.agency_id, settings)
    return receipt_pdf(
        session, receipt, signer.key, base_url=settings.public_base_url, zone=signer.zone
    )


def display_copy_name(receipt: Receipt, extension: str) -> str:
    return f"bien-lai-{receipt.template}-{receipt.series}-{receipt.number:08d}.{extension}"
