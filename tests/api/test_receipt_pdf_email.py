"""The signed PDF display copy (pdfsig accepts it, its QR opens /r/{code}) and e-mail delivery."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from api_flow import ORDER, create, sepay
from fastapi.testclient import TestClient
from infra.ports import free_port

from einvoice.models import ReceiptEmail
from payments.tasks import send_receipt_emails
from settings.config import Settings, get_settings
from settings.db import session_scope


def test_pdf_is_signed_cached_and_its_qr_opens_the_verify_page(
    client: TestClient, auth: dict[str, str], tmp_path: Path
) -> None:
    order = create(client, auth, "pdf-1").json()
    sepay(client, 5000, order["reference"])
    receipt = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()["receipt"]
    res = client.get(receipt["pdf_url"].removeprefix("http://testserver"))
    assert res.status_code == 200 and res.headers["content-type"] == "application/pdf"
    again = client.get(receipt["pdf_url"].removeprefix("http://testserver"))
    assert again.content == res.content  # rendered once, then cached
    path = tmp_path / "receipt.pdf"
    path.write_bytes(res.content)
    if shutil.which("pdfsig"):
        out = subprocess.run(
            ["pdfsig", str(path)], capture_output=True, text=True, check=False
        ).stdout
        assert "Signature is Valid" in out, out
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=False
        ).stdout
        assert "BIÊN LAI THU PHÍ, LỆ PHÍ" in text and "Nguyễn Văn An" in text
    if shutil.which("pdftoppm") and shutil.which("zbarimg"):
        subprocess.run(
            ["pdftoppm", "-png", "-r", "200", "-f", "1", "-l", "1", str(path), str(tmp_path / "p")],
            check=True,
        )
        png = next(tmp_path.glob("p*.png"))
        decoded = subprocess.run(
            ["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, check=False
        ).stdout
        assert receipt["verify_url"] in decoded
        page = client.get(receipt["verify_url"].removeprefix("http://testserver"))
        assert page.status_code == 200 and receipt["series"] in page.text
    verify = client.post(
        "/api/v1/verify", files={"file": ("r.pdf", res.content, "application/pdf")}
    )
    assert verify.status_code == 200 and verify.json()["valid"] is True


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[_Inbox]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("MOTCUA_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MOTCUA_SMTP_PORT", str(port))
    monkeypatch.setenv("MOTCUA_SMTP_STARTTLS", "false")
    get_settings.cache_clear()
    try:
        yield inbox
    finally:
        controller.stop()


def test_receipt_is_emailed_once_with_xml_and_pdf(
    smtp: _Inbox, client: TestClient, auth: dict[str, str]
) -> None:
    client.app.state.settings = get_settings()  # type: ignore[attr-defined]
    order = create(
        client, auth, "mail-1", {**ORDER, "payer": {**ORDER["payer"], "email": "an@example.vn"}}
    ).json()
    sepay(client, 5000, order["reference"])
    assert send_receipt_emails.apply().get() == {"sent": 1, "failed": 0}
    assert send_receipt_emails.apply().get() == {"sent": 0, "failed": 0}  # never twice
    [raw] = smtp.messages
    msg = message_from_bytes(raw)
    assert msg["To"] == "an@example.vn"
    assert "Biên lai điện tử" in str(make_header(decode_header(str(msg["Subject"]))))
    names = sorted(part.get_filename() for part in msg.walk() if part.get_filename())
    assert names[0].endswith(".pdf") and names[1].endswith(".xml")
    with session_scope() as s:
        [row] = s.query(ReceiptEmail).all()
        assert row.state == "sent" and row.attempts == 1
