"""PAdES-B-B signatures on PDF display copies, made and checked with pyHanko.

The signed XML is the legal original (docs/domain.md, "Signatures"); the PDF is what people
open, and PDF viewers show "signature valid / signed by <CN> / signing date" only for a
signature embedded in the PDF itself. Hence a PAdES baseline signature (``ETSI.CAdES.detached``,
signing-certificate-v2 attribute, no timestamp) with a visible stamp reading e.g.
"Ký bởi: <CN>" / "Ngày ký: <local time>".

Choices, and why:

- The key is any :class:`~signing.keys.KeySource` (PKCS#12 or PKCS#11), wrapped by
  :class:`KeySourceSigner`, a pyHanko ``Signer`` that keeps the key loaded: pyHanko's
  ``SimpleSigner`` re-parses its key for every signature (docs/performance.md: 14/s → 118/s).
- ``bytes_reserved`` is always passed (8192 hex digits, raised automatically for long
  certificate chains) so pyHanko skips its dry-run signature, which would cost a second token
  operation per document.
- The stamp font is a Vietnamese subset of DejaVu Sans shipped in ``signing/fonts/``
  (licence and regeneration command next to it), embedded in each PDF: the base-14 PDF fonts
  have no Vietnamese letters, and a font taken from the host would make the output depend on
  the machine. pyHanko subsets the font again for every document, which costs ~0.4 s with
  the full 740 KB font and ~20 ms with the 67 KB subset. The stamp text is normalised to NFC
  because the subset has no mark-positioning tables.
- The signing time is an input, written to ``/M`` and to the stamp, so documents are
  reproducible in tests and agree with the XML's ``SigningTime``.

:func:`verify_pdf` never raises on bad input; it reports problems, as
:func:`signing.xmldsig.verify_enveloped` does.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import unicodedata
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from asn1crypto import algos as asn1_algos  # type: ignore[import-untyped]
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata, PdfSigner
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator import ValidationContext

from settings.clock import utcnow
from signing.certs import common_name_of, has_signing_key_usage, is_development, tax_code_of
from signing.errors import SigningError
from signing.keys import KeySource
from signing.xmldsig import VIETNAM_TZ

__all__ = [
    "DEFAULT_BYTES_RESERVED",
    "DEFAULT_MAX_BYTES",
    "FONT_FILE",
    "KeySourceSigner",
    "PdfSignatureStatus",
    "async_sign_pdf",
    "async_verify_pdf",
    "sign_pdf",
    "verify_pdf",
]

FONT_FILE: Final = Path(__file__).with_name("fonts") / "DejaVuSans-vi.ttf"
"""TrueType font of the visible stamp: a Vietnamese subset of DejaVu Sans (see
``signing/fonts/README.md``); the full font made signing seven times slower."""
DEFAULT_BYTES_RESERVED: Final = 8192
"""Hex digits reserved for the CMS object: room for a signature and a two-certificate chain."""
DEFAULT_MAX_BYTES: Final = 20 * 1024 * 1024
"""Receipt PDFs are tens of KB; anything this large is refused before parsing."""
STAMP_TIME_FORMAT: Final = "%d/%m/%Y %H:%M:%S"
"""Vietnamese day-first date and 24-hour time, as on the receipt."""

_FONT_SIZE: Final = 8
_DEFAULT_BOX_SIZE: Final = (230.0, 46.0)
_MARGIN: Final = 36.0
_CMS_OVERHEAD: Final = 1024
"""DER bytes of a CMS SignedData besides certificates and the signature value (attributes,
algorithm identifiers, structure): measured ~590 with pyHanko 0.38, doubled for safety."""
_STAMP_FONT: Final = GlyphAccumulatorFactory(str(FONT_FILE), font_size=_FONT_SIZE)
_SHA256_RSA: Final = asn1_algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})
_T = TypeVar("_T")


def _asn1(certificate: x509.Certificate) -> Any:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def _pdf_error(code: str, en: str, vi: str) -> SigningError:
    return SigningError(code, en, vi)


class KeySourceSigner(Signer):
    """A pyHanko ``Signer`` over a :class:`~signing.keys.KeySource`, key kept loaded.

    Signs with RSA PKCS#1 v1.5 + SHA-256 through ``KeySource.sign``, so a PKCS#11 key signs
    on its token. The key source's chain is embedded so that verifiers can build the path.
    """

    def __init__(self, key: KeySource) -> None:
        super().__init__(
            signing_cert=_asn1(key.certificate),
            signature_mechanism=_SHA256_RSA,
            embed_roots=True,
        )
        for issuer in key.chain:
            self.cert_registry.register(_asn1(issuer))
        self._key = key
        self._signature_bytes = (key.private_key.key_size + 7) // 8
        self._attr_templates: dict[tuple[str, str, bool, int], tuple[bytes, bytes]] = {}

    async def signed_attrs(
        self,
        data_digest: bytes,
        digest_algorithm: str,
        attr_settings: Any = None,
        content_type: Any = "data",
        use_pades: bool = False,
        timestamper: Any = None,
        dry_run: bool = False,
        is_pdf_sig: bool = True,
    ) -> Any:
        """The PAdES signed attributes from a DER template: only the message digest changes.

        Why: asn1crypto re-encodes the attribute set from Python objects for every document;
        that (and dumping it to sign) was over a third of the time of one PAdES signature. For
        PAdES without a timestamper, revocation info or CAdES extras, the attributes are
        content type, message digest and signing-certificate-v2, fixed per key except the
        digest, whose length is fixed per algorithm. The DER ``SET OF`` order is decided by the
        attribute types before the digest bytes, so splicing the digest into the template gives
        exactly the bytes pyHanko would build (a test compares the two for random digests).
        Anything else goes to pyHanko unchanged.
        """
        settings = attr_settings
        plain = (
            use_pades
            and timestamper is None
            and (
                settings is None
                or (
                    getattr(settings, "adobe_revinfo_attr", None) is None
                    and getattr(settings, "cades_signed_attrs", None) is None
                )
            )
        )
        if not plain:
            return await super().signed_attrs(
                data_digest, digest_algorithm, attr_settings=attr_settings,
                content_type=content_type, use_pades=use_pades, timestamper=timestamper,
                dry_run=dry_run, is_pdf_sig=is_pdf_sig,
            )  # fmt: skip
        key = (digest_algorithm, str(content_type), is_pdf_sig, len(data_digest))
        template = self._attr_templates.get(key)
        if template is None:
            sentinel = secrets.token_bytes(len(data_digest))
            built = await super().signed_attrs(
                sentinel, digest_algorithm, attr_settings=attr_settings,
                content_type=content_type, use_pades=True, is_pdf_sig=is_pdf_sig,
            )  # fmt: skip
            der = built.dump()
            if der.count(sentinel) != 1:  # cannot happen with 256 random bits; stay correct
                return built
            prefix, _, suffix = der.partition(sentinel)
            template = self._attr_templates[key] = (prefix, suffix)
        return asn1_cms.CMSAttributes.load(template[0] + data_digest + template[1])

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        """RSA PKCS#1 v1.5 over SHA-256 of ``data``; a zero placeholder for a dry run."""
        if digest_algorithm.lower() != "sha256":
            raise _pdf_error(
                "pdf_digest_unsupported",
                f"PDF signatures use SHA-256, not {digest_algorithm}",
                f"chữ ký PDF dùng SHA-256, không dùng {digest_algorithm}",
            )
        if dry_run:
            return bytes(self._signature_bytes)
        return self._key.sign(data)

    def reserved_size(self, requested: int) -> int:
        """``requested``, raised when the embedded certificates need more room."""
        certificates = [self._key.certificate, *self._key.chain]
        der = sum(len(c.public_bytes(Encoding.DER)) for c in certificates)
        return max(requested, 2 * (der + self._signature_bytes + _CMS_OVERHEAD))


