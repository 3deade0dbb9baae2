"""Evidence for inspectors (issue 19, part 2): the signed ZIP of a receipt and of a day.

Built from a real paid order (SePay path, amounts from the order), closed and sealed; verified
by ``verify_evidence``, by ``motcua evidence verify`` and offline with the documented commands
(``unzip``, ``xmlsec1``, ``sha256sum -c``, docs/evidence.md). Flipping one byte in any member,
removing or adding one, or re-signing the manifest with another key fails, naming the member.
The public page a receipt's QR opens shows the chain (paid how and when, issued, replaced or
not, reported on which day) without the payer's personal data.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from api_flow import ORDER, create, sepay
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from fastapi.testclient import TestClient
from infra.clock import ZONE, now, subprocess_env, today
from lxml import etree
from staff_flow import sign_in

from api.demo import DEMO_AGENCY
from einvoice.models import Receipt
from payments.models import BankEvent, PaymentOrder
from reconciliation.evidence import (
    MANIFEST,
    SUMS,
    day_evidence,
    receipt_evidence,
    verify_evidence,
)
from reconciliation.service import close_day
from settings.audit_chain import seal
from settings.config import Settings
from settings.db import session_scope
from signing.certs import create_dev_ca, create_dev_org_certificate
from signing.keys import Pkcs12KeySource
from signing.xmldsig import DS_NS
from signing.xmldsig_fast import sign_enveloped_fast

MOTCUA = str(Path(sys.executable).with_name("motcua"))
XMLSEC1 = shutil.which("xmlsec1")
HTML = {"Accept": "text/html"}
PERSONAL = (
    ORDER["payer"]["name"],
    ORDER["payer"]["id_number"],
    ORDER["payer"]["phone"],
    ORDER["payer"]["email"],
)


def paid(client: TestClient, auth: dict[str, str], key: str) -> dict[str, Any]:
    """An order paid by transfer through the SePay path; the amount is the order's."""
    order = create(client, auth, key, {**ORDER, "dossier_code": f"H01-{key}"}).json()
    assert sepay(client, order["amount"], f"MBVCB.1.{order['reference']}.CHUYEN").status_code == 200
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded" and got["receipt"], got
    return dict(got)


