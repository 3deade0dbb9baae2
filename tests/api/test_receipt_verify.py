"""Verification: ``POST /api/v1/verify`` and the public page ``GET /r/{code}`` (issue 3).

A genuine receipt verifies; any changed byte of its business data does not; a re-signed forgery
that claims our tax code does not either; hostile XML is refused before it is parsed.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from api.demo import DEMO_AGENCY
from einvoice.document import Collector, FeeKind, Payer, ReceiptDocument, ReceiptLine
from einvoice.receipt_xml import build_receipt_xml, receipt_xml_bytes, signed_id_for
from signing.certs import create_dev_ca, create_dev_org_certificate
from signing.keys import Pkcs12KeySource
from signing.xmldsig import VIETNAM_TZ, sign_enveloped

ORDER = {
    "dossier_code": "H01.22-261121-0001",
    "procedure_code": "1.001612",
    "payer": {"name": "Nguyễn Văn An", "id_number": "001090012345", "address": "Số 5 phố Huế"},
    "fees": [{"fee_code": "CT-BS", "quantity": 3}],
}


def paid_receipt(client: TestClient, auth: dict[str, str], key: str) -> dict[str, Any]:
    order = client.post(
        "/api/v1/payment-orders",
        json={**ORDER, "dossier_code": f"H01-{key}"},
        headers={**auth, "Idempotency-Key": key},
    ).json()
    client.post(
        "/sandbox/bank/transfer",
        json={"agency": DEMO_AGENCY.code, "amount": order["amount"], "content": order["reference"]},
    )
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    receipt: dict[str, Any] = client.get(f"/api/v1/receipts/{got['receipt']['id']}").json()
    return receipt


def xml_of(client: TestClient, receipt: dict[str, Any]) -> bytes:
    return client.get(f"/api/v1/receipts/{receipt['id']}/xml").content


def verify(client: TestClient, data: bytes, name: str = "bien-lai.xml", kind: str = "") -> Any:
    media = kind or ("application/pdf" if name.endswith(".pdf") else "application/xml")
    return client.post("/api/v1/verify", files={"file": (name, data, media)})


def page_status(html: str) -> str:
    match = re.search(r'id="receipt-status"[^>]*>(.*?)</p>', html, re.S)
    assert match is not None, html
    return " ".join(match.group(1).split())


def forged_key(tax_code: str) -> Pkcs12KeySource:
    """A self-made certificate that *claims* a tax code: signatures verify, trust does not."""
    ca_key, ca_cert = create_dev_ca("Forger CA")
    key, cert = create_dev_org_certificate(ca_key, ca_cert, "Kẻ giả mạo", tax_code)
    return Pkcs12KeySource(Path("/dev/null"), key, cert, (ca_cert,))


def resign(doc: ReceiptDocument, key: Pkcs12KeySource) -> bytes:
    signed = sign_enveloped(
        build_receipt_xml(doc),
        signed_id=signed_id_for(doc),
        key=key,
        signing_time=datetime.now(UTC),
        tz=VIETNAM_TZ,
    )
    return receipt_xml_bytes(signed)


def doc_like(
    receipt: dict[str, Any], total: int, tax_code: str = DEMO_AGENCY.tax_code
) -> ReceiptDocument:
    return ReceiptDocument(
        receipt_id=receipt["id"],
        template=receipt["template"],
        series=receipt["series"],
        number=receipt["number"],
        issued_at=datetime.now(UTC),
        collector=Collector(name=DEMO_AGENCY.name, tax_code=tax_code, address=DEMO_AGENCY.address),
        payer=Payer(name="Nguyễn Văn An"),
        lines=(
            ReceiptLine(
                fee_code="CT-BS",
                name="Chứng thực bản sao",
                kind=FeeKind.PHI,
                quantity=3,
                unit_price=total // 3,
                amount=total,
            ),
        ),
        payment_method="transfer",
        payment_reference="MC7Q2K9X",
    )


# ----------------------------------------------------------------------------- POST /verify


def test_genuine_receipt_verifies(client: TestClient, auth: dict[str, str]) -> None:
    receipt = paid_receipt(client, auth, "v-1")
    res = verify(client, xml_of(client, receipt))
    assert res.status_code == 200, res.text
    result = res.json()
    assert result["valid"] is True, result["problems"]
    assert result["problems"] == []
    assert result["signer"] == DEMO_AGENCY.name
    assert result["tax_code"] == DEMO_AGENCY.tax_code == result["signer_tax_code"]
    assert result["tax_code_matches"] is True
    assert (result["template"], result["series"], result["number"]) == (
        "EBL01",
        receipt["series"],
        1,
    )
    assert result["status"] == "valid" and result["total"] == 5000
    assert result["receipt"]["id"] == receipt["id"]
    assert result["development_certificate"] is True
    assert "development_certificate" in [w["code"] for w in result["warnings"]]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<TgTTTBSo>5000</TgTTTBSo>", b"<TgTTTBSo>6001</TgTTTBSo>"),
        (
            b"<ThTien>5000</ThTien>",
            b"<ThTien>9000</ThTien>",
        ),  # item and total changed together: only the signature can tell
        ("Nguyễn Văn An".encode(), "Nguyễn Văn Ấn".encode()),
    ],
    ids=["one-byte-in-total", "consistent-amounts", "payer-name"],
)
def test_any_changed_byte_of_business_data_is_caught(
    client: TestClient, auth: dict[str, str], old: bytes, new: bytes
) -> None:
    data = xml_of(client, paid_receipt(client, auth, "v-2"))
    assert old in data
    tampered = data.replace(old, new, 1)
    if old.startswith(b"<ThTien>"):
        tampered = tampered.replace(b"<TgTTTBSo>5000</TgTTTBSo>", b"<TgTTTBSo>9000</TgTTTBSo>")
    result = verify(client, tampered).json()
    assert result["valid"] is False
    assert result["status"] == "unknown"
    assert any("changed after signing" in p for p in result["problems"]), result["problems"]
    assert all(p["vi"] for p in result["problem_details"])


def test_a_resigned_forgery_claiming_our_tax_code_is_caught(
    client: TestClient, auth: dict[str, str]
) -> None:
    receipt = paid_receipt(client, auth, "v-3")
    forged = resign(doc_like(receipt, total=600_000), forged_key(DEMO_AGENCY.tax_code))
    result = verify(client, forged).json()
    assert result["valid"] is False
    assert [p["code"] for p in result["problem_details"]] == ["differs_from_issued"]
    # a forged receipt we never issued is at best "unknown", and says so
    stranger = dict(receipt, id=uuid.uuid4().hex, number=99)
    unknown = verify(client, resign(doc_like(stranger, 600_000), forged_key("0100109106"))).json()
    codes = [p["code"] for p in unknown["problem_details"]]
    assert unknown["valid"] is False and codes == ["tax_code_mismatch"]
    assert (
        unknown["tax_code"] == DEMO_AGENCY.tax_code and unknown["signer_tax_code"] == "0100109106"
    )
    unknown = verify(client, resign(doc_like(stranger, 600_000), forged_key(DEMO_AGENCY.tax_code)))
    assert unknown.json()["status"] == "unknown"
    assert "not_issued_here" in [w["code"] for w in unknown.json()["warnings"]]


def test_a_replaced_receipt_verifies_as_replaced(client: TestClient, auth: dict[str, str]) -> None:
    original = paid_receipt(client, auth, "v-4")
    res = client.post(
        f"/api/v1/receipts/{original['id']}/replace",
        json={
            "reason": "Sai số trang",
            "actor": "Trần Thị Bình",
            "lines": [{"fee_code": "CT-BS", "quantity": 2}],
        },
        headers=auth,
    )
    assert res.status_code == 201, res.text
    result = verify(client, xml_of(client, original)).json()
    assert result["valid"] is True and result["status"] == "replaced"
    assert result["replaced_by"]["number"] == 2
    replacement = verify(client, xml_of(client, res.json())).json()
    assert replacement["status"] == "valid" and replacement["replaces"]["number"] == 1


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE BLai [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<BLai>&lol3;</BLai>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE BLai [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<BLai><DLBLai>&x;</DLBLai></BLai>
"""


