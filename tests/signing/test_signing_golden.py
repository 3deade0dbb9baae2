"""Golden file: the exact bytes of a signed document.

With a fixed key, certificate and signing time the whole output is deterministic (RSA PKCS#1
v1.5 has no randomness), so any change in structure, algorithms, canonicalisation, namespace
handling or element order shows up as a diff here. The key material in ``golden/`` is a
development key made for this test only (its certificate says "DEVELOPMENT ONLY").

To regenerate after an intended change, review the diff and run::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/signing/test_signing_golden.py

(Missing PKI files are recreated too; existing ones are kept so the diff shows only the change.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from signing import certs
from signing.keys import Pkcs12KeySource
from signing.xmldsig import VIETNAM_TZ, sign_enveloped, verify_enveloped

GOLDEN = Path(__file__).parent / "golden"
CA_PEM = GOLDEN / "ca.pem"
ORG_P12 = GOLDEN / "org.p12"
INPUT = GOLDEN / "receipt.xml"
EXPECTED = GOLDEN / "receipt-signed.xml"
# Deliberate: the golden file's bytes are fixed by its PKI's issue date and its signing moment
# (the signing time is inside the signed bytes); nothing here depends on today.
PKI_ISSUED = datetime(2026, 1, 1, tzinfo=UTC)
SIGNED_AT = datetime(2026, 11, 3, 3, 15, 0, tzinfo=UTC)
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _ensure_pki() -> None:
    if CA_PEM.exists() and ORG_P12.exists():
        return
    ca_key, ca_cert = certs.create_dev_ca("Golden Test CA", now=PKI_ISSUED)
    org_key, org_cert = certs.create_dev_org_certificate(
        ca_key,
        ca_cert,
        "Ủy ban nhân dân phường Bến Nghé",
        "0312345678",
        now=PKI_ISSUED,
    )
    certs.write_pem(CA_PEM, certificates=[ca_cert])
    certs.write_pkcs12(ORG_P12, org_key, org_cert, [ca_cert], None)


def _sign_golden_input() -> bytes:
    source = Pkcs12KeySource.load(ORG_P12, None)
    root = etree.fromstring(INPUT.read_bytes())
    signed = sign_enveloped(
        root, signed_id="data", key=source, signing_time=SIGNED_AT, tz=VIETNAM_TZ
    )
    return etree.tostring(signed, encoding="UTF-8", xml_declaration=True) + b"\n"


@pytest.fixture(scope="module")
def golden_bytes() -> bytes:
    if UPDATE:
        _ensure_pki()
        EXPECTED.write_bytes(_sign_golden_input())
    return EXPECTED.read_bytes()


def test_signed_document_matches_golden_file(golden_bytes: bytes) -> None:
    produced = _sign_golden_input()
    assert produced == golden_bytes, (
        "signed output changed; if intended, review and rerun with UPDATE_GOLDEN=1"
    )


def test_golden_file_verifies(golden_bytes: bytes) -> None:
    ca = x509.load_pem_x509_certificate(CA_PEM.read_bytes())
    status = verify_enveloped(golden_bytes, trusted_ca=ca)
    assert status.valid, status.problems
    assert status.signing_time == "2026-11-03T10:15:00"  # deliberate: SIGNED_AT, local time
    assert status.tax_code == "0312345678"
    assert status.development


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 binary not installed")
def test_golden_file_verifies_with_xmlsec1(golden_bytes: bytes, tmp_path: Path) -> None:
    document = tmp_path / "receipt-signed.xml"
    document.write_bytes(golden_bytes)
    xmlsec1 = shutil.which("xmlsec1")
    assert xmlsec1 is not None
    result = subprocess.run(
        [
            xmlsec1,
            "--verify",
            "--id-attr:Id",
            "DLBLai",
            "--trusted-pem",
            str(CA_PEM),
            # The golden certificate expires; check it at the signing moment (UTC, see TZ).
            "--verification-time",
            SIGNED_AT.strftime("%Y-%m-%d %H:%M:%S"),
            str(document),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "TZ": "UTC"},
    )
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 2/2" in result.stdout + result.stderr
