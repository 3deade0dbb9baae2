"""``motcua keys dev-init``: a development CA and an organisation certificate for one agency.

Lives in ``api`` because it joins two packages that must not know each other's tables: it
asks ``signing`` for keys and records the key reference on the ``payments`` agency.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.agencies import agency_by_code
from settings.config import Settings
from settings.db import session_scope
from signing.certs import create_dev_ca, create_dev_org_certificate, write_pkcs12

__all__ = ["dev_init", "load_or_create_dev_ca"]


def load_or_create_dev_ca(keys_dir: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """One development CA per data folder, so every agency's dev certificate chains to it."""
    key_path, cert_path = keys_dir / "dev-ca.key.pem", keys_dir / "dev-ca.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    keys_dir.mkdir(parents=True, exist_ok=True)
    key, cert = create_dev_ca("motcua-pay DEVELOPMENT CA - KHÔNG CÓ GIÁ TRỊ PHÁP LÝ")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def dev_init(settings: Settings, agency_code: str, *, force: bool = False) -> tuple[Path, str]:
    with session_scope() as session:
        agency = agency_by_code(session, agency_code)
        if agency.signing_key_ref and not force:
            path = Path(agency.signing_key_ref.removeprefix("pkcs12:"))
            if path.exists():
                return path, agency.name
        ca_key, ca_cert = load_or_create_dev_ca(settings.keys_dir)
        key, cert = create_dev_org_certificate(ca_key, ca_cert, agency.name, agency.tax_code)
        path = (settings.keys_dir / agency.code / "org.p12").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_pkcs12(path, key, cert, (ca_cert,), None)
        agency.signing_key_ref = f"pkcs12:{path}"
        return path, cert.subject.rfc4514_string()
