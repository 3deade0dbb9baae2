"""Casso v2 webhooks: check the signature, validate the shape, journal raw, normalise.

Casso relays the agency's bank credits (and debits) as ``{"error": 0, "data": {...}}`` and signs
every call with ``X-Casso-Signature: t=<unix ms>,v1=<hex>``.

What exactly is signed
----------------------
domain.md describes the message as ``"{t}.{data as JSON with keys sorted recursively}"``. Casso's
own published examples (the PHP, Python, C#, Java and Go snippets on developer.casso.vn, all
built around one test vector: checksum key ``mgExMrjj...``, ``t=1727948258788``,
``v1=ed0a4bd2...``) sort and serialise **the whole body**, ``error`` included, not only the
``data`` object. We reproduced that vector byte for byte (``tests/payments/test_casso.py``), so
this module signs and verifies::

    HMAC-SHA512(secret, f"{t}.{json(body)}")   hex, lower case

where ``json(body)`` is the parsed request body with the keys of every object sorted
(recursively, also inside arrays), written compactly (``","`` and ``":"``, no spaces) the way
JavaScript's ``JSON.stringify`` writes it. The vector is ASCII only, so it cannot tell how Casso
writes non-ASCII text; its own examples disagree (Node and C# keep UTF-8, PHP and Python escape
``\\uXXXX``). We therefore accept either form of that one detail (:data:`_SERIALISERS`); both are
deterministic renderings of the same parsed body, so accepting both lets no one forge anything.
A ``data``-only message is **not** accepted: no published example produces it. If Casso ever
changes the scheme, :func:`_renderings` is the one place to change.

Verification checks the MAC (constant time) before the clock, so a "too old" answer is only
ever given for a genuine but stale message. Replays inside the tolerance window are harmless:
the journal keeps one event per Casso ``id``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from payments import webhook_signature
from payments.bankfeeds import NormalisedCredit, journal_event
from payments.errors import InvalidInput, Unauthorized
from payments.models import Agency, BankEvent
from payments.webhook_signature import WebhookSignatureError, WebhookSignatureReason

__all__ = [
    "SIGNATURE_HEADER",
    "SOURCE",
    "CassoPayload",
    "CassoTransaction",
    "casso_dedup_key",
    "journal_casso",
    "normalise_casso",
    "parse_casso",
    "sign",
    "verify_signature",
]

SOURCE = "casso"
SIGNATURE_HEADER = "X-Casso-Signature"

#: A Casso notification is one transaction, well under this; anything bigger is not Casso.
MAX_BODY_BYTES = 256 * 1024


class CassoTransaction(BaseModel):
    """The ``data`` object of a Casso v2 webhook.

    Casso sends ``""`` rather than leaving a field out, and sometimes ``null``; both mean
    "unknown" here. ``id`` may be 0: Casso's "test call" button sends exactly that, and the
    integration cannot be saved unless the test call succeeds.
    """

    model_config = ConfigDict(extra="allow", strict=False)

    id: int = Field(ge=0, lt=10**18)
    reference: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=2000)
    amount: int = Field(gt=-(10**13), lt=10**13)
    runningBalance: int | None = None  # noqa: N815
    transactionDateTime: str = Field(  # noqa: N815
        pattern=r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
    )
    accountNumber: str = Field(min_length=1, max_length=32)  # noqa: N815
    bankName: str | None = Field(default=None, max_length=200)  # noqa: N815
    bankAbbreviation: str | None = Field(default=None, max_length=50)  # noqa: N815
    virtualAccountNumber: str | None = Field(default=None, max_length=32)  # noqa: N815
    virtualAccountName: str | None = Field(default=None, max_length=200)  # noqa: N815
    counterAccountName: str | None = Field(default=None, max_length=200)  # noqa: N815
    counterAccountNumber: str | None = Field(default=None, max_length=64)  # noqa: N815
    counterAccountBankId: str | None = Field(default=None, max_length=32)  # noqa: N815
    counterAccountBankName: str | None = Field(default=None, max_length=200)  # noqa: N815

    @field_validator("id", "amount", mode="before")
    @classmethod
    def _not_boolean(cls, value: object) -> object:
        # Lax mode would read JSON true as 1 đ (bool is an int in Python): refuse it (issue 7).
        if isinstance(value, bool):
            raise ValueError("must be a number, not true/false")
        return value

    @field_validator("amount")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        # A zero movement is neither a credit nor a debit; matching would misread it.
        if value == 0:
            raise ValueError("amount must not be 0")
        return value

    @field_validator("transactionDateTime")
    @classmethod
    def _real_time(cls, value: str) -> str:
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")  # raises ValueError on 2026-02-30
        return value


class CassoPayload(BaseModel):
    """A Casso v2 webhook body: ``{"error": 0, "data": {...}}``.

    Casso v1 posted ``data`` as a list of transactions. One journaled event must be one
    transaction (its dedup key is the transaction ``id``), so a list is accepted only when it
    holds exactly one object and is otherwise rejected with a message saying why.
    """

    model_config = ConfigDict(extra="allow", strict=False)

    error: int
    data: CassoTransaction

    @field_validator("error")
    @classmethod
    def _no_error(cls, value: int) -> int:
        if value != 0:
            raise ValueError(f"Casso reported error {value}; the body carries no transaction")
        return value

    @field_validator("data", mode="before")
    @classmethod
    def _single_object(cls, value: object) -> object:
        if isinstance(value, list):
            if len(value) == 1 and isinstance(value[0], dict):
                return value[0]
            raise ValueError(
                f"'data' is a list of {len(value)} items; one notification must carry exactly "
                "one transaction object (Casso v1 batches are not supported)"
            )
        if not isinstance(value, dict):
            raise ValueError(f"'data' must be a transaction object, not {type(value).__name__}")
        return value


# --- signature ------------------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # With duplicate keys, what we verify and what a JavaScript or PHP reader sees could
    # differ; a genuine Casso body never has them.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _load_json(raw: bytes) -> Any:
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(
            f"body of {len(raw)} bytes is larger than {MAX_BODY_BYTES}", code="invalid_bank_payload"
        )
    try:
        return json.loads(raw, object_pairs_hook=_reject_duplicate_keys)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise InvalidInput(f"body is not JSON: {exc}", code="invalid_bank_payload") from exc


def _sorted(value: Any) -> Any:
    """Objects with their keys in order, at every depth (Casso's ``sortObjDataByKey``)."""
    if isinstance(value, Mapping):
        return {str(k): _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def _js_numbers(value: Any) -> Any:
    """Integral floats as ints, as ``JSON.stringify`` writes them (``599000``, not ``599000.0``)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and Infinity are not JSON")
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: _js_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_numbers(v) for v in value]
    return value


def _json_utf8(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _json_ascii(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


#: The renderings of the sorted body we accept. The first is the one :func:`sign` produces.
_SERIALISERS: tuple[Callable[[Any], str], ...] = (_json_utf8, _json_ascii)


def _renderings(body: Any) -> list[bytes]:
    """What Casso may have signed after ``"{t}."``: the sorted body in each accepted rendering."""
    canonical = _js_numbers(_sorted(body))
    seen: list[bytes] = []
    for serialise in _SERIALISERS:
        rendering = serialise(canonical).encode()
        if rendering not in seen:
            seen.append(rendering)
    return seen


def sign(body: Mapping[str, Any], secret: str, t_ms: int) -> str:
    """The ``X-Casso-Signature`` value Casso would send for ``body`` at ``t_ms``.

    ``body`` is the whole webhook body (``{"error": 0, "data": {...}}``), not just ``data``:
    that is what Casso signs (see the module docstring). For tests and the sandbox.
    """
    if not secret:
        raise ValueError("an empty secret signs nothing")
    return webhook_signature.sign(secret, _renderings(body)[0], int(t_ms), digest="sha512")


_CODES: dict[WebhookSignatureReason, str] = {
    WebhookSignatureReason.MISSING: "casso_signature_missing",
    WebhookSignatureReason.MALFORMED: "casso_signature_malformed",
    WebhookSignatureReason.NO_SIGNATURE: "casso_signature_malformed",
    WebhookSignatureReason.MISMATCH: "casso_signature_mismatch",
    WebhookSignatureReason.STALE: "casso_signature_expired",
    WebhookSignatureReason.FUTURE: "casso_signature_future",
}
"""Our stable problem code for each refusal."""


def _unauthorized(exc: WebhookSignatureError) -> Unauthorized:
    return Unauthorized(str(exc), code=_CODES[exc.reason])


def verify_signature(
    header: str | None,
    raw_body: bytes,
    secret: str,
    *,
    now: datetime,
    tolerance_s: int = 300,
) -> None:
    """Raises :class:`~payments.errors.Unauthorized` unless Casso signed ``raw_body`` recently.

    Casso's ``t=<ms>,v1=<HMAC-SHA512>`` is checked by the service's one ``t=,v1=`` implementation
    (:mod:`payments.webhook_signature`, in milliseconds and SHA-512); what is signed is the
    canonical rendering of the parsed body (:func:`_renderings`), not the raw bytes. The header
    is read before the body, so a bad header is refused as such whatever the body is.

    Stable codes: ``casso_signature_missing``, ``casso_signature_malformed`` (header shape or
    hex), ``casso_signature_mismatch`` (wrong secret or altered body), ``casso_signature_expired``
    (older than ``tolerance_s``), ``casso_signature_future`` (more than ``tolerance_s`` ahead of
    ``now``, which must be aware). A body that is not JSON at all raises
    :class:`~payments.errors.InvalidInput` ``invalid_bank_payload``.
    """
    if not secret:
        raise ValueError("no Casso secret configured: every signature would be forgeable")
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    try:
        parsed = webhook_signature.parse(header, digest="sha512", header_name=SIGNATURE_HEADER)
    except WebhookSignatureError as exc:
        raise _unauthorized(exc) from exc
    body = _load_json(raw_body)
    try:
        renderings = _renderings(body)
    except ValueError as exc:
        raise InvalidInput(
            f"body cannot be canonicalised: {exc}", code="invalid_bank_payload"
        ) from exc
    try:
        webhook_signature.verify(
            secret,
            renderings,
            parsed,
            now=now,
            tolerance_seconds=tolerance_s,
            digest="sha512",
            milliseconds=True,
            header_name=SIGNATURE_HEADER,
        )
    except WebhookSignatureError as exc:
        raise _unauthorized(exc) from exc


# --- payload, journal, normalisation --------------------------------------------------------


def parse_casso(raw: bytes) -> CassoPayload:
    """Validates a raw Casso body; ``InvalidInput`` ``invalid_bank_payload`` names each problem."""
    body = _load_json(raw)
    try:
        return CassoPayload.model_validate(body)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
        raise InvalidInput("; ".join(problems), code="invalid_bank_payload") from exc


def casso_dedup_key(payload: CassoPayload) -> str:
    """Casso's transaction ``id``: Casso's retries of one notification share it."""
    return str(payload.data.id)


def journal_casso(session: Session, agency: Agency, raw: bytes) -> tuple[BankEvent, bool]:
    """Stores the raw event once per Casso ``id``; returns it and whether it is new.

    Call only after :func:`verify_signature`. Mirrors :func:`payments.bankfeeds.journal_sepay`.
    """
    payload = parse_casso(raw)
    return journal_event(session, agency.id, SOURCE, casso_dedup_key(payload), raw)


def normalise_casso(raw: bytes, zone: tzinfo) -> NormalisedCredit:
    """The feed-independent view of one Casso transaction.

    ``bank_reference`` is the bank's own reference (``data.reference``) so that the statement
    import recognises the same credit; Casso's ``id`` is only the fallback (``casso-<id>``) when
    the bank gave none. ``transactionDateTime`` is bank-local time, read in ``zone``.
    """
    data = parse_casso(raw).data
    booked = datetime.strptime(data.transactionDateTime, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
    reference = (data.reference or "").strip()
    return NormalisedCredit(
        bank_reference=reference or f"casso-{data.id}",
        account_number=data.accountNumber.strip(),
        sub_account=(data.virtualAccountNumber or "").strip() or None,
        amount=abs(data.amount),
        memo=data.description or "",
        booked_at=booked,
        incoming=data.amount > 0,
    )
