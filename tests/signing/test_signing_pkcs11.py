"""PKCS#11 key sources against a real SoftHSM2 token, checked by our verifier and xmlsec1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from infra.clock import now
from lxml import etree
from signing_softhsm import PIN_ENV, SoftHsm, provision
from signing_testdata import Pki

from signing import certs
from signing.errors import KeyLoadError, SigningError
from signing.keys import KeySource, load_key_source
from signing.pkcs11 import (
    DEFAULT_MODULE,
    Pkcs11KeySource,
    Pkcs11Reference,
    Pkcs11RsaPrivateKey,
    close_pkcs11_sessions,
    parse_pkcs11_reference,
)
from signing.xmldsig import VIETNAM_TZ, sign_enveloped, verify_enveloped

XMLSEC1 = shutil.which("xmlsec1")


@pytest.fixture(scope="session")
def hsm(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    return provision(pki, tmp_path_factory)


@pytest.fixture
def env(hsm: SoftHsm) -> dict[str, str]:
    return {PIN_ENV: hsm.pin}


@pytest.fixture
def token_key(hsm: SoftHsm, env: dict[str, str]) -> KeySource:
    return load_key_source(hsm.reference(), environ=env)


def _code(excinfo: pytest.ExceptionInfo[SigningError]) -> str:
    assert excinfo.value.message_vi and excinfo.value.message_en
    return excinfo.value.code


def _sign_sample(root: etree._Element, key: KeySource) -> bytes:
    signed = sign_enveloped(root, signed_id="data", key=key, signing_time=now(), tz=VIETNAM_TZ)
    return etree.tostring(signed, encoding="UTF-8", xml_declaration=True)


# --- loading -------------------------------------------------------------------------------


def test_reference_loads_key_certificate_and_chain_from_the_token(
    token_key: KeySource, pki: Pki
) -> None:
    assert isinstance(token_key, Pkcs11KeySource)
    assert token_key.certificate == pki.org_cert
    assert token_key.chain == (pki.ca_cert,)
    assert isinstance(token_key.private_key, rsa.RSAPrivateKey)
    assert isinstance(token_key.private_key, Pkcs11RsaPrivateKey)
    assert token_key.private_key.public_key() == pki.org_cert.public_key()
    assert token_key.private_key.key_size == 2048


def test_loading_again_reuses_the_source_and_its_session(
    hsm: SoftHsm, env: dict[str, str], token_key: KeySource
) -> None:
    assert load_key_source(hsm.reference(), environ=env) is token_key
    by_id = load_key_source(hsm.reference(key_label=None, key_id=hsm.key_id), environ=env)
    assert by_id is not token_key
    assert isinstance(by_id, Pkcs11KeySource) and isinstance(token_key, Pkcs11KeySource)
    assert by_id._shared is token_key._shared  # one session per token
    session = token_key._shared.session
    for _ in range(20):
        token_key.sign(b"x")
        by_id.sign(b"y")
    assert token_key._shared.session is session


def test_keys_on_two_tokens_keep_their_own_sessions(
    hsm: SoftHsm, env: dict[str, str], token_key: KeySource
) -> None:
    other = load_key_source(
        hsm.reference(token=hsm.token_without_certificate, cert=hsm.certificate_file),
        environ=env,
    )
    assert isinstance(other, Pkcs11KeySource) and isinstance(token_key, Pkcs11KeySource)
    assert other._shared is not token_key._shared
    token_key.sign(b"warm up")
    other.sign(b"warm up")
    before = [(k._shared.session, k._shared.generation) for k in (token_key, other)]
    for _ in range(10):
        token_key.sign(b"a")
        other.sign(b"b")
    assert [(k._shared.session, k._shared.generation) for k in (token_key, other)] == before


def test_token_signature_is_rsa_pkcs1v15_sha256(token_key: KeySource, pki: Pki) -> None:
    data = "Biên lai điện tử".encode()
    public_key = pki.org_cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(token_key.sign(data), data, padding.PKCS1v15(), hashes.SHA256())
    via_key = token_key.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    public_key.verify(via_key, data, padding.PKCS1v15(), hashes.SHA256())
    # Same key as the PKCS#12 one, and PKCS#1 v1.5 is deterministic.
    assert via_key == pki.org_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def test_certificate_from_a_file(hsm: SoftHsm, env: dict[str, str], pki: Pki) -> None:
    source = load_key_source(
        hsm.reference(token=hsm.token_without_certificate, cert=hsm.certificate_file),
        environ=env,
    )
    assert source.certificate == pki.org_cert
    assert source.chain == (pki.ca_cert,)
    data = b"certificate from a file"
    public_key = pki.org_cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(source.sign(data), data, padding.PKCS1v15(), hashes.SHA256())


# --- XMLDSig with the token key ------------------------------------------------------------


def test_xmldsig_with_the_token_key_verifies(
    sample_root: etree._Element, token_key: KeySource, pki: Pki
) -> None:
    status = verify_enveloped(_sign_sample(sample_root, token_key), trusted_ca=pki.ca_cert)
    assert status.valid, status.problems
    assert status.trusted_chain is True
    assert status.certificate == pki.org_cert


@pytest.mark.skipif(
    XMLSEC1 is None, reason="xmlsec1 binary not installed (apt-get install xmlsec1)"
)
def test_xmldsig_with_the_token_key_verifies_with_xmlsec1(
    sample_root: etree._Element, token_key: KeySource, pki: Pki, tmp_path: Path
) -> None:
    assert XMLSEC1 is not None
    ca_pem = tmp_path / "ca.pem"
    certs.write_pem(ca_pem, certificates=[pki.ca_cert])
    document = tmp_path / "signed-by-token.xml"
    document.write_bytes(_sign_sample(sample_root, token_key))
    result = subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--id-attr:Id",
            "DLBLai",
            "--trusted-pem",
            str(ca_pem),
            str(document),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 2/2" in result.stdout + result.stderr


# --- what the token key refuses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pad", "algorithm"),
    [
        (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()),
        (padding.PKCS1v15(), hashes.SHA1()),
        (padding.PKCS1v15(), hashes.SHA512()),
        (padding.PKCS1v15(), Prehashed(hashes.SHA256())),
    ],
    ids=["pss", "sha1", "sha512", "prehashed"],
)
def test_other_signature_schemes_are_refused(
    token_key: KeySource, pad: padding.AsymmetricPadding, algorithm: hashes.HashAlgorithm
) -> None:
    with pytest.raises(SigningError) as excinfo:
        token_key.private_key.sign(b"data", pad, algorithm)
    assert _code(excinfo) == "pkcs11_mechanism_unsupported"


def test_the_private_key_cannot_leave_the_token(token_key: KeySource) -> None:
    key = token_key.private_key
    with pytest.raises(SigningError):
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    with pytest.raises(SigningError):
        key.private_numbers()
    with pytest.raises(SigningError):
        key.decrypt(b"\x00" * 256, padding.PKCS1v15())


# --- load errors ---------------------------------------------------------------------------


def test_wrong_pin_is_refused_by_the_token(hsm: SoftHsm) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(
            hsm.reference(token=hsm.token_for_pin_checks), environ={PIN_ENV: "not-the-pin"}
        )
    assert _code(excinfo) == "pkcs11_pin_incorrect"
    # The right PIN still works afterwards (nothing half-open is cached).
    assert load_key_source(
        hsm.reference(token=hsm.token_for_pin_checks), environ={PIN_ENV: hsm.pin}
    )


def test_wrong_pin_is_refused_on_a_token_already_logged_in(
    hsm: SoftHsm, token_key: KeySource
) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(
            hsm.reference(key_label=None, key_id=hsm.key_id), environ={PIN_ENV: "not-the-pin"}
        )
    assert _code(excinfo) == "pkcs11_pin_incorrect"


def test_missing_token(hsm: SoftHsm, env: dict[str, str]) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(hsm.reference(token="no-such-token"), environ=env)
    assert _code(excinfo) == "pkcs11_token_not_found"
    assert "no-such-token" in excinfo.value.message_en


def test_missing_key(hsm: SoftHsm, env: dict[str, str]) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(hsm.reference(key_label="no-such-key"), environ=env)
    assert _code(excinfo) == "pkcs11_key_not_found"


def test_missing_certificate(hsm: SoftHsm, env: dict[str, str]) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(hsm.reference(token=hsm.token_without_certificate), environ=env)
    assert _code(excinfo) == "pkcs11_certificate_not_found"


def test_certificate_file_of_another_key(
    hsm: SoftHsm, env: dict[str, str], other_pki: Pki, tmp_path: Path
) -> None:
    other = tmp_path / "other.pem"
    certs.write_pem(other, certificates=[other_pki.org_cert])
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(hsm.reference(token=hsm.token_without_certificate, cert=other), environ=env)
    assert _code(excinfo) == "key_certificate_mismatch"


def test_unset_pin_variable(hsm: SoftHsm) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(hsm.reference(pin_env="NOT_SET_ANYWHERE"), environ={})
    assert _code(excinfo) == "pkcs11_pin_missing"
    assert "NOT_SET_ANYWHERE" in excinfo.value.message_en


def test_missing_module(hsm: SoftHsm, env: dict[str, str], tmp_path: Path) -> None:
    ref = hsm.reference().replace(str(hsm.module), str(tmp_path / "absent.so"))
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(ref, environ=env)
    assert _code(excinfo) == "pkcs11_module_unavailable"


# --- robustness ----------------------------------------------------------------------------


def test_concurrent_signing_from_threads(token_key: KeySource, pki: Pki) -> None:
    public_key = pki.org_cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(40):
                data = f"{worker}-{i}".encode()
                public_key.verify(token_key.sign(data), data, padding.PKCS1v15(), hashes.SHA256())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures


def test_a_lost_session_is_reopened(token_key: KeySource, pki: Pki) -> None:
    assert isinstance(token_key, Pkcs11KeySource)
    shared = token_key._shared
    token_key.sign(b"before")
    with shared.lock:
        lost, generation = shared.session, shared.generation
        lost.close()  # e.g. the HSM was restarted; the handle is now invalid
    data = b"after a session loss"
    public_key = pki.org_cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(token_key.sign(data), data, padding.PKCS1v15(), hashes.SHA256())
    assert shared.session is not lost
    assert shared.generation > generation


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_worker_signs_with_a_key_loaded_before_the_fork(
    token_key: KeySource, pki: Pki
) -> None:
    """Celery's prefork workers inherit key sources loaded in the parent."""
    data = b"signed in a child process"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, token_key.sign(data))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        signature = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    public_key = pki.org_cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    # The parent's session is untouched.
    public_key.verify(token_key.sign(data), data, padding.PKCS1v15(), hashes.SHA256())


