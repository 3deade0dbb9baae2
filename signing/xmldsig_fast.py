"""The same enveloped XMLDSig as :mod:`signing.xmldsig`, built from a fixed template.

Why hand-written: signxml's generic machinery (re-parsing, reference resolution, namespace
bookkeeping) costs more than the RSA operation itself, which halves receipts per second
(bench/bench_signing.py). Our profile is fixed — two references, c14n 1.0, rsa-sha256 — so the
template is small. The output is byte-for-byte what the signxml path produces for the same key,
document and time (tests/signing/test_signing_fast.py proves it against the golden file), and
signxml stays the verifier.

Signing is split in two so any key source fits: :func:`prepare` returns the canonical
``SignedInfo`` bytes to be signed, :func:`finish` inserts a signature value computed anywhere —
in process, on a PKCS#11 token, or by a remote signer that answers later (interrupted signing).
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from signing.keys import KeySource
from signing.xmldsig import (
    C14N_ALGORITHM,
    DIGEST_ALGORITHM,
    DS_NS,
    ENVELOPED_TRANSFORM,
    PLACEHOLDER_ID,
    SIGNATURE_ALGORITHM,
    SIGNING_TIME_FORMAT,
)

__all__ = ["PreparedSignature", "finish", "prepare", "sign_enveloped_fast"]

_DS = f"{{{DS_NS}}}"
_C14N = C14N_ALGORITHM.value
_SIG_METHOD = SIGNATURE_ALGORITHM.value
_DIGEST = DIGEST_ALGORITHM.value


@dataclass
class PreparedSignature:
    """A document whose signature lacks only its value; ``to_be_signed`` goes to the key."""

    root: etree._Element
    signature: etree._Element
    to_be_signed: bytes


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)


def _digest(element: etree._Element) -> str:
    return b64encode(hashlib.sha256(_c14n(element)).digest()).decode("ascii")


@lru_cache(maxsize=64)
def _key_info_text(certificate: x509.Certificate) -> tuple[str, str]:
    """Subject and base64 DER of a certificate: fixed per key, so computed once."""
    der = b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii")
    return certificate.subject.rfc4514_string(), der


def _sub(parent: etree._Element, tag: str, attrib: dict[str, str] | None = None) -> etree._Element:
    return etree.SubElement(parent, _DS + tag, attrib or {})


def _reference(
    signed_info: etree._Element, uri: str, transforms: tuple[str, ...]
) -> etree._Element:
    ref = _sub(signed_info, "Reference", {"URI": uri})
    node = _sub(ref, "Transforms")
    for algorithm in transforms:
        _sub(node, "Transform", {"Algorithm": algorithm})
    _sub(ref, "DigestMethod", {"Algorithm": _DIGEST})
    return _sub(ref, "DigestValue")


def prepare(
    root: etree._Element,
    *,
    signed_id: str,
    certificate: x509.Certificate,
    signing_time: datetime,
    tz: ZoneInfo,
    signature_id: str | None = None,
    copy: bool = True,
) -> PreparedSignature:
    """Fills the ``<ds:Signature Id="placeholder"/>`` with everything but the signature value.

    The business data element must not contain the placeholder (the enveloped transform is then
    the identity, which is what lets us digest the subtree directly).
    """
    if signing_time.tzinfo is None or signing_time.utcoffset() is None:
        raise ValueError("signing_time must be timezone-aware")
    work = etree.fromstring(etree.tostring(root)) if copy else root
    sig_id = signature_id or f"{signed_id}-sig"
    object_id = f"{sig_id}-signingtime"
    if "'" in signed_id:
        raise ValueError("an Id may not contain a quote")
    signed = work.findall(f".//*[@Id='{signed_id}']")
    if work.get("Id") == signed_id:
        signed.insert(0, work)
    placeholders = work.findall(f".//{_DS}Signature[@Id='{PLACEHOLDER_ID}']")
    if len(signed) != 1:
        raise ValueError(f"exactly one element must carry Id={signed_id!r}")
    if len(placeholders) != 1 or len(placeholders[0]) or (placeholders[0].text or "").strip():
        raise ValueError("the document needs exactly one empty signature placeholder")
    data = signed[0]
    signature = placeholders[0]
    if any(anc is data for anc in signature.iterancestors()):
        raise ValueError("the signature placeholder must not be inside the signed data")
    signature.set("Id", sig_id)
    signature.text = None

    signed_info = _sub(signature, "SignedInfo")
    _sub(signed_info, "CanonicalizationMethod", {"Algorithm": _C14N})
    _sub(signed_info, "SignatureMethod", {"Algorithm": _SIG_METHOD})
    data_digest = _reference(signed_info, f"#{signed_id}", (ENVELOPED_TRANSFORM, _C14N))
    time_digest = _reference(signed_info, f"#{object_id}", (_C14N,))
    _sub(signature, "SignatureValue")
    key_info = _sub(signature, "KeyInfo")
    x509_data = _sub(key_info, "X509Data")
    subject, der = _key_info_text(certificate)
    _sub(x509_data, "X509SubjectName").text = subject
    _sub(x509_data, "X509Certificate").text = der
    obj = _sub(signature, "Object", {"Id": object_id})
    prop = _sub(_sub(obj, "SignatureProperties"), "SignatureProperty", {"Target": f"#{sig_id}"})
    etree.SubElement(prop, "SigningTime").text = signing_time.astimezone(tz).strftime(
        SIGNING_TIME_FORMAT
    )

    data_digest.text = _digest(data)
    time_digest.text = _digest(obj)
    return PreparedSignature(work, signature, _c14n(signed_info))


def finish(prepared: PreparedSignature, signature_value: bytes) -> etree._Element:
    value = prepared.signature.find(f"{_DS}SignatureValue")
    assert value is not None
    value.text = b64encode(signature_value).decode("ascii")
    return prepared.root


def sign_enveloped_fast(
    root: etree._Element,
    *,
    signed_id: str,
    key: KeySource,
    signing_time: datetime,
    tz: ZoneInfo,
    signature_id: str | None = None,
    copy: bool = True,
) -> etree._Element:
    """Drop-in for :func:`signing.xmldsig.sign_enveloped` for our own receipts and notices.

    ``copy=False`` signs ``root`` in place: for callers that built the tree just for this.
    """
    prepared = prepare(
        root,
        signed_id=signed_id,
        certificate=key.certificate,
        signing_time=signing_time,
        tz=tz,
        signature_id=signature_id,
        copy=copy,
    )
    return finish(prepared, key.sign(prepared.to_be_signed))
