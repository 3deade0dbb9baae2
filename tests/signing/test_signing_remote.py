"""Interrupted XML signing with a remote signer that answers later (here: in-process, delayed)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from infra.clock import now
from lxml import etree
from signing_testdata import Pki

from signing import certs
from signing.errors import SignatureInvalid, SigningError
from signing.keys import KeySource
from signing.remote import (
    RSA_SHA256,
    InterruptedXmlSigning,
    RemoteSigner,
    RequestHandle,
    XmlSigningState,
)
from signing.xmldsig import VIETNAM_TZ, sign_enveloped, verify_enveloped

XMLSEC1 = shutil.which("xmlsec1")


class DelayedLocalSigner:
    """A stand-in remote service: signs the digest with a PKCS#12 key once ``delay`` passed."""

    def __init__(
        self, key: KeySource, delay: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.key = key
        self.delay = delay
        self.clock = clock
        self.requests: dict[str, tuple[bytes, float]] = {}
        self.polls = 0

    def request_signature(
        self, digest: bytes, algorithm: str, cert: x509.Certificate
    ) -> RequestHandle:
        assert algorithm == RSA_SHA256
        assert cert == self.key.certificate
        assert len(digest) == 32
        request_id = str(uuid.uuid4())
        self.requests[request_id] = (digest, self.clock() + self.delay)
        return RequestHandle(request_id)

    def poll(self, handle: RequestHandle) -> bytes | None:
        self.polls += 1
        digest, ready_at = self.requests[handle.request_id]
        if self.clock() < ready_at:
            return None
        return self.key.private_key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def at(pki: Pki) -> datetime:
    """One signing moment for the module (both signing paths must use the same), taken after
    the test PKI exists: the finished document is verified at its SigningTime."""
    return now().replace(microsecond=0)


def _bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def _prepare(
    key: KeySource, root: etree._Element, at: datetime
) -> tuple[InterruptedXmlSigning, XmlSigningState]:
    signing = InterruptedXmlSigning(key.certificate, key.chain)
    state = signing.prepare(root, signed_id="data", signing_time=at, tz=VIETNAM_TZ)
    return signing, state


def test_the_local_stand_in_is_a_remote_signer(key_source: KeySource) -> None:
    assert isinstance(DelayedLocalSigner(key_source, 0), RemoteSigner)


def test_prepare_leaves_the_signature_value_empty(
    at: datetime, key_source: KeySource, sample_root: etree._Element
) -> None:
    before = etree.tostring(sample_root)
    _, state = _prepare(key_source, sample_root, at)
    assert etree.tostring(sample_root) == before
    root = etree.fromstring(state.document)
    value = root.find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    assert value is not None and not value.text
    assert state.signature_id == "data-sig" and len(state.digest) == 32
    assert not verify_enveloped(state.document).valid


def test_delayed_remote_signature_verifies_with_our_verifier_and_xmlsec1(
    at: datetime, key_source: KeySource, sample_root: etree._Element, pki: Pki, tmp_path: Path
) -> None:
    remote = DelayedLocalSigner(key_source, delay=0.2)
    signing, state = _prepare(key_source, sample_root, at)
    stored = signing.request(state, remote).to_json()  # e.g. saved with the receipt

    # Later, possibly in another worker: only the certificate and the stored state are needed.
    later = InterruptedXmlSigning(key_source.certificate)
    restored = XmlSigningState.from_json(stored)
    assert later.collect(restored, remote) is None  # not confirmed yet
    signed = later.wait(restored, remote, timeout=10, interval=0.05)
    assert remote.polls >= 2

    data = _bytes(signed)
    status = verify_enveloped(data, trusted_ca=pki.ca_cert)
    assert status.valid, status.problems
    assert status.signing_time == at.astimezone(VIETNAM_TZ).strftime("%Y-%m-%dT%H:%M:%S")

    if XMLSEC1 is None:
        pytest.skip("xmlsec1 binary not installed (apt-get install xmlsec1)")
    ca_pem, document = tmp_path / "ca.pem", tmp_path / "remote-signed.xml"
    certs.write_pem(ca_pem, certificates=[pki.ca_cert])
    document.write_bytes(data)
    result = subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--id-attr:Id",
            "DLBLai",
            "--trusted-pem",
            str(ca_pem),
            str(document),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 2/2" in result.stdout + result.stderr


def test_remote_result_equals_local_signing(
    at: datetime, key_source: KeySource, sample_root: etree._Element
) -> None:
    """RSA PKCS#1 v1.5 is deterministic: the interrupted flow must give the very same bytes."""
    signing, state = _prepare(key_source, sample_root, at)
    remote = DelayedLocalSigner(key_source, delay=0)
    finished = signing.collect(signing.request(state, remote), remote)
    assert finished is not None
    local = sign_enveloped(
        sample_root, signed_id="data", key=key_source, signing_time=at, tz=VIETNAM_TZ
    )
    assert _bytes(finished) == _bytes(local)


def test_a_document_with_a_default_namespace(at: datetime, key_source: KeySource, pki: Pki) -> None:
    root = etree.fromstring(
        '<BLai xmlns="urn:example:receipt"><DLBLai Id="data"><Ten>Lệ phí</Ten></DLBLai>'
        "<DSCKS><NBan/></DSCKS></BLai>".encode()
    )
    nban = root.find("{urn:example:receipt}DSCKS/{urn:example:receipt}NBan")
    signing = InterruptedXmlSigning(key_source.certificate)
    state = signing.prepare(
        root, signed_id="data", signing_time=at, tz=VIETNAM_TZ, placeholder_parent=nban
    )
    signature = key_source.private_key.sign(
        state.digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())
    )
    status = verify_enveloped(_bytes(signing.finish(state, signature)), trusted_ca=pki.ca_cert)
    assert status.valid, status.problems


