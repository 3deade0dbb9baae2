"""PAdES-B-B signatures with a visible Vietnamese stamp, checked by poppler's pdfsig and by us."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from datetime import datetime
from io import BytesIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from infra.clock import now
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter
from signing_softhsm import PIN_ENV, SoftHsm, provision
from signing_testdata import ORG_NAME, ORG_TAX_CODE, CertFactory, Pki

from signing.errors import SigningError
from signing.keys import KeySource, load_key_source
from signing.pades import (
    DEFAULT_BYTES_RESERVED,
    KeySourceSigner,
    async_sign_pdf,
    async_verify_pdf,
    sign_pdf,
    verify_pdf,
)
from signing.pkcs11 import close_pkcs11_sessions
from signing.xmldsig import VIETNAM_TZ

PDFSIG = shutil.which("pdfsig")
PDFTOTEXT = shutil.which("pdftotext")
PDFFONTS = shutil.which("pdffonts")
VALID_LINE = "Signature Validation: Signature is Valid."
needs_pdfsig = pytest.mark.skipif(
    PDFSIG is None, reason="pdfsig not installed (apt-get install poppler-utils)"
)


def small_pdf(pages: int = 1) -> bytes:
    """An A5 PDF written by pyHanko's own writer (no extra dependency)."""
    writer = PdfFileWriter()
    font = writer.add_object(
        generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Font"),
                pdf_name("/Subtype"): pdf_name("/Type1"),
                pdf_name("/BaseFont"): pdf_name("/Helvetica"),
            }
        )
    )
    for number in range(pages):
        content = writer.add_object(
            generic.StreamObject(
                stream_data=f"BT /F1 14 Tf 50 500 Td (Bien lai thu phi {number + 1}) Tj ET".encode()
            )
        )
        page = generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Page"),
                pdf_name("/MediaBox"): generic.ArrayObject(
                    [generic.NumberObject(v) for v in (0, 0, 420, 595)]
                ),
                pdf_name("/Contents"): content,
                pdf_name("/Resources"): generic.DictionaryObject(
                    {pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})}
                ),
            }
        )
        writer.insert_page(page)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def unsigned() -> bytes:
    return small_pdf()


@pytest.fixture(scope="module")
def at(pki: Pki) -> datetime:
    """Signing moment after the test PKI exists; whole seconds, as ``/M`` stores them."""
    return now().replace(microsecond=0)


@pytest.fixture
def signed(unsigned: bytes, key_source: KeySource, at: datetime) -> bytes:
    return sign_pdf(unsigned, key_source, signing_time=at)


