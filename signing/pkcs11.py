"""Keys in an HSM or a USB token, reached through PKCS#11 (python-pkcs11).

Unattended bulk signing needs the organisation's key in an HSM (docs/domain.md, "Signatures"):
the key never leaves the token, so every signature is a call into the PKCS#11 module. What
makes that fast and safe (docs/performance.md: 2,150 RSA signs/s through SoftHSM2):

- one logged-in session per token and process, opened once and shared by every key on that
  token (PKCS#11 login state is per application and token: a second ``C_Login`` fails with
  ``CKR_USER_ALREADY_LOGGED_IN``);
- one lock per module around every call into it: a session runs one operation at a time, and
  python-pkcs11 initialises the module without ``CKF_OS_LOCKING_OK``, which in PKCS#11 is a
  promise never to call it from two threads at once. The token, not Python, is the limit
  (the C call releases the GIL);
- key and certificate handles looked up once, at load time, so that a misconfigured key fails
  before any document is signed;
- after ``fork()`` (Celery's prefork workers) the module is re-initialised and the session
  reopened in the child, because PKCS#11 sessions do not survive a fork; a session lost to a
  token reset is reopened once and the operation retried.

:attr:`Pkcs11KeySource.private_key` is a :class:`Pkcs11RsaPrivateKey`, a cryptography
``RSAPrivateKey`` whose ``sign`` forwards to the token, so signxml and every
cryptography-based signer use it unchanged.

Key reference format (RFC 7512 shaped; :func:`parse_pkcs11_reference`)::

    pkcs11:token=<token label>;object=<key label>[;id=<%XX bytes>][;type=private]
        ?pin-env=<ENV VAR>[&module=<abs path to the PKCS#11 module>][&cert=<abs path>]

- path attributes (separated by ``;``, values percent-encoded as in RFC 7512): ``token``
  (required) chooses the token by label; ``object`` (the key's ``CKA_LABEL``) and/or ``id``
  (its ``CKA_ID``, percent-encoded bytes, e.g. ``id=%01%a2``) choose the private key, at least
  one of them is required; ``type`` may only be ``private``;
- query attributes (separated by ``&``): ``pin-env`` (required) names the environment variable
  holding the user PIN, so the PIN is never written in configuration (RFC 7512's ``pin-value``
  is refused for that reason); ``module`` or RFC 7512's ``module-path`` is the module, default
  :data:`DEFAULT_MODULE` (SoftHSM2); ``cert`` is an absolute path to the signer's certificate
  (PEM or DER; more PEM certificates after the first are its issuers) when the token does not
  hold it, otherwise the certificate is the ``CKO_CERTIFICATE`` with the key's ``id`` (or, if
  the key has none, the same label).

Example (one line)::

    pkcs11:token=motcua;object=org-key?module=/usr/lib/softhsm/libsofthsm2.so&pin-env=MOTCUA_HSM_PIN

Only RSA with PKCS#1 v1.5 and SHA-256 (``CKM_SHA256_RSA_PKCS``) is offered, as for every other
key source: it is the tax authority's ``rsa-sha256``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar
from urllib.parse import SplitResult, parse_qs, unquote, unquote_to_bytes, urlsplit

import pkcs11
from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo, Prehashed
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11_errors

from signing.errors import KeyLoadError, SigningError
from signing.keys import KeySource

__all__ = [
    "DEFAULT_MODULE",
    "Pkcs11KeySource",
    "Pkcs11Reference",
    "Pkcs11RsaPrivateKey",
    "close_pkcs11_sessions",
    "load_pkcs11_reference",
    "parse_pkcs11_reference",
]

DEFAULT_MODULE: Final = Path("/usr/lib/softhsm/libsofthsm2.so")
"""SoftHSM2 as packaged by Debian: the development and test HSM."""

_SELF_TEST_DATA: Final = b"motcua-pay pkcs11 key check"
"""Signed once at load time to prove the token key belongs to the certificate."""

_SESSION_LOST: Final = (
    p11_errors.SessionHandleInvalid,
    p11_errors.SessionClosed,
    p11_errors.DeviceRemoved,
    p11_errors.TokenNotPresent,
    p11_errors.UserNotLoggedIn,
    p11_errors.ObjectHandleInvalid,
    p11_errors.KeyHandleInvalid,
)
"""Errors after which reopening the session (and looking the handles up again) may help."""

_T = TypeVar("_T")


# --- references ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pkcs11Reference:
    """A parsed ``pkcs11:`` key reference: where the key is, never the PIN itself."""

    token_label: str
    """``CKA_LABEL`` of the token (the label given to ``softhsm2-util --init-token``)."""
    key_label: str | None
    """``CKA_LABEL`` of the private key."""
    key_id: bytes | None
    """``CKA_ID`` of the private key; the certificate normally shares it."""
    pin_env: str
    """Name of the environment variable holding the user PIN."""
    module_path: Path = DEFAULT_MODULE
    """The PKCS#11 module (shared library) to load."""
    certificate_file: Path | None = None
    """Certificate file to use instead of the token's ``CKO_CERTIFICATE``."""


