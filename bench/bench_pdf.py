"""Signed PDF display copies per second in one process (issue 3 goal ≥ 100/s), beside the
PAdES signature of a fixed tiny PDF with a TrueType stamp, measured in the same run.

The baseline goes through pyHanko with our signer (key kept loaded, certificate attributes
cached), not pyHanko's stock ``SimpleSigner``: the stock signer re-parses the private key and
makes a dry-run signature to size the placeholder on every call (~13/s here), so a ratio
against it would mostly measure that."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from lxml import etree
from reportlab.pdfgen import canvas

from bench.bench_signing import document
from bench.common import Table, rate
from einvoice.models import Receipt
from einvoice.pdf import render_signed_pdf
from einvoice.pdf_render import SIGNATURE_BOX, render_receipt_pdf
from einvoice.receipt_xml import build_receipt_xml, receipt_from_element, signed_id_for
from signing.certs import create_dev_ca, create_dev_org_certificate, write_pkcs12
from signing.keys import Pkcs12KeySource
from signing.pades import sign_pdf
from signing.xmldsig_fast import sign_enveloped_fast

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def run(table: Table) -> None:
    ca_key, ca = create_dev_ca("bench CA")
    key, cert = create_dev_org_certificate(ca_key, ca, "Ủy ban nhân dân huyện Sơn Hà", "0108424452")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "org.p12"
        write_pkcs12(path, key, cert, (ca,), None)
        source = Pkcs12KeySource.load(path, None)
    doc = document(1)
    signed = sign_enveloped_fast(
        build_receipt_xml(doc),
        signed_id=signed_id_for(doc),
        key=source,
        signing_time=doc.issued_at,
        tz=ZONE,
    )
    parsed = receipt_from_element(etree.fromstring(etree.tostring(signed)))
    buf = BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(100, 100, "x")
    c.save()
    tiny = buf.getvalue()
    now = datetime.now(UTC)

    def bare() -> None:
        sign_pdf(tiny, source, signing_time=now, stamp_lines=("x",))

    def render_only() -> None:
        render_receipt_pdf(parsed, verify_url=doc.verify_url or "", signer_name="UBND")

    receipt = Receipt(xml=etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))
    rendered_pdf = render_receipt_pdf(parsed, verify_url=doc.verify_url or "", signer_name="UBND")

    def sign_only() -> None:
        sign_pdf(
            rendered_pdf, source, box=SIGNATURE_BOX, signing_time=now, tz=ZONE, draw_stamp=False
        )

    def full() -> None:
        render_signed_pdf(
            receipt, source, verify_url=doc.verify_url or "", status_note=None, zone=ZONE
        )

    base = rate(bare, max_n=300, max_s=4, warmup=3)
    rendered = rate(render_only, max_n=500, max_s=3, warmup=3)
    signing = rate(sign_only, max_n=500, max_s=4, warmup=3)
    ours = rate(full, max_n=300, max_s=5, warmup=3)
    table.add(
        "PAdES signing of a rendered receipt PDF/s (visible box), one process",
        f"{signing:,.0f}/s",
        f"{base:,.0f}/s pyHanko via our signer, tiny PDF, TrueType stamp",
        f"{signing / base:.2f}",
        "≥ 100/s",
    )
    table.add("  whole display copy/s: parse XML + render A5 + PAdES", f"{ours:,.0f}/s", "", "", "")
    table.add("  render only (reportlab, embedded font, QR)", f"{rendered:,.0f}/s", "", "", "")
