"""Casso webhook, statement import and signed callbacks to the one-stop system, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from api_flow import ORDER, count, create, sepay
from fastapi.testclient import TestClient
from infra.callback_receiver import CallbackReceiver
from infra.clock import bank_time, subprocess_env
from sqlalchemy import select

from payments import callbacks
from payments.agencies import agency_by_code
from payments.casso import sign
from payments.credentials import add_bank_feed
from payments.models import ApiClient, BankCredit, BankEvent, BankStatement
from payments.statement_import import import_statement
from settings.config import Settings
from settings.db import session_factory, session_scope, utcnow

SAMPLES = Path(__file__).resolve().parents[1] / "payments" / "samples"
MOTCUA = str(Path(sys.executable).with_name("motcua"))


def casso_body(order_ref: str, amount: int, tx_id: int) -> dict[str, object]:
    return {
        "error": 0,
        "data": {
            "id": tx_id,
            "reference": f"FT2632{tx_id:08d}",
            "description": f"CT DEN:0241 {order_ref} nop phi",
            "amount": amount,
            "runningBalance": 5_000_000,
            "transactionDateTime": bank_time(),
            "accountNumber": "113000012345",
            "bankName": "VietinBank",
            "bankAbbreviation": "ICB",
            "virtualAccountNumber": "",
            "virtualAccountName": "",
            "counterAccountName": "NGUYEN VAN AN",
            "counterAccountNumber": "0011004",
            "counterAccountBankId": "970436",
            "counterAccountBankName": "VCB",
        },
    }


def test_casso_signed_webhook_pays_the_order(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    with session_scope() as s:
        _, secret = add_bank_feed(s, agency_by_code(s, "DEMO-HUYEN"), "casso")
    order = create(client, auth, "casso-1").json()
    body = casso_body(order["reference"], 5000, 7001)
    raw = json.dumps(body).encode()
    t_ms = int(time.time() * 1000)
    res = client.post(
        "/api/v1/bank-feeds/casso",
        content=raw,
        headers={
            "X-Casso-Signature": sign(body, "wrong-secret", t_ms),
            "Content-Type": "application/json",
        },
    )
    assert res.status_code == 401
    assert count(BankEvent) == 0
    for _ in range(2):
        res = client.post(
            "/api/v1/bank-feeds/casso",
            content=raw,
            headers={
                "X-Casso-Signature": sign(body, secret, t_ms),
                "Content-Type": "application/json",
            },
        )
        assert res.status_code == 200, res.text
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded" and got["receipt"]["number"] == 1
    assert count(BankEvent) == 1


def test_statement_import_is_idempotent_and_merges_with_webhooks(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    data = (SAMPLES / "statement_vietinbank.csv").read_bytes()
    # The webhook already reported the FT26324918273645 credit: the statement must not add it again.
    sepay(client, 100000, "NGUYEN VAN AN chuyen tien", ref="FT26324918273645")
    with session_scope() as s:
        agency = agency_by_code(s, "DEMO-HUYEN")
        first = import_statement(s, agency, data, "csv", now=utcnow())
    assert not first.already_imported and first.lines == 5 and first.new_events == 5
    with session_scope() as s:
        again = import_statement(s, agency_by_code(s, "DEMO-HUYEN"), data, "csv", now=utcnow())
    assert again.already_imported
    with session_scope() as s:
        credits = list(s.scalars(select(BankCredit)))
        refs = sorted(c.bank_reference for c in credits)
    assert refs == sorted(
        ["976T2611200417", "976T2611200932", "976T2611201388", "FT26324918273645"]
    )
    assert count(BankStatement) == 1


def test_statement_for_another_account_or_future_is_refused(
    client: TestClient, demo: Settings
) -> None:
    data = (
        (SAMPLES / "statement_vietinbank.csv")
        .read_bytes()
        .replace(b"113000012345", b"999000012345")
    )
    with session_scope() as s:
        agency = agency_by_code(s, "DEMO-HUYEN")
        try:
            import_statement(s, agency, data, "csv")
        except Exception as exc:
            assert getattr(exc, "code", "") == "statement_wrong_account"
        else:
            raise AssertionError("statement for another account accepted")
    assert count(BankStatement) == 0 and count(BankEvent) == 0


def test_bank_import_cli(demo: Settings, tmp_path: Path) -> None:

    env = subprocess_env()
    path = SAMPLES / "camt053_vietinbank.xml"
    done = subprocess.run(
        [MOTCUA, "bank", "import", str(path), "--agency", "DEMO-HUYEN", "--format", "camt053"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "5 lines" in done.stdout
    again = subprocess.run(
        [MOTCUA, "bank", "import", str(path), "--agency", "DEMO-HUYEN", "--format", "camt053"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0 and "nothing added" in again.stdout
    bad = subprocess.run(
        [
            MOTCUA,
            "bank",
            "import",
            str(SAMPLES / "camt053_xxe.xml"),
            "--agency",
            "DEMO-HUYEN",
            "--format",
            "camt053",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode != 0 and bad.stderr.startswith("motcua:")


def test_one_stop_system_receives_signed_callbacks(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    with CallbackReceiver() as receiver:
        with session_scope() as s:
            api_client = s.scalar(select(ApiClient))
            assert api_client is not None
            secret = api_client.callback_secret
        order = create(client, auth, "cb-1", {**ORDER, "callback_url": receiver.url}).json()
        sepay(client, 5000, order["reference"])
        report = callbacks.deliver_due(
            session_factory(), now=utcnow(), http=__import__("httpx").Client(), allow_loopback=True
        )
        assert report.delivered == 2
        got = receiver.wait_for(2)
        events = [json.loads(r.body)["event"] for r in got]
        assert events == ["payment_order.succeeded", "receipt.issued"]
        for r in got:
            callbacks.verify(r.headers["motcua-signature"], r.body, secret)
        receipt_event = json.loads(got[1].body)
        assert (
            receipt_event["data"]["number"] == 1
            and receipt_event["data"]["order_id"] == order["id"]
        )
        log = client.get("/api/v1/callbacks", headers=auth).json()
        assert {d["state"] for d in log["data"]} == {"delivered"}
        replayed = client.post(
            f"/api/v1/callbacks/{log['data'][0]['id']}/replay", json={"actor": "Hà"}, headers=auth
        )
        assert replayed.status_code == 200, replayed.text
