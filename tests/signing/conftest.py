"""A synthetic PKI and a sample document for the ``signing`` tests.

RSA key generation is the slow part, so the CA and the organisation certificate are made once
per session; certificates for rejection tests are cheap because they reuse one key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from infra.clock import now
from lxml import etree
from signing_testdata import (
    ORG_NAME,
    ORG_TAX_CODE,
    OTHER_ORG_NAME,
    OTHER_TAX_CODE,
    SAMPLE_XML,
    CertFactory,
    Pki,
)

from signing import certs
from signing.keys import KeySource, Pkcs12KeySource, clear_key_cache

ISSUED_AT = now() - timedelta(hours=1)
"""The session PKI is issued as of an hour before collection, so a signing time taken at
collection is inside its validity however long the suite runs before these tests (their
certificates were once issued on first use, 5 minutes back-dated, which a long run outlasted)."""


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca_key, ca_cert = certs.create_dev_ca("Dev Root CA Việt Nam", now=ISSUED_AT)
    org_key, org_cert = certs.create_dev_org_certificate(
        ca_key, ca_cert, ORG_NAME, ORG_TAX_CODE, now=ISSUED_AT
    )
    return Pki(ca_key, ca_cert, org_key, org_cert)


@pytest.fixture(scope="session")
def other_pki() -> Pki:
    """An unrelated CA and organisation, for wrong-key and wrong-CA cases."""
    ca_key, ca_cert = certs.create_dev_ca("Another Dev CA", now=ISSUED_AT)
    org_key, org_cert = certs.create_dev_org_certificate(
        ca_key, ca_cert, OTHER_ORG_NAME, OTHER_TAX_CODE, now=ISSUED_AT
    )
    return Pki(ca_key, ca_cert, org_key, org_cert)


@pytest.fixture(scope="session")
def org_p12(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "org.p12"
    certs.write_pkcs12(path, pki.org_key, pki.org_cert, [pki.ca_cert], None)
    return path


@pytest.fixture
def key_source(org_p12: Path) -> KeySource:
    return Pkcs12KeySource.load(org_p12, None)


@pytest.fixture
def fresh_key_cache() -> Iterator[None]:
    clear_key_cache()
    yield
    clear_key_cache()


@pytest.fixture
def sample_root() -> etree._Element:
    return etree.fromstring(SAMPLE_XML.encode("utf-8"))


@pytest.fixture(scope="session")
def make_cert(pki: Pki) -> CertFactory:
    """Build an organisation certificate with exactly the flaws a test asks for.

    Reuses the organisation key so that no RSA key is generated per test.
    """

    def build(
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        uid: str | None = f"MST:{ORG_TAX_CODE}",
        digital_signature: bool = True,
        non_repudiation: bool = True,
        with_key_usage: bool = True,
        development: bool = False,
    ) -> x509.Certificate:
        at = now()
        attributes = [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG_NAME),
            x509.NameAttribute(NameOID.COMMON_NAME, ORG_NAME),
        ]
        if development:
            attributes.append(
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, certs.DEVELOPMENT_OU)
            )
        if uid is not None:
            attributes.append(x509.NameAttribute(NameOID.USER_ID, uid))
        issuer = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Test CA (not development-marked)"),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(issuer)
            .public_key(pki.org_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or at - timedelta(days=1))
            .not_valid_after(not_after or at + timedelta(days=365))
        )
        if with_key_usage:
            usage = x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=non_repudiation,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            )
            builder = builder.add_extension(usage, critical=True)
        return builder.sign(pki.ca_key, hashes.SHA256())

    return build