def _invalid(ref: str, why_en: str, why_vi: str) -> KeyLoadError:
    return KeyLoadError(
        "key_reference_invalid",
        f"invalid key reference {ref!r}: {why_en}",
        f"tham chiếu khóa {ref!r} không hợp lệ: {why_vi}",
    )


_PATH_ATTRIBUTES: Final = frozenset({"token", "object", "id", "type"})
_QUERY_ATTRIBUTES: Final = frozenset({"pin-env", "module", "module-path", "cert"})


def _absolute(ref: str, value: str, what: str) -> Path:
    path = Path(value)
    if not path.is_absolute():
        raise _invalid(
            ref, f"{what} must be an absolute path", f"{what} phải là đường dẫn tuyệt đối"
        )
    return path


def parse_pkcs11_reference(ref: str) -> Pkcs11Reference:
    """Parse a ``pkcs11:`` reference (format in the module docstring) without touching a token.

    Unknown attributes are refused rather than ignored: a misspelt ``objet=`` must not silently
    pick another key.
    """
    parts = urlsplit(ref.strip())
    if parts.scheme.lower() != "pkcs11" or parts.netloc or parts.fragment:
        raise _invalid(
            ref,
            "write pkcs11:token=...;object=...?pin-env=...",
            "cần dạng pkcs11:token=...;object=...?pin-env=...",
        )
    path_attrs: dict[str, str] = {}
    for item in parts.path.split(";") if parts.path else []:
        name, sep, raw = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise _invalid(
                ref, f"{item!r} is not name=value", f"{item!r} không có dạng tên=giá trị"
            )
        if name not in _PATH_ATTRIBUTES:
            raise _invalid(
                ref, f"unknown attribute {name!r}", f"thuộc tính không được hỗ trợ {name!r}"
            )
        if name in path_attrs:
            raise _invalid(ref, f"{name!r} is given twice", f"{name!r} được ghi hai lần")
        path_attrs[name] = raw
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise _invalid(ref, "malformed options", "tùy chọn sai cú pháp") from exc
    if "pin-value" in query:
        raise _invalid(
            ref,
            "pin-value would write the PIN into configuration; use pin-env=NAME",
            "không ghi mã PIN vào cấu hình (pin-value); dùng pin-env=TÊN_BIẾN",
        )
    unknown = sorted(set(query) - _QUERY_ATTRIBUTES)
    if unknown:
        raise _invalid(ref, f"unknown options {unknown}", f"tùy chọn không được hỗ trợ {unknown}")
    single: dict[str, str] = {}
    for name, values in query.items():
        if len(values) != 1 or not values[0]:
            raise _invalid(ref, f"give one non-empty {name}=", f"chỉ ghi một {name}= có giá trị")
        single[name] = values[0]
    if "module" in single and "module-path" in single:
        raise _invalid(
            ref, "give module or module-path, not both", "chỉ ghi module hoặc module-path"
        )

    token = unquote(path_attrs.get("token", ""))
    if not token:
        raise _invalid(ref, "token=<label> is required", "thiếu token=<nhãn token>")
    key_label = unquote(path_attrs["object"]) if "object" in path_attrs else None
    key_id = unquote_to_bytes(path_attrs["id"]) if "id" in path_attrs else None
    if not key_label and not key_id:
        raise _invalid(
            ref,
            "object=<key label> or id=<key id> is required",
            "thiếu object=<nhãn khóa> hoặc id=<mã khóa>",
        )
    if path_attrs.get("type", "private") != "private":
        raise _invalid(ref, "only type=private names a signing key", "chỉ type=private là khóa ký")
    pin_env = single.get("pin-env")
    if pin_env is None:
        raise _invalid(ref, "pin-env=NAME is required", "thiếu pin-env=TÊN_BIẾN chứa mã PIN")
    module_text = single.get("module") or single.get("module-path")
    return Pkcs11Reference(
        token_label=token,
        key_label=key_label or None,
        key_id=key_id or None,
        pin_env=pin_env,
        module_path=DEFAULT_MODULE
        if module_text is None
        else _absolute(ref, module_text, "module"),
        certificate_file=None if "cert" not in single else _absolute(ref, single["cert"], "cert"),
    )


