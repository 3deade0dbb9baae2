"""Key sources: where the organisation's signing key lives and how it is reached.

The key source is swappable (as pyHanko's ``Signer`` is): signing code only needs a
:class:`KeySource`. Two exist: PKCS#12 files (:class:`Pkcs12KeySource`) and keys in an HSM or
USB token (:class:`signing.pkcs11.Pkcs11KeySource`, whose ``private_key`` implements
cryptography's ``RSAPrivateKey`` and forwards ``sign`` to the token, because signxml calls
exactly that).

The extension point is ``_SCHEME_LOADERS``: one loader per scheme, returning a
:class:`KeySource`. ``pkcs11:`` is loaded lazily so that python-pkcs11 is only needed where a
token is configured. A remote service that confirms asynchronously does not fit a synchronous
``sign()``: it goes through the interrupted flow of :mod:`signing.remote` (to-be-signed
SignedInfo → remote signature → finished document), not through a key reference, so
``remote:`` stays unsupported here.
"""

from __future__ import annotations

import hashlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from signing.errors import KeyLoadError

__all__ = [
    "KeySource",
    "Pkcs12KeySource",
    "clear_key_cache",
    "load_key_source",
]


class KeySource(ABC):
    """A signing key with its certificate: what every signer in ``signing`` consumes.

    Only RSA with PKCS#1 v1.5 and SHA-256 is offered because that is what the tax authority's
    XMLDSig profile (``rsa-sha256``) and the Vietnamese CAs' certificates use.
    """

    @property
    @abstractmethod
    def certificate(self) -> x509.Certificate:
        """The signer's certificate, embedded in every signature."""

    @property
    @abstractmethod
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Issuer certificates shipped with the key (may be empty), nearest issuer first."""

    @property
    @abstractmethod
    def private_key(self) -> rsa.RSAPrivateKey:
        """A loaded key object, handed to signxml as is.

        Passing the loaded object rather than PEM bytes is what makes signing fast: signxml
        re-parses and re-validates PEM on every call (~27 ms, see docs/performance.md).
        """

    def sign(self, data: bytes) -> bytes:
        """RSA PKCS#1 v1.5 over SHA-256 of ``data``, for signers that build their own structures."""
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


class Pkcs12KeySource(KeySource):
    """A key and certificate loaded from a PKCS#12 (``.p12``/``.pfx``) file.

    Use :meth:`load`, which caches: parsing and validating an RSA key costs ~27 ms, about a
    hundred signatures' worth, so each file is loaded once per process.
    """

    __slots__ = ("_certificate", "_chain", "_private_key", "path")

    def __init__(
        self,
        path: Path,
        private_key: rsa.RSAPrivateKey,
        certificate: x509.Certificate,
        chain: tuple[x509.Certificate, ...] = (),
    ) -> None:
        self.path = path
        self._private_key = private_key
        self._certificate = certificate
        self._chain = chain

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        return self._private_key

    def __repr__(self) -> str:
        subject = self._certificate.subject.rfc4514_string()
        return f"Pkcs12KeySource(path={str(self.path)!r}, subject={subject!r})"

    @classmethod
    def load(cls, path: Path, password: bytes | None) -> Pkcs12KeySource:
        """Load ``path`` once per process; reload only when the file changes.

        The cache key is the resolved path, the file's mtime and size, and a digest of the
        password: replacing the file (certificate renewal) takes effect without a restart, and
        a wrong password never gets a key that an earlier right password unlocked.
        ``password=None`` accepts both unencrypted bundles and bundles with an empty password,
        since tools write development bundles either way.
        """
        try:
            resolved = path.resolve(strict=True)
            stat = resolved.stat()
        except OSError as exc:
            raise KeyLoadError(
                "key_file_missing",
                f"cannot read the key file {path}: {exc.strerror or exc}",
                f"không đọc được tệp khóa {path}: {exc.strerror or exc}",
            ) from exc
        secret = hashlib.sha256(password if password is not None else b"\x00none").digest()
        cache_key = (resolved, stat.st_mtime_ns, stat.st_size, secret)
        with _CACHE_LOCK:
            cached = _CACHE.get(cache_key)
            if cached is not None:
                return cached
            source = cls._read(resolved, password)
            for stale in [key for key in _CACHE if key[0] == resolved]:
                del _CACHE[stale]
            _CACHE[cache_key] = source
            return source

    @classmethod
    def _read(cls, path: Path, password: bytes | None) -> Pkcs12KeySource:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyLoadError(
                "key_file_missing",
                f"cannot read the key file {path}: {exc.strerror or exc}",
                f"không đọc được tệp khóa {path}: {exc.strerror or exc}",
            ) from exc
        attempts: tuple[bytes | None, ...] = (None, b"") if password is None else (password,)
        bundle: pkcs12.PKCS12KeyAndCertificates | None = None
        for attempt in attempts:
            try:
                bundle = pkcs12.load_pkcs12(data, attempt)
                break
            except ValueError:
                continue
        if bundle is None:
            raise KeyLoadError(
                "key_unreadable",
                f"{path} is not a PKCS#12 file or the password is wrong",
                f"{path} không phải tệp PKCS#12 hoặc mật khẩu không đúng",
            )
        if bundle.key is None or bundle.cert is None:
            raise KeyLoadError(
                "key_incomplete",
                f"{path} must hold both a private key and its certificate",
                f"{path} phải chứa cả khóa bí mật và chứng thư số tương ứng",
            )
        key = bundle.key
        if not isinstance(key, rsa.RSAPrivateKey):
            raise KeyLoadError(
                "key_unsupported_algorithm",
                f"{path} holds a {type(key).__name__}; only RSA keys sign with rsa-sha256",
                f"{path} chứa khóa không phải RSA; chỉ hỗ trợ khóa RSA (rsa-sha256)",
            )
        certificate = bundle.cert.certificate
        if certificate.public_key() != key.public_key():
            raise KeyLoadError(
                "key_certificate_mismatch",
                f"the certificate in {path} does not belong to its private key",
                f"chứng thư số trong {path} không khớp với khóa bí mật",
            )
        chain = tuple(extra.certificate for extra in bundle.additional_certs)
        return cls(path, key, certificate, chain)


