"""``t=<timestamp>,v1=<hex HMAC>`` webhook signatures: written and checked in one place.

Three parties use the scheme Stripe made common: our own callbacks to one-stop systems
(``Motcua-Signature``, HMAC-SHA256, seconds), Stripe's card webhooks (``Stripe-Signature``, the
same) and Casso's bank webhooks (``X-Casso-Signature``, HMAC-SHA512, **milliseconds**, over a
canonical rendering of the JSON body rather than the raw bytes). The header grammar, the MAC over
``"{t}.{payload}"``, the constant-time comparison and the tolerance window were written three
times with different rules; they are here once, and each module only says which header, which
digest, which time unit and which error it shows its callers.

The rules, for every party:

* the header is comma-separated ``key=value`` items, at most :data:`MAX_HEADER_CHARS` long;
  exactly one ``t`` (1-15 digits); any number of signatures under the scheme's key (``v1``),
  each the hex digest of the scheme's hash, upper or lower case; other keys (``v0``, a future
  ``v2``) are ignored, as Stripe's libraries do;
* several signatures and several secrets are accepted, so either side can rotate its secret;
  every candidate is compared with every expected value in constant time, with no early exit;
* the MAC is checked **before** the clock, so "too old" is only ever said of a genuine message
  and an unauthenticated caller learns nothing about which part was wrong;
* the timestamp may differ from now by at most the tolerance, either way: older is a possible
  replay (:attr:`WebhookSignatureReason.STALE`), newer a forged time or a broken clock
  (:attr:`WebhookSignatureReason.FUTURE`). "Now" is :func:`settings.clock.utcnow` unless given.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal, NamedTuple

from settings.clock import utcnow

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "MAX_HEADER_CHARS",
    "Digest",
    "SignatureHeader",
    "WebhookSignatureError",
    "WebhookSignatureReason",
    "compute",
    "parse",
    "sign",
    "verify",
]

Digest = Literal["sha256", "sha512"]

DEFAULT_TOLERANCE_SECONDS: Final = 300
"""Stripe's default, and ours: long enough for a queued retry, short enough to bound replay."""
MAX_HEADER_CHARS: Final = 8192
"""A real header with a few rotated signatures is a few hundred characters."""

_HEX_CHARS: Final[dict[str, int]] = {"sha256": 64, "sha512": 128}
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class WebhookSignatureReason(StrEnum):
    """Why a signature header was refused; each module maps these to its own problem codes."""

    MISSING = "missing"
    """No header, or an empty one."""
    MALFORMED = "malformed"
    """Not ``t=…,v1=…``: an item without ``=``, no or two ``t``, a signature that is not hex of
    the digest's length, or a header too long."""
    NO_SIGNATURE = "no_signature"
    """Well-formed, but no signature under the scheme's key (only other schemes)."""
    MISMATCH = "mismatch"
    """No signature matches the payload under any secret: wrong secret or altered payload/time."""
    STALE = "stale"
    """Genuine, but older than the tolerance."""
    FUTURE = "future"
    """Genuine, but dated further ahead than the tolerance."""


class WebhookSignatureError(Exception):
    """A signature header was refused; ``reason`` says why.

    ``str()`` is the English message; ``message_vi`` the Vietnamese one. Not a ``ValueError``
    on purpose: a ``ValueError`` from :func:`verify` means our own configuration is wrong (no
    secret, no tolerance), which is never the sender's fault.
    """

    def __init__(self, reason: WebhookSignatureReason, message_en: str, message_vi: str) -> None:
        self.reason = reason
        self.message_en = message_en
        self.message_vi = message_vi
        super().__init__(message_en)


class SignatureHeader(NamedTuple):
    """A parsed header: the timestamp as sent (seconds or milliseconds) and the signatures
    (lower-case hex) under the scheme's key."""

    timestamp: int
    signatures: tuple[str, ...]


def _secrets(secret: str | Sequence[str]) -> list[str]:
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys or not all(keys):
        raise ValueError("a webhook secret is required: an empty one would make any MAC valid")
    return keys


def compute(secret: str, payload: bytes, timestamp: int, *, digest: Digest = "sha256") -> str:
    """Hex HMAC of ``"{timestamp}.{payload}"`` under ``secret``: the value of one ``v1=``."""
    message = str(int(timestamp)).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), message, digest).hexdigest()


def sign(
    secret: str | Sequence[str],
    payload: bytes,
    timestamp: int,
    *,
    scheme: str = "v1",
    digest: Digest = "sha256",
) -> str:
    """The header value ``t=<timestamp>,v1=<hex>`` for ``payload``.

    Several secrets give several signatures (signing with the old and the new secret while
    rotating), in the order given.
    """
    signatures = (compute(key, payload, timestamp, digest=digest) for key in _secrets(secret))
    return ",".join([f"t={int(timestamp)}", *(f"{scheme}={value}" for value in signatures)])


def _refused(reason: WebhookSignatureReason, en: str, vi: str) -> WebhookSignatureError:
    return WebhookSignatureError(reason, en, vi)


