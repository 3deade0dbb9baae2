"""`motcua demo` + `motcua serve` alone are a working install: the worker runs beside the web app.

This drives the real processes over HTTP on 127.0.0.1, with the embedded SQLite-file broker,
so it proves the background path (not the eager one the other tests use).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from infra.clock import subprocess_env
from infra.ports import free_port, wait_for_port

from api.demo import DEMO_API_KEY

MOTCUA = str(Path(sys.executable).with_name("motcua"))


@pytest.mark.slow
def test_demo_then_serve_takes_a_fee_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env.update({"MOTCUA_DATA_DIR": str(tmp_path / "data"), "MOTCUA_TASK_EAGER": "false"})
    port = free_port()
    env["MOTCUA_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    env = subprocess_env(env)  # a moved run's clock, for the CLI and the server alike
    demo = subprocess.run(
        [MOTCUA, "demo"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert demo.returncode == 0, demo.stderr
    assert DEMO_API_KEY in demo.stdout
    again = subprocess.run(
        [MOTCUA, "demo"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr  # safe to re-run

    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [MOTCUA, "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            auth = {"Authorization": f"Bearer {DEMO_API_KEY}"}
            order = http.post(
                "/api/v1/payment-orders",
                headers={**auth, "Idempotency-Key": "serve-1"},
                json={
                    "dossier_code": "H01-1",
                    "procedure_code": "1.001612",
                    "payer": {"name": "Trần Thị Bình"},
                    "fees": [{"fee_code": "CT-BS", "quantity": 2}],
                },
            ).json()
            assert order["amount"] == 4000
            sent = http.post(
                "/sandbox/bank/transfer",
                json={
                    "agency": "DEMO-HUYEN",
                    "amount": 4000,
                    "content": f"TRAN THI BINH {order['reference']} CK",
                },
            )
            assert sent.status_code == 200, sent.text
            deadline = time.monotonic() + 60
            got = {}
            while time.monotonic() < deadline:
                got = http.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
                if got.get("receipt"):
                    break
                time.sleep(0.3)
            assert got.get("status") == "succeeded", got
            assert got["receipt"]["number"] == 1, got
            xml = http.get(f"/api/v1/receipts/{got['receipt']['id']}/xml")
            assert xml.status_code == 200 and b"<SCTu>1</SCTu>" in xml.content
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert "celery" in (tmp_path / "serve.log").read_text(errors="replace").lower()
