"""A throw-away SoftHSM2 for the PKCS#11 tests: own config and token directory, once per process.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is initialised, and python-pkcs11 loads a
module once per process, so the configuration is created once (in the session's temporary
directory) and shared by every test module of this process (each xdist worker has its own).
The tokens are initialised with ``softhsm2-util`` before the module is first loaded, then the
development key and certificates are imported with python-pkcs11.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute
from pkcs11.util.rsa import decode_rsa_private_key
from pkcs11.util.x509 import decode_x509_certificate
from signing_testdata import Pki

from signing import certs
from signing.pkcs11 import DEFAULT_MODULE

__all__ = ["PIN_ENV", "SoftHsm", "provision"]

PIN_ENV = "MOTCUA_TEST_HSM_PIN"
"""Environment variable the test references name for the PIN."""


@dataclass(frozen=True)
class SoftHsm:
    """The provisioned SoftHSM2 and the names of what is on it."""

    module: Path
    conf: Path
    pin: str
    so_pin: str
    token: str
    """Holds the organisation key, its certificate (same id) and the CA certificate."""
    token_without_certificate: str
    """Holds only the organisation key: the certificate must come from a file."""
    token_for_pin_checks: str
    """Never logged into except by the wrong-PIN test, so the token itself checks the PIN."""
    key_label: str
    key_id: bytes
    certificate_file: Path
    """The organisation certificate and the CA certificate as PEM, for ``cert=``."""

    def reference(
        self,
        *,
        token: str | None = None,
        key_label: str | None = "default",
        key_id: bytes | None = None,
        pin_env: str = PIN_ENV,
        cert: Path | None = None,
    ) -> str:
        """A ``pkcs11:`` reference to the test key, with any part replaced."""
        path = [f"token={quote(token or self.token, safe='')}"]
        label = self.key_label if key_label == "default" else key_label
        if label is not None:
            path.append(f"object={quote(label, safe='')}")
        if key_id is not None:
            path.append("id=" + "".join(f"%{byte:02x}" for byte in key_id))
        query = [f"module={self.module}", f"pin-env={pin_env}"]
        if cert is not None:
            query.append(f"cert={cert}")
        return f"pkcs11:{';'.join(path)}?{'&'.join(query)}"


_PROVISIONED: dict[str, SoftHsm] = {}
"""The one SoftHSM of this process, under the key ``"hsm"``."""


def _init_token(util: str, label: str, so_pin: str, pin: str) -> None:
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _import(
    lib: Any,
    token_label: str,
    pin: str,
    key: rsa.RSAPrivateKey,
    label: str,
    key_id: bytes,
    certificates: list[tuple[x509.Certificate, str, bytes]],
) -> None:
    token = lib.get_token(token_label=token_label)
    with token.open(rw=True, user_pin=pin) as session:
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        attributes = decode_rsa_private_key(der)
        attributes.update(
            {
                Attribute.LABEL: label,
                Attribute.ID: key_id,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
            }
        )
        session.create_object(attributes)
        for certificate, cert_label, cert_id in certificates:
            cert_attributes = decode_x509_certificate(
                certificate.public_bytes(serialization.Encoding.DER)
            )
            cert_attributes.update(
                {Attribute.LABEL: cert_label, Attribute.ID: cert_id, Attribute.TOKEN: True}
            )
            session.create_object(cert_attributes)


def provision(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    """Create (once per process) the SoftHSM2 tokens the tests use; skip without SoftHSM2."""
    if "hsm" in _PROVISIONED:
        return _PROVISIONED["hsm"]
    if not DEFAULT_MODULE.exists():
        pytest.skip(f"{DEFAULT_MODULE} not installed (Debian: apt-get install softhsm2)")
    util = shutil.which("softhsm2-util")
    assert util is not None, "softhsm2-util is missing although libsofthsm2.so is installed"

    base = tmp_path_factory.mktemp("softhsm")
    tokens = base / "tokens"
    tokens.mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n",
        encoding="utf-8",
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    hsm = SoftHsm(
        module=DEFAULT_MODULE,
        conf=conf,
        pin="1234-mã-PIN",
        so_pin="so-12345678",
        token="motcua",
        token_without_certificate="motcua-nocert",
        token_for_pin_checks="motcua-pin",
        key_label="org-key",
        key_id=b"\x01\xa2",
        certificate_file=base / "org-chain.pem",
    )
    certs.write_pem(hsm.certificate_file, certificates=[pki.org_cert, pki.ca_cert])
    for label in (hsm.token, hsm.token_without_certificate, hsm.token_for_pin_checks):
        _init_token(util, label, hsm.so_pin, hsm.pin)

    lib = pkcs11.lib(str(hsm.module))
    with_certificates = [
        (pki.org_cert, hsm.key_label, hsm.key_id),
        (pki.ca_cert, "dev-ca", b"\xca"),
    ]
    _import(lib, hsm.token, hsm.pin, pki.org_key, hsm.key_label, hsm.key_id, with_certificates)
    _import(lib, hsm.token_without_certificate, hsm.pin, pki.org_key, hsm.key_label, hsm.key_id, [])
    _import(
        lib,
        hsm.token_for_pin_checks,
        hsm.pin,
        pki.org_key,
        hsm.key_label,
        hsm.key_id,
        with_certificates,
    )
    _PROVISIONED["hsm"] = hsm
    return hsm
