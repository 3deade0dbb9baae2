"""The one ``t=,v1=`` implementation (issue 13): the rules every webhook party shares.

Times come from the test clock (a moved run moves them too); the callbacks, card and Casso
tests check that each module keeps its own problem codes on top of this.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from infra.clock import now

from payments import webhook_signature as ws
from payments.webhook_signature import (
    SignatureHeader,
    WebhookSignatureError,
    WebhookSignatureReason,
)

SECRET = "whsec_test_motcua"
OTHER = "whsec_previous"
PAYLOAD = b'{"id":"evt_1","type":"order.succeeded","data":{"amount":150000}}'


def _refusal(header: str | None, **options: object) -> WebhookSignatureReason:
    options.setdefault("now", now())
    with pytest.raises(WebhookSignatureError) as caught:
        ws.verify(SECRET, PAYLOAD, header, **options)  # type: ignore[arg-type]
    assert caught.value.message_vi and str(caught.value) == caught.value.message_en
    return caught.value.reason


def test_round_trip_is_hmac_sha256_of_t_dot_payload() -> None:
    at = now()
    t = int(at.timestamp())
    header = ws.sign(SECRET, PAYLOAD, t)
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + PAYLOAD, hashlib.sha256).hexdigest()
    assert header == f"t={t},v1={expected}"
    assert ws.parse(header) == SignatureHeader(t, (expected,))
    assert ws.verify(SECRET, PAYLOAD, header, now=at) == t


def test_the_clock_is_the_default_now() -> None:
    header = ws.sign(SECRET, PAYLOAD, int(now().timestamp()) - 5)
    assert ws.verify(SECRET, PAYLOAD, header)
    with pytest.raises(WebhookSignatureError):
        ws.verify(SECRET, PAYLOAD, header, tolerance_seconds=2)


def test_rotation_two_v1_and_two_secrets() -> None:
    at = now()
    t = int(at.timestamp())
    both = ws.sign([OTHER, SECRET], PAYLOAD, t)
    assert both.count("v1=") == 2
    assert ws.verify(SECRET, PAYLOAD, both, now=at) == t
    assert ws.verify(OTHER, PAYLOAD, both, now=at) == t
    new_only = ws.sign("whsec_new", PAYLOAD, t)
    assert ws.verify([OTHER, "whsec_new"], PAYLOAD, new_only, now=at) == t
    # Order does not matter, and other schemes are ignored as long as one v1 matches.
    first, second = both.split(",")[1:]
    assert ws.verify(SECRET, PAYLOAD, f"v0=abc,{second},t={t},{first},v2=zz", now=at) == t


def test_tampered_payload_secret_or_timestamp_is_a_mismatch() -> None:
    at = now()
    t = int(at.timestamp())
    header = ws.sign(SECRET, PAYLOAD, t)
    with pytest.raises(WebhookSignatureError) as caught:
        ws.verify(SECRET, PAYLOAD.replace(b"150000", b"1500"), header, now=at)
    assert caught.value.reason is WebhookSignatureReason.MISMATCH
    assert _refusal(ws.sign(OTHER, PAYLOAD, t), now=at) is WebhookSignatureReason.MISMATCH
    moved = header.replace(f"t={t}", f"t={t + 1}")
    assert _refusal(moved, now=at) is WebhookSignatureReason.MISMATCH


def test_stale_beyond_the_tolerance() -> None:
    at = now()
    edge = int((at - timedelta(seconds=300)).timestamp())
    assert ws.verify(SECRET, PAYLOAD, ws.sign(SECRET, PAYLOAD, edge), now=at) == edge
    old = ws.sign(SECRET, PAYLOAD, edge - 1)
    assert _refusal(old, now=at) is WebhookSignatureReason.STALE
    assert ws.verify(SECRET, PAYLOAD, old, now=at, tolerance_seconds=3600) == edge - 1


def test_future_beyond_the_tolerance() -> None:
    at = now()
    edge = int((at + timedelta(seconds=300)).timestamp())
    assert ws.verify(SECRET, PAYLOAD, ws.sign(SECRET, PAYLOAD, edge), now=at) == edge
    ahead = ws.sign(SECRET, PAYLOAD, edge + 1)
    assert _refusal(ahead, now=at) is WebhookSignatureReason.FUTURE


def test_the_mac_is_checked_before_the_clock() -> None:
    # A forged, stale header is a mismatch: "too old" is only ever said of a genuine message.
    stale = int((now() - timedelta(days=1)).timestamp())
    assert _refusal(ws.sign(OTHER, PAYLOAD, stale)) is WebhookSignatureReason.MISMATCH


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing(header: str | None) -> None:
    assert _refusal(header) is WebhookSignatureReason.MISSING


@pytest.mark.parametrize(
    "shape",
    [
        "garbage",
        "v1={mac}",  # no t
        "t=abc,v1={mac}",
        "t=-5,v1={mac}",
        "t={t},t={t},v1={mac}",
        "t={t},v1=",
        "t={t},,v1={mac}",
        "t={t};v1={mac}",
        "t={t},v1={mac}0",  # not 64 hex digits
        "t={t},v1=" + "z" * 64,
        "t={t},v1={mac}" + ",v1={mac}" * 200,  # too long
    ],
    ids=[
        "garbage",
        "no-t",
        "t-not-int",
        "t-negative",
        "two-t",
        "empty-v1",
        "empty-item",
        "wrong-separator",
        "v1-too-long",
        "v1-not-hex",
        "header-too-long",
    ],
)
def test_malformed(shape: str) -> None:
    at = now()
    t = int(at.timestamp())
    mac = ws.compute(SECRET, PAYLOAD, t)
    assert _refusal(shape.format(t=t, mac=mac), now=at) is WebhookSignatureReason.MALFORMED


def test_no_v1_among_other_schemes() -> None:
    t = int(now().timestamp())
    header = f"t={t},v0={ws.compute(SECRET, PAYLOAD, t)}"
    assert _refusal(header) is WebhookSignatureReason.NO_SIGNATURE


def test_milliseconds_sha512_and_several_renderings() -> None:
    # Casso's dialect: t in milliseconds, HMAC-SHA512, any of several renderings of the body.
    at = now()
    t_ms = int(at.timestamp() * 1000)
    renderings = [b'{"a":"\xc3\xa1"}', b'{"a":"\\u00e1"}']
    header = ws.sign(SECRET, renderings[1], t_ms, digest="sha512")
    assert len(ws.parse(header, digest="sha512").signatures[0]) == 128
    options = {"digest": "sha512", "milliseconds": True, "now": at}
    assert ws.verify(SECRET, renderings, header, **options) == t_ms  # type: ignore[arg-type]
    stale = ws.sign(SECRET, renderings[0], t_ms - 301_000, digest="sha512")
    with pytest.raises(WebhookSignatureError) as caught:
        ws.verify(SECRET, renderings, stale, **options)  # type: ignore[arg-type]
    assert caught.value.reason is WebhookSignatureReason.STALE
    # A SHA-256 value under a SHA-512 scheme is not even the right shape.
    with pytest.raises(WebhookSignatureError) as caught:
        ws.parse(ws.sign(SECRET, renderings[0], t_ms), digest="sha512")
    assert caught.value.reason is WebhookSignatureReason.MALFORMED


def test_a_parsed_header_can_be_passed_on() -> None:
    at = now()
    t = int(at.timestamp())
    parsed = ws.parse(ws.sign(SECRET, PAYLOAD, t))
    assert ws.verify(SECRET, PAYLOAD, parsed, now=at) == t


def test_our_configuration_errors_are_value_errors_not_refusals() -> None:
    at = now()
    header = ws.sign(SECRET, PAYLOAD, int(at.timestamp()))
    for secret in ("", [], [SECRET, ""]):
        with pytest.raises(ValueError, match="secret"):
            ws.verify(secret, PAYLOAD, header, now=at)
    with pytest.raises(ValueError, match="tolerance"):
        ws.verify(SECRET, PAYLOAD, header, now=at, tolerance_seconds=0)
    with pytest.raises(ValueError, match="aware"):
        ws.verify(SECRET, PAYLOAD, header, now=at.replace(tzinfo=None))
    with pytest.raises(ValueError):
        ws.sign("", PAYLOAD, int(at.timestamp()))
    assert not issubclass(WebhookSignatureError, ValueError)
