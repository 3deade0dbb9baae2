"""E-mailing a receipt to its payer, with the signed XML (legal original) and the PDF attached.

The e-mail is an outbox row written in the issuing transaction; a worker sends due rows over
SMTP and retries on a schedule. Sending and recording cannot be one atomic step, so a crash in
between may resend: every attempt carries the same Message-ID, which mail clients de-duplicate.
"""

from __future__ import annotations

import smtplib
import ssl
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.models import Receipt, ReceiptEmail
from settings.config import Settings
from settings.db import utcnow

__all__ = ["RETRY_MINUTES", "build_message", "enqueue_email", "send_due_emails"]

RETRY_MINUTES = (1, 5, 30, 120, 720)
"""After these waits a delivery is given up (``failed``) and shows in the operator's list."""


def enqueue_email(session: Session, receipt: Receipt, address: str | None) -> ReceiptEmail | None:
    if not address or "@" not in address:
        return None
    existing = session.scalar(select(ReceiptEmail).where(ReceiptEmail.receipt_id == receipt.id))
    if existing is not None:
        return existing
    row = ReceiptEmail(
        id=uuid.uuid4().hex,
        receipt_id=receipt.id,
        to_address=address.strip(),
        state="pending",
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def build_message(
    row: ReceiptEmail, receipt: Receipt, pdf: bytes | None, *, sender: str, verify_url: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = (
        f"Biên lai điện tử {receipt.template}-{receipt.series} số {receipt.number} "
        f"/ E-receipt no. {receipt.number}"
    )
    msg["From"] = sender
    msg["To"] = row.to_address
    msg["Date"] = format_datetime(receipt.issued_at)
    msg["Message-ID"] = make_msgid(idstring=row.id, domain=sender.rsplit("@", maxsplit=1)[-1])
    amount = f"{receipt.total:,}".replace(",", ".")
    msg.set_content(
        f"Kính gửi {receipt.payer_name},\n\n"
        f"Đơn vị thu đã phát hành biên lai điện tử số {receipt.number}, ký hiệu "
        f"{receipt.series}, mẫu {receipt.template}, số tiền {amount} đồng.\n"
        "Tệp XML đính kèm là bản gốc có chữ ký số; tệp PDF là bản thể hiện để in.\n"
        f"Tra cứu và kiểm tra chữ ký: {verify_url}\n\n"
        f"Dear {receipt.payer_name}, your e-receipt no. {receipt.number} ({amount} VND) is "
        "attached: the XML is the signed legal original, the PDF a printable copy.\n"
    )
    name = f"bien-lai-{receipt.template}-{receipt.series}-{receipt.number:08d}"
    msg.add_attachment(receipt.xml, maintype="application", subtype="xml", filename=f"{name}.xml")
    if pdf is not None:
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{name}.pdf")
    return msg


def _smtp_send(settings: Settings, msg: EmailMessage) -> None:
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=20) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user and settings.smtp_password is not None:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        smtp.send_message(msg)


def send_due_emails(
    session_factory: Callable[[], Session],
    settings: Settings,
    *,
    pdf_for: Callable[[Session, Receipt], bytes | None],
    now: datetime | None = None,
    limit: int = 50,
) -> tuple[int, int]:
    """Sends due e-mails, each in its own transaction; returns (sent, failed attempts)."""
    if not settings.smtp_host:
        return 0, 0
    now = now or utcnow()
    with session_factory() as session:
        due = list(
            session.scalars(
                select(ReceiptEmail.id)
                .where(ReceiptEmail.state == "pending", ReceiptEmail.next_attempt_at <= now)
                .order_by(ReceiptEmail.next_attempt_at)
                .limit(limit)
            )
        )
    sent = failed = 0
    for row_id in due:
        with session_factory() as session, session.begin():
            row = session.get(ReceiptEmail, row_id, with_for_update={"skip_locked": True})
            if row is None or row.state != "pending":
                continue  # another worker has it, or sent it meanwhile
            receipt = session.get(Receipt, row.receipt_id)
            assert receipt is not None
            row.attempts += 1
            try:
                msg = build_message(
                    row,
                    receipt,
                    pdf_for(session, receipt),
                    sender=settings.smtp_from,
                    verify_url=f"{settings.public_base_url.rstrip('/')}/r/{receipt.verify_code}",
                )
                _smtp_send(settings, msg)
            except (OSError, smtplib.SMTPException) as exc:
                failed += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:500]
                if row.attempts > len(RETRY_MINUTES):
                    row.state = "failed"
                else:
                    row.next_attempt_at = now + timedelta(minutes=RETRY_MINUTES[row.attempts - 1])
                continue
            row.state, row.sent_at, row.last_error = "sent", now, None
            sent += 1
    return sent, failed