def test_an_answer_from_another_key_is_refused(
    at: datetime, key_source: KeySource, sample_root: etree._Element, other_pki: Pki
) -> None:
    signing, state = _prepare(key_source, sample_root, at)
    wrong = other_pki.org_key.sign(state.digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    with pytest.raises(SignatureInvalid) as excinfo:
        signing.finish(state, wrong)
    assert excinfo.value.code == "remote_signature_invalid"


def test_a_state_altered_while_waiting_is_refused(
    at: datetime, key_source: KeySource, sample_root: etree._Element
) -> None:
    signing, state = _prepare(key_source, sample_root, at)
    signature = key_source.private_key.sign(
        state.digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())
    )
    # SignedInfo changed: the digest sent for signing no longer matches.
    altered_info = replace(
        state, document=state.document.replace(b'URI="#data"', b'URI="#other"', 1)
    )
    with pytest.raises(SigningError) as excinfo:
        signing.finish(altered_info, signature)
    assert excinfo.value.code == "remote_state_mismatch"
    # The signed data changed: SignedInfo still matches, the reference digest does not.
    altered_data = replace(
        state, document=state.document.replace(b"<STien>10000</STien>", b"<STien>99999</STien>")
    )
    with pytest.raises(SignatureInvalid) as excinfo_data:
        signing.finish(altered_data, signature)
    assert excinfo_data.value.code == "remote_result_invalid"


def test_finishing_with_another_certificate_is_refused(
    at: datetime, key_source: KeySource, sample_root: etree._Element, other_pki: Pki
) -> None:
    _, state = _prepare(key_source, sample_root, at)
    signature = key_source.private_key.sign(
        state.digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())
    )
    with pytest.raises(SigningError) as excinfo:
        InterruptedXmlSigning(other_pki.org_cert).finish(state, signature)
    assert excinfo.value.code == "remote_state_mismatch"


def test_waiting_gives_up_after_the_timeout(
    at: datetime, key_source: KeySource, sample_root: etree._Element
) -> None:
    clock = FakeClock()
    remote = DelayedLocalSigner(key_source, delay=3600, clock=clock)
    signing, state = _prepare(key_source, sample_root, at)
    requested = signing.request(state, remote)
    with pytest.raises(SigningError) as excinfo:
        signing.wait(requested, remote, timeout=30, interval=5, sleep=clock.sleep, clock=clock)
    assert excinfo.value.code == "remote_signature_timeout"
    assert remote.polls == 7  # at 0, 5, ..., 30 s


def test_collect_needs_a_request(
    at: datetime, key_source: KeySource, sample_root: etree._Element
) -> None:
    signing, state = _prepare(key_source, sample_root, at)
    with pytest.raises(SigningError) as excinfo:
        signing.collect(state, DelayedLocalSigner(key_source, 0))
    assert excinfo.value.code == "remote_not_requested"


def test_state_round_trips_through_json(
    at: datetime, key_source: KeySource, sample_root: etree._Element
) -> None:
    _, state = _prepare(key_source, sample_root, at)
    requested = replace(state, request=RequestHandle("txn-42"))
    assert XmlSigningState.from_json(requested.to_json()) == requested
    assert XmlSigningState.from_json(state.to_json()) == state


@pytest.mark.parametrize(
    "text",
    ["", "[]", '{"version": 99}', '{"version": 1, "document": "!!"}', "not json"],
)
def test_unreadable_state(text: str) -> None:
    with pytest.raises(SigningError) as excinfo:
        XmlSigningState.from_json(text)
    assert excinfo.value.code == "remote_state_unreadable"