def load_pkcs11_reference(
    ref: str, parts: SplitResult | None = None, environ: Mapping[str, str] | None = None
) -> Pkcs11KeySource:
    """The ``pkcs11:`` loader registered in :data:`signing.keys._SCHEME_LOADERS`.

    ``parts`` is accepted for the loader signature and ignored: the reference is re-parsed
    here because RFC 7512 attributes are not URL parameters.
    """
    del parts
    parsed = parse_pkcs11_reference(ref)
    env = os.environ if environ is None else environ
    pin = env.get(parsed.pin_env)
    if pin is None:
        raise KeyLoadError(
            "pkcs11_pin_missing",
            f"environment variable {parsed.pin_env} (PIN of token {parsed.token_label!r})"
            " is not set",
            f"chưa đặt biến môi trường {parsed.pin_env} (mã PIN của token {parsed.token_label!r})",
        )
    return Pkcs11KeySource.open(
        token_label=parsed.token_label,
        key_label=parsed.key_label,
        key_id=parsed.key_id,
        pin=pin,
        module_path=parsed.module_path,
        certificate_file=parsed.certificate_file,
    )


# --- sessions ------------------------------------------------------------------------------


def _load_error(code: str, en: str, vi: str) -> KeyLoadError:
    return KeyLoadError(code, en, vi)


class _Library:
    """A loaded PKCS#11 module, re-initialised in a forked child before its first use."""

    def __init__(self, module_path: Path) -> None:
        self.module_path = module_path
        self.pid = os.getpid()
        self.epoch = 0
        """Bumped when the module is re-initialised; sessions opened before are void."""
        self.lock = threading.RLock()
        """Held around every call into the module (see the module docstring)."""
        try:
            self.lib = pkcs11.lib(str(module_path))
        except (p11_errors.PKCS11Error, OSError) as exc:
            raise _load_error(
                "pkcs11_module_unavailable",
                f"cannot load the PKCS#11 module {module_path}: {exc}",
                f"không nạp được thư viện PKCS#11 {module_path}: {exc}",
            ) from exc

    def ensure_current_process(self) -> None:
        """After ``fork()``, the parent's sessions are void in the child: start afresh."""
        if self.pid == os.getpid():
            return
        self.lib.reinitialize()
        self.pid = os.getpid()
        self.epoch += 1


