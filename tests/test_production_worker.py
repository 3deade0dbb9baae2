"""Production profile: PostgreSQL + Redis broker + a separate `motcua worker` process.

The certificate here is a test CA's, *not* marked development, because production refuses
development certificates (that refusal is tested too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from infra import PostgresServer, RedisServer
from infra.clock import bank_time, now, subprocess_env, today
from infra.pki import org_certificate

from api.app import create_app
from api.demo import DEMO_AGENCY
from payments.agencies import add_agency
from payments.catalog import import_catalog
from payments.credentials import add_bank_feed, add_client
from settings.config import Profile, Settings, get_settings
from settings.db import session_scope
from settings.errors import UnsafeProductionConfig
from settings.migrate import upgrade
from settings.worker import celery_app, configure
from signing.certs import write_pkcs12

MOTCUA = str(Path(sys.executable).with_name("motcua"))
CATALOG = (
    Path(__file__).resolve().parents[1] / "payments" / "data" / "demo_catalog.csv"
).read_bytes()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_worker_processes_webhooks_through_redis(
    pg_server: PostgresServer,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db_url = pg_server.create_database("prodworker")
    upgrade(db_url)
    env = {
        "MOTCUA_PROFILE": "production",
        "MOTCUA_DATABASE_URL": db_url,
        "MOTCUA_BROKER_URL": redis_server.url,
        "MOTCUA_SECRET_KEY": "p" * 48,
        "MOTCUA_DATA_DIR": str(tmp_path / "data"),
        "MOTCUA_PUBLIC_BASE_URL": "https://thuphi.example.vn",
        "MOTCUA_TASK_EAGER": "false",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.profile is Profile.PRODUCTION
    configure(celery_app, settings)

    key, cert, ca = org_certificate(DEMO_AGENCY.tax_code, DEMO_AGENCY.name)
    p12 = tmp_path / "org.p12"
    write_pkcs12(p12, key, cert, (ca,), None)
    with session_scope() as s:
        agency = add_agency(s, DEMO_AGENCY)
        agency.signing_key_ref = f"pkcs12:{p12}"
        import_catalog(s, agency, CATALOG, effective_from=today() - timedelta(days=400))
        api_key = add_client(s, agency, "Một cửa", None, allow_loopback=False).api_key
        _, sepay_key = add_bank_feed(s, agency, "sepay")

    worker_env = {**{k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}, **env}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [MOTCUA, "worker", "--concurrency", "1"],
        env=subprocess_env(worker_env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with TestClient(create_app(settings)) as client:
            assert (
                client.post("/sandbox/bank/transfer", json={}).status_code == 404
            )  # never in production
            auth = {"Authorization": f"Bearer {api_key}"}
            order = client.post(
                "/api/v1/payment-orders",
                headers={**auth, "Idempotency-Key": "p-1"},
                json={
                    "dossier_code": "P-1",
                    "procedure_code": "1.001612",
                    "payer": {"name": "Lê Văn Cường"},
                    "fees": [{"fee_code": "CT-BS", "quantity": 1}],
                },
            ).json()
            body = {
                "id": 77,
                "gateway": "VietinBank",
                "transactionDate": bank_time(now() - timedelta(minutes=2)),
                "accountNumber": DEMO_AGENCY.bank_account,
                "content": f"CK {order['reference']}",
                "transferType": "in",
                "transferAmount": order["amount"],
                "referenceCode": "FT1",
            }
            res = client.post(
                "/api/v1/bank-feeds/sepay",
                json=body,
                headers={"Authorization": f"Apikey {sepay_key}"},
            )
            assert res.status_code == 200
            deadline = time.monotonic() + 60
            got = {}
            while time.monotonic() < deadline:
                got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
                if got.get("receipt"):
                    break
                time.sleep(0.3)
            assert got.get("receipt", {}) and got["receipt"]["number"] == 1, got
            assert got["receipt"]["verify_url"].startswith("https://thuphi.example.vn/r/")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
        get_settings.cache_clear()
    assert "payments.process_bank_event" in (tmp_path / "worker.log").read_text(errors="replace")


@pytest.mark.postgres
def test_production_refuses_an_agency_with_a_development_certificate(
    pg_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.keysetup import dev_init

    db_url = pg_server.create_database("prod_devcert")
    upgrade(db_url)
    monkeypatch.setenv("MOTCUA_DATABASE_URL", db_url)
    monkeypatch.setenv("MOTCUA_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    embedded = get_settings()
    with session_scope() as s:
        add_agency(s, DEMO_AGENCY)
    dev_init(embedded, DEMO_AGENCY.code)
    prod = Settings(
        _env_file=None,
        profile=Profile.PRODUCTION,
        database_url=db_url,  # type: ignore[call-arg]
        broker_url="redis://127.0.0.1:1/0",
        secret_key="s" * 40,
        task_eager=False,
    )
    with (
        pytest.raises(UnsafeProductionConfig, match="development certificate"),
        TestClient(create_app(prod)),
    ):
        pass
    get_settings.cache_clear()