def parse(
    header: str | None,
    *,
    scheme: str = "v1",
    digest: Digest = "sha256",
    header_name: str = "signature header",
) -> SignatureHeader:
    """Read ``t=…,v1=…[,v1=…]`` by the rules in the module docstring; checks no MAC.

    ``header_name`` only names the header in messages.

    :raises WebhookSignatureError: ``missing``, ``malformed`` or ``no_signature``.
    """
    malformed = WebhookSignatureReason.MALFORMED
    if header is None or not header.strip():
        raise _refused(
            WebhookSignatureReason.MISSING,
            f"missing {header_name}",
            f"thiếu tiêu đề chữ ký {header_name}",
        )
    if len(header) > MAX_HEADER_CHARS:
        raise _refused(
            malformed,
            f"{header_name} longer than {MAX_HEADER_CHARS} characters",
            f"tiêu đề {header_name} dài quá {MAX_HEADER_CHARS} ký tự",
        )
    hex_chars = _HEX_CHARS[digest]
    shape = re.compile(f"[0-9a-fA-F]{{{hex_chars}}}")
    stamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise _refused(
                malformed,
                f"{header_name}: {item.strip()!r} is not key=value",
                f"{header_name}: {item.strip()!r} không có dạng khóa=giá trị",
            )
        if key == "t":
            stamps.append(value)
        elif key == scheme:
            if not shape.fullmatch(value):
                raise _refused(
                    malformed,
                    f"{header_name}: {scheme} must be {hex_chars} hex digits ({digest} HMAC)",
                    f"{header_name}: {scheme} phải gồm {hex_chars} chữ số hex",
                )
            signatures.append(value.lower())
    if len(stamps) != 1 or not _TIMESTAMP.fullmatch(stamps[0]):
        raise _refused(
            malformed,
            f"{header_name} needs exactly one t= of unix time digits",
            f"{header_name} phải có đúng một t= là thời điểm unix",
        )
    if not signatures:
        raise _refused(
            WebhookSignatureReason.NO_SIGNATURE,
            f"{header_name} has no {scheme}= signature",
            f"{header_name} không có chữ ký {scheme}=",
        )
    return SignatureHeader(int(stamps[0]), tuple(signatures))


def verify(
    secret: str | Sequence[str],
    payload: bytes | Sequence[bytes],
    header: str | SignatureHeader | None,
    *,
    now: datetime | None = None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    scheme: str = "v1",
    digest: Digest = "sha256",
    milliseconds: bool = False,
    header_name: str = "signature header",
) -> int:
    """Check ``header`` against ``payload``; return the signed timestamp (in the header's unit).

    ``payload`` is what was signed after ``"{t}."``: the raw body for us and Stripe. A sequence
    means several renderings are acceptable (Casso's canonical JSON, whose non-ASCII form its
    own examples disagree on); any of them may match. ``secret`` may be several (rotation on our
    side). ``milliseconds``: ``t`` counts milliseconds (Casso), not seconds. A header already
    :func:`parse`\\ d may be passed, for callers that must refuse a bad header before reading
    the body.

    :raises WebhookSignatureError: any :class:`WebhookSignatureReason`.
    :raises ValueError: our configuration is wrong: no secret, a tolerance that is not positive,
        or a naive ``now``.
    """
    keys = _secrets(secret)
    if tolerance_seconds <= 0:
        raise ValueError("the tolerance must be a positive number of seconds")
    at = utcnow() if now is None else now
    if at.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    parsed = (
        header
        if isinstance(header, SignatureHeader)
        else parse(header, scheme=scheme, digest=digest, header_name=header_name)
    )
    payloads = [payload] if isinstance(payload, bytes) else list(payload)
    matched = False
    for key in keys:
        for rendering in payloads:
            expected = compute(key, rendering, parsed.timestamp, digest=digest)
            for candidate in parsed.signatures:  # every pair: no early exit to time
                matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise _refused(
            WebhookSignatureReason.MISMATCH,
            f"{header_name} does not match the payload (wrong secret or altered payload)",
            f"{header_name} không khớp với nội dung (sai khóa bí mật hoặc nội dung bị sửa)",
        )
    unit = 1000 if milliseconds else 1
    age = int(at.timestamp() * unit) - parsed.timestamp  # in the header's unit, exact
    if age > tolerance_seconds * unit:
        raise _refused(
            WebhookSignatureReason.STALE,
            f"signed {age // unit} s ago, more than the {tolerance_seconds} s allowed",
            f"chữ ký đã {age // unit} giây, quá {tolerance_seconds} giây cho phép",
        )
    if -age > tolerance_seconds * unit:
        raise _refused(
            WebhookSignatureReason.FUTURE,
            f"signed {-age // unit} s ahead of now, more than the {tolerance_seconds} s allowed",
            f"chữ ký ghi thời điểm sau hiện tại {-age // unit} giây, quá {tolerance_seconds} giây",
        )
    return parsed.timestamp
