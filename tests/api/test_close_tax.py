"""The close against the tax-authority sandbox (a real separate process): clean day → exit 0 with
its 01/TH-BLĐT accepted; a stray credit → exit 1 naming it; an outage → late, then sent."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from api_flow import create, sepay
from fastapi.testclient import TestClient
from infra.cli import run_motcua
from infra.clock import today
from infra.ports import free_port
from infra.tax_sandbox import tax_sandbox_process
from staff_flow import sign_in

from settings.config import Settings


def TODAY() -> str:
    return today().isoformat()


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with tax_sandbox_process(tmp_path / "tax") as url:
        monkeypatch.setenv("MOTCUA_TAX_AUTHORITY_URL", url)
        yield url


def run_close() -> subprocess.CompletedProcess[str]:
    return run_motcua("close", "--agency", "DEMO-HUYEN", "--date", TODAY())


def held(sandbox: str, tax_code: str = "0108424452") -> dict[str, object]:
    res = httpx.get(f"{sandbox}/agencies/{tax_code}/days/{TODAY()}", timeout=10)
    res.raise_for_status()
    return dict(res.json())


def test_clean_day_closes_with_exit_0_and_reports_its_summary(
    client: TestClient, auth: dict[str, str], demo: Settings, sandbox: str
) -> None:
    order = create(client, auth, "tax-1").json()
    sepay(client, 5000, order["reference"])
    done = run_close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no breaks" in done.stdout and "#0 accepted" in done.stdout
    assert "State Treasury" in done.stdout
    assert held(sandbox)  # the sandbox holds the day's summary for the agency

    # A later payment the same day: the next close sends a numbered supplement.
    order2 = create(
        client, auth, "tax-2", {**__import__("api_flow").ORDER, "dossier_code": "H2"}
    ).json()
    sepay(client, 5000, order2["reference"])
    again = run_close()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "#1 accepted" in again.stdout


def test_stray_credit_is_a_named_break_and_exit_1(
    client: TestClient, auth: dict[str, str], demo: Settings, sandbox: str
) -> None:
    sepay(client, 77000, "CHUYEN TIEN UNG HO", ref="FT99STRAY")
    done = run_close()
    assert done.returncode == 1
    assert "credit_without_payment" in done.stdout and "FT99STRAY" in done.stdout


def test_authority_down_makes_the_summary_late_not_missing(
    client: TestClient,
    auth: dict[str, str],
    demo: Settings,
    monkeypatch: pytest.MonkeyPatch,
    sandbox: str,
) -> None:
    order = create(client, auth, "tax-down").json()
    sepay(client, 5000, order["reference"])
    monkeypatch.setenv(
        "MOTCUA_TAX_AUTHORITY_URL", f"http://127.0.0.1:{free_port()}"
    )  # nobody there
    down = run_close()
    assert down.returncode == 1
    assert "summary_late" in down.stdout and "#0 queued" in down.stdout
    monkeypatch.setenv("MOTCUA_TAX_AUTHORITY_URL", sandbox)
    back = run_close()
    assert back.returncode == 0, back.stdout + back.stderr
    assert "#0 accepted" in back.stdout


def test_close_and_revenue_over_http(
    client: TestClient, auth: dict[str, str], demo: Settings, sandbox: str, tmp_path: Path
) -> None:
    client.app.state.settings.tax_authority_url = sandbox  # type: ignore[attr-defined]
    order = create(client, auth, "http-close").json()
    client.post(
        f"/api/v1/payment-orders/{order['id']}/cash",
        json={"amount": 5000, "clerk": "Lan"},
        headers=auth,
    )
    sepay(client, 50000, "tien chuyen nham", ref="FT-STRAY-HTTP")
    ha = sign_in(client, "ketoan")
    res = client.post("/api/v1/closes", json={"date": TODAY()}, headers=ha)
    assert res.status_code == 200, res.text
    close = res.json()
    assert close["status"] == "breaks" and close["version"] == 1 and close["signed"]
    assert close["actor"] == "ketoan"  # the signed-in accountant, not a body field
    assert "+07" in close["window"]["described"] and "UTC" in close["window"]["described"]
    [stray] = [b for b in close["breaks"] if b["kind"] == "credit_without_payment"]
    req = client.post(
        f"/api/v1/breaks/{stray['id']}/corrections",
        headers=ha,
        json={"action": "refund_instruction", "reason": "Hoàn trả người chuyển nhầm"},
    ).json()
    assert req["state"] == "requested" and req["moves_money"] is True
    assert req["requested_by"] == "ketoan"
    same = client.post(f"/api/v1/corrections/{req['id']}/approve", headers=ha)
    assert same.status_code == 409 and same.json()["code"] == "second_person_required"
    minh = sign_in(client, "ketoan2")
    ok = client.post(f"/api/v1/corrections/{req['id']}/approve", headers=minh)
    assert ok.status_code == 200 and ok.json()["state"] == "applied"
    assert ok.json()["approved_by"] == "ketoan2"
    again = client.post("/api/v1/closes", json={"date": TODAY()}, headers=minh).json()
    assert again["version"] == 2, again
    assert again["status"] == "clean", again["breaks"]
    got = client.get(f"/api/v1/closes/{TODAY()}").json()
    assert got["version"] == 2
    doc = client.get(f"/api/v1/closes/{TODAY()}/document")
    assert doc.status_code == 200 and b"Signature" in doc.content

    report = client.get("/api/v1/reports/revenue", params={"from": TODAY()}).json()
    assert report["treasury"]["collected"] == 5000
    assert report["by_clerk"][0]["key"] == "Lan"
    csv_ = client.get("/api/v1/reports/revenue", params={"from": TODAY(), "format": "csv"})
    assert csv_.status_code == 200 and "treasury" in csv_.text
    assert "filename*=UTF-8''B%C3%A1o%20c%C3%A1o" in csv_.headers["content-disposition"]
    xlsx = client.get("/api/v1/reports/revenue", params={"from": TODAY(), "format": "xlsx"})
    assert xlsx.content[:2] == b"PK"
    pdf = client.get("/api/v1/reports/revenue", params={"from": TODAY(), "format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    path = tmp_path / "rev.pdf"
    path.write_bytes(pdf.content)
    import shutil

    if shutil.which("pdfsig"):
        out = subprocess.run(
            ["pdfsig", str(path)], capture_output=True, text=True, check=False
        ).stdout
        assert "Signature is Valid" in out
    future = client.post(
        "/api/v1/closes", json={"date": (today() + timedelta(days=1)).isoformat()}, headers=minh
    )
    assert future.status_code == 422 and future.json()["code"] == "day_in_future"


def test_error_notice_and_registration_reach_the_sandbox(
    client: TestClient, auth: dict[str, str], demo: Settings, sandbox: str
) -> None:
    order = create(client, auth, "notice-1").json()
    sepay(client, 5000, order["reference"])
    receipt = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()["receipt"]
    notice = client.post(
        "/api/v1/receipts/error-notices",
        headers=auth,
        json={
            "receipt_ids": [receipt["id"]],
            "reason": "Sai địa chỉ người nộp",
            "actor": "Lan",
            "tax_authority_name": "Thuế cơ sở 1 tỉnh Mẫu Sơn",
        },
    )
    assert notice.status_code == 201, notice.text
    sent = run_motcua("tax", "send-notices")
    assert sent.returncode == 0, sent.stderr
    assert "'acknowledged': 1" in sent.stdout, sent.stdout
    status = client.get(
        f"/api/v1/receipts/error-notices/{notice.json()['id']}", headers=auth
    ).json()
    assert status["status"] == "acknowledged"
    reg = run_motcua(
        "tax",
        "register",
        "--agency",
        "DEMO-HUYEN",
        "--tax-authority-name",
        "Thuế cơ sở 1 tỉnh Mẫu Sơn",
    )
    assert reg.returncode == 0, reg.stdout + reg.stderr
    assert "accepted" in reg.stdout
