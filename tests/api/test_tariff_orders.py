"""Issue 14 through the API, on both writers (SQLite: the ORM; PostgreSQL: the SQL fast path of
payments.order_intake): orders are priced by the demo catalogue's legal tariffs, bad tariff input
is refused with nothing created, the signed receipt and its PDF show how the amount was reached,
and orders priced before the tariffs (``order_lines.pricing`` NULL) read, pay and verify as
before."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from api_flow import ORDER, create, sepay
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from payments.models import IdempotencyRecord, OrderLine, PaymentOrder
from settings.db import session_scope

CT_BS_3 = "2 trang × 2.000 đ + 1 trang × 1.000 đ = 5.000 đ"


def _body(n: int, *fees: dict[str, Any], procedure: str = "1.001612") -> dict[str, Any]:
    return {
        **ORDER,
        "dossier_code": f"H01.22-261203-{n:04d}",
        "procedure_code": procedure,
        "fees": list(fees),
    }


def _counts() -> tuple[int, int]:
    with session_scope() as s:
        return (
            s.scalar(select(func.count()).select_from(PaymentOrder)) or 0,
            s.scalar(select(func.count()).select_from(IdempotencyRecord)) or 0,
        )


def _writer(client: TestClient, backend: str) -> None:
    """The PostgreSQL runs must go through the SQL fast path, not the ORM fallback."""
    intake = getattr(client.app.state, "order_intake", None)  # type: ignore[attr-defined]
    assert (intake is not None) == (backend == "postgres")


def _pricing(order_id: str) -> list[dict[str, Any] | None]:
    with session_scope() as s:
        lines = s.scalars(
            select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.position)
        )
        return [line.pricing for line in lines]


@pytest.mark.parametrize(
    ("fee", "amount", "quantity", "breakdown"),
    [
        ({"fee_code": "CT-BS", "quantity": 3}, 5_000, 3, CT_BS_3),
        (
            {"fee_code": "CT-BS", "quantity": 250},
            200_000,
            250,
            "2 trang × 2.000 đ + 248 trang × 1.000 đ, tối đa 200.000 đ/bản = 200.000 đ",
        ),
        (
            {"fee_code": "CT-BS", "quantity": 3, "copies": 2},
            10_000,
            3,
            "(2 trang × 2.000 đ + 1 trang × 1.000 đ) × 2 bản = 10.000 đ",
        ),
        (
            {"fee_code": "CT-BS", "originals": [3, 1]},
            7_000,
            4,
            "bản chính 1: 2 trang × 2.000 đ + 1 trang × 1.000 đ = 5.000 đ; "
            "bản chính 2: 1 trang × 2.000 đ = 2.000 đ; cộng 7.000 đ",
        ),
        (
            {"fee_code": "HKD-TL", "reduction": "TRUCTUYEN"},
            50_000,
            1,
            None,  # checked below: "giảm 50%" and its legal basis
        ),
    ],
    ids=["3-pages", "250-pages", "2-copies", "originals", "reduction"],
)
def test_lines_are_priced_by_the_legal_tariff(
    client: TestClient,
    auth: dict[str, str],
    backend: str,
    fee: dict[str, Any],
    amount: int,
    quantity: int,
    breakdown: str | None,
) -> None:
    _writer(client, backend)
    res = create(client, auth, f"t-{fee['fee_code']}-{amount}", _body(1, fee))
    assert res.status_code == 201, res.text
    order = res.json()
    assert order["amount"] == amount
    (line,) = order["lines"]
    assert line["amount"] == amount and line["quantity"] == quantity
    shown = line["breakdown"]["vi"]
    if breakdown is not None:
        assert shown == breakdown
        assert line["unit_price"] == 2_000  # the tariff's first price, as older readers expect
    else:
        assert "giảm 50%" in shown and "Nghị quyết 08/2023/NQ-HĐND" in shown
    assert line["breakdown"]["en"]
    (pricing,) = _pricing(order["id"])
    assert pricing is not None and pricing["amount"] == amount and pricing["tariff"]["v"] == 1
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["lines"] == order["lines"]


def test_a_value_banded_fee_is_priced_by_the_declared_value(
    client: TestClient, auth: dict[str, str], backend: str
) -> None:
    _writer(client, backend)
    fee = {"fee_code": "CC-QSDD", "declared_value": 1_500_000_000}
    res = create(client, auth, "value-1", _body(2, fee, procedure="2.002389"))
    assert res.status_code == 201, res.text
    assert res.json()["amount"] == 1_300_000  # 1.000.000 đ + 0,06% of the part above 1 tỷ
    assert "0,06%" in res.json()["lines"][0]["breakdown"]["vi"]
    edge = {"fee_code": "CC-QSDD", "declared_value": 50_000_000}  # a band's floor: upper band
    res = create(client, auth, "value-2", _body(3, edge, procedure="2.002389"))
    assert res.status_code == 201 and res.json()["amount"] == 100_000


@pytest.mark.parametrize(
    ("fee", "procedure", "code"),
    [
        ({"fee_code": "CT-BS", "quantity": 3, "copies": 0}, "1.001612", "validation_error"),
        ({"fee_code": "CT-BS", "quantity": 3, "copies": "2"}, "1.001612", "validation_error"),
        ({"fee_code": "CT-BS", "quantity": 3.5}, "1.001612", "validation_error"),
        ({"fee_code": "CT-BS", "originals": [3, 0]}, "1.001612", "validation_error"),
        ({"fee_code": "CC-QSDD", "declared_value": 1.5}, "2.002389", "validation_error"),
        ({"fee_code": "CC-QSDD"}, "2.002389", "tariff_input_invalid"),
        (
            {"fee_code": "CT-BS", "quantity": 3, "declared_value": 10},
            "1.001612",
            "tariff_input_invalid",
        ),
        ({"fee_code": "HKD-TL", "copies": 2}, "1.001612", "tariff_input_invalid"),
        ({"fee_code": "HKD-TL", "reduction": "KHONGCO"}, "1.001612", "tariff_input_invalid"),
        (
            {"fee_code": "CT-BS", "quantity": 5, "originals": [3, 1]},
            "1.001612",
            "tariff_input_invalid",
        ),
    ],
    ids=[
        "copies-0",
        "copies-string",
        "decimal-quantity",
        "original-0",
        "decimal-value",
        "value-missing",
        "value-for-pages",
        "copies-for-unit",
        "unknown-reduction",
        "quantity-disagrees",
    ],
)
def test_bad_tariff_input_is_refused_and_creates_nothing(
    client: TestClient,
    auth: dict[str, str],
    backend: str,
    fee: dict[str, Any],
    procedure: str,
    code: str,
) -> None:
    _writer(client, backend)
    res = create(client, auth, "bad-1", _body(4, fee, procedure=procedure))
    assert res.status_code == 422, res.text
    problem = res.json()
    if code == "tariff_input_invalid":
        assert problem["code"] == code
        assert problem["detail"]  # says what the tariff needs, in Vietnamese and English
    else:
        assert problem["code"] != "tariff_input_invalid"
    assert _counts() == (0, 0)


def test_same_key_same_body_with_copies_replays(
    client: TestClient, auth: dict[str, str], backend: str
) -> None:
    _writer(client, backend)
    body = _body(5, {"fee_code": "CT-BS", "quantity": 3, "copies": 2})
    first = create(client, auth, "idem-copies", body)
    again = create(client, auth, "idem-copies", body)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json() and first.json()["amount"] == 10_000
    other = create(client, auth, "idem-copies", _body(5, {"fee_code": "CT-BS", "quantity": 3}))
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert _counts() == (1, 1)


def _xmlsec1_verifies(body: bytes, tmp_path: Path) -> None:
    if not shutil.which("xmlsec1"):
        return
    path = tmp_path / "receipt.xml"
    path.write_bytes(body)
    done = subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--enabled-key-data",
            "x509",
            "--insecure",
            "--id-attr:Id",
            "DLBLai",
            "--id-attr:Id",
            "SignatureProperties",
            "--id-attr:Id",
            "Object",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _pdf_text(client: TestClient, url: str, tmp_path: Path) -> str | None:
    pdf = client.get(url.removeprefix("http://testserver"))
    assert pdf.status_code == 200
    if shutil.which("pdftotext") is None:
        return None
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf.content)
    out = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return " ".join(out.split())


def _pay(client: TestClient, auth: dict[str, str], order: dict[str, Any]) -> dict[str, Any]:
    assert sepay(client, order["amount"], order["reference"]).status_code == 200
    got: dict[str, Any] = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded" and got["receipt"] is not None, got
    return got


def test_the_signed_receipt_and_its_pdf_show_the_breakdown(
    client: TestClient, auth: dict[str, str], backend: str, tmp_path: Path
) -> None:
    _writer(client, backend)
    body = _body(6, {"fee_code": "CT-BS", "quantity": 3, "copies": 2})
    order = create(client, auth, "receipt-1", body).json()
    got = _pay(client, auth, order)
    xml = client.get(got["receipt"]["xml_url"].removeprefix("http://testserver")).content
    how = "(2 trang × 2.000 đ + 1 trang × 1.000 đ) × 2 bản = 10.000 đ"
    assert f"<CTTinh>{how}</CTTinh>".encode() in xml
    _xmlsec1_verifies(xml, tmp_path)
    text = _pdf_text(client, got["receipt"]["pdf_url"], tmp_path)
    if text is not None:
        assert f"Cách tính (How computed): {how}" in text
    page = client.get(f"/pay/{order['id']}")
    assert page.status_code == 200 and how in page.text
    assert "tính cho từng bản theo số trang của bản chính" in page.text  # the tariff in words


def test_an_order_priced_before_the_tariffs_reads_pays_and_verifies_unchanged(
    client: TestClient, auth: dict[str, str], backend: str, tmp_path: Path
) -> None:
    order = create(client, auth, "old-1", _body(7, {"fee_code": "CT-BS", "quantity": 3})).json()
    with session_scope() as s:  # as every line written before issue 14
        for line in s.scalars(select(OrderLine).where(OrderLine.order_id == order["id"])):
            line.pricing = None
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["lines"][0]["breakdown"] is None and got["amount"] == 5_000
    assert client.get(f"/pay/{order['id']}").status_code == 200
    paid = _pay(client, auth, got)
    xml = client.get(paid["receipt"]["xml_url"].removeprefix("http://testserver")).content
    assert b"CTTinh" not in xml and b"<SCTu>1</SCTu>" in xml
    _xmlsec1_verifies(xml, tmp_path)
    text = _pdf_text(client, paid["receipt"]["pdf_url"], tmp_path)
    if text is not None:
        assert "Cách tính" not in text
