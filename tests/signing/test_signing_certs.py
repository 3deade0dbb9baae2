from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12
from cryptography.x509.oid import NameOID
from infra.clock import now
from signing_testdata import ORG_NAME, ORG_TAX_CODE, CertFactory, Pki

from signing import certs
from signing.errors import CertificateProblem, CertificateRejected, SigningError


def _names(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in name.get_attributes_for_oid(oid)]


def test_dev_ca_is_a_marked_ca(pki: Pki) -> None:
    ca = pki.ca_cert
    assert ca.subject == ca.issuer
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert _names(ca.subject, NameOID.COUNTRY_NAME) == ["VN"]
    assert certs.is_development(ca)
    ca.verify_directly_issued_by(ca)


def test_dev_org_certificate_subject_and_extensions(pki: Pki) -> None:
    cert = pki.org_cert
    subject = cert.subject
    assert _names(subject, NameOID.COMMON_NAME) == [ORG_NAME]
    assert _names(subject, NameOID.ORGANIZATION_NAME) == [ORG_NAME]
    assert _names(subject, NameOID.COUNTRY_NAME) == ["VN"]
    assert _names(subject, NameOID.USER_ID) == [f"MST:{ORG_TAX_CODE}"]
    assert _names(subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == [
        "KHÔNG CÓ GIÁ TRỊ PHÁP LÝ - DEVELOPMENT ONLY"
    ]
    assert "UID=MST:0312345678" in subject.rfc4514_string()
    assert cert.issuer == pki.ca_cert.subject
    cert.verify_directly_issued_by(pki.ca_cert)
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.public_key().key_size == 2048  # type: ignore[union-attr]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    assert not usage.key_cert_sign
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == timedelta(days=730)


def test_dev_org_certificate_rejects_garbage_tax_code(pki: Pki) -> None:
    with pytest.raises(ValueError, match="tax code"):
        certs.create_dev_org_certificate(pki.ca_key, pki.ca_cert, ORG_NAME, "MST 12")


def test_tax_code_of_reads_uid_only(make_cert: CertFactory) -> None:
    assert certs.tax_code_of(make_cert(uid="MST:0312345678")) == "0312345678"
    assert certs.tax_code_of(make_cert(uid="mst: 0312345678-001")) == "0312345678-001"
    assert certs.tax_code_of(make_cert(uid="CCCD:079123456789")) is None
    assert certs.tax_code_of(make_cert(uid=None)) is None


def test_is_development(pki: Pki, make_cert: CertFactory) -> None:
    assert certs.is_development(pki.org_cert)
    assert certs.is_development(make_cert(development=True))
    assert not certs.is_development(make_cert())


def test_same_tax_code_normalises_spaces_and_dash_but_keeps_branch() -> None:
    assert certs.same_tax_code("0312345678", " 0312 345 678 ")
    assert certs.same_tax_code("0312345678-001", "0312345678001")
    assert not certs.same_tax_code("0312345678-001", "0312345678")
    assert not certs.same_tax_code("0312345678-001", "0312345678-002")
    assert not certs.same_tax_code("0312345678", "0312345679")


def test_write_pkcs12_round_trip_and_mode(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "org.p12"
    certs.write_pkcs12(path, pki.org_key, pki.org_cert, [pki.ca_cert], b"s3cret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    bundle = pkcs12.load_pkcs12(path.read_bytes(), b"s3cret")
    assert bundle.cert is not None and bundle.cert.certificate == pki.org_cert
    assert [extra.certificate for extra in bundle.additional_certs] == [pki.ca_cert]


def test_write_pem_mode_and_content(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "org.pem"
    path.write_text("previous content, world-readable")
    path.chmod(0o644)
    certs.write_pem(path, key=pki.org_key, certificates=[pki.org_cert, pki.ca_cert])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert load_pem_private_key(data, None).public_key() == pki.org_key.public_key()
    assert x509.load_pem_x509_certificates(data) == [pki.org_cert, pki.ca_cert]
    with pytest.raises(ValueError):
        certs.write_pem(tmp_path / "empty.pem")


# --- check_signing_certificate: one test per rejection cause -------------------------------


def _rejected(
    excinfo: pytest.ExceptionInfo[CertificateRejected], problem: CertificateProblem
) -> None:
    error = excinfo.value
    assert error.problem is problem
    assert error.code == problem.value
    assert isinstance(error, SigningError)
    assert error.message_vi and error.message_en
    assert error.message_vi != error.message_en


def test_accepts_a_good_certificate(make_cert: CertFactory) -> None:
    certs.check_signing_certificate(make_cert(), ORG_TAX_CODE, now(), allow_development=False)


def test_accepts_development_certificate_when_allowed(pki: Pki) -> None:
    certs.check_signing_certificate(pki.org_cert, ORG_TAX_CODE, now(), allow_development=True)


def test_rejects_not_yet_valid(make_cert: CertFactory) -> None:
    at = now()
    cert = make_cert(not_before=at + timedelta(days=1), not_after=at + timedelta(days=30))
    with pytest.raises(CertificateRejected) as excinfo:
        certs.check_signing_certificate(cert, ORG_TAX_CODE, at, allow_development=False)
    _rejected(excinfo, CertificateProblem.NOT_YET_VALID)
    assert excinfo.value.code == "certificate_not_yet_valid"


def test_rejects_expired(make_cert: CertFactory) -> None:
    at = now()
    cert = make_cert(not_before=at - timedelta(days=30), not_after=at - timedelta(seconds=1))
    with pytest.raises(CertificateRejected) as excinfo:
        certs.check_signing_certificate(cert, ORG_TAX_CODE, at, allow_development=False)
    _rejected(excinfo, CertificateProblem.EXPIRED)
    assert excinfo.value.code == "certificate_expired"


@pytest.mark.parametrize(
    "flaw",
    [
        {"non_repudiation": False},
        {"digital_signature": False},
        {"with_key_usage": False},
    ],
    ids=["no-nonRepudiation", "no-digitalSignature", "no-extension"],
)
def test_rejects_key_usage(make_cert: CertFactory, flaw: dict[str, bool]) -> None:
    with pytest.raises(CertificateRejected) as excinfo:
        certs.check_signing_certificate(
            make_cert(**flaw), ORG_TAX_CODE, now(), allow_development=False
        )
    _rejected(excinfo, CertificateProblem.KEY_USAGE)
    assert excinfo.value.code == "certificate_key_usage"


def test_rejects_certificate_without_mst(make_cert: CertFactory) -> None:
    with pytest.raises(CertificateRejected) as excinfo:
        certs.check_signing_certificate(
            make_cert(uid="CCCD:079123456789"),
            ORG_TAX_CODE,
            now(),
            allow_development=False,
        )
    _rejected(excinfo, CertificateProblem.NO_MST)
    assert excinfo.value.code == "certificate_no_mst"


@pytest.mark.parametrize("expected", ["0312345679", "0312345678-001"])
def test_rejects_mst_mismatch(make_cert: CertFactory, expected: str) -> None:
    with pytest.raises(CertificateRejected) as excinfo:
        certs.check_signing_certificate(make_cert(), expected, now(), allow_development=False)
    _rejected(excinfo, CertificateProblem.MST_MISMATCH)
    assert excinfo.value.code == "certificate_mst_mismatch"
    assert expected in excinfo.value.message_en


def test_mst_comparison_ignores_spaces(make_cert: CertFactory) -> None:
    certs.check_signing_certificate(make_cert(uid="MST: 0312345678"), " 0312 345678", now(), False)


def test_rejects_development_certificate(pki: Pki) -> None:
    with pytest.raises(CertificateRejected) as excinfo:
        certs.check_signing_certificate(pki.org_cert, ORG_TAX_CODE, now(), allow_development=False)
    _rejected(excinfo, CertificateProblem.DEVELOPMENT)
    assert excinfo.value.code == "certificate_development"
    assert "pháp lý" in excinfo.value.message_vi


def test_naive_time_is_refused(make_cert: CertFactory) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        certs.check_signing_certificate(
            make_cert(), ORG_TAX_CODE, now().replace(tzinfo=None), False
        )