def test_close_sessions_then_load_again(hsm: SoftHsm, env: dict[str, str], pki: Pki) -> None:
    first = load_key_source(hsm.reference(), environ=env)
    close_pkcs11_sessions()
    second = load_key_source(hsm.reference(), environ=env)
    assert second is not first
    assert second.certificate == pki.org_cert
    second.sign(b"after closing")


# --- no token needed -----------------------------------------------------------------------


def test_without_python_pkcs11_the_reference_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "signing.pkcs11")
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # makes "import pkcs11" fail
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source("pkcs11:token=motcua;object=org-key?pin-env=P", environ={"P": "1"})
    assert _code(excinfo) == "pkcs11_unavailable"


def test_parse_full_reference() -> None:
    parsed = parse_pkcs11_reference(
        "pkcs11:token=M%E1%BB%99t%20c%E1%BB%ADa;object=org-key;id=%01%a2;type=private"
        "?module-path=/opt/hsm/lib.so&pin-env=HSM_PIN&cert=/etc/motcua/org.pem"
    )
    assert parsed == Pkcs11Reference(
        token_label="Một cửa",
        key_label="org-key",
        key_id=b"\x01\xa2",
        pin_env="HSM_PIN",
        module_path=Path("/opt/hsm/lib.so"),
        certificate_file=Path("/etc/motcua/org.pem"),
    )


