"""The citizen portal (issue 6): pay page, status poll, receipt downloads, look-up with a
second factor and a rate limit, the public fee catalogue with a QR per procedure, the landing."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_flow import ORDER, create, sepay
from fastapi.testclient import TestClient
from infra.localstripe import LocalStripe
from lxml import etree

from api.app import create_app
from api.demo import DEMO_AGENCY, seed
from settings.config import Settings, get_settings

HTML = {"Accept": "text/html,application/xhtml+xml"}
ZBARIMG = shutil.which("zbarimg")


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _paid_order(client: TestClient, auth: dict[str, str], key: str, body: Any = ORDER) -> Any:
    order = create(client, auth, key, body).json()
    assert sepay(client, order["amount"], f"CK {order['reference']} nop phi").status_code == 200
    return order


def _lookup(client: TestClient, dossier: str, last4: str) -> Any:
    return client.post("/tra-cuu", data={"dossier_code": dossier, "last4": last4}, headers=HTML)


# ----------------------------------------------------------------------------- pay page


def test_pay_page_shows_fees_qr_and_copyable_transfer_fields(
    client: TestClient, auth: dict[str, str]
) -> None:
    fees = [{"fee_code": "DD-LPCN", "quantity": 2}, {"fee_code": "DD-TDCN", "quantity": 1}]
    body = {**ORDER, "procedure_code": "1.012752", "fees": fees}
    order = create(client, auth, "portal-pay-1", body).json()
    res = client.get(_path(order["pay_url"]), headers=HTML)
    assert res.status_code == 200 and res.headers["cache-control"] == "no-store"
    html = res.text
    etree.HTML(html)
    assert DEMO_AGENCY.name in html and order["dossier_code"] in html
    assert order["procedure_name"] in html
    # lines with quantity × unit price, and the total
    assert "2 giấy × 100.000 đ" in html and "200.000 đ" in html
    assert "1 hồ sơ × 500.000 đ" in html and "700.000 đ" in html
    assert 'data-status="pending"' in html and "Chờ thanh toán" in html
    assert f'src="/api/v1/payment-orders/{order["id"]}/vietqr.png"' in html
    # every transfer field has a copy button carrying the exact text
    for value in (
        DEMO_AGENCY.bank_account,
        DEMO_AGENCY.bank_account_name,
        "VietinBank",  # the bank's name for NAPAS BIN 970415 (payments.vietqr.BANK_NAMES)
        "700000",
        order["reference"],
    ):
        assert f'data-copy="{value}"' in html, value
    assert 'data-poll="2000"' in html and "/static/portal.js" in html
    # no personal data beyond the masked name
    assert "0912345678" not in html and "001090012345" not in html and "an@example.vn" not in html
    assert "Nguyễn V. A." in html
    # English on request
    assert "Awaiting payment" in client.get(_path(order["pay_url"]) + "?lang=en").text


def test_exemption_is_shown_with_its_basis(client: TestClient, auth: dict[str, str]) -> None:
    exemption = {"category": "Hộ nghèo", "legal_basis": "Điều 5 Thông tư 226/2016/TT-BTC"}
    body = {**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": 2, "exemption": exemption}]}
    order = create(client, auth, "portal-exempt", body).json()
    html = client.get(_path(order["pay_url"])).text
    assert "Hộ nghèo" in html and "Điều 5 Thông tư 226/2016/TT-BTC" in html
    assert 'data-status="succeeded"' in html and 'id="transfer"' not in html


def test_status_turns_paid_and_receipt_downloads_by_order_id(
    client: TestClient, auth: dict[str, str]
) -> None:
    order = create(client, auth, "portal-paid").json()
    status = client.get(f"/pay/{order['id']}/status").json()
    assert status == {"status": "pending", "paid_at": None, "receipt": None, "downloads": None}
    assert client.get(f"/pay/{order['id']}/bien-lai.pdf").status_code == 404

    assert sepay(client, order["amount"], f"CK {order['reference']}").status_code == 200
    status = client.get(f"/pay/{order['id']}/status").json()
    assert status["status"] == "succeeded" and status["receipt"]["number"] == 1
    assert status["downloads"] == {
        "pdf": f"/pay/{order['id']}/bien-lai.pdf",
        "xml": f"/pay/{order['id']}/bien-lai.xml",
    }
    pdf = client.get(status["downloads"]["pdf"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"].startswith("attachment;")
    xml = client.get(status["downloads"]["xml"])
    assert xml.status_code == 200 and b"<ds:Signature" in xml.content
    assert xml.headers["content-disposition"].startswith("attachment;")

    html = client.get(f"/pay/{order['id']}").text
    assert 'data-status="succeeded"' in html and "Đã thanh toán" in html
    assert 'id="transfer"' not in html and "data-poll" not in html
    assert f'href="/pay/{order["id"]}/bien-lai.pdf"' in html
    assert f'href="/pay/{order["id"]}/bien-lai.xml"' in html


def test_cancelled_order_shows_a_clear_state_and_no_qr(
    client: TestClient, auth: dict[str, str]
) -> None:
    order = create(client, auth, "portal-cancel").json()
    assert (
        client.post(f"/api/v1/payment-orders/{order['id']}/cancel", headers=auth).status_code == 200
    )
    html = client.get(f"/pay/{order['id']}").text
    assert 'data-status="cancelled"' in html and "Yêu cầu thanh toán đã bị hủy" in html
    assert "vietqr.png" not in html and "data-poll" not in html
    assert client.get(f"/pay/{order['id']}/status").json()["status"] == "cancelled"


def test_unknown_order_is_a_404_page(client: TestClient) -> None:
    res = client.get("/pay/" + "0" * 32, headers=HTML)
    assert res.status_code == 404 and res.headers["content-type"].startswith("text/html")
    assert "Không tìm thấy" in res.text
    assert client.get("/pay/" + "0" * 32 + "/status").status_code == 404


def test_card_start_without_a_gateway_is_refused(client: TestClient, auth: dict[str, str]) -> None:
    order = create(client, auth, "portal-card").json()
    res = client.post(f"/pay/{order['id']}/card")
    assert res.status_code == 404 and res.json()["code"] == "card_not_configured"
    assert "Thanh toán bằng thẻ" not in client.get(f"/pay/{order['id']}").text


@pytest.fixture
def card_client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with LocalStripe() as server:
        monkeypatch.setenv("MOTCUA_CARD_API_BASE", server.url)
        monkeypatch.setenv("MOTCUA_CARD_SECRET_KEY", "sk_test_motcua")
        monkeypatch.setenv("MOTCUA_CARD_DIALECT", "localstripe")
        get_settings.cache_clear()
        current = get_settings()
        seed(current)
        with TestClient(create_app(current)) as test_client:
            yield test_client


def test_card_start_returns_the_client_secret(
    card_client: TestClient, auth: dict[str, str]
) -> None:
    order = create(card_client, auth, "portal-card-on").json()
    first = card_client.post(f"/pay/{order['id']}/card")
    assert first.status_code == 200, first.text
    intent = first.json()
    assert intent["amount"] == order["amount"] and intent["currency"] == "vnd"
    assert intent["client_secret"].startswith(intent["payment_intent"])
    assert "sk_test_motcua" not in first.text
    # (one intent per order rests on Stripe's Idempotency-Key, which localstripe ignores)
    card_client.post(f"/api/v1/payment-orders/{order['id']}/cancel", headers=auth)
    refused = card_client.post(f"/pay/{order['id']}/card")
    assert refused.status_code == 422 and "cancelled" in refused.json()["detail"]


# ----------------------------------------------------------------------------- look-up


def test_lookup_with_phone_digits_lists_orders_and_receipts(
    client: TestClient, auth: dict[str, str]
) -> None:
    paid = _paid_order(client, auth, "portal-lookup-1")
    second = {**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": 1}]}
    pending = create(client, auth, "portal-lookup-2", second).json()
    assert client.get("/tra-cuu").status_code == 200
    res = _lookup(client, ORDER["dossier_code"], "5678")
    assert res.status_code == 200, res.text
    html = res.text
    assert 'id="nothing-found"' not in html
    receipt = client.get(f"/pay/{paid['id']}/status").json()["receipt"]
    assert f"/api/v1/receipts/{receipt['id']}/pdf" in html
    assert f"/api/v1/receipts/{receipt['id']}/xml" in html
    assert _path(receipt["verify_url"]) in html
    assert f'href="/pay/{pending["id"]}"' in html  # still payable
    assert "0912345678" not in html and "Nguyễn V. A." in html


def test_lookup_falls_back_to_id_number_without_phone(
    client: TestClient, auth: dict[str, str]
) -> None:
    payer = {k: v for k, v in ORDER["payer"].items() if k != "phone"}  # type: ignore[union-attr]
    body = {**ORDER, "dossier_code": "H01.22-261121-0099", "payer": payer}
    _paid_order(client, auth, "portal-lookup-id", body)
    assert 'id="nothing-found"' not in _lookup(client, "H01.22-261121-0099", "2345").text
    assert 'id="nothing-found"' in _lookup(client, "H01.22-261121-0099", "5678").text


def test_wrong_second_factor_answers_like_a_missing_dossier(
    client: TestClient, auth: dict[str, str]
) -> None:
    _paid_order(client, auth, "portal-lookup-wrong")
    dossier = ORDER["dossier_code"]
    assert isinstance(dossier, str)
    wrong = _lookup(client, dossier, "1234")
    missing = _lookup(client, "H99.99-000000-0000", "1234")
    assert wrong.status_code == missing.status_code == 200
    assert 'id="nothing-found"' in wrong.text
    assert "/api/v1/receipts/" not in wrong.text and "/pay/" not in wrong.text
    # the same page but for the echoed code in the form field
    assert wrong.text.replace(dossier, "X") == missing.text.replace("H99.99-000000-0000", "X")
    bad = _lookup(client, dossier, "12")
    assert bad.status_code == 422 and "đúng 4 chữ số" in bad.text


@pytest.fixture
def limited_client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MOTCUA_RATE_LIMIT_LOOKUP_PER_MINUTE", "3")
    get_settings.cache_clear()
    current = get_settings()
    assert current.rate_limit_lookup_per_minute == 3
    seed(current)
    with TestClient(create_app(current)) as test_client:
        yield test_client


def test_lookup_is_rate_limited_with_a_vietnamese_page(limited_client: TestClient) -> None:
    if time.time() % 60 > 55:  # keep the four requests inside one fixed window
        time.sleep(60 - time.time() % 60 + 0.2)
    for _ in range(3):
        assert _lookup(limited_client, "H01.22-261121-0001", "0000").status_code == 200
    res = _lookup(limited_client, "H01.22-261121-0001", "0000")
    assert res.status_code == 429
    assert res.headers["content-type"].startswith("text/html")
    assert "Quá nhiều yêu cầu" in res.text and "rate_limited" in res.text
    api = limited_client.post("/tra-cuu", data={"dossier_code": "x", "last4": "0000"})
    assert api.status_code == 429 and api.json()["code"] == "rate_limited"
    assert int(api.headers["retry-after"]) >= 1
    assert limited_client.get("/tra-cuu").status_code == 200  # the form itself is not counted


# ----------------------------------------------------------------------------- catalogue


def test_catalogue_lists_fees_and_filters_server_side(client: TestClient) -> None:
    res = client.get(f"/bang-phi/{DEMO_AGENCY.code}")
    assert res.status_code == 200
    html = res.text
    etree.HTML(html)
    sections = re.findall(
        r'<section class="card proc" data-search="[^"]*" data-code="([^"]+)"', html
    )
    assert len(sections) > 30 and "2.000815" in sections
    assert "Thông tư 226/2016/TT-BTC" in html and "200.000 đ" in html  # basis and cap
    assert "từ 01/01/2026" in html  # effective date
    assert "/bang-phi/DEMO-HUYEN/2.000815/qr.png" in html

    # accent- and case-insensitive: "chung thuc" finds "Chứng thực"
    found = client.get(f"/bang-phi/{DEMO_AGENCY.code}", params={"q": "chung THUC"}).text
    codes = re.findall(r'data-code="([^"]+)"', found)
    assert "2.000815" in codes and "1.012752" not in codes
    assert re.findall(
        r'data-code="([^"]+)"', client.get(f"/bang-phi/{DEMO_AGENCY.code}?q=1.012752").text
    ) == ["1.012752"]
    assert re.findall(
        r'data-code="([^"]+)"', client.get(f"/bang-phi/{DEMO_AGENCY.code}?q=Đất đai").text
    )
    none = client.get(f"/bang-phi/{DEMO_AGENCY.code}?q=khongcothutucnay").text
    assert 'data-code="' not in none and 'id="no-match" class="notice" >' in none


def test_procedure_page_and_its_qr(client: TestClient, tmp_path: Path) -> None:
    detail = client.get("/bang-phi/DEMO-HUYEN/1.012752")
    assert detail.status_code == 200
    assert "DD-LPCN" in detail.text and "DD-TDCN" in detail.text and "500.000 đ" in detail.text
    png = client.get("/bang-phi/DEMO-HUYEN/1.012752/qr.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    if ZBARIMG is None:
        pytest.skip("zbarimg (zbar-tools) is not installed")
    image = tmp_path / "qr.png"
    image.write_bytes(png.content)
    out = subprocess.run(
        [ZBARIMG, "--raw", "-q", str(image)], capture_output=True, check=True, timeout=30
    )
    assert out.stdout.decode().strip() == "http://testserver/bang-phi/DEMO-HUYEN/1.012752"


def test_unknown_agency_and_procedure_are_404_pages(client: TestClient) -> None:
    res = client.get("/bang-phi/NOPE", headers=HTML)
    assert res.status_code == 404 and res.headers["content-type"].startswith("text/html")
    assert "Không tìm thấy đơn vị thu" in res.text
    assert client.get("/bang-phi/DEMO-HUYEN/9.999999", headers=HTML).status_code == 404
    assert client.get("/bang-phi/DEMO-HUYEN/9.999999/qr.png").status_code == 404


def test_home_links_the_public_pages(client: TestClient) -> None:
    html = client.get("/").text
    assert 'href="/tra-cuu"' in html and 'href="/verify"' in html
    assert 'href="/bang-phi/DEMO-HUYEN"' in html


def test_verify_page_offers_qr_scanning(client: TestClient) -> None:
    html = client.get("/verify").text
    assert 'id="scan-qr"' in html and "Quét mã QR" in html and 'id="verify-form"' in html
    assert "data-unsupported=" in html and "/static/portal.js" in html