@lru_cache(maxsize=32)
def _signer_for(key: KeySource) -> KeySourceSigner:
    """One pyHanko signer per key source: converting the certificates costs more than signing."""
    return KeySourceSigner(key)


class _TimedPdfSigner(PdfSigner):
    """pyHanko's ``PdfSigner`` with the signing time as an input instead of the clock."""

    def __init__(self, *args: Any, system_time: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._system_time = system_time

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = self._system_time
        return session


def _stamp_text(lines: tuple[str, ...]) -> str:
    """NFC (one glyph per Vietnamese letter) and ``%`` escaped: pyHanko %-interpolates."""
    return "\n".join(unicodedata.normalize("NFC", line).replace("%", "%%") for line in lines)


def _default_lines(key: KeySource, local_time: datetime) -> tuple[str, ...]:
    signer = common_name_of(key.certificate) or key.certificate.subject.rfc4514_string()
    return (f"Ký bởi: {signer}", f"Ngày ký: {local_time.strftime(STAMP_TIME_FORMAT)}")


def _default_box(writer: Any, page: int) -> tuple[float, float, float, float]:
    """Bottom right corner of ``page``, where Vietnamese forms put the signature."""
    page_ref, _ = writer.find_page_for_modification(page)
    llx, lly, urx, _ury = (float(v) for v in page_ref.get_object()["/MediaBox"])
    width, height = _DEFAULT_BOX_SIZE
    right = max(urx - _MARGIN, llx + width)
    bottom = lly + _MARGIN
    return (right - width, bottom, right, bottom + height)


def _prepare(
    pdf: bytes,
    key: KeySource,
    *,
    field_name: str,
    box: tuple[float, float, float, float] | None,
    page: int,
    stamp_lines: tuple[str, ...],
    signing_time: datetime,
    tz: ZoneInfo,
    reason: str | None,
    location: str | None,
    draw_stamp: bool = True,
) -> tuple[Any, _TimedPdfSigner, KeySourceSigner]:
    if signing_time.tzinfo is None or signing_time.utcoffset() is None:
        raise ValueError("signing_time must be timezone-aware")
    local_time = signing_time.astimezone(tz)
    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    except Exception as exc:
        raise _pdf_error(
            "pdf_unreadable",
            f"the PDF cannot be read: {exc}",
            f"không đọc được tệp PDF: {exc}",
        ) from exc
    if writer.prev.encrypted:
        raise _pdf_error(
            "pdf_encrypted",
            "encrypted PDFs are not signed",
            "không ký tệp PDF đã mã hóa",
        )
    try:
        field_box = box if box is not None else _default_box(writer, page)
    except Exception as exc:
        raise _pdf_error(
            "pdf_page_out_of_range",
            f"the PDF has no page {page}: {exc}",
            f"tệp PDF không có trang {page}: {exc}",
        ) from exc
    if draw_stamp:
        lines = stamp_lines or _default_lines(key, local_time)
        style = TextStampStyle(
            stamp_text=_stamp_text(lines),
            text_box_style=TextBoxStyle(font=_STAMP_FONT, font_size=_FONT_SIZE),
            border_width=1,
        )
    else:
        # The page itself already shows "Ký bởi / Ngày ký" in this box (drawn by the caller
        # with its embedded font); the widget stays clickable there but draws nothing, which
        # spares pyHanko a TrueType subset per document (about 3x faster).
        style = TextStampStyle(stamp_text="", border_width=0)
    metadata = PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
    )
    key_signer = _signer_for(key)
    signer = _TimedPdfSigner(
        metadata,
        key_signer,
        stamp_style=style,
        new_field_spec=SigFieldSpec(
            sig_field_name=field_name,
            on_page=page,
            box=(
                round(field_box[0]),
                round(field_box[1]),
                round(field_box[2]),
                round(field_box[3]),
            ),
        ),
        system_time=local_time,
    )
    return writer, signer, key_signer