@dataclass(eq=False)
class _TokenSession:
    """The one logged-in session of this process on a token, shared by every key on it."""

    library: _Library
    token_label: str
    pin: str = field(repr=False)
    pin_digest: bytes = field(repr=False)
    session: Any = None
    epoch: int = -1
    """The module epoch the session was opened in."""
    generation: int = 0
    """Bumped each time the session is (re)opened; key handles older than it are stale."""

    @property
    def lock(self) -> threading.RLock:
        """The module's lock: taken around every use of the session."""
        return self.library.lock

    def current(self) -> Any:
        """The open session, (re)opening it when missing, stale or in a forked child."""
        with self.lock:
            self.library.ensure_current_process()
            if self.session is None or self.epoch != self.library.epoch:
                self._open()
            return self.session

    def reopen(self) -> Any:
        """Drop the session (token reset, handle invalid) and log in again."""
        with self.lock:
            lost, self.session = self.session, None
            if lost is not None and self.epoch == self.library.epoch:
                with contextlib.suppress(p11_errors.PKCS11Error):
                    lost.close()
            return self.current()

    def _open(self) -> None:
        token = _find_token(self.library, self.token_label)
        try:
            session = token.open(user_pin=self.pin)
        except (p11_errors.PinIncorrect, p11_errors.PinInvalid, p11_errors.PinLenRange) as exc:
            raise _pin_incorrect(self.token_label) from exc
        except p11_errors.PinLocked as exc:
            raise _load_error(
                "pkcs11_pin_locked",
                f"the PIN of token {self.token_label!r} is locked",
                f"mã PIN của token {self.token_label!r} đã bị khóa",
            ) from exc
        except p11_errors.UserAlreadyLoggedIn:
            # Logged in by an earlier session of this process (e.g. before a token reset that
            # kept the login, or a session this object lost track of): a new session
            # inherits the login state, so open one without logging in again.
            session = token.open()
        except p11_errors.PKCS11Error as exc:
            raise _load_error(
                "pkcs11_session_failed",
                f"cannot open a session on token {self.token_label!r}: {exc!r}",
                f"không mở được phiên làm việc với token {self.token_label!r}: {exc!r}",
            ) from exc
        self.session = session
        self.epoch = self.library.epoch
        self.generation += 1

    def close(self) -> None:
        with self.lock:
            session, self.session = self.session, None
            if session is not None and self.library.pid == os.getpid():
                with contextlib.suppress(p11_errors.PKCS11Error):
                    session.close()


def _pin_incorrect(token_label: str) -> KeyLoadError:
    return _load_error(
        "pkcs11_pin_incorrect",
        f"the PIN of token {token_label!r} is wrong",
        f"mã PIN của token {token_label!r} không đúng",
    )


def _find_token(library: _Library, token_label: str) -> Any:
    try:
        return library.lib.get_token(token_label=token_label)
    except p11_errors.NoSuchToken as exc:
        raise _load_error(
            "pkcs11_token_not_found",
            f"no token labelled {token_label!r} in {library.module_path}",
            f"không tìm thấy token có nhãn {token_label!r} trong {library.module_path}",
        ) from exc
    except p11_errors.MultipleTokensReturned as exc:
        raise _load_error(
            "pkcs11_token_ambiguous",
            f"several tokens are labelled {token_label!r}; give each a unique label",
            f"có nhiều token cùng nhãn {token_label!r}; hãy đặt nhãn khác nhau",
        ) from exc
    except p11_errors.PKCS11Error as exc:
        raise _load_error(
            "pkcs11_token_not_found",
            f"cannot list the tokens of {library.module_path}: {exc!r}",
            f"không liệt kê được token của {library.module_path}: {exc!r}",
        ) from exc


_REGISTRY_LOCK = threading.Lock()
_LIBRARIES: dict[Path, _Library] = {}
_SESSIONS: dict[tuple[Path, str], _TokenSession] = {}
_SOURCES: dict[tuple[Path, str, str | None, bytes | None, Path | None, bytes], Pkcs11KeySource] = {}