def closed_and_sealed(settings: Settings) -> None:
    with session_scope() as session:
        close_day(session, settings, DEMO_AGENCY.code, today(), actor="ketoan")
    with session_scope() as session:
        seal(session)


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(data: bytes, change: Callable[[dict[str, bytes]], dict[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, body in change(members(data)).items():
            archive.writestr(name, body)
    return out.getvalue()


def flipped(data: bytes, name: str, at: int) -> bytes:
    def change(m: dict[str, bytes]) -> dict[str, bytes]:
        body = bytearray(m[name])
        body[at] ^= 0x01
        return {**m, name: bytes(body)}

    return rezip(data, change)


@pytest.fixture
def receipt_zip(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> tuple[bytes, dict[str, Any]]:
    order = paid(client, auth, "ev-1")
    closed_and_sealed(demo)
    with session_scope() as session:
        bundle = receipt_evidence(session, demo, order["receipt"]["id"])
    return bundle.body, order


def test_receipt_bundle_holds_the_whole_trail(
    receipt_zip: tuple[bytes, dict[str, Any]], demo: Settings
) -> None:
    data, order = receipt_zip
    m = members(data)
    names = list(m)
    assert names[0] == "README.txt" and names[-2:] == [SUMS, MANIFEST]
    with session_scope() as session:
        [event] = session.query(BankEvent).filter(BankEvent.source == "sepay").all()
        receipt = session.get(Receipt, order["receipt"]["id"])
        row = session.get(PaymentOrder, order["id"])
        assert receipt is not None and row is not None
        raw, xml = bytes(event.raw), bytes(receipt.xml)
        line_prices = [line.pricing for line in row.lines]
    assert m[f"bank/event-{event.id}-sepay.json"] == raw  # byte for byte as journaled
    [credit] = [n for n in names if n.startswith("bank/credit-")]
    assert json.loads(m[credit])["amount"] == order["amount"]
    saved = json.loads(m[f"order/order-{order['id']}.json"])
    assert saved["amount"] == order["amount"] == sum(line["amount"] for line in saved["lines"])
    assert [line["pricing"] for line in saved["lines"]] == line_prices
    assert saved["lines"][0]["catalogue_item"]["legal_basis"]
    assert saved["payer"]["id_number"] == ORDER["payer"]["id_number"]  # for inspectors
    assert "callback_url" not in saved  # never a secret, nor a URL that may carry one
    symbols = f"receipt/{receipt.template}-{receipt.series}-{receipt.number:08d}"
    assert m[f"{symbols}.xml"] == xml and m[f"{symbols}.pdf"].startswith(b"%PDF")
    [tax] = [n for n in names if n.startswith("tax/") and n.endswith(".xml")]
    answer = json.loads(m[tax.removesuffix(".xml") + "-answer.json"])
    assert answer["form"] == "01/TH-BLĐT" and answer["status"]
    assert [n for n in names if n.startswith("close/")] == [f"close/{today()}-v1.xml"]
    audit = json.loads(m["audit/records.json"])
    issued = [r for r in audit["records"] if r["source"] == "receipt_audit_events"]
    assert issued and all(r["seal"] and r["seal"]["matches_record"] for r in issued)
    for r in issued:  # recomputable by anyone
        assert hashlib.sha256(r["canonical"].encode()).hexdigest() == r["row_hash"]
        chained = f"{r['seal']['prev_hash']}|{r['source']}|{r['key']}|{r['row_hash']}"
        assert hashlib.sha256(chained.encode()).hexdigest() == r["seal"]["chain_hash"]
    manifest = m[MANIFEST].decode()
    assert "dữ liệu cá nhân" in manifest and "No secrets" in manifest
    sums = m[SUMS].decode().splitlines()
    assert len(sums) == len(names) - 2
    check = verify_evidence(data)
    assert check.ok, check.text()
    assert check.tax_code == DEMO_AGENCY.tax_code and check.members == len(names) - 1


def test_every_changed_byte_missing_or_extra_member_is_named(
    receipt_zip: tuple[bytes, dict[str, Any]],
) -> None:
    data, _ = receipt_zip
    m = members(data)
    for name, body in m.items():
        for at in {0, len(body) // 2, len(body) - 1}:
            check = verify_evidence(flipped(data, name, at))
            assert not check.ok, (name, at)
            assert check.problems[0].member == name, (name, at, check.text())
    manifest = m[MANIFEST]
    # Every part of the manifest, the signature block too (KeyInfo, certificate, value):
    for at in range(0, len(manifest), max(1, len(manifest) // 150)):
        check = verify_evidence(flipped(data, MANIFEST, at))
        assert not check.ok and check.problems[0].member == MANIFEST, (at, check.text())
    for tag in ("X509SubjectName", "X509Certificate", "SignatureValue", "SigningTime"):
        at = manifest.index(f"{tag}>".encode()) + len(tag) + 3
        check = verify_evidence(flipped(data, MANIFEST, at))
        assert not check.ok and check.problems[0].member == MANIFEST, (tag, check.text())

    [pdf] = [n for n in m if n.endswith(".pdf")]
    gone = verify_evidence(rezip(data, lambda x: {k: v for k, v in x.items() if k != pdf}))
    assert [p.member for p in gone.problems] == [pdf] and "missing" in gone.text()
    extra = verify_evidence(rezip(data, lambda x: {**x, "bank/extra.json": b"{}"}))
    assert [p.member for p in extra.problems] == ["bank/extra.json"]
    assert "extra member" in extra.text()
    no_manifest = verify_evidence(
        rezip(data, lambda x: {k: v for k, v in x.items() if k != MANIFEST})
    )
    assert no_manifest.problems[0].member == MANIFEST
    assert verify_evidence(b"not a zip").problems[0].member == "(archive)"


def test_a_manifest_signed_by_another_key_is_refused(
    receipt_zip: tuple[bytes, dict[str, Any]], demo: Settings
) -> None:
    """Someone adds a member and re-signs the manifest with a certificate of their own (even
    one claiming the agency's tax code): the certificate named in the signed data, or the
    trusted CA, refuses it."""
    data, _ = receipt_zip
    ca_key, ca_cert = create_dev_ca("Forger CA")
    key, cert = create_dev_org_certificate(ca_key, ca_cert, DEMO_AGENCY.name, DEMO_AGENCY.tax_code)
    forger = Pkcs12KeySource(Path("/dev/null"), key, cert, (ca_cert,))

    def resign(m: dict[str, bytes], *, claim_cert: bool) -> dict[str, bytes]:
        root = etree.fromstring(m[MANIFEST])
        root.find(f"DSCKS/NLap/{{{DS_NS}}}Signature").getparent().remove(
            root.find(f"DSCKS/NLap/{{{DS_NS}}}Signature")
        )
        etree.SubElement(
            root.find("DSCKS/NLap"), f"{{{DS_NS}}}Signature", Id="placeholder", nsmap={"ds": DS_NS}
        )
        files = root.find("DLHSo/DSTep")
        tep = etree.SubElement(files, "Tep")
        body = b"forged"
        for tag, value in (
            ("Ten", "bank/forged.json"),
            ("SHA256", hashlib.sha256(body).hexdigest()),
            ("KThuoc", str(len(body))),
        ):
            etree.SubElement(tep, tag).text = value
        if claim_cert:
            root.find("DLHSo/CTS/SHA256").text = cert.fingerprint(hashes.SHA256()).hex()
        signed = sign_enveloped_fast(
            root,
            signed_id="evidence",
            key=forger,
            signing_time=now(),
            tz=ZONE,
            copy=False,
        )
        out = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
        return {**m, "bank/forged.json": body, MANIFEST: out}

    plain = verify_evidence(rezip(data, lambda m: resign(m, claim_cert=False)))
    assert plain.problems[0].member == MANIFEST and "certificate" in plain.text()
    claimed = rezip(data, lambda m: resign(m, claim_cert=True))
    assert verify_evidence(claimed).ok  # self-consistent: only a trusted CA tells them apart
    real_ca = x509.load_pem_x509_certificate((demo.keys_dir / "dev-ca.pem").read_bytes())
    refused = verify_evidence(claimed, trusted_ca=real_ca)
    assert refused.problems[0].member == MANIFEST and "signature broken" in refused.text()
    assert verify_evidence(data, trusted_ca=real_ca).ok


def test_day_bundle_has_every_receipt_of_the_day(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    first = paid(client, auth, "ev-d1")
    second = paid(client, auth, "ev-d2")
    closed_and_sealed(demo)
    with session_scope() as session:
        bundle = day_evidence(session, demo, DEMO_AGENCY.code, today())
    m = members(bundle.body)
    receipts = [n for n in m if n.startswith("receipt/") and n.endswith(".xml")]
    assert len(receipts) == 2
    assert {f"order/order-{o['id']}.json" for o in (first, second)} <= set(m)
    assert len([n for n in m if n.startswith("bank/event-")]) == 2
    assert verify_evidence(bundle.body).ok


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MOTCUA, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=subprocess_env(dict(os.environ)),
        check=False,
    )


def _sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # in a moved run, xmlsec1 lives at the suite's time (libfaketime)
        ["bash", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=subprocess_env(dict(os.environ)),
    )


@pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 not installed (apt-get install xmlsec1)")
def test_cli_bundles_verify_offline_with_the_documented_commands(
    client: TestClient, auth: dict[str, str], demo: Settings, tmp_path: Path
) -> None:
    order = paid(client, auth, "ev-cli")
    closed_and_sealed(demo)
    ca = demo.keys_dir / "dev-ca.pem"
    for kind, args in (
        ("receipt", ("evidence", "receipt", order["receipt"]["id"])),
        ("day", ("evidence", "day", "--agency", DEMO_AGENCY.code, "--date", today().isoformat())),
    ):
        out = tmp_path / f"{kind}.zip"
        made = _cli(*args, "--out", str(out))
        assert made.returncode == 0, made.stderr
        ok = _cli("evidence", "verify", str(out))
        assert ok.returncode == 0 and ok.stdout.startswith("intact"), ok.stderr
        # Without our software (docs/evidence.md):
        work = tmp_path / kind
        work.mkdir()
        assert _sh(f"unzip -q {out}", work).returncode == 0
        signed = _sh(
            f"xmlsec1 --verify --enabled-key-data x509 --trusted-pem {ca} "
            "--id-attr:Id DLHSo manifest.xml",
            work,
        )
        assert signed.returncode == 0 and "OK" in signed.stdout + signed.stderr, signed.stderr
        named = _sh(
            "H=$(sha256sum SHA256SUMS | cut -d' ' -f1); "
            'grep -c "<Ten>SHA256SUMS</Ten><SHA256>$H</SHA256>" manifest.xml',
            work,
        )
        assert named.stdout.strip() == "1", named
        sums = _sh("sha256sum -c SHA256SUMS", work)
        assert sums.returncode == 0 and "FAILED" not in sums.stdout, sums.stdout
        complete = _sh(
            "(cut -c67- SHA256SUMS; echo SHA256SUMS; echo manifest.xml) | sort > ../expected-"
            f"{kind}; find . -type f | sed 's|^\\./||' | sort | diff ../expected-{kind} -",
            work,
        )
        assert complete.returncode == 0, complete.stdout

        # One changed byte: both our command and the offline steps say which member.
        [xml] = [p for p in (work / "receipt").iterdir() if p.suffix == ".xml"][:1]
        body = bytearray(xml.read_bytes())
        body[len(body) // 2] ^= 0x01
        xml.write_bytes(bytes(body))
        failed = _sh("sha256sum -c SHA256SUMS", work)
        assert failed.returncode != 0 and f"receipt/{xml.name}: FAILED" in failed.stdout
        tampered = tmp_path / f"{kind}-tampered.zip"
        with zipfile.ZipFile(tampered, "w") as archive:  # as `cd ev && zip -r ../x.zip .` would
            for path in sorted(p for p in work.rglob("*") if p.is_file()):
                archive.write(path, path.relative_to(work).as_posix())
        bad = _cli("evidence", "verify", str(tampered))
        assert bad.returncode == 1 and f"receipt/{xml.name}" in bad.stderr, bad.stderr
    bad = tmp_path / "bad.zip"
    bad.write_bytes(flipped((tmp_path / "receipt.zip").read_bytes(), MANIFEST, 400))
    refused = _cli("evidence", "verify", str(bad))
    assert refused.returncode == 1 and "manifest.xml" in refused.stderr


def test_desk_buttons_download_bundles_that_verify(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    order = paid(client, auth, "ev-desk")
    sign_in(client, "ketoan")
    day = client.get(f"/staff/desk/days/{today()}", headers=HTML)
    assert f'href="/staff/desk/days/{today()}/evidence"' in day.text
    rid = order["receipt"]["id"]
    assert f'href="/staff/desk/receipts/{rid}/evidence"' in day.text
    for url in (f"/staff/desk/days/{today()}/evidence", f"/staff/desk/receipts/{rid}/evidence"):
        got = client.get(url)
        assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
        assert "attachment" in got.headers["content-disposition"]
        assert verify_evidence(got.content).ok
    assert (
        client.get("/staff/desk/receipts/0123456789abcdef0123456789abcdef/evidence").status_code
        == 404
    )


def test_public_page_shows_the_chain_without_personal_data(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    order = paid(client, auth, "ev-public")
    code = order["receipt"]["verify_url"].rsplit("/", 1)[1]
    before = client.get(f"/r/{code}").text
    assert 'data-status="none"' in before  # not reported yet
    closed_and_sealed(demo)
    html = client.get(f"/r/{code}").text
    trail = html[html.index('id="trail"') : html.index('id="sig-heading"')]
    assert 'data-channel="transfer"' in trail and "Chuyển khoản ngân hàng" in trail
    assert "Biên lai được lập và ký số lúc" in trail and 'data-replaced="no"' in trail
    reported = re.search(r'class="trail-tax" data-day="([0-9-]+)" data-status="(\w+)"', trail)
    assert reported is not None and reported[1] == today().isoformat(), trail
    assert today().strftime("%d/%m/%Y") in trail
    for value in PERSONAL:
        assert value not in html, value

    replaced = client.post(
        f"/api/v1/receipts/{order['receipt']['id']}/replace",
        json={
            "reason": "Sai số trang bản sao",
            "actor": "Kế toán",
            "lines": [{"fee_code": "CT-BS", "quantity": 2}],
        },
        headers=auth,
    )
    assert replaced.status_code == 201, replaced.text
    html = client.get(f"/r/{code}").text
    assert 'data-replaced="yes"' in html and "Đã được thay thế lúc" in html
    new_code = replaced.json()["verify_url"].rsplit("/", 1)[1]
    assert f'href="/r/{new_code}"' in html
    newer = client.get(f"/r/{new_code}").text
    assert "Thay thế biên lai" in newer and 'data-channel="transfer"' in newer
    for value in PERSONAL:
        assert value not in newer, value


def test_secrets_in_journaled_bodies_never_leave() -> None:
    """A card gateway event carries the PaymentIntent's ``client_secret``: redacted, and the
    manifest's notes say which member was re-serialised. A SePay body stays byte for byte."""
    from reconciliation.evidence import _add_event, _Bundle

    card = json.dumps(
        {
            "id": "evt_1",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "client_secret": "pi_1_secret_abc", "amount": 5000}},
        }
    ).encode()
    sepay_raw = b'{"id": 7, "content": "MCJW5QG5DJDTF", "transferAmount": 5000}'
    bundle = _Bundle()
    _add_event(bundle, BankEvent(id=1, source="card", raw=card))
    _add_event(bundle, BankEvent(id=2, source="sepay", raw=sepay_raw))
    _add_event(bundle, BankEvent(id=2, source="sepay", raw=sepay_raw))  # once only
    assert list(bundle.members) == ["bank/event-1-card.json", "bank/event-2-sepay.json"]
    body = bundle.members["bank/event-1-card.json"]
    assert b"pi_1_secret_abc" not in body and b"[redacted]" in body and b'"pi_1"' in body
    assert bundle.members["bank/event-2-sepay.json"] == sepay_raw
    assert bundle.notes == [
        "bank/event-1-card.json: giá trị bí mật được thay bằng [redacted] / secret values redacted"
    ]