async def async_sign_pdf(
    pdf: bytes,
    key: KeySource,
    *,
    field_name: str = "Signature1",
    box: tuple[float, float, float, float] | None = None,
    page: int = 0,
    stamp_lines: tuple[str, ...] = (),
    signing_time: datetime,
    tz: ZoneInfo = VIETNAM_TZ,
    reason: str | None = None,
    location: str | None = None,
    bytes_reserved: int = DEFAULT_BYTES_RESERVED,
    draw_stamp: bool = True,
) -> bytes:
    """:func:`sign_pdf` for callers already inside an event loop (the work is still CPU-bound)."""
    writer, signer, key_signer = _prepare(
        pdf,
        key,
        field_name=field_name,
        box=box,
        page=page,
        stamp_lines=stamp_lines,
        signing_time=signing_time,
        tz=tz,
        reason=reason,
        location=location,
        draw_stamp=draw_stamp,
    )
    try:
        output = await signer.async_sign_pdf(
            writer, bytes_reserved=key_signer.reserved_size(bytes_reserved)
        )
    except SigningError:
        raise
    except PyHankoSigningError as exc:
        raise _pdf_error(
            "pdf_sign_failed",
            f"the PDF could not be signed: {exc}",
            f"không ký được tệp PDF: {exc}",
        ) from exc
    data: bytes = output.getvalue()
    return data