def _token_session(module_path: Path, token_label: str, pin: str) -> _TokenSession:
    """The shared session for ``token_label``, logging in with ``pin`` the first time.

    The token is asked to check the PIN once; later sources on the same token must present
    the same PIN (compared by digest), so a wrong PIN is never let through by a login that an
    earlier right PIN made.
    """
    digest = hashlib.sha256(pin.encode("utf-8")).digest()
    with _REGISTRY_LOCK:
        library = _LIBRARIES.get(module_path)
        if library is None:
            library = _LIBRARIES[module_path] = _Library(module_path)
        key = (module_path, token_label)
        shared = _SESSIONS.get(key)
        if shared is not None:
            if shared.pin_digest != digest:
                raise _pin_incorrect(token_label)
            return shared
        shared = _TokenSession(library, token_label, pin, digest)
        shared.current()
        _SESSIONS[key] = shared
        return shared


def close_pkcs11_sessions() -> None:
    """Log out, close every session and forget every PKCS#11 key source (shutdown, tests)."""
    with _REGISTRY_LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
        _SOURCES.clear()
    for shared in sessions:
        shared.close()


# --- the key -------------------------------------------------------------------------------


def _unsupported(what: str) -> NoReturn:
    raise SigningError(
        "pkcs11_operation_unsupported",
        f"{what} is not possible with a key that stays inside the token",
        f"không thể {what} với khóa nằm trong token",
    )


class Pkcs11RsaPrivateKey(rsa.RSAPrivateKey):
    """A cryptography ``RSAPrivateKey`` whose private half stays on the token.

    Only ``sign(data, PKCS1v15(), SHA256())`` is forwarded (``CKM_SHA256_RSA_PKCS``): that is
    what signxml and :meth:`signing.keys.KeySource.sign` call, and refusing the rest keeps a
    caller from silently getting another signature scheme. ``public_key()`` is the
    certificate's key. Decryption and export raise: the key is not extractable by design.
    """

    def __init__(self, source: Pkcs11KeySource, public_key: rsa.RSAPublicKey) -> None:
        self._source = source
        self._public_key = public_key

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: Prehashed | hashes.HashAlgorithm | NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding, PKCS1v15) or not isinstance(algorithm, hashes.SHA256):
            raise SigningError(
                "pkcs11_mechanism_unsupported",
                "a PKCS#11 key signs only with RSA PKCS#1 v1.5 over SHA-256 (CKM_SHA256_RSA_PKCS);"
                f" asked for {type(padding).__name__} with {type(algorithm).__name__}",
                "khóa PKCS#11 chỉ ký RSA PKCS#1 v1.5 với SHA-256 (CKM_SHA256_RSA_PKCS); "
                f"không hỗ trợ {type(padding).__name__} với {type(algorithm).__name__}",
            )
        return self._source.sign(data)

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        _unsupported("decrypt")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _unsupported("read the private numbers")

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _unsupported("export the private key")

    def __copy__(self) -> Pkcs11RsaPrivateKey:
        """A copy of a handle is the same handle: the key itself cannot be copied."""
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11RsaPrivateKey:
        return self

    def __repr__(self) -> str:
        return f"Pkcs11RsaPrivateKey({self._source!r})"


# --- the key source ------------------------------------------------------------------------


