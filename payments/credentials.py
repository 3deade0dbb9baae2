"""API keys for one-stop clients and keys for bank-feed aggregators.

Keys are random, shown once, and stored only as SHA-256 (a fast hash is right here: the keys
carry 256 bits of entropy, so there is nothing for a slow hash to protect). Lookups compare
hashes, so timing reveals nothing about a key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.errors import InvalidInput, Unauthorized
from payments.models import Agency, ApiClient, BankFeedCredential
from settings.hosts import is_internal_host, is_loopback_host

__all__ = [
    "BANK_FEED_PREFIX_LENGTH",
    "PROVIDERS",
    "IssuedClient",
    "add_bank_feed",
    "add_client",
    "authenticate_bank_feed",
    "authenticate_client",
    "check_callback_url",
    "hash_key",
]

PROVIDERS = ("sepay", "casso")
BANK_FEED_PREFIX_LENGTH = 6
"""Characters of a bank-feed key kept in clear to tell keys apart (of 43: nothing to guess)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_callback_url(url: str, *, allow_loopback: bool) -> str:
    """Callbacks go to https, or to loopback http in the embedded profile only; never to a
    private or reserved address outside it (no requests into the agency's own network)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    loopback = is_loopback_host(host)
    if loopback and not allow_loopback:
        raise InvalidInput("callback_url may not point to loopback in production")
    if not loopback and not allow_loopback and is_internal_host(host):
        raise InvalidInput("callback_url may not point to a private or reserved address")
    if parts.scheme != "https" and not (loopback and parts.scheme == "http"):
        raise InvalidInput("callback_url must be https (http only for loopback when embedded)")
    if not host or parts.username or parts.password:
        raise InvalidInput("callback_url must have a host and no credentials")
    return url


@dataclass(frozen=True)
class IssuedClient:
    client: ApiClient
    api_key: str
    callback_secret: str


def add_client(
    session: Session, agency: Agency, name: str, callback_url: str | None, *, allow_loopback: bool
) -> IssuedClient:
    if not name.strip():
        raise InvalidInput("client name is required")
    if callback_url:
        check_callback_url(callback_url, allow_loopback=allow_loopback)
    key = "mcp_live_" + secrets.token_urlsafe(32)
    secret = "whsec_" + secrets.token_urlsafe(32)
    client = ApiClient(
        agency_id=agency.id,
        name=name.strip(),
        key_prefix=key[:12],
        key_hash=hash_key(key),
        callback_url=callback_url,
        callback_secret=secret,
    )
    session.add(client)
    session.flush()
    return IssuedClient(client, key, secret)


def authenticate_client(session: Session, authorization: str | None) -> ApiClient:
    """``Authorization: Bearer <key>`` → the active client, or :class:`Unauthorized`."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("expected 'Authorization: Bearer <api key>'")
    client = session.scalar(select(ApiClient).where(ApiClient.key_hash == hash_key(key.strip())))
    if client is None or not client.active:
        raise Unauthorized("unknown or revoked API key")
    return client


def add_bank_feed(
    session: Session, agency: Agency, provider: str
) -> tuple[BankFeedCredential, str]:
    if provider not in PROVIDERS:
        raise InvalidInput(f"provider must be one of {', '.join(PROVIDERS)}")
    key = secrets.token_urlsafe(32)
    cred = BankFeedCredential(
        agency_id=agency.id,
        provider=provider,
        key_hash=hash_key(key),
        key_prefix=key[:BANK_FEED_PREFIX_LENGTH],
        # Casso signs requests with the key, so it must be kept; SePay only presents it.
        secret=key if provider == "casso" else None,
    )
    session.add(cred)
    session.flush()
    return cred, key


def authenticate_bank_feed(session: Session, provider: str, key: str | None) -> BankFeedCredential:
    if not key:
        raise Unauthorized("missing bank-feed key")
    cred = session.scalar(
        select(BankFeedCredential).where(
            BankFeedCredential.key_hash == hash_key(key), BankFeedCredential.provider == provider
        )
    )
    if cred is None or not cred.active or not hmac.compare_digest(cred.key_hash, hash_key(key)):
        raise Unauthorized("unknown or revoked bank-feed key")
    return cred