def pdfsig(data: bytes, tmp_path: Path) -> str:
    assert PDFSIG is not None
    path = tmp_path / "document.pdf"
    path.write_bytes(data)
    result = subprocess.run(
        [PDFSIG, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout + result.stderr


def pdf_tool(tool: str | None, data: bytes, tmp_path: Path) -> str:
    assert tool is not None
    path = tmp_path / "document.pdf"
    path.write_bytes(data)
    return subprocess.run(
        [tool, str(path), *(["-"] if tool == PDFTOTEXT else [])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


# --- signing -------------------------------------------------------------------------------


@needs_pdfsig
def test_pdfsig_reports_a_valid_pades_signature(signed: bytes, tmp_path: Path) -> None:
    report = pdfsig(signed, tmp_path)
    assert VALID_LINE in report
    assert "Signature Type: ETSI.CAdES.detached" in report
    assert "Signature Field Name: Signature1" in report
    assert f"Signer Certificate Common Name: {ORG_NAME}" in report
    assert "Total document signed" in report


def test_our_verifier_accepts_it(signed: bytes, pki: Pki, at: datetime) -> None:
    status = verify_pdf(signed, trusted_ca=pki.ca_cert)
    assert status.valid, status.problems
    assert status.intact and status.covers_whole_document
    assert status.trusted_chain is True
    assert status.signer_common_name == ORG_NAME
    assert status.tax_code == ORG_TAX_CODE
    assert status.development is True
    assert status.field_name == "Signature1"
    assert status.signing_time == at
    assert status.certificate == pki.org_cert
    without_ca = verify_pdf(signed)
    assert without_ca.valid and without_ca.trusted_chain is None


def test_verifying_without_a_ca_logs_no_path_errors(
    signed: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert verify_pdf(signed).valid
    assert not caplog.records


@pytest.mark.skipif(PDFTOTEXT is None or PDFFONTS is None, reason="poppler-utils not installed")
def test_the_visible_stamp_shows_vietnamese_text_in_the_embedded_font(
    signed: bytes, at: datetime, tmp_path: Path
) -> None:
    text = pdf_tool(PDFTOTEXT, signed, tmp_path)
    assert f"Ký bởi: {ORG_NAME}" in text
    local = at.astimezone(VIETNAM_TZ)
    assert f"Ngày ký: {local:%d/%m/%Y %H:%M:%S}" in text
    fonts = pdf_tool(PDFFONTS, signed, tmp_path)
    dejavu = [line for line in fonts.splitlines() if "DejaVuSans" in line]
    assert dejavu and all(" yes " in line for line in dejavu)  # embedded (and subset)


@pytest.mark.skipif(PDFTOTEXT is None, reason="poppler-utils not installed")
def test_custom_stamp_lines_box_and_page(
    key_source: KeySource, at: datetime, tmp_path: Path
) -> None:
    data = sign_pdf(
        small_pdf(pages=2),
        key_source,
        field_name="NguoiNop",
        box=(20, 30, 220, 80),
        page=1,
        stamp_lines=("Đã thu 100% lệ phí", "Người thu: Trần Thị Bích Ngọc"),
        signing_time=at,
    )
    text = pdf_tool(PDFTOTEXT, data, tmp_path)
    assert "Đã thu 100% lệ phí" in text and "Người thu: Trần Thị Bích Ngọc" in text
    reader = PdfFileReader(BytesIO(data))
    (embedded,) = reader.embedded_signatures
    assert embedded.field_name == "NguoiNop"
    widget = embedded.sig_field
    assert [float(v) for v in widget["/Rect"]] == [20, 30, 220, 80]
    assert widget["/P"].get_object() == reader.root["/Pages"]["/Kids"][1].get_object()
    assert verify_pdf(data, field_name="NguoiNop").valid


def test_decomposed_input_is_normalised(
    key_source: KeySource, unsigned: bytes, at: datetime
) -> None:
    # "Ký" typed with a combining acute accent: the stamp font has no mark positioning.
    data = sign_pdf(unsigned, key_source, stamp_lines=("Ky\u0301 bởi",), signing_time=at)
    assert verify_pdf(data).valid


@needs_pdfsig
def test_signing_with_a_pkcs11_key(
    pki: Pki,
    tmp_path_factory: pytest.TempPathFactory,
    unsigned: bytes,
    at: datetime,
    tmp_path: Path,
) -> None:
    hsm: SoftHsm = provision(pki, tmp_path_factory)
    try:
        token_key = load_key_source(hsm.reference(), environ={PIN_ENV: hsm.pin})
        data = sign_pdf(unsigned, token_key, signing_time=at)
        assert VALID_LINE in pdfsig(data, tmp_path)
        status = verify_pdf(data, trusted_ca=pki.ca_cert)
        assert status.valid, status.problems
        assert status.tax_code == ORG_TAX_CODE
    finally:
        close_pkcs11_sessions()


def test_a_long_certificate_chain_gets_more_room(
    key_source: KeySource, make_cert: CertFactory, unsigned: bytes, at: datetime
) -> None:
    class LongChain(KeySource):
        chain_certs = tuple(make_cert() for _ in range(6))

        @property
        def certificate(self) -> x509.Certificate:
            return key_source.certificate

        @property
        def chain(self) -> tuple[x509.Certificate, ...]:
            return (*key_source.chain, *self.chain_certs)

        @property
        def private_key(self) -> rsa.RSAPrivateKey:
            return key_source.private_key

    long_chain = LongChain()
    assert KeySourceSigner(long_chain).reserved_size(DEFAULT_BYTES_RESERVED) > 8192
    assert KeySourceSigner(key_source).reserved_size(DEFAULT_BYTES_RESERVED) == 8192
    assert verify_pdf(sign_pdf(unsigned, long_chain, signing_time=at)).valid


def test_signed_attributes_from_the_template_are_pyhankos_bytes(key_source: KeySource) -> None:
    """The DER template (digest spliced into a cached encoding) must give exactly the bytes
    pyHanko builds itself, for any digest, and leave other requests to pyHanko."""
    from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, Signer

    signer = KeySourceSigner(key_source)

    async def both(digest: bytes, **kwargs: object) -> tuple[bytes, bytes]:
        ours = await signer.signed_attrs(digest, "sha256", use_pades=True, **kwargs)
        theirs = await Signer.signed_attrs(signer, digest, "sha256", use_pades=True, **kwargs)
        return ours.dump(), theirs.dump()

    digests = [bytes(32), b"\xff" * 32, *(os.urandom(32) for _ in range(50))]
    for digest in digests:
        ours, theirs = asyncio.run(both(digest))
        assert ours == theirs
        assert digest in ours
    settings = PdfCMSSignedAttributes(signing_time=now())
    ours, theirs = asyncio.run(both(os.urandom(32), attr_settings=settings))
    assert ours == theirs  # PAdES ignores signingTime: same template
    assert len(signer._attr_templates) == 1

    async def not_pades() -> tuple[bytes, bytes]:
        digest = os.urandom(32)
        ours = await signer.signed_attrs(digest, "sha256", attr_settings=settings)
        theirs = await Signer.signed_attrs(signer, digest, "sha256", attr_settings=settings)
        return ours.dump(), theirs.dump()

    ours, theirs = asyncio.run(not_pades())
    assert ours == theirs  # CMS (not PAdES) carries signingTime: built by pyHanko itself
    assert len(signer._attr_templates) == 1


def test_async_variant_runs_inside_an_event_loop(
    key_source: KeySource, unsigned: bytes, at: datetime
) -> None:
    async def main() -> bytes:
        return await async_sign_pdf(unsigned, key_source, signing_time=at)

    assert verify_pdf(asyncio.run(main())).valid


def test_sync_functions_work_inside_a_running_event_loop(
    key_source: KeySource, unsigned: bytes, at: datetime
) -> None:
    """E.g. a sync helper called from a FastAPI ``async def`` endpoint."""

    async def main() -> bool:
        data = sign_pdf(unsigned, key_source, signing_time=at)
        return verify_pdf(data).valid and (await async_verify_pdf(data)).valid

    assert asyncio.run(main())


def test_two_signatures_need_a_field_name(
    signed: bytes, key_source: KeySource, at: datetime
) -> None:
    twice = sign_pdf(
        signed, key_source, field_name="Signature2", box=(20, 20, 200, 60), signing_time=at
    )
    status = verify_pdf(twice)
    assert not status.valid and "found 2 signatures" in status.problems[0]
    first = verify_pdf(twice, field_name="Signature1")
    assert first.valid, first.problems
    assert not first.covers_whole_document  # the second signature came after it
    assert verify_pdf(twice, field_name="Signature2").covers_whole_document


# --- signing errors ------------------------------------------------------------------------


def test_signing_an_already_signed_field_fails(
    signed: bytes, key_source: KeySource, at: datetime
) -> None:
    with pytest.raises(SigningError) as excinfo:
        sign_pdf(signed, key_source, signing_time=at)
    assert excinfo.value.code == "pdf_sign_failed"


def test_signing_garbage_fails(key_source: KeySource, at: datetime) -> None:
    with pytest.raises(SigningError) as excinfo:
        sign_pdf(b"%PDF-1.7 not really", key_source, signing_time=at)
    assert excinfo.value.code == "pdf_unreadable"


def test_page_out_of_range(unsigned: bytes, key_source: KeySource, at: datetime) -> None:
    with pytest.raises(SigningError) as excinfo:
        sign_pdf(unsigned, key_source, page=5, signing_time=at)
    assert excinfo.value.code == "pdf_page_out_of_range"


def test_signing_time_must_be_aware(unsigned: bytes, key_source: KeySource) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_pdf(unsigned, key_source, signing_time=now().replace(tzinfo=None))


# --- verification failures -----------------------------------------------------------------


@needs_pdfsig
def test_a_tampered_byte_invalidates_the_signature(signed: bytes, tmp_path: Path) -> None:
    position = signed.index(b"Bien lai thu phi")
    tampered = signed[:position] + b"M" + signed[position + 1 :]
    status = verify_pdf(tampered)
    assert not status.valid and not status.intact
    assert any("changed after signing" in problem for problem in status.problems)
    assert VALID_LINE not in pdfsig(tampered, tmp_path)


def test_unsigned_pdf(unsigned: bytes) -> None:
    status = verify_pdf(unsigned)
    assert not status.valid
    assert status.problems == ("no signature",)


def test_another_ca_is_not_trusted(signed: bytes, other_pki: Pki) -> None:
    status = verify_pdf(signed, trusted_ca=other_pki.ca_cert)
    assert not status.valid and status.intact
    assert status.trusted_chain is False
    assert "the certificate does not chain to the trusted CA" in status.problems


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"%PDF-1.7\n%%EOF", b"\x00" * 1000],
    ids=["empty", "text", "header-only", "zeros"],
)
def test_garbage_never_raises(data: bytes) -> None:
    status = verify_pdf(data)
    assert not status.valid and status.problems


def test_truncated_and_corrupted_signed_pdfs_never_raise(signed: bytes) -> None:
    for broken in (
        signed[: len(signed) // 2],
        signed[:-40],
        signed.replace(b"/ByteRange", b"/ByteRangX"),
        signed.replace(b"/Contents <", b"/Contents <ff"),
    ):
        status = verify_pdf(broken)
        assert not status.valid and status.problems


def test_too_large_is_refused_before_parsing(signed: bytes) -> None:
    status = verify_pdf(signed, max_bytes=100)
    assert not status.valid and "more than the 100 allowed" in status.problems[0]