class Pkcs11KeySource(KeySource):
    """An RSA key on a PKCS#11 token with its certificate.

    Use :meth:`open` (or ``load_key_source("pkcs11:...")``), which caches: one source per key
    and one session per token for the whole process.
    """

    def __init__(
        self,
        shared: _TokenSession,
        key_label: str | None,
        key_id: bytes | None,
        certificate: x509.Certificate,
        chain: tuple[x509.Certificate, ...],
    ) -> None:
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise _load_error(
                "key_unsupported_algorithm",
                "the certificate does not hold an RSA key; only RSA keys sign with rsa-sha256",
                "chứng thư số không chứa khóa RSA; chỉ hỗ trợ khóa RSA (rsa-sha256)",
            )
        self._shared = shared
        self._key_label = key_label
        self._key_id = key_id
        self._certificate = certificate
        self._chain = chain
        self._handle: Any = None
        self._handle_generation = -1
        self._private_key = Pkcs11RsaPrivateKey(self, public_key)

    # KeySource -----------------------------------------------------------------------------

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    @property
    def private_key(self) -> Pkcs11RsaPrivateKey:
        return self._private_key

    def sign(self, data: bytes) -> bytes:
        """``CKM_SHA256_RSA_PKCS`` on the token: RSA PKCS#1 v1.5 over SHA-256 of ``data``."""
        try:
            signature: bytes = self._with_key(
                lambda key: key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
            )
        except KeyLoadError:
            raise
        except p11_errors.PKCS11Error as exc:
            raise SigningError(
                "pkcs11_sign_failed",
                f"the token {self._shared.token_label!r} refused to sign: {exc!r}",
                f"token {self._shared.token_label!r} không ký được: {exc!r}",
            ) from exc
        return signature

    def __repr__(self) -> str:
        subject = self._certificate.subject.rfc4514_string()
        return (
            f"Pkcs11KeySource(token={self._shared.token_label!r}, label={self._key_label!r}, "
            f"id={self._key_id.hex() if self._key_id else None!r}, subject={subject!r})"
        )

    # handles -------------------------------------------------------------------------------

    def _with_key(self, operation: Callable[[Any], _T]) -> _T:
        """Run ``operation`` on the key handle under the session lock; retry once if lost."""
        shared = self._shared
        with shared.lock:
            try:
                return operation(self._key_handle(shared.current()))
            except _SESSION_LOST:
                return operation(self._key_handle(shared.reopen()))

    def _key_handle(self, session: Any) -> Any:
        if self._handle is None or self._handle_generation != self._shared.generation:
            self._handle = _find_private_key(session, self._key_label, self._key_id)
            self._handle_generation = self._shared.generation
        return self._handle

    # loading -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        *,
        token_label: str,
        key_label: str | None = None,
        key_id: bytes | None = None,
        pin: str,
        module_path: Path = DEFAULT_MODULE,
        certificate_file: Path | None = None,
    ) -> Pkcs11KeySource:
        """Find the key (by label and/or id) and its certificate; once per process.

        The certificate is read from ``certificate_file`` when given, else from the token.
        A test signature is made and checked against the certificate, so a certificate that
        does not belong to the key fails here and not in a verifier's hands.
        """
        if not key_label and not key_id:
            raise ValueError("give key_label, key_id or both")
        shared = _token_session(module_path, token_label, pin)
        cache_key = (
            module_path,
            token_label,
            key_label,
            key_id,
            certificate_file,
            shared.pin_digest,
        )
        with _REGISTRY_LOCK:
            cached = _SOURCES.get(cache_key)
        if cached is not None:
            return cached
        with shared.lock:
            session = shared.current()
            key = _find_private_key(session, key_label, key_id)
            if certificate_file is not None:
                certificate, chain = _read_certificate_file(certificate_file)
            else:
                certificate, chain = _token_certificates(session, key, key_label, token_label)
            source = cls(shared, key_label, key_id, certificate, chain)
            source._handle, source._handle_generation = key, shared.generation
        source._check_pair()
        with _REGISTRY_LOCK:
            return _SOURCES.setdefault(cache_key, source)

    def _check_pair(self) -> None:
        signature = self.sign(_SELF_TEST_DATA)
        public_key = self._private_key.public_key()
        try:
            public_key.verify(signature, _SELF_TEST_DATA, PKCS1v15(), hashes.SHA256())
        except CryptographyInvalidSignature as exc:
            raise _load_error(
                "key_certificate_mismatch",
                f"the certificate does not belong to the key on token {self._shared.token_label!r}",
                f"chứng thư số không khớp với khóa trên token {self._shared.token_label!r}",
            ) from exc


