"""Hostile inputs on every parser (issue 7): always a 4xx problem (or a clean refusal from the
service), never a 5xx, and nothing changed anywhere in the database.

Parsers covered: the verify upload (XML and PDF), bank statements (camt.053, MT940, CSV) via
the service and the CLI, the SePay and Casso JSON webhooks, the order JSON, the staff sign-in
form, the catalogue CSV import, and the order search's query string.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from infra.clock import bank_time, local, now, today
from sec_flow import AUTH, ORDER, create_order, row_counts
from sqlalchemy import Engine
from typer.testing import CliRunner

from api.cli import app as cli
from api.demo import DEMO_SEPAY_KEY
from payments.agencies import agency_by_code
from payments.casso import sign
from payments.catalog import import_catalog
from payments.credentials import add_bank_feed
from payments.statement_import import import_statement
from settings.config import Settings
from settings.db import engine_for, session_scope
from settings.errors import ProblemError

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<Document><x>&lol4;</x></Document>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Document>&xxe;</Document>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Document SYSTEM "http://127.0.0.1:9/evil.dtd"><Document/>"""
INTERNAL_DTD = b"<?xml version='1.0'?><!DOCTYPE Document [<!ELEMENT Document ANY>]><Document/>"
INVALID_UTF8 = b"\xff\xfe\xc3\x28 \xa0\xa1 \xed\xa0\x80"
HOSTILE_XML = {
    "billion-laughs": BILLION_LAUGHS,
    "xxe": XXE,
    "external-dtd": EXTERNAL_DTD,
    "dtd": INTERNAL_DTD,
    "invalid-utf8": b"<?xml version='1.0' encoding='UTF-8'?><Document>"
    + INVALID_UTF8
    + b"</Document>",
}
HUGE_NUMBERS: dict[str, Any] = {
    "10**30": 10**30,
    "negative": -6000,
    "float": 6000.5,
    "bool": True,
    "bool-false": False,
    "nan-ish": "NaN",
}


@pytest.fixture
def engine(demo: Settings) -> Engine:
    return engine_for(demo.effective_database_url)


def _unchanged(engine: Engine, act: Callable[[], Any]) -> Any:
    before = row_counts(engine)
    result = act()
    assert row_counts(engine) == before, "a refused input changed the database"
    return result