def sign_pdf(
    pdf: bytes,
    key: KeySource,
    *,
    field_name: str = "Signature1",
    box: tuple[float, float, float, float] | None = None,
    page: int = 0,
    stamp_lines: tuple[str, ...] = (),
    signing_time: datetime,
    tz: ZoneInfo = VIETNAM_TZ,
    reason: str | None = None,
    location: str | None = None,
    bytes_reserved: int = DEFAULT_BYTES_RESERVED,
    draw_stamp: bool = True,
) -> bytes:
    """Add a visible PAdES-B-B signature to ``pdf`` (as an incremental update) and return it.

    ``box`` is ``(x1, y1, x2, y2)`` in PDF points on ``page`` (0-based; -1 is the last page);
    ``None`` puts a 230 x 46 pt box in the bottom right corner. ``stamp_lines`` are shown
    verbatim; empty means "Ký bởi: <certificate CN>" and "Ngày ký: <dd/mm/yyyy HH:MM:SS>"
    with ``signing_time`` in ``tz``. ``signing_time`` must be timezone-aware; it becomes
    ``/M``, which viewers show as the signing date. ``draw_stamp=False`` is for documents whose
    page already shows the stamp text inside ``box`` (same signer and time).

    Raises :class:`~signing.errors.SigningError` (``pdf_unreadable``, ``pdf_encrypted``,
    ``pdf_page_out_of_range``, ``pdf_sign_failed`` e.g. when ``field_name`` is already
    signed) and whatever the key source raises. Called from a running event loop it works
    (in a helper thread) but blocks that loop; prefer :func:`async_sign_pdf` there.
    """
    return _run(
        lambda: async_sign_pdf(
            pdf,
            key,
            field_name=field_name,
            box=box,
            page=page,
            stamp_lines=stamp_lines,
            signing_time=signing_time,
            tz=tz,
            reason=reason,
            location=location,
            bytes_reserved=bytes_reserved,
            draw_stamp=draw_stamp,
        )
    )