def test_parse_minimal_reference_defaults_to_softhsm() -> None:
    parsed = parse_pkcs11_reference("pkcs11:token=motcua;object=org-key?pin-env=MOTCUA_HSM_PIN")
    assert parsed.module_path == DEFAULT_MODULE
    assert parsed.key_id is None and parsed.certificate_file is None


@pytest.mark.parametrize(
    "ref",
    [
        "pkcs11:object=org-key?pin-env=P",
        "pkcs11:token=motcua?pin-env=P",
        "pkcs11:token=motcua;object=org-key",
        "pkcs11:token=motcua;object=org-key?pin-env=P&pin-value=1234",
        "pkcs11:token=motcua;objet=org-key?pin-env=P",
        "pkcs11:token=motcua;object=org-key;type=cert?pin-env=P",
        "pkcs11:token=motcua;object=org-key?pin-env=P&module=relative/lib.so",
        "pkcs11:token=motcua;object=org-key?pin-env=P&cert=org.pem",
        "pkcs11:token=motcua;object=org-key?pin-env=P&module=/a.so&module-path=/b.so",
        "pkcs11:token=motcua;object=org-key?pin-env=",
        "pkcs11:token=a;token=b;object=org-key?pin-env=P",
        "pkcs11://host/token=motcua?pin-env=P",
    ],
)
def test_invalid_references(ref: str) -> None:
    with pytest.raises(KeyLoadError) as excinfo:
        load_key_source(ref, environ={"P": "1234"})
    assert _code(excinfo) == "key_reference_invalid"


@pytest.fixture(autouse=True, scope="module")
def _close_sessions_at_the_end() -> Iterator[None]:
    yield
    close_pkcs11_sessions()