@pytest.mark.parametrize(
    "payload",
    [
        BILLION_LAUGHS,
        XXE,
        b'<?xml version="1.0"?><!DOCTYPE BLai SYSTEM "http://198.51.100.1/x.dtd"><BLai/>',
        b"<!DOCTYPE BLai><BLai/>",
    ],
    ids=["billion-laughs", "xxe", "external-dtd", "doctype"],
)
def test_hostile_xml_is_refused(client: TestClient, payload: bytes) -> None:
    res = verify(client, payload)
    assert res.status_code == 400, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert res.json()["code"] == "unsafe_xml"
    assert "root:" not in res.text


def test_hostile_xml_in_utf16_is_refused(client: TestClient) -> None:
    data = (
        XXE.decode()
        .replace('version="1.0"?>', 'version="1.0" encoding="UTF-16"?>')
        .encode("utf-16")
    )
    res = verify(client, data)
    assert res.status_code == 400 and res.json()["code"] == "unsafe_xml"


@pytest.mark.parametrize("size", [1_000_100, 6 * 1024 * 1024])
def test_oversized_files_are_refused(client: TestClient, size: int) -> None:
    res = verify(client, b"<BLai>" + b" " * size + b"</BLai>")
    assert res.status_code == 413
    assert res.json()["code"] in {"file_too_large", "payload_too_large"}


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"%PDF-1.7\n%garbage\n1 0 obj <<>> endobj\n%%EOF", "bien-lai.pdf"),
        (b"\x00\x01 not a pdf at all", "bien-lai.pdf"),
        (b"hello, I am not XML", "bien-lai.xml"),
        (b"<BLai><DLBLai Id='data-x'/></BLai>", "bien-lai.xml"),
    ],
    ids=["pdf-garbage", "fake-pdf", "text", "unsigned-xml"],
)
def test_garbage_gets_a_not_valid_answer(client: TestClient, data: bytes, name: str) -> None:
    res = verify(client, data, name)
    assert res.status_code == 200, res.text
    result = res.json()
    assert result["valid"] is False and result["problems"]
    assert result["status"] == "unknown"