def _describe(key_label: str | None, key_id: bytes | None) -> str:
    parts = [f"label {key_label!r}"] if key_label else []
    if key_id:
        parts.append(f"id {key_id.hex()}")
    return " and ".join(parts)


def _find_private_key(session: Any, key_label: str | None, key_id: bytes | None) -> Any:
    what = _describe(key_label, key_id)
    try:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label, id=key_id)
    except p11_errors.NoSuchKey as exc:
        raise _load_error(
            "pkcs11_key_not_found",
            f"no private key with {what} on the token (or the PIN does not unlock it)",
            f"không tìm thấy khóa bí mật có {what} trên token",
        ) from exc
    except p11_errors.MultipleObjectsReturned as exc:
        raise _load_error(
            "pkcs11_key_ambiguous",
            f"several private keys have {what}; add id= to the reference",
            f"có nhiều khóa bí mật có {what}; hãy thêm id= vào tham chiếu",
        ) from exc
    if key.key_type != KeyType.RSA:
        raise _load_error(
            "key_unsupported_algorithm",
            f"the key with {what} is not RSA; only RSA keys sign with rsa-sha256",
            f"khóa có {what} không phải RSA; chỉ hỗ trợ khóa RSA (rsa-sha256)",
        )
    return key


def _certificates_on_token(session: Any, attrs: dict[Attribute, Any]) -> list[x509.Certificate]:
    query: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.CERTIFICATE, **attrs}
    found: list[x509.Certificate] = []
    for obj in session.get_objects(query):
        try:
            found.append(x509.load_der_x509_certificate(bytes(obj[Attribute.VALUE])))
        except (ValueError, p11_errors.PKCS11Error):
            continue
    return found


def _token_certificates(
    session: Any, key: Any, key_label: str | None, token_label: str
) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    """The key's certificate (same ``CKA_ID``, else same label) and its issuers on the token."""
    try:
        key_id = bytes(key[Attribute.ID])
    except p11_errors.PKCS11Error:
        key_id = b""
    candidates = _certificates_on_token(session, {Attribute.ID: key_id}) if key_id else []
    if not candidates and key_label:
        candidates = _certificates_on_token(session, {Attribute.LABEL: key_label})
    if len(candidates) != 1:
        what = _describe(key_label, key_id or None)
        raise _load_error(
            "pkcs11_certificate_not_found",
            f"found {len(candidates)} certificates with {what} on token {token_label!r}, expected"
            " 1; store it on the token or add cert=/path to the reference",
            f"tìm thấy {len(candidates)} chứng thư số có {what} trên token {token_label!r} "
            "(cần đúng 1); hãy lưu chứng thư lên token hoặc thêm cert=/đường/dẫn",
        )
    certificate = candidates[0]
    others = [c for c in _certificates_on_token(session, {}) if c != certificate]
    return certificate, _issuers(certificate, others)


def _issuers(
    certificate: x509.Certificate, pool: list[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """Walk up issuer names through ``pool`` (nearest issuer first), stopping at a root."""
    chain: list[x509.Certificate] = []
    current = certificate
    while current.issuer != current.subject:
        issuer = next((c for c in pool if c.subject == current.issuer and c not in chain), None)
        if issuer is None:
            break
        chain.append(issuer)
        current = issuer
    return tuple(chain)


def _read_certificate_file(path: Path) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _load_error(
            "key_file_missing",
            f"cannot read the certificate file {path}: {exc.strerror or exc}",
            f"không đọc được tệp chứng thư số {path}: {exc.strerror or exc}",
        ) from exc
    try:
        if b"-----BEGIN" in data:
            found = x509.load_pem_x509_certificates(data)
        else:
            found = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise _load_error(
            "pkcs11_certificate_unreadable",
            f"{path} is not a PEM or DER certificate",
            f"{path} không phải chứng thư số PEM hoặc DER",
        ) from exc
    return found[0], tuple(found[1:])
