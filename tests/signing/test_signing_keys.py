from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import NoEncryption, pkcs12
from signing_testdata import Pki

from signing import certs
from signing.errors import KeyLoadError
from signing.keys import KeySource, Pkcs12KeySource, load_key_source

pytestmark = pytest.mark.usefixtures("fresh_key_cache")


def _code(excinfo: pytest.ExceptionInfo[KeyLoadError]) -> str:
    assert excinfo.value.message_vi and excinfo.value.message_en
    return excinfo.value.code


def test_load_gives_key_certificate_and_chain(org_p12: Path, pki: Pki) -> None:
    source = Pkcs12KeySource.load(org_p12, None)
    assert isinstance(source, KeySource)
    assert source.certificate == pki.org_cert
    assert source.chain == (pki.ca_cert,)
    assert source.private_key.public_key() == pki.org_key.public_key()


def test_sign_is_rsa_pkcs1v15_sha256(org_p12: Path, pki: Pki) -> None:
    source = Pkcs12KeySource.load(org_p12, None)
    data = "Biên lai điện tử".encode()
    signature = source.sign(data)
    public_key = pki.org_cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def test_load_is_cached_per_path_and_mtime(tmp_path: Path, pki: Pki) -> None:
    path = tmp_path / "org.p12"
    certs.write_pkcs12(path, pki.org_key, pki.org_cert, (), None)
    first = Pkcs12KeySource.load(path, None)
    assert Pkcs12KeySource.load(path, None) is first
    assert Pkcs12KeySource.load(tmp_path / "." / "org.p12", None) is first

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    reloaded = Pkcs12KeySource.load(path, None)
    assert reloaded is not first
    assert Pkcs12KeySource.load(path, None) is reloaded


def test_cache_does_not_bypass_the_password(tmp_path: Path, pki: Pki) -> None:
    path = tmp_path / "org.p12"
    certs.write_pkcs12(path, pki.org_key, pki.org_cert, (), b"right")
    Pkcs12KeySource.load(path, b"right")
    with pytest.raises(KeyLoadError) as excinfo:
        Pkcs12KeySource.load(path, b"wrong")
    assert _code(excinfo) == "key_unreadable"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        Pkcs12KeySource.load(tmp_path / "absent.p12", None)
    assert _code(excinfo) == "key_file_missing"


def test_not_a_pkcs12_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.p12"
    path.write_bytes(b"not a pkcs12 file")
    with pytest.raises(KeyLoadError) as excinfo:
        Pkcs12KeySource.load(path, None)
    assert _code(excinfo) == "key_unreadable"


def test_certificate_without_key(tmp_path: Path, pki: Pki) -> None:
    path = tmp_path / "cert-only.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(None, None, None, [pki.org_cert], NoEncryption())
    )
    with pytest.raises(KeyLoadError) as excinfo:
        Pkcs12KeySource.load(path, None)
    assert _code(excinfo) == "key_incomplete"


def test_key_and_certificate_must_match(
    tmp_path: Path, pki: Pki, other_pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cryptography and openssl both refuse to write such a bundle; other tools do not.
    path = tmp_path / "mismatch.p12"
    path.write_bytes(b"stand-in")
    mismatched = pkcs12.PKCS12KeyAndCertificates(
        other_pki.org_key, pkcs12.PKCS12Certificate(pki.org_cert, None), []
    )
    monkeypatch.setattr(pkcs12, "load_pkcs12", lambda data, password: mismatched)
    with pytest.raises(KeyLoadError) as excinfo:
        Pkcs12KeySource.load(path, None)
    assert _code(excinfo) == "key_certificate_mismatch"


def test_only_rsa_keys(tmp_path: Path, pki: Pki) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_cert = (
        x509.CertificateBuilder()
        .subject_name(pki.org_cert.subject)
        .issuer_name(pki.ca_cert.subject)
        .public_key(ec_key.public_key())
        .serial_number(1)
        .not_valid_before(pki.org_cert.not_valid_before_utc)
        .not_valid_after(pki.org_cert.not_valid_after_utc)
        .sign(pki.ca_key, hashes.SHA256())
    )
    path = tmp_path / "ec.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(b"ec", ec_key, ec_cert, None, NoEncryption())
    )
    with pytest.raises(KeyLoadError) as excinfo:
        Pkcs12KeySource.load(path, None)
    assert _code(excinfo) == "key_unsupported_algorithm"


# --- key references ------------------------------------------------------------------------


def test_reference_without_password(org_p12: Path, pki: Pki) -> None:
    source = load_key_source(f"pkcs12:{org_p12}")
    assert source.certificate == pki.org_cert
    assert load_key_source(f"pkcs12:{org_p12}") is source


def test_reference_with_password_from_environment(tmp_path: Path, pki: Pki) -> None:
    path = tmp_path / "protected.p12"
    certs.write_pkcs12(path, pki.org_key, pki.org_cert, (), "mật khẩu".encode())
    source = load_key_source(
        f"pkcs12:{path}?password-env=ORG_P12_PASSWORD",
        environ={"ORG_P12_PASSWORD": "mật khẩu"},
    )
    assert source.certificate == pki.org_cert


def test_reference_with_unset_password_variable(org_p12: Path) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(f"pkcs12:{org_p12}?password-env=NOT_SET_ANYWHERE", environ={})
    assert _code(excinfo) == "key_password_missing"
    assert "NOT_SET_ANYWHERE" in excinfo.value.message_en


def test_reference_reads_os_environ_by_default(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "protected.p12"
    certs.write_pkcs12(path, pki.org_key, pki.org_cert, (), b"pw")
    monkeypatch.setenv("MOTCUA_TEST_P12_PASSWORD", "pw")
    assert load_key_source(f"pkcs12:{path}?password-env=MOTCUA_TEST_P12_PASSWORD")


@pytest.mark.parametrize(
    "ref",
    [
        "pkcs12:relative/org.p12",
        "pkcs12://host/org.p12",
        "pkcs12:/abs/org.p12?password=plain",
        "pkcs12:/abs/org.p12?password-env=",
        "file:/abs/org.p12",
        "/abs/org.p12",
    ],
)
def test_invalid_references(ref: str) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(ref, environ={})
    assert _code(excinfo) == "key_reference_invalid"


@pytest.mark.parametrize("ref", ["remote:https://sign.example.vn/csc/v2"])
def test_remote_source_goes_through_signing_remote(ref: str) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(ref, environ={})
    assert _code(excinfo) == "key_source_unsupported"
    assert "not yet supported" in excinfo.value.message_en
