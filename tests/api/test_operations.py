"""Operations: readiness, metrics, request ids, security headers, and no personal data or
secrets in the logs."""

from __future__ import annotations

import io
import logging

from api_flow import ORDER, create, sepay
from fastapi.testclient import TestClient

from api.demo import DEMO_API_KEY, DEMO_SEPAY_KEY
from settings.logging import JsonFormatter, MaskingFilter, mask_text


def test_readyz_metrics_and_headers(client: TestClient, auth: dict[str, str]) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}
    order = create(client, auth, "ops-1").json()
    sepay(client, 5000, order["reference"])
    res = client.get("/metrics")
    assert res.status_code == 200
    body = res.text
    assert 'motcua_orders{status="succeeded"} 1.0' in body
    assert "motcua_receipts 1.0" in body
    assert 'motcua_queue_depth{queue="bank_events"} 0.0' in body
    assert "motcua_http_request_seconds_count" in body
    page = client.get(
        order["pay_url"].removeprefix("http://testserver"),
        headers={"X-Request-ID": "req-abcdef123"},
    )
    assert page.headers["X-Request-ID"] == "req-abcdef123"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32


def test_logs_never_carry_id_numbers_phones_or_keys(
    client: TestClient, auth: dict[str, str]
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        order = create(client, auth, "ops-2").json()
        sepay(client, 5000, f"{order['reference']} CCCD 001090012345 SDT 0912345678")
        logging.getLogger("test").warning(
            "payer 001090012345 phone 0912345678 key Bearer %s sepay Apikey %s mail an@example.vn",
            DEMO_API_KEY,
            DEMO_SEPAY_KEY,
        )
    finally:
        root.removeHandler(handler)
    captured = stream.getvalue()
    assert captured, "nothing was logged"
    for secret in (
        "001090012345",
        "0912345678",
        DEMO_API_KEY,
        DEMO_SEPAY_KEY,
        "an@example.vn",
        ORDER["payer"]["id_number"],
    ):
        assert secret not in captured, secret


def test_mask_text_keeps_what_is_useful() -> None:
    assert mask_text("CCCD 001090012345") == "CCCD ********2345"
    assert mask_text("order 6000 VND") == "order 6000 VND"
    assert "[redacted]" in mask_text("Authorization: Bearer abcdefghijkl")