_CACHE: dict[tuple[Path, int, int, bytes], Pkcs12KeySource] = {}
_CACHE_LOCK = threading.Lock()


def clear_key_cache() -> None:
    """Forget every loaded key, e.g. after rotating keys in place or between tests."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _invalid_reference(ref: str, why_en: str, why_vi: str) -> KeyLoadError:
    return KeyLoadError(
        "key_reference_invalid",
        f"invalid key reference {ref!r}: {why_en}",
        f"tham chiếu khóa {ref!r} không hợp lệ: {why_vi}",
    )


def _load_pkcs12_ref(ref: str, parts: SplitResult, environ: Mapping[str, str]) -> KeySource:
    if parts.netloc or parts.fragment:
        raise _invalid_reference(
            ref, "write pkcs12:/absolute/path.p12", "cần dạng pkcs12:/đường/dẫn/tuyệt/đối.p12"
        )
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise _invalid_reference(
            ref, "the path must be absolute", "đường dẫn phải là đường dẫn tuyệt đối"
        )
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise _invalid_reference(ref, "malformed options", "tùy chọn sai cú pháp") from exc
    unknown = sorted(set(query) - {"password-env"})
    if unknown:
        raise _invalid_reference(
            ref, f"unknown options {unknown}", f"tùy chọn không được hỗ trợ {unknown}"
        )
    password: bytes | None = None
    names = query.get("password-env", [])
    if len(names) > 1 or (names and not names[0]):
        raise _invalid_reference(
            ref, "give one password-env=NAME", "chỉ ghi một password-env=TÊN_BIẾN"
        )
    if names:
        value = environ.get(names[0])
        if value is None:
            raise KeyLoadError(
                "key_password_missing",
                f"environment variable {names[0]} (password of {path}) is not set",
                f"chưa đặt biến môi trường {names[0]} (mật khẩu của {path})",
            )
        password = value.encode("utf-8")
    return Pkcs12KeySource.load(path, password)


def _load_pkcs11_ref(ref: str, parts: SplitResult, environ: Mapping[str, str]) -> KeySource:
    """Imported on first use: python-pkcs11 is a native extension only token users need."""
    try:
        from signing.pkcs11 import load_pkcs11_reference
    except ImportError as exc:
        if exc.name not in {"pkcs11", "pkcs11._pkcs11"}:
            raise
        raise KeyLoadError(
            "pkcs11_unavailable",
            "pkcs11: key references need the python-pkcs11 package",
            "tham chiếu khóa pkcs11: cần cài gói python-pkcs11",
        ) from exc
    return load_pkcs11_reference(ref, parts, environ)


def _not_yet_supported(ref: str, parts: SplitResult, environ: Mapping[str, str]) -> KeySource:
    """Remote signers answer later; they use :mod:`signing.remote`, not a key reference."""
    raise KeyLoadError(
        "key_source_unsupported",
        f"{parts.scheme}: key sources are not yet supported",
        f"chưa hỗ trợ nguồn khóa {parts.scheme}:",
    )


_SCHEME_LOADERS: dict[str, Callable[[str, SplitResult, Mapping[str, str]], KeySource]] = {
    "pkcs12": _load_pkcs12_ref,
    "pkcs11": _load_pkcs11_ref,
    "remote": _not_yet_supported,
}
"""Extension point: one loader per key-reference scheme."""


def load_key_source(ref: str, *, environ: Mapping[str, str] | None = None) -> KeySource:
    """Turn a configured key reference into a :class:`KeySource`.

    References keep secrets out of configuration files: the password is named, not written.
    Forms:

    - ``pkcs12:/abs/path/org.p12`` — no password (development bundles);
    - ``pkcs12:/abs/path/org.p12?password-env=NAME`` — password read from environment
      variable ``NAME`` (``environ`` replaces ``os.environ``, for tests).

    - ``pkcs11:token=LABEL;object=KEY-LABEL?pin-env=NAME[&module=/abs/lib.so][&cert=/abs/c.pem]``
      — a key on an HSM or USB token, RFC 7512 style; the full format is in
      :mod:`signing.pkcs11`.

    ``remote:`` raises :class:`~signing.errors.KeyLoadError` with code
    ``key_source_unsupported``: remote signers use :mod:`signing.remote`.
    """
    parts = urlsplit(ref.strip())
    loader = _SCHEME_LOADERS.get(parts.scheme.lower())
    if loader is None:
        raise _invalid_reference(
            ref,
            f"unknown scheme {parts.scheme!r} (known: {', '.join(sorted(_SCHEME_LOADERS))})",
            f"không biết loại nguồn khóa {parts.scheme!r}",
        )
    return loader(ref, parts, os.environ if environ is None else environ)
