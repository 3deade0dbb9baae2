"""Certificates: development PKI, reading the tax code, and the signing-certificate policy.

Real signing certificates come from licensed Vietnamese CAs (VNPT-CA, Viettel-CA, ...), chain to
"Root CA Vietnam" and carry the organisation's tax code as ``UID=MST:<tax code>``. The
development PKI built here mimics that shape so that every code path runs on a laptop, but it
marks each certificate as not legally valid in an ``OU`` so that nobody mistakes its signatures
for real ones, and so that :func:`check_signing_certificate` can refuse it in production.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from settings.clock import utcnow
from signing.errors import CertificateProblem, CertificateRejected

__all__ = [
    "DEVELOPMENT_MARKER",
    "DEVELOPMENT_OU",
    "check_signing_certificate",
    "common_name_of",
    "create_dev_ca",
    "create_dev_org_certificate",
    "has_signing_key_usage",
    "is_development",
    "same_tax_code",
    "tax_code_of",
    "write_pem",
    "write_pkcs12",
]

DEVELOPMENT_MARKER = "DEVELOPMENT ONLY"
"""Substring that identifies a development certificate in a subject or issuer ``OU``."""

DEVELOPMENT_OU = f"KHÔNG CÓ GIÁ TRỊ PHÁP LÝ - {DEVELOPMENT_MARKER}"
"""``OU`` written into every development certificate: "not legally valid" in both languages."""

_MST_PREFIX = "MST:"
_RSA_BITS = 2048
_PUBLIC_EXPONENT = 65537
_BACKDATE = timedelta(minutes=5)
"""Certificates start slightly in the past so clocks a little behind still accept them."""
_TAX_CODE_SHAPE = re.compile(r"^(?P<base>\d{10}|\d{12})(?:-?(?P<branch>\d{3}))?$")


def _now(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware: a naive time is ambiguous for validity")
    return now


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=_RSA_BITS)


def create_dev_ca(
    common_name: str, *, valid_days: int = 3650, now: datetime | None = None
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """Create a self-signed development root standing in for "Root CA Vietnam" and its CAs.

    ``now`` is an input so that tests can build certificates valid at a fixed moment.
    """
    start = _now(now) - _BACKDATE
    key = _new_rsa_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEVELOPMENT_OU),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def create_dev_org_certificate(
    ca_key: rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    org_name: str,
    tax_code: str,
    valid_days: int = 730,
    *,
    now: datetime | None = None,
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """Issue a development organisation signing certificate shaped like a licensed CA's.

    The subject carries ``UID=MST:<tax code>`` exactly as real Vietnamese organisation
    certificates do, so the tax-code checks are exercised for real; the ``OU`` marks it as not
    legally valid.
    """
    compact = "".join(tax_code.split())
    if not compact or _TAX_CODE_SHAPE.match(compact) is None:
        raise ValueError(f"not a Vietnamese tax code (MST): {tax_code!r}")
    start = _now(now) - _BACKDATE
    key = _new_rsa_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEVELOPMENT_OU),
            x509.NameAttribute(NameOID.COMMON_NAME, org_name),
            x509.NameAttribute(NameOID.USER_ID, f"{_MST_PREFIX}{compact}"),
        ]
    )
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _open_private(path: Path) -> int:
    """Open for writing readable by the owner only, even when the file already existed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _write_private(path: Path, data: bytes) -> None:
    fd = _open_private(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def write_pkcs12(
    path: Path,
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    password: bytes | None = None,
) -> None:
    """Write a PKCS#12 bundle (mode 0600), the format CAs hand out and ``pkcs12:`` refs load.

    ``password=None`` (or empty) writes an unencrypted bundle, acceptable for development only.
    """
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    friendly = common_name_of(cert)
    data = pkcs12.serialize_key_and_certificates(
        name=friendly.encode("utf-8") if friendly else None,
        key=key,
        cert=cert,
        cas=list(chain) or None,
        encryption_algorithm=encryption,
    )
    _write_private(path, data)


def write_pem(
    path: Path,
    *,
    key: rsa.RSAPrivateKey | None = None,
    certificates: Sequence[x509.Certificate] = (),
    password: bytes | None = None,
) -> None:
    """Write a key and/or certificates as PEM (mode 0600), the format ``xmlsec1``/``openssl`` read.

    The key (PKCS#8, encrypted when ``password`` is given) comes first, then the certificates.
    """
    if key is None and not certificates:
        raise ValueError("nothing to write: give a key, certificates or both")
    parts: list[bytes] = []
    if key is not None:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        parts.append(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
        )
    parts.extend(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)
    _write_private(path, b"".join(parts))


def _attribute_strings(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    values: list[str] = []
    for attribute in name.get_attributes_for_oid(oid):
        value = attribute.value
        values.append(value if isinstance(value, str) else value.decode("utf-8", "replace"))
    return values


def common_name_of(cert: x509.Certificate) -> str | None:
    """The subject CN, which viewers show as "signed by"; ``None`` when absent."""
    names = _attribute_strings(cert.subject, NameOID.COMMON_NAME)
    return names[0] if names else None


def tax_code_of(cert: x509.Certificate) -> str | None:
    """The tax code from ``UID=MST:<tax code>`` in the subject, spaces removed; else ``None``.

    Only ``UID`` attributes are read: CAs also write personal ids there (``CMND:``, ``CCCD:``),
    and an ``MST:`` that appears in a CN or OU is free text, not an identity claim.
    """
    for value in _attribute_strings(cert.subject, NameOID.USER_ID):
        text = value.strip()
        if text[: len(_MST_PREFIX)].upper() == _MST_PREFIX:
            code = "".join(text[len(_MST_PREFIX) :].split())
            if code:
                return code
    return None


def is_development(cert: x509.Certificate) -> bool:
    """Whether the certificate (or its issuer) is marked as development-only.

    The issuer is checked too, so a certificate issued by the development CA is caught even if
    its own subject lacks the marker.
    """
    for name in (cert.subject, cert.issuer):
        for value in _attribute_strings(name, NameOID.ORGANIZATIONAL_UNIT_NAME):
            if DEVELOPMENT_MARKER in value.upper():
                return True
    return False


def _tax_code_key(code: str) -> tuple[str, str]:
    compact = "".join(code.split())
    match = _TAX_CODE_SHAPE.match(compact)
    if match is None:
        return compact.upper(), ""
    return match.group("base"), match.group("branch") or ""


def same_tax_code(left: str, right: str) -> bool:
    """Whether two tax codes name the same taxpayer.

    Spaces are ignored and the branch suffix may be written ``-001`` or ``001``, but the suffix
    itself must be equal: a branch (``0312345678-001``) is a separate taxpayer from its parent
    (``0312345678``), so neither may sign for the other.
    """
    return _tax_code_key(left) == _tax_code_key(right)


def has_signing_key_usage(cert: x509.Certificate) -> bool:
    """Whether key usage allows both digitalSignature and nonRepudiation.

    A certificate without the extension is refused: legal originals need the CA's explicit
    statement that the key may make non-repudiable signatures.
    """
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return usage.digital_signature and usage.content_commitment


EXPIRY_WARNING_DAYS = 30
"""An administrator is warned this many days before the certificate ends."""


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or about to be) with a signing certificate, in both languages."""

    problem: CertificateProblem | None
    """The refusal code when signing must stop for it; ``None`` for an early warning."""
    severity: str
    """``bad`` (no legally valid signature possible) or ``warn``."""
    message_vi: str
    message_en: str


@dataclass(frozen=True)
class CertificateAssessment:
    """Every rule a signing certificate must meet, judged at one moment, with all findings.

    The issuer refuses on the first blocking finding (:func:`check_signing_certificate`); the
    admin page shows them all. One assessment, so the two can never disagree.
    """

    findings: tuple[Finding, ...]
    tax_code: str | None
    tax_code_matches: bool
    development: bool
    key_usage_ok: bool
    days_left: int

    @property
    def level(self) -> str:
        severities = {f.severity for f in self.findings}
        return "bad" if "bad" in severities else ("warn" if severities else "ok")

    def blocking(self, *, allow_development: bool) -> Finding | None:
        """The first finding that forbids signing, in the order the issuer has always used:
        validity, key usage, tax code present, tax code equal, development certificate."""
        order = [
            CertificateProblem.NOT_YET_VALID,
            CertificateProblem.EXPIRED,
            CertificateProblem.KEY_USAGE,
            CertificateProblem.NO_MST,
            CertificateProblem.MST_MISMATCH,
        ]
        if not allow_development:
            order.append(CertificateProblem.DEVELOPMENT)
        by_problem = {f.problem: f for f in self.findings if f.problem is not None}
        return next((by_problem[p] for p in order if p in by_problem), None)


def assess_certificate(
    cert: x509.Certificate, expected_tax_code: str, now: datetime
) -> CertificateAssessment:
    """Judges ``cert`` for the organisation with ``expected_tax_code`` at ``now``."""
    moment = _now(now)
    found_bad: list[Finding] = []
    found_warn: list[Finding] = []
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    days_left = (not_after - moment).days
    if moment > not_after:
        found_bad.append(
            Finding(
                CertificateProblem.EXPIRED,
                "bad",
                "Chứng thư số đã hết hạn",
                "The certificate has expired",
            )
        )
    elif moment < not_before:
        found_bad.append(
            Finding(
                CertificateProblem.NOT_YET_VALID,
                "bad",
                "Chứng thư số chưa đến ngày hiệu lực",
                "The certificate is not valid yet",
            )
        )
    elif days_left < EXPIRY_WARNING_DAYS:
        found_warn.append(
            Finding(
                None,
                "warn",
                f"Chứng thư số hết hạn sau {days_left} ngày: cần gia hạn ngay",
                f"The certificate expires in {days_left} days: renew it now",
            )
        )
    usage_ok = has_signing_key_usage(cert)
    if not usage_ok:
        found_bad.append(
            Finding(
                CertificateProblem.KEY_USAGE,
                "bad",
                "Mục đích sử dụng khóa không cho phép ký số (digitalSignature) và chống chối bỏ "
                "(nonRepudiation)",
                "The key usage does not allow digitalSignature and nonRepudiation",
            )
        )
    tax_code = tax_code_of(cert)
    matches = tax_code is not None and same_tax_code(tax_code, expected_tax_code)
    if tax_code is None:
        found_bad.append(
            Finding(
                CertificateProblem.NO_MST,
                "bad",
                "Chứng thư số không có mã số thuế (UID=MST:…)",
                "The certificate carries no tax code (UID=MST:…)",
            )
        )
    elif not matches:
        found_bad.append(
            Finding(
                CertificateProblem.MST_MISMATCH,
                "bad",
                f"Mã số thuế trên chứng thư ({tax_code}) khác mã số thuế của đơn vị "
                f"({expected_tax_code})",
                f"The certificate's tax code ({tax_code}) differs from the agency's "
                f"({expected_tax_code})",
            )
        )
    development = is_development(cert)
    if development:
        found_warn.append(
            Finding(
                CertificateProblem.DEVELOPMENT,
                "warn",
                "Chứng thư số thử nghiệm: KHÔNG có giá trị pháp lý; biên lai ký bằng "
                "chứng thư này không được dùng thật",
                "Development certificate: NOT legally valid; receipts signed with it "
                "must not be used for real",
            )
        )
    return CertificateAssessment(
        findings=tuple(found_bad + found_warn),
        tax_code=tax_code,
        tax_code_matches=matches,
        development=development,
        key_usage_ok=usage_ok,
        days_left=days_left,
    )


def check_signing_certificate(
    cert: x509.Certificate,
    expected_tax_code: str,
    now: datetime,
    allow_development: bool,
) -> None:
    """Refuse a certificate that may not sign for the organisation with ``expected_tax_code``.

    Checked before signing so that no legally void original is ever issued. Raises
    :class:`~signing.errors.CertificateRejected` with the first blocking finding of
    :func:`assess_certificate`.
    """
    finding = assess_certificate(cert, expected_tax_code, now).blocking(
        allow_development=allow_development
    )
    if finding is not None and finding.problem is not None:
        raise CertificateRejected(finding.problem, finding.message_en, finding.message_vi)
