"""Sending the queued 04/SS-CTĐT error notices and the 01/ĐKTĐ-CTĐT registration.

A notice gets its message id (``MTDiep``) and is marked ``sent`` *before* the request goes
out, so a crash in between leaves a notice whose outcome we ask about, never one we might send
twice under two ids. The envelope is rebuilt byte-for-byte from the stored signed notice, in the
notice's own mapping: one queued in 0.1 before the upgrade goes out as a 0.1 message (300), a
0.2 one as 304 (:func:`einvoice.tax_authority.messages.wrap_document`).

The registration is built in the current mapping with the settings' ``PBan``: the ``LHSDung``
flags from the agency's receipt templates, ``DSCTSSDung`` from its signing certificate itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.lifecycle import mark_error_notice, queued_error_notices
from einvoice.models import ErrorNotice, NoticeStatus
from einvoice.official import FormatChoices
from einvoice.tax_authority import (
    Ack,
    MessageType,
    Outcome,
    RegisteredCertificate,
    TaxAuthorityClient,
    TaxAuthorityError,
    build_registration,
    wrap_document,
)
from einvoice.tax_authority.formats import current
from einvoice.tax_authority.messages import new_message_id
from payments.models import Agency
from settings.config import Settings
from settings.db import utcnow
from signing.keys import KeySource

__all__ = ["register_agency", "send_error_notices"]

ACTOR = "tax-authority client"


def _envelope(notice: ErrorNotice, settings: Settings, message_id: str) -> bytes:
    return wrap_document(
        MessageType.ERROR_NOTICE,
        notice.xml,
        sender_code=settings.tax_sender_code,
        receiver_code=settings.tax_receiver_code,
        tax_code=notice.collector_tax_code,
        message_id=message_id,
    )


def _settle(session: Session, notice_id: str, ack: Ack, message_id: str) -> None:
    if ack.outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE_ACCEPTED):
        mark_error_notice(
            session, notice_id, NoticeStatus.ACKNOWLEDGED, actor=ACTOR, message_id=message_id
        )
    elif ack.outcome is Outcome.REJECTED:
        reasons = "; ".join(f"{r.code}: {r.description}" for r in ack.reasons)
        mark_error_notice(
            session,
            notice_id,
            NoticeStatus.REJECTED,
            actor=ACTOR,
            message_id=message_id,
            detail=reasons or "rejected",
        )


def send_error_notices(
    session_factory: Callable[[], Session],
    settings: Settings,
    client: TaxAuthorityClient,
    *,
    now: datetime | None = None,
) -> dict[str, int]:
    """Sends queued notices and resolves sent ones still awaiting an answer."""
    now = now or utcnow()
    counts = {"sent": 0, "acknowledged": 0, "rejected": 0, "unknown": 0}
    with session_factory() as session, session.begin():
        fresh = [
            (n.id, new_message_id(settings.tax_sender_code)) for n in queued_error_notices(session)
        ]
        for notice_id, message_id in fresh:
            mark_error_notice(
                session, notice_id, NoticeStatus.SENT, actor=ACTOR, message_id=message_id, now=now
            )
    with session_factory() as session:
        waiting = list(
            session.scalars(
                select(ErrorNotice).where(ErrorNotice.status == NoticeStatus.SENT.value)
            )
        )
        jobs = [
            (n.id, n.message_id or "", _envelope(n, settings, n.message_id or "")) for n in waiting
        ]
    fresh_ids = {nid for nid, _ in fresh}
    for notice_id, message_id, envelope in jobs:
        try:
            ack: Ack | None = None
            if notice_id not in fresh_ids:
                ack = client.query(message_id)  # ask before sending again
            if ack is None or ack.outcome is Outcome.UNKNOWN:
                ack = client.send(envelope)
                counts["sent"] += 1
        except TaxAuthorityError:
            counts["unknown"] += 1
            continue
        with session_factory() as session, session.begin():
            _settle(session, notice_id, ack, message_id)
        key = {
            "accepted": "acknowledged",
            "duplicate_accepted": "acknowledged",
            "rejected": "rejected",
        }.get(ack.outcome.value, "unknown")
        counts[key] += 1
    return counts


def register_agency(
    agency: Agency,
    key: KeySource,
    settings: Settings,
    client: TaxAuthorityClient,
    *,
    tax_authority_name: str,
    templates: tuple[str, ...],
) -> Ack:
    """01/ĐKTĐ-CTĐT: the receipt types, how data are sent, and the certificate in use."""
    message = build_registration(
        sender_code=settings.tax_sender_code,
        receiver_code=settings.tax_receiver_code,
        collector_name=agency.name,
        tax_code=agency.tax_code,
        tax_authority_name=tax_authority_name,
        templates=templates,
        certificates=[RegisteredCertificate.from_certificate(key.certificate)],
        key=key,
        now=utcnow(),
        allow_development_certificate=settings.dev_certificates_allowed,
        fmt=current(FormatChoices.from_settings(settings)),
    )
    return client.send(message)
