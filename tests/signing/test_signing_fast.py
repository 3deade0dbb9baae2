"""The template signer produces exactly what the signxml path produces, and verifies everywhere."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from infra.clock import now
from lxml import etree

from signing.keys import Pkcs12KeySource
from signing.xmldsig import VIETNAM_TZ, sign_enveloped, verify_enveloped
from signing.xmldsig_fast import finish, prepare, sign_enveloped_fast

GOLDEN = Path(__file__).parent / "golden"
# Deliberate: the moment golden/receipt-signed.xml was signed at (test_signing_golden.py); the
# output must be byte-identical to it, and the golden certificate is checked at that moment.
SIGNED_AT = datetime(2026, 11, 3, 3, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def source() -> Pkcs12KeySource:
    return Pkcs12KeySource.load(GOLDEN / "org.p12", None)


def _bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def test_byte_identical_to_the_signxml_golden_file(source: Pkcs12KeySource) -> None:
    root = etree.fromstring((GOLDEN / "receipt.xml").read_bytes())
    fast = sign_enveloped_fast(
        root, signed_id="data", key=source, signing_time=SIGNED_AT, tz=VIETNAM_TZ
    )
    assert _bytes(fast) == (GOLDEN / "receipt-signed.xml").read_bytes()
    slow = sign_enveloped(root, signed_id="data", key=source, signing_time=SIGNED_AT, tz=VIETNAM_TZ)
    assert _bytes(fast) == _bytes(slow)


def test_interrupted_signing_prepare_then_finish(source: Pkcs12KeySource) -> None:
    root = etree.fromstring((GOLDEN / "receipt.xml").read_bytes())
    prepared = prepare(
        root,
        signed_id="data",
        certificate=source.certificate,
        signing_time=SIGNED_AT,
        tz=VIETNAM_TZ,
    )
    assert prepared.to_be_signed.startswith(b"<ds:SignedInfo")
    # ... the bytes travel to a remote signer, the value comes back later ...
    signed = finish(prepared, source.sign(prepared.to_be_signed))
    status = verify_enveloped(_bytes(signed))
    assert status.valid, status.problems


def test_fast_output_verifies_with_xmlsec1_and_detects_tampering(
    source: Pkcs12KeySource, tmp_path: Path
) -> None:
    if shutil.which("xmlsec1") is None:
        pytest.skip("xmlsec1 not installed")
    root = etree.fromstring((GOLDEN / "receipt.xml").read_bytes())
    data = _bytes(
        sign_enveloped_fast(root, signed_id="data", key=source, signing_time=now(), tz=VIETNAM_TZ)
    )
    good = tmp_path / "good.xml"
    good.write_bytes(data)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(data.replace(b"<STien>10000</STien>", b"<STien>10001</STien>", 1))
    argv = [
        "xmlsec1",
        "--verify",
        "--id-attr:Id",
        "DLBLai",
        "--trusted-pem",
        str(GOLDEN / "ca.pem"),
    ]
    assert subprocess.run([*argv, str(good)], capture_output=True, check=False).returncode == 0
    assert subprocess.run([*argv, str(bad)], capture_output=True, check=False).returncode != 0
    assert not verify_enveloped(bad.read_bytes()).valid


def test_refuses_documents_without_one_placeholder(source: Pkcs12KeySource) -> None:
    root = etree.fromstring(b"<A><B Id='d'>x</B></A>")
    with pytest.raises(ValueError, match="placeholder"):
        sign_enveloped_fast(root, signed_id="d", key=source, signing_time=SIGNED_AT, tz=VIETNAM_TZ)
    with pytest.raises(ValueError, match="Id="):
        sign_enveloped_fast(
            root, signed_id="nope", key=source, signing_time=SIGNED_AT, tz=VIETNAM_TZ
        )
