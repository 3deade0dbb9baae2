"""Interrupted signing: the to-be-signed digest goes out, the signature comes back later.

Remote-signing services (the CA's cloud signing, an HSM behind a queue, a signer confirming on
a phone) do not answer inside a ``sign()`` call: the organisation asks, the service confirms
minutes later. pyHanko solves this for PDFs by splitting signing into prepare → to-be-signed →
finish; this module does the same for the tax authority's enveloped XMLDSig
(:mod:`signing.xmldsig`), so a receipt can wait for a remote signature without holding a worker.

The flow, each step possibly in another process::

    signing = InterruptedXmlSigning(certificate)
    state = signing.prepare(root, signed_id="data", signing_time=now, tz=VIETNAM_TZ)
    state = signing.request(state, remote)           # store state.to_json() somewhere
    ...                                               # later, any worker
    signed = signing.collect(XmlSigningState.from_json(text), remote)   # None: not yet

How ``prepare`` works: :func:`signing.xmldsig.sign_enveloped` runs unchanged with a stand-in
key whose ``sign()`` records the bytes signxml hands it (the c14n of ``SignedInfo``, exactly
what the signature covers) and returns a dummy value. So references, digests, ``KeyInfo`` and
the SigningTime object are built by the same code as every locally signed receipt, with no
second implementation of the profile. The dummy ``SignatureValue`` is then emptied, the
document kept as bytes, and the recorded bytes re-derived from those bytes (inclusive c14n
1.0 of ``SignedInfo`` in its document) as a self-check. ``finish`` recomputes that digest
again, so a state altered while waiting is refused, checks the returned signature against the
certificate, and only then writes it into ``SignatureValue``: nothing in ``SignedInfo``
changes, so the references signed at prepare time stay valid. The finished document is then
verified like any received receipt before it is returned.
"""

from __future__ import annotations

import hashlib
import json
import time
from base64 import b64decode, b64encode
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, NoReturn, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo, Prehashed
from lxml import etree

from settings.untrusted_xml import UntrustedXmlError, hardened_parser, parse_untrusted
from signing.errors import SignatureInvalid, SigningError
from signing.keys import KeySource
from signing.xmldsig import DS_NS, sign_enveloped, verify_enveloped

__all__ = [
    "RSA_SHA256",
    "InterruptedXmlSigning",
    "RemoteSigner",
    "RequestHandle",
    "XmlSigningState",
]

RSA_SHA256: Final = "rsa-sha256"
"""The only algorithm asked of a remote signer: ``digest`` is SHA-256 of the to-be-signed
bytes and the answer is RSASSA-PKCS1-v1_5 over ``DigestInfo(sha256, digest)``, i.e. what
``key.sign(digest, PKCS1v15(), Prehashed(SHA256()))`` returns and CSC ``signHash`` gives for
``sha256WithRSAEncryption``. It is the XMLDSig ``rsa-sha256`` of the tax authority profile."""

_STATE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class RequestHandle:
    """What a remote signer returns for a request: enough to ask about it again later.

    Plain data, so it can be stored with the document (see :meth:`XmlSigningState.to_json`)
    and polled from another process after a restart.
    """

    request_id: str
    """The service's identifier of the request (transaction id, SAD reference, ...)."""


@runtime_checkable
class RemoteSigner(Protocol):
    """A signing service that may answer later.

    Implementations talk to the service; they never see the document, only the digest, which
    is what lets a third-party service sign for the organisation.
    """

    def request_signature(
        self, digest: bytes, algorithm: str, cert: x509.Certificate
    ) -> RequestHandle:
        """Ask for a signature of ``digest`` with the key of ``cert``; return at once.

        ``algorithm`` is :data:`RSA_SHA256`. Raise :class:`~signing.errors.SigningError` if
        the service refuses the request outright.
        """
        ...

    def poll(self, handle: RequestHandle) -> bytes | None:
        """The raw signature once available, else ``None``.

        Raise :class:`~signing.errors.SigningError` when the request will never be answered
        (rejected by the signer, expired), so callers stop polling.
        """
        ...