def test_the_upload_is_required(client: TestClient) -> None:
    assert client.post("/api/v1/verify").status_code == 422


# ----------------------------------------------------------------------------- GET /r/{code}


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def test_public_page_shows_the_receipt_and_its_signature(
    client: TestClient, auth: dict[str, str]
) -> None:
    receipt = paid_receipt(client, auth, "p-1")
    res = client.get(_path(receipt["verify_url"]))
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    html = res.text
    assert '<html lang="vi">' in html and 'name="viewport"' in html
    assert page_status(html).startswith("Còn hiệu lực")
    assert "Chữ ký số hợp lệ" in html and "Signature valid" in html
    assert DEMO_AGENCY.tax_code in html and "Sơn Hà" in html
    assert re.search(r'id="receipt-number">1<', html)
    assert "5.000 đ" in html and "Năm nghìn đồng" in html
    assert f"/api/v1/receipts/{receipt['id']}/xml" in html
    assert f"/api/v1/receipts/{receipt['id']}/pdf" in html
    assert 'action="/api/v1/verify"' in html and 'aria-live="polite"' in html
    assert "Nguyễn V. A." in html and "001090012345" not in html
    assert "chứng thư số thử nghiệm" in html  # the development certificate is called out


def test_public_page_after_a_replacement(client: TestClient, auth: dict[str, str]) -> None:
    original = paid_receipt(client, auth, "p-2")
    assert "Đã bị thay thế" not in page_status(client.get(_path(original["verify_url"])).text)
    replacement = client.post(
        f"/api/v1/receipts/{original['id']}/replace",
        json={
            "reason": "Sai số trang",
            "actor": "Trần Thị Bình",
            "lines": [{"fee_code": "CT-BS", "quantity": 2}],
        },
        headers=auth,
    ).json()
    html = client.get(_path(original["verify_url"])).text
    assert page_status(html).startswith("Đã bị thay thế")
    link = re.search(r'id="replaced-by" href="([^"]+)"', html)
    assert link is not None and link.group(1) == _path(replacement["verify_url"])
    assert "biên lai số 2" in html
    assert "Chữ ký số hợp lệ" in html  # the original's signature is still good
    html = client.get(link.group(1)).text
    assert page_status(html).startswith("Còn hiệu lực")
    assert re.search(r'id="replaces" href="[^"]+">biên lai số 1 ', html)


@pytest.mark.parametrize("code", ["AAAAAAAAAAAAAAAA", "nope", "<script>", "A" * 200])
def test_unknown_code_is_a_404_page(client: TestClient, code: str) -> None:
    res = client.get(f"/r/{code}")
    assert res.status_code == 404
    assert "Không tìm thấy biên lai" in res.text and "Receipt not found" in res.text


def test_verify_page(client: TestClient) -> None:
    res = client.get("/verify")
    assert res.status_code == 200 and 'id="verify-form"' in res.text
    etree.HTML(res.text)  # parses