def _run(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run pyHanko's coroutine API from sync code, also when called inside an event loop.

    ``asyncio.run`` refuses to run inside a running loop (e.g. a sync helper called from a
    FastAPI ``async def``); there the coroutine runs on a fresh loop in a helper thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _thread_loop().run_until_complete(make())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pades") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


_loops = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    """One private event loop per thread, reused: ``asyncio.run`` builds and tears down a loop
    per call, a measurable share of signing one small PDF."""
    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    return loop


# --- verification --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PdfSignatureStatus:
    """The verdict on one PDF signature, with what a viewer shows.

    Fields other than ``valid``, ``intact`` and ``problems`` describe what the signature
    *claims*; trust them only when ``valid`` is true.
    """

    valid: bool
    """The bottom line: intact, cryptographically valid, covering its revision, allowed key
    usage, and (if ``trusted_ca`` was given) chaining to it."""
    intact: bool
    """The signed byte ranges still hash to the digest that was signed."""
    signer_common_name: str | None
    """The certificate subject CN: "signed by"."""
    tax_code: str | None
    """The tax code from the certificate's ``UID=MST:...``."""
    signing_time: datetime | None
    """The signing time the signer claims (``/M`` or the CMS signing-time), timezone-aware."""
    problems: tuple[str, ...]
    """Each reason the signature is not valid, in plain words; empty when valid."""
    development: bool = False
    """The certificate is marked as a development certificate: no legal validity."""
    field_name: str | None = None
    """The signature field that was checked."""
    certificate: x509.Certificate | None = None
    """The signer's certificate as embedded in the signature."""
    covers_whole_document: bool = False
    """Nothing was appended after this signature (no later incremental update)."""
    trusted_chain: bool | None = None
    """Whether the certificate chains to ``trusted_ca``; ``None`` when no CA was given."""


def _failed(problem: str, **claims: Any) -> PdfSignatureStatus:
    fields: dict[str, Any] = {
        "valid": False,
        "intact": False,
        "signer_common_name": None,
        "tax_code": None,
        "signing_time": None,
        "problems": (problem,),
    }
    fields.update(claims)
    return PdfSignatureStatus(**fields)


def _select(signatures: list[Any], field_name: str | None) -> tuple[Any | None, str | None]:
    if field_name is not None:
        chosen = [sig for sig in signatures if sig.field_name == field_name]
        if len(chosen) != 1:
            return None, f"no signature in field {field_name!r}"
        return chosen[0], None
    if len(signatures) != 1:
        return None, f"found {len(signatures)} signatures, expected 1; say which with field_name"
    return signatures[0], None


async def _validate(embedded: Any, trusted_ca: x509.Certificate | None, moment: datetime) -> Any:
    """pyHanko's validation; without a CA the signer's own certificate is the anchor.

    That makes pyHanko check integrity, the signature value and key usage without a path
    search that can only fail (and logs a warning with a traceback each time); trust is then
    not claimed (``trusted_chain`` stays ``None``).
    """
    anchor = embedded.signer_cert if trusted_ca is None else _asn1(trusted_ca)
    context = ValidationContext(
        trust_roots=[anchor],
        allow_fetching=False,
        revocation_mode="soft-fail",
        moment=moment,
    )
    return await async_validate_pdf_signature(embedded, signer_validation_context=context)


def verify_pdf(
    pdf: bytes,
    *,
    trusted_ca: x509.Certificate | None = None,
    field_name: str | None = None,
    validation_time: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> PdfSignatureStatus:
    """Check a PDF signature; never raises for bad input (problems are reported instead).

    Without ``trusted_ca`` the signature is checked for integrity and against the embedded
    certificate only (as :func:`signing.xmldsig.verify_enveloped` does); with it, the
    certificate must also chain to that CA. The certificate must have been valid at
    ``validation_time``, by default the claimed signing time: the PDF is a display copy of a
    legal original that stays valid after the certificate expires. No revocation data is
    fetched. ``field_name`` picks one signature when the file holds several.

    Safe to call from inside an event loop (see :func:`_run`); :func:`async_verify_pdf` does
    not block the loop's thread for the validation itself.
    """
    return _run(
        lambda: async_verify_pdf(
            pdf,
            trusted_ca=trusted_ca,
            field_name=field_name,
            validation_time=validation_time,
            max_bytes=max_bytes,
        )
    )


async def async_verify_pdf(
    pdf: bytes,
    *,
    trusted_ca: x509.Certificate | None = None,
    field_name: str | None = None,
    validation_time: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> PdfSignatureStatus:
    """:func:`verify_pdf` for callers inside an event loop; never raises for bad input."""
    try:
        return await _verify(pdf, trusted_ca, field_name, validation_time, max_bytes)
    except Exception as exc:  # untrusted bytes: any surprise is a "not valid", never a crash
        return _failed(f"the PDF signature could not be checked: {exc}")


async def _verify(
    pdf: bytes,
    trusted_ca: x509.Certificate | None,
    field_name: str | None,
    validation_time: datetime | None,
    max_bytes: int,
) -> PdfSignatureStatus:
    if len(pdf) > max_bytes:
        return _failed(f"the file is {len(pdf)} bytes, more than the {max_bytes} allowed")
    if validation_time is not None and validation_time.tzinfo is None:
        return _failed("validation_time must be timezone-aware")
    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        signatures = list(reader.embedded_signatures)
    except Exception as exc:
        return _failed(f"the file is not a readable PDF: {exc}")
    if not signatures:
        return _failed("no signature")
    embedded, why = _select(signatures, field_name)
    if embedded is None:
        return _failed(why or "no signature")
    name = embedded.field_name
    try:
        certificate = x509.load_der_x509_certificate(embedded.signer_cert.dump())
    except Exception as exc:
        return _failed(f"the signer's certificate cannot be read: {exc}", field_name=name)
    claims: dict[str, Any] = {
        "field_name": name,
        "certificate": certificate,
        "signer_common_name": common_name_of(certificate),
        "tax_code": tax_code_of(certificate),
        "development": is_development(certificate),
    }
    try:
        claimed = embedded.self_reported_timestamp
    except Exception:
        claimed = None
    claims["signing_time"] = claimed
    moment = validation_time or claimed or utcnow()
    try:
        status = await _validate(embedded, trusted_ca, moment)
    except Exception as exc:
        return _failed(f"the signature could not be checked: {exc}", **claims)

    problems: list[str] = []
    intact = bool(status.intact)
    if not intact:
        problems.append("the document was changed after signing (digest mismatch)")
    elif not status.valid:
        problems.append("the signature value does not match the signed data (altered or wrong key)")
    coverage = status.coverage
    if coverage is None or coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        problems.append("the signature does not cover its whole revision of the document")
    if status.docmdp_ok is False:
        problems.append("the document was modified after signing in a way that is not allowed")
    if not has_signing_key_usage(certificate):
        problems.append(
            "the certificate's key usage does not allow digitalSignature and nonRepudiation"
        )
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        problems.append(f"the certificate was not valid at {moment.isoformat()}")
    trusted_chain: bool | None = None
    if trusted_ca is not None:
        trusted_chain = bool(status.trusted)
        if not trusted_chain:
            problems.append("the certificate does not chain to the trusted CA")
    return PdfSignatureStatus(
        valid=not problems,
        intact=intact,
        problems=tuple(problems),
        covers_whole_document=coverage == SignatureCoverageLevel.ENTIRE_FILE,
        trusted_chain=trusted_chain,
        **claims,
    )