@dataclass(frozen=True, slots=True)
class XmlSigningState:
    """Everything needed to finish an interrupted XML signature, and nothing secret.

    Serialisable with :meth:`to_json` so that it can wait in a database row or a task
    payload while the remote signer decides.
    """

    document: bytes
    """The complete signed document, UTF-8, with an empty ``SignatureValue``."""
    signature_id: str
    """``Id`` of the ``ds:Signature`` waiting for its value."""
    digest: bytes
    """SHA-256 of the canonical ``SignedInfo``: what the remote signer signs."""
    algorithm: str = RSA_SHA256
    """How ``digest`` is to be signed; see :data:`RSA_SHA256`."""
    request: RequestHandle | None = None
    """The remote request once made (:meth:`InterruptedXmlSigning.request`)."""

    def to_json(self) -> str:
        """A JSON text (base64 for bytes) that :meth:`from_json` reads back."""
        return json.dumps(
            {
                "version": _STATE_VERSION,
                "document": b64encode(self.document).decode("ascii"),
                "signature_id": self.signature_id,
                "digest": self.digest.hex(),
                "algorithm": self.algorithm,
                "request_id": None if self.request is None else self.request.request_id,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> XmlSigningState:
        """Read a state written by :meth:`to_json`; refuse anything else."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
                raise ValueError("unknown state version")
            request_id = data["request_id"]
            return cls(
                document=b64decode(data["document"], validate=True),
                signature_id=str(data["signature_id"]),
                digest=bytes.fromhex(data["digest"]),
                algorithm=str(data["algorithm"]),
                request=None if request_id is None else RequestHandle(str(request_id)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SigningError(
                "remote_state_unreadable",
                f"the saved signing state cannot be read: {exc}",
                f"không đọc được trạng thái ký đã lưu: {exc}",
            ) from exc


class _Captured(Exception):
    """Internal: the stand-in key was asked for anything other than the one signature."""


class _CapturingKey(rsa.RSAPrivateKey):
    """Stand-in for the remote key during :meth:`InterruptedXmlSigning.prepare`.

    ``sign`` records what signxml would have signed and returns a dummy of the right length;
    the dummy never leaves :meth:`~InterruptedXmlSigning.prepare`.
    """

    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        self._public_key = public_key
        self.captured: list[bytes] = []

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: Prehashed | hashes.HashAlgorithm | NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding, PKCS1v15) or not isinstance(algorithm, hashes.SHA256):
            raise _Captured(f"unexpected signature scheme {padding!r}/{algorithm!r}")
        self.captured.append(data)
        return bytes((self.key_size + 7) // 8)

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    def _refuse(self) -> NoReturn:
        raise _Captured("the stand-in key only records what is to be signed")

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        self._refuse()

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        self._refuse()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        self._refuse()

    def __copy__(self) -> _CapturingKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> _CapturingKey:
        return self


class _CapturingSource(KeySource):
    def __init__(
        self,
        certificate: x509.Certificate,
        chain: tuple[x509.Certificate, ...],
        key: _CapturingKey,
    ) -> None:
        self._certificate = certificate
        self._chain = chain
        self._key = key

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        return self._key


def _ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


def _state_error(code: str, en: str, vi: str) -> SigningError:
    return SigningError(code, en, vi)


def _locate(
    root: etree._Element, signature_id: str
) -> tuple[etree._Element, etree._Element, etree._Element]:
    """The Signature with ``signature_id``, its SignedInfo and its SignatureValue."""
    found = [sig for sig in root.iter(_ds("Signature")) if sig.get("Id") == signature_id]
    signed_info = None if len(found) != 1 else found[0].find(_ds("SignedInfo"))
    value = None if len(found) != 1 else found[0].find(_ds("SignatureValue"))
    if signed_info is None or value is None:
        raise _state_error(
            "remote_state_mismatch",
            f"the saved document holds no complete signature {signature_id!r}",
            f"tài liệu đã lưu không có chữ ký {signature_id!r} hoàn chỉnh",
        )
    return found[0], signed_info, value


def _signed_info_c14n(signed_info: etree._Element) -> bytes:
    """Inclusive c14n 1.0 of SignedInfo in its document, as signxml and xmlsec1 compute it."""
    return etree.tostring(signed_info, method="c14n", exclusive=False, with_comments=False)


def _rsa_public_key(certificate: x509.Certificate) -> rsa.RSAPublicKey:
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise _state_error(
            "key_unsupported_algorithm",
            "the certificate does not hold an RSA key; only RSA keys sign with rsa-sha256",
            "chứng thư số không chứa khóa RSA; chỉ hỗ trợ khóa RSA (rsa-sha256)",
        )
    return public_key


class InterruptedXmlSigning:
    """Enveloped XMLDSig (tax authority profile) whose signature value arrives later.

    Holds only the certificate (and its issuers), so the same object can prepare in one
    process and finish in another.
    """

    def __init__(
        self, certificate: x509.Certificate, chain: tuple[x509.Certificate, ...] = ()
    ) -> None:
        self.certificate = certificate
        self.chain = chain
        self._public_key = _rsa_public_key(certificate)

    def prepare(
        self,
        root: etree._Element,
        *,
        signed_id: str,
        signing_time: datetime,
        tz: ZoneInfo,
        placeholder_parent: etree._Element | None = None,
        signature_id: str | None = None,
    ) -> XmlSigningState:
        """Build the signed document without its signature value; return what to sign.

        Arguments as for :func:`signing.xmldsig.sign_enveloped`, which does the building.
        ``root`` is left untouched.
        """
        key = _CapturingKey(self._public_key)
        source = _CapturingSource(self.certificate, self.chain, key)
        try:
            signed = sign_enveloped(
                root,
                signed_id=signed_id,
                key=source,
                signing_time=signing_time,
                tz=tz,
                placeholder_parent=placeholder_parent,
                signature_id=signature_id,
            )
        except _Captured as exc:
            raise _state_error(
                "remote_prepare_failed",
                f"the signature could not be prepared: {exc}",
                f"không chuẩn bị được chữ ký: {exc}",
            ) from exc
        if len(key.captured) != 1:
            raise _state_error(
                "remote_prepare_failed",
                f"expected one value to sign, signxml asked for {len(key.captured)}",
                "không xác định được dữ liệu cần ký",
            )
        sig_id = signature_id or f"{signed_id}-sig"
        _, _, value = _locate(signed, sig_id)
        value.text = ""
        document = etree.tostring(signed, encoding="UTF-8", xml_declaration=True)
        # Self-check: the bytes signxml would have signed are exactly those a verifier will
        # canonicalise from the stored document; otherwise finishing could never verify.
        _, signed_info, _ = _locate(etree.fromstring(document, hardened_parser()), sig_id)
        if _signed_info_c14n(signed_info) != key.captured[0]:
            raise _state_error(
                "remote_prepare_failed",
                "the canonical SignedInfo changed when the document was serialised",
                "SignedInfo chuẩn hóa bị thay đổi khi ghi tài liệu",
            )
        return XmlSigningState(
            document=document,
            signature_id=sig_id,
            digest=hashlib.sha256(key.captured[0]).digest(),
        )

    def request(self, state: XmlSigningState, signer: RemoteSigner) -> XmlSigningState:
        """Send the digest to ``signer``; the returned state carries the request handle."""
        handle = signer.request_signature(state.digest, state.algorithm, self.certificate)
        return replace(state, request=handle)

    def collect(self, state: XmlSigningState, signer: RemoteSigner) -> etree._Element | None:
        """Ask ``signer`` once; the finished document if it has answered, else ``None``."""
        if state.request is None:
            raise _state_error(
                "remote_not_requested",
                "no signature was requested for this state; call request() first",
                "chưa gửi yêu cầu ký cho trạng thái này",
            )
        signature_value = signer.poll(state.request)
        return None if signature_value is None else self.finish(state, signature_value)

    def wait(
        self,
        state: XmlSigningState,
        signer: RemoteSigner,
        *,
        timeout: float,
        interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> etree._Element:
        """Poll until the signature arrives (blocking; for scripts and tests, not workers).

        Workers should store the state and call :meth:`collect` from a scheduled task
        instead of sleeping. ``sleep`` and ``clock`` are inputs so tests need not wait.
        """
        deadline = clock() + timeout
        while True:
            finished = self.collect(state, signer)
            if finished is not None:
                return finished
            if clock() >= deadline:
                raise _state_error(
                    "remote_signature_timeout",
                    f"the remote signer did not answer within {timeout:g} s",
                    f"dịch vụ ký từ xa không trả lời trong {timeout:g} giây",
                )
            sleep(interval)

    def finish(self, state: XmlSigningState, signature_value: bytes) -> etree._Element:
        """Write ``signature_value`` into the prepared document and return it.

        Refuses with :class:`~signing.errors.SigningError` a state whose ``SignedInfo`` no
        longer matches its digest or whose document carries another certificate
        (``remote_state_mismatch``); with :class:`~signing.errors.SignatureInvalid` a value
        that does not verify with the certificate (``remote_signature_invalid``) and a
        finished document that fails :func:`signing.xmldsig.verify_enveloped`, e.g. because
        its signed data was altered while waiting (``remote_result_invalid``). So a wrong
        answer from the service never becomes a legal original.
        """
        if state.algorithm != RSA_SHA256:
            raise _state_error(
                "remote_algorithm_unsupported",
                f"unsupported remote signature algorithm {state.algorithm!r}",
                f"không hỗ trợ thuật toán ký {state.algorithm!r}",
            )
        try:
            # The state waited outside this process (a queue, a database): read it as untrusted.
            root = parse_untrusted(state.document, what="the saved document")
        except UntrustedXmlError as exc:
            raise _state_error(
                "remote_state_unreadable",
                f"the saved document cannot be read safely: {exc}",
                f"tài liệu đã lưu bị từ chối ({exc.reason.value})",
            ) from exc
        signature, signed_info, value = _locate(root, state.signature_id)
        if hashlib.sha256(_signed_info_c14n(signed_info)).digest() != state.digest:
            raise _state_error(
                "remote_state_mismatch",
                "the saved SignedInfo does not match the digest that was sent for signing",
                "SignedInfo đã lưu không khớp với giá trị băm đã gửi đi ký",
            )
        carried = signature.find(f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509Certificate')}")
        carried_der = b"" if carried is None else b64decode("".join((carried.text or "").split()))
        if carried_der != self.certificate.public_bytes(serialization.Encoding.DER):
            raise _state_error(
                "remote_state_mismatch",
                "the saved document carries another certificate than this signer's",
                "tài liệu đã lưu mang chứng thư số khác với của người ký",
            )
        try:
            self._public_key.verify(
                signature_value, state.digest, PKCS1v15(), Prehashed(hashes.SHA256())
            )
        except CryptographyInvalidSignature as exc:
            raise SignatureInvalid(
                "remote_signature_invalid",
                "the remote signer's answer does not verify with the certificate",
                "chữ ký do dịch vụ ký từ xa trả về không khớp với chứng thư số",
            ) from exc
        value.text = b64encode(signature_value).decode("ascii")
        # Last guard: the finished document must pass the same verification as any receipt
        # (references, profile, certificate at the signing time), since it becomes the legal
        # original; a stored state whose signed data was altered while waiting fails here.
        status = verify_enveloped(
            etree.tostring(root, encoding="UTF-8", xml_declaration=True),
            signature_id=state.signature_id,
        )
        if not status.valid:
            raise SignatureInvalid(
                "remote_result_invalid",
                f"the finished document does not verify: {'; '.join(status.problems)}",
                f"tài liệu sau khi ký không hợp lệ: {'; '.join(status.problems)}",
            )
        return root
