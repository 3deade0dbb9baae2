"""Independent verification with the real ``xmlsec1`` (libxmlsec1 + OpenSSL).

signxml verifying its own output proves little; xmlsec1 is the reference implementation that
tax-authority-side verifiers behave like. The business element's ``Id`` must be declared
(``--id-attr:Id DLBLai``); the SigningTime ``ds:Object`` needs nothing, because xmlsec1
registers ``Id`` attributes inside the Signature it is verifying.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from infra.clock import now
from lxml import etree
from signing_testdata import Pki

from signing import certs
from signing.keys import KeySource
from signing.xmldsig import VIETNAM_TZ, sign_enveloped

XMLSEC1 = shutil.which("xmlsec1")
pytestmark = pytest.mark.skipif(
    XMLSEC1 is None, reason="xmlsec1 binary not installed (Debian: apt-get install xmlsec1)"
)
BOTH_REFERENCES_OK = "SignedInfo References (ok/all): 2/2"


def xmlsec1_verify(document: Path, *options: str) -> subprocess.CompletedProcess[str]:
    assert XMLSEC1 is not None
    return subprocess.run(
        [XMLSEC1, "--verify", *options, str(document)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _write_signed(root: etree._Element, key: KeySource, path: Path, **kwargs: object) -> bytes:
    signed = sign_enveloped(
        root,
        signed_id="data",
        key=key,
        signing_time=now(),
        tz=VIETNAM_TZ,
        **kwargs,  # type: ignore[arg-type]
    )
    data = etree.tostring(signed, encoding="UTF-8", xml_declaration=True)
    path.write_bytes(data)
    return data


@pytest.fixture
def pem_files(pki: Pki, tmp_path: Path) -> tuple[Path, Path]:
    ca_pem, org_pem = tmp_path / "ca.pem", tmp_path / "org.pem"
    certs.write_pem(ca_pem, certificates=[pki.ca_cert])
    certs.write_pem(org_pem, certificates=[pki.org_cert])
    return ca_pem, org_pem


def test_xmlsec1_verifies_with_the_trusted_ca(
    sample_root: etree._Element, key_source: KeySource, pem_files: tuple[Path, Path], tmp_path: Path
) -> None:
    ca_pem, _ = pem_files
    document = tmp_path / "signed.xml"
    _write_signed(sample_root, key_source, document)
    result = xmlsec1_verify(document, "--id-attr:Id", "DLBLai", "--trusted-pem", str(ca_pem))
    assert result.returncode == 0, result.stderr
    assert BOTH_REFERENCES_OK in result.stdout + result.stderr


def test_xmlsec1_verifies_with_the_pinned_certificate(
    sample_root: etree._Element, key_source: KeySource, pem_files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, org_pem = pem_files
    document = tmp_path / "signed.xml"
    _write_signed(sample_root, key_source, document)
    result = xmlsec1_verify(document, "--id-attr:Id", "DLBLai", "--pubkey-cert-pem", str(org_pem))
    assert result.returncode == 0, result.stderr
    assert BOTH_REFERENCES_OK in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("original", "replacement"),
    [(b"Nguy", b"Mguy"), (b"<STien>10000</STien>", b"<STien>10001</STien>")],
    ids=["payer-name-byte", "amount"],
)
def test_xmlsec1_rejects_tampered_business_data(
    sample_root: etree._Element,
    key_source: KeySource,
    pem_files: tuple[Path, Path],
    tmp_path: Path,
    original: bytes,
    replacement: bytes,
) -> None:
    ca_pem, _ = pem_files
    document = tmp_path / "signed.xml"
    data = _write_signed(sample_root, key_source, document)
    assert original in data
    document.write_bytes(data.replace(original, replacement, 1))
    result = xmlsec1_verify(document, "--id-attr:Id", "DLBLai", "--trusted-pem", str(ca_pem))
    assert result.returncode != 0
    assert "FAIL" in result.stdout + result.stderr


def test_xmlsec1_rejects_a_tampered_signing_time(
    sample_root: etree._Element, key_source: KeySource, pem_files: tuple[Path, Path], tmp_path: Path
) -> None:
    ca_pem, _ = pem_files
    document = tmp_path / "signed.xml"
    data = _write_signed(sample_root, key_source, document)
    root = etree.fromstring(data)
    signing_time = root.find(".//SigningTime")
    assert signing_time is not None and signing_time.text
    signing_time.text = signing_time.text[:-1] + ("1" if signing_time.text[-1] == "0" else "0")
    document.write_bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))
    result = xmlsec1_verify(document, "--id-attr:Id", "DLBLai", "--trusted-pem", str(ca_pem))
    assert result.returncode != 0


def test_xmlsec1_rejects_another_ca(
    sample_root: etree._Element, key_source: KeySource, other_pki: Pki, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    certs.write_pem(other_ca, certificates=[other_pki.ca_cert])
    document = tmp_path / "signed.xml"
    _write_signed(sample_root, key_source, document)
    result = xmlsec1_verify(document, "--id-attr:Id", "DLBLai", "--trusted-pem", str(other_ca))
    assert result.returncode != 0


def test_xmlsec1_verifies_a_document_with_a_default_namespace(
    key_source: KeySource, pem_files: tuple[Path, Path], tmp_path: Path
) -> None:
    ca_pem, _ = pem_files
    root = etree.fromstring(
        '<BLai xmlns="urn:example:receipt"><DLBLai Id="data"><Ten>Lệ phí</Ten></DLBLai>'
        "<DSCKS><NBan/></DSCKS></BLai>".encode()
    )
    nban = root.find("{urn:example:receipt}DSCKS/{urn:example:receipt}NBan")
    document = tmp_path / "signed.xml"
    _write_signed(root, key_source, document, placeholder_parent=nban)
    result = xmlsec1_verify(
        document, "--id-attr:Id", "urn:example:receipt:DLBLai", "--trusted-pem", str(ca_pem)
    )
    assert result.returncode == 0, result.stderr
    assert BOTH_REFERENCES_OK in result.stdout + result.stderr
