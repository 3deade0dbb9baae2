"""``/metrics`` covers what operations watch (issue 7): orders, credits, exceptions, receipts,
receipt issue latency (histogram), queue depth, close status and the audit seal."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from infra.clock import today
from sqlalchemy import text

from api.app import create_app
from settings.audit_chain import seal
from settings.config import Settings
from settings.db import engine_for, session_scope
from tests.security.sec_flow import paid_order, sign_in


def _value(body: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", body, re.M)
    assert match is not None, f"{name} missing from /metrics"
    return float(match.group(1))


def test_metrics_cover_operations(demo: Settings) -> None:
    with TestClient(create_app(demo)) as client:
        paid_order(client, "m-1")
        paid_order(client, "m-2")
        stray = client.post(
            "/sandbox/bank/transfer",
            json={"agency": "DEMO-HUYEN", "amount": 12_345, "content": "khong co ma don"},
        )
        assert stray.status_code == 200
        assert sign_in(client, "ketoan") == 303
        me = client.get("/staff/me").json()
        yesterday = (today() - timedelta(days=1)).isoformat()  # a day that is over
        closed = client.post(
            "/api/v1/closes",
            json={"date": yesterday},
            headers={"X-CSRF-Token": me["csrf_token"]},
        )
        assert closed.status_code == 200, closed.text
        with session_scope(engine_for(demo.effective_database_url)) as session:
            sealed = seal(session).total
        body = client.get("/metrics").text

    assert _value(body, 'motcua_orders{status="succeeded"}') == 2
    assert _value(body, "motcua_receipts") == 2
    assert any(line.startswith("motcua_bank_credits{") for line in body.splitlines())
    assert any(line.startswith("motcua_exceptions{") for line in body.splitlines())
    for queue in ("bank_events", "receipts_to_issue", "callbacks"):
        assert _value(body, f'motcua_queue_depth{{queue="{queue}"}}') == 0
    # receipt issue latency: a real histogram over both receipts
    assert "# TYPE motcua_receipt_issue_seconds histogram" in body
    assert _value(body, 'motcua_receipt_issue_seconds_bucket{le="+Inf"}') == 2
    assert _value(body, "motcua_receipt_issue_seconds_count") == 2
    assert _value(body, 'motcua_receipt_issue_seconds_bucket{le="60.0"}') == 2  # eager: fast
    assert _value(body, "motcua_audit_sealed_records") == sealed > 0
    assert "motcua_close_breaks_open" in body
    with engine_for(demo.effective_database_url).connect() as conn:
        closes = conn.execute(text("SELECT count(*) FROM daily_closes")).scalar_one()
    assert closes >= 1
    assert re.search(r'^motcua_close_last_day\{agency="DEMO-HUYEN",status="\w+"\} ', body, re.M)
    assert re.search(r'^motcua_close_last_breaks\{agency="DEMO-HUYEN"\} ', body, re.M)
    assert "motcua_http_request_seconds_count" in body