def _refused(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(("application/problem+json", "text/html")), (
        response.headers["content-type"]
    )
    assert "root:" not in response.text  # no /etc/passwd echoed back


# ----------------------------------------------------------------------------- verify upload


def _not_genuine(response: httpx.Response) -> None:
    """The verify page may answer "this is not a genuine receipt" (200, valid false) for a
    file it can read safely, or refuse it (4xx); it never fails, and never says valid."""
    if response.status_code == 200:
        body = response.json()
        assert body["valid"] is False and body["problems"], body
        return
    _refused(response)


@pytest.mark.parametrize("name", sorted(HOSTILE_XML))
def test_verify_xml(client: TestClient, engine: Engine, name: str) -> None:
    files = {"file": ("bien-lai.xml", HOSTILE_XML[name], "application/xml")}
    response = _unchanged(engine, lambda: client.post("/api/v1/verify", files=files))
    if name == "invalid-utf8":
        _not_genuine(response)
    else:  # entities and DTDs are refused outright, before any parsing
        _refused(response)
        assert response.json()["code"] == "unsafe_xml"


@pytest.mark.parametrize(
    "payload",
    [
        b"%PDF-1.7\n" + b"\x00" * 2000,
        b"%PDF-1.4\n1 0 obj << /Length 999999999 >> stream\n" + INVALID_UTF8 + b"\nendstream",
        b"%PDF-1.4\n" + b"1 0 obj [" * 5000 + b"\n%%EOF",
        b"not a pdf at all",
    ],
    ids=["zeros", "lying-length", "deep-nesting", "not-pdf"],
)
def test_verify_pdf(client: TestClient, engine: Engine, payload: bytes) -> None:
    files = {"file": ("bien-lai.pdf", payload, "application/pdf")}
    _not_genuine(_unchanged(engine, lambda: client.post("/api/v1/verify", files=files)))


def test_verify_beyond_upload_limit(client: TestClient, engine: Engine) -> None:
    big = b"<BLai>" + b" " * 5_100_000 + b"</BLai>"
    files = {"file": ("bien-lai.xml", big, "application/xml")}
    response = _unchanged(engine, lambda: client.post("/api/v1/verify", files=files))
    assert response.status_code == 413


# ----------------------------------------------------------------------------- statements


# Hostile statements dated yesterday (local), so only their hostility can be what is refused.
_BOOKED = local(today() - timedelta(days=1), 8, 15, 2)
_STAMP = bank_time(_BOOKED).encode()  # YYYY-MM-DD HH:MM:SS, as the CSV writes it
_YYMMDD = _BOOKED.strftime("%y%m%d").encode()  # as MT940 writes it
STATEMENTS: dict[str, tuple[str, bytes]] = {
    **{f"camt053-{k}": ("camt053", v) for k, v in HOSTILE_XML.items()},
    "mt940-invalid-utf8": ("mt940", b":20:X\r\n:25:ICBVVNVX/113000012345\r\n" + INVALID_UTF8),
    "mt940-huge-amount": (
        "mt940",
        b":20:X\n:25:ICBVVNVX/113000012345\n:28C:1/1\n:60F:C" + _YYMMDD + b"VND0,\n"
        b":61:" + _YYMMDD + _YYMMDD[2:] + b"C" + b"9" * 40 + b",NTRFNONREF//X1\n:86:A\n"
        b":62F:C" + _YYMMDD + b"VND0,\n",
    ),
    "csv-invalid-utf8": ("csv", b"account_number,booked_at,bank_reference,amount\n" + INVALID_UTF8),
    "csv-huge-amount": (
        "csv",
        b"account_number,booked_at,bank_reference,amount,direction,memo\n"
        b"113000012345," + _STAMP + b",R1," + b"9" * 40 + b",in,x\n",
    ),
    "csv-negative-credit": (
        "csv",
        b"account_number,booked_at,bank_reference,amount,direction,memo\n"
        b"113000012345," + _STAMP + b",R1,-6000,in,x\n",
    ),
    "csv-sql-meta": (
        "csv",
        b"account_number,booked_at,bank_reference,amount,direction,memo\n"
        b"113000012345';DROP TABLE bank_events;--," + _STAMP + b",R1,6000,in,x\n",
    ),
}


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_statement_import_service(demo: Settings, engine: Engine, name: str) -> None:
    fmt, data = STATEMENTS[name]

    def act() -> None:
        with pytest.raises(ProblemError) as caught, session_scope() as session:
            import_statement(session, agency_by_code(session, "DEMO-HUYEN"), data, fmt)
        assert 400 <= caught.value.status < 500

    _unchanged(engine, act)


@pytest.mark.parametrize("name", ["camt053-billion-laughs", "camt053-xxe", "csv-huge-amount"])
def test_statement_import_cli(demo: Settings, engine: Engine, tmp_path: Path, name: str) -> None:
    fmt, data = STATEMENTS[name]
    path = tmp_path / "statement"
    path.write_bytes(data)
    args = ["bank", "import", str(path), "--agency", "DEMO-HUYEN", "--format", fmt]
    result = _unchanged(engine, lambda: CliRunner().invoke(cli, args))
    assert isinstance(result.exception, ProblemError), result.output  # main() → exit 1
    assert 400 <= result.exception.status < 500


# ----------------------------------------------------------------------------- webhooks


def _sepay(amount: Any, reference: str = "FT26325000001") -> dict[str, Any]:
    return {
        "id": 990_001,
        "gateway": "VietinBank",
        "transactionDate": bank_time(now() - timedelta(minutes=2)),
        "accountNumber": "113000012345",
        "code": None,
        "content": "MC7KD4WQ2RXHG",
        "transferType": "in",
        "transferAmount": amount,
        "accumulated": 5_000_000,
        "subAccount": None,
        "referenceCode": reference,
        "description": "x",
    }


SEPAY_KEY = {"Authorization": f"Apikey {DEMO_SEPAY_KEY}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "amount",
    list(HUGE_NUMBERS.values()),
    ids=list(HUGE_NUMBERS),
)
def test_sepay_amounts(client: TestClient, engine: Engine, amount: Any) -> None:
    body = json.dumps(_sepay(amount)).encode()
    _refused(
        _unchanged(
            engine,
            lambda: client.post("/api/v1/bank-feeds/sepay", content=body, headers=SEPAY_KEY),
        )
    )


@pytest.mark.parametrize(
    "body",
    [
        INVALID_UTF8,
        b'{"id": 1, "transferAmount": 6000' + INVALID_UTF8 + b"}",
        b"[" * 10_000 + b"]" * 10_000,
        b'{"id": 1, "id": 2}',
        b"",
    ],
    ids=["invalid-utf8", "invalid-utf8-in-json", "deep-nesting", "duplicate-key", "empty"],
)
def test_sepay_malformed(client: TestClient, engine: Engine, body: bytes) -> None:
    _refused(
        _unchanged(
            engine,
            lambda: client.post("/api/v1/bank-feeds/sepay", content=body, headers=SEPAY_KEY),
        )
    )


def test_webhook_beyond_body_limit(client: TestClient, engine: Engine, demo: Settings) -> None:
    body = b'{"pad": "' + b"x" * (demo.max_body_bytes + 10) + b'"}'
    for path, headers in (
        ("/api/v1/bank-feeds/sepay", SEPAY_KEY),
        ("/api/v1/bank-feeds/casso", {"Content-Type": "application/json"}),
        ("/api/v1/payment-orders", {**AUTH, "Idempotency-Key": "big-1"}),
        ("/staff/login", {"Content-Type": "application/x-www-form-urlencoded"}),
    ):
        response = _unchanged(
            engine, lambda p=path, h=headers: client.post(p, content=body, headers=h)
        )
        assert response.status_code == 413, (path, response.status_code)


@pytest.mark.parametrize("amount", list(HUGE_NUMBERS.values()), ids=list(HUGE_NUMBERS))
def test_casso_amounts(client: TestClient, engine: Engine, demo: Settings, amount: Any) -> None:
    with session_scope() as s:
        _, secret = add_bank_feed(s, agency_by_code(s, "DEMO-HUYEN"), "casso")
    body = {
        "error": 0,
        "data": {
            "id": 5501,
            "reference": "FT263200005501",
            "description": "MC7KD4WQ2RXHG",
            "amount": amount,
            "runningBalance": 5_000_000,
            "transactionDateTime": bank_time(now() - timedelta(minutes=2)),
            "accountNumber": "113000012345",
            "bankName": "VietinBank",
            "bankAbbreviation": "ICB",
            "virtualAccountNumber": "",
            "virtualAccountName": "",
            "counterAccountName": "X",
            "counterAccountNumber": "1",
            "counterAccountBankId": "970436",
            "counterAccountBankName": "VCB",
        },
    }
    raw = json.dumps(body).encode()
    headers = {
        "X-Casso-Signature": sign(body, secret, int(now().timestamp() * 1000)),
        "Content-Type": "application/json",
    }
    # A negative amount is a genuine debit notification (money going out): accepted and
    # journaled as outgoing, never as a credit. Every other value here must be refused.
    if amount == -6000:
        return
    before = row_counts(engine)
    response = client.post("/api/v1/bank-feeds/casso", content=raw, headers=headers)
    _refused(response)
    assert row_counts(engine) == before


# ----------------------------------------------------------------------------- orders


@pytest.mark.parametrize("quantity", list(HUGE_NUMBERS.values()), ids=list(HUGE_NUMBERS))
def test_order_quantities(client: TestClient, engine: Engine, quantity: Any) -> None:
    body = {**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": quantity}]}
    headers = {**AUTH, "Idempotency-Key": f"hq-{quantity!r}"[:60].replace(" ", "")}
    headers["Idempotency-Key"] = "".join(c for c in headers["Idempotency-Key"] if c.isalnum())
    _refused(
        _unchanged(
            engine, lambda: client.post("/api/v1/payment-orders", json=body, headers=headers)
        )
    )


@pytest.mark.parametrize("amount", list(HUGE_NUMBERS.values()), ids=list(HUGE_NUMBERS))
def test_order_declared_amounts(client: TestClient, engine: Engine, amount: Any) -> None:
    """An ``amount`` on a fee line (for fees priced per dossier) must be a sane integer too."""
    body = {**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": 1, "amount": amount}]}
    key = "ha" + "".join(c for c in repr(amount) if c.isalnum())[:40]
    response = _unchanged(
        engine,
        lambda: client.post(
            "/api/v1/payment-orders", json=body, headers={**AUTH, "Idempotency-Key": key}
        ),
    )
    _refused(response)


@pytest.mark.parametrize(
    "body",
    [INVALID_UTF8, b'{"dossier_code": "' + INVALID_UTF8 + b'"}', b"{" * 5000, b"null"],
    ids=["invalid-utf8", "invalid-utf8-in-string", "deep", "null"],
)
def test_order_malformed(client: TestClient, engine: Engine, body: bytes) -> None:
    headers = {**AUTH, "Idempotency-Key": "malformed-1", "Content-Type": "application/json"}
    _refused(
        _unchanged(
            engine, lambda: client.post("/api/v1/payment-orders", content=body, headers=headers)
        )
    )


def test_sql_metacharacters_in_search(client: TestClient, engine: Engine) -> None:
    create_order(client, "search-1")
    for value in ("' OR 1=1 --", '" OR ""="', "%", "_", "'; DROP TABLE payment_orders; --"):
        response = _unchanged(
            engine,
            lambda v=value: client.get(
                "/api/v1/payment-orders", params={"dossier_code": v}, headers=AUTH
            ),
        )
        assert response.status_code < 500, response.text
        if response.status_code == 200:
            assert response.json()["data"] == [], value  # matched nothing: no injection


# ----------------------------------------------------------------------------- sign-in form


@pytest.mark.parametrize(
    "body",
    [
        b"username=" + INVALID_UTF8 + b"&password=x",
        b"username=' OR 1=1 --&password=' OR '1'='1",
        b"username=" + b"a" * 5000 + b"&password=x",
        b"username=thuquy&password=" + b"p" * 5000,
        b"\x00\x01\x02",
    ],
    ids=["invalid-utf8", "sql-meta", "long-username", "long-password", "binary"],
)
def test_sign_in_form(client: TestClient, engine: Engine, body: bytes) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    before = row_counts(engine)
    response = client.post("/staff/login", content=body, headers=headers, follow_redirects=False)
    _refused(response)
    after = row_counts(engine)
    # a well-formed failed attempt is audited (one staff_sign_ins row); nothing else changes
    assert after.pop("staff_sign_ins") - before.pop("staff_sign_ins") in (0, 1)
    assert after == before
    assert "set-cookie" not in response.headers


# ----------------------------------------------------------------------------- catalogue CSV

CATALOG_HEADER = (
    b"procedure_code,procedure_name,field,fee_code,fee_kind,fee_name,amount,unit,max_amount,"
    b"retention_percent,legal_basis\n"
)
CATALOGS = {
    "invalid-utf8": CATALOG_HEADER + INVALID_UTF8,
    "huge": CATALOG_HEADER + b"1.1,A,B,X1,phi,N," + b"9" * 40 + b",trang,,0,TT\n",
    "negative": CATALOG_HEADER + b"1.1,A,B,X1,phi,N,-2000,trang,,0,TT\n",
    "float": CATALOG_HEADER + b"1.1,A,B,X1,phi,N,2000.5,trang,,0,TT\n",
    "retention": CATALOG_HEADER + b"1.1,A,B,X1,phi,N,2000,trang,,1000,TT\n",
    "empty": b"",
    "no-header": b"1.1,A,B,X1,phi,N,2000,trang,,0,TT\n",
}


@pytest.mark.parametrize("name", sorted(CATALOGS))
def test_catalog_import(demo: Settings, engine: Engine, name: str) -> None:
    def act() -> None:
        with pytest.raises(ProblemError) as caught, session_scope() as session:
            import_catalog(
                session,
                agency_by_code(session, "DEMO-HUYEN"),
                CATALOGS[name],
                effective_from=today(),
            )
        assert 400 <= caught.value.status < 500

    _unchanged(engine, act)
