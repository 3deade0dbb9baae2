"""The PostgreSQL hot path for order creation (payments.order_intake): group commit must not
change a single answer. Concurrent requests are sent through the ASGI app with its lifespan,
so they really share batches on the pool."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from api_flow import ORDER
from sqlalchemy import func, select

import payments.reference as transfer_reference
from api.app import create_app
from api.demo import DEMO_API_KEY
from payments.catalog import fee_item_on, procedure_by_code, reprice_fee
from payments.models import Agency, IdempotencyRecord, OrderLine, PaymentOrder
from payments.orders import local_date
from settings.config import Settings
from settings.db import session_scope, utcnow

pytestmark = pytest.mark.postgres
AUTH = {"Authorization": f"Bearer {DEMO_API_KEY}"}


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
def pg_app(demo: Settings) -> Iterator[Any]:
    app = create_app(demo)
    assert app.state.order_intake is not None, "PostgreSQL must take the SQL path"
    yield app


def _post_many(app: Any, requests: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await asyncio.gather(
                    *(
                        c.post(
                            "/api/v1/payment-orders",
                            json=body,
                            headers={**AUTH, "Idempotency-Key": key},
                        )
                        for key, body in requests
                    )
                )

    return asyncio.run(run())


def _counts() -> tuple[int, int, int]:
    with session_scope() as s:
        return (
            s.scalar(select(func.count()).select_from(PaymentOrder)) or 0,
            s.scalar(select(func.count()).select_from(OrderLine)) or 0,
            s.scalar(select(func.count()).select_from(IdempotencyRecord)) or 0,
        )


def test_a_burst_of_distinct_orders_is_written_whole(pg_app: Any) -> None:
    bodies = [
        (f"burst-{i}", {**ORDER, "dossier_code": f"H01.22-261121-{i:04d}"}) for i in range(40)
    ]
    answers = _post_many(pg_app, bodies)
    assert [r.status_code for r in answers] == [201] * 40
    ids = {r.json()["id"] for r in answers}
    refs = {r.json()["reference"] for r in answers}
    assert len(ids) == len(refs) == 40
    assert _counts() == (40, 40, 40)
    with session_scope() as s:
        for r in answers:
            order = s.get(PaymentOrder, r.json()["id"])
            assert order is not None and order.amount == r.json()["amount"] == 5_000
            assert order.dossier_code == r.json()["dossier_code"]
            assert [line.amount for line in order.lines] == [5_000]
            assert order.vietqr_payload == r.json()["vietqr"]["payload"]


def test_racing_twins_with_one_key_make_one_order(pg_app: Any) -> None:
    answers = _post_many(pg_app, [("twin", ORDER)] * 8)
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 7
    assert _counts() == (1, 1, 1)


def test_one_key_with_two_bodies_conflicts_and_writes_once(pg_app: Any) -> None:
    other = {**ORDER, "dossier_code": "H01.22-261121-9999"}
    answers = _post_many(pg_app, [("same", ORDER), ("same", other)] * 3)
    codes = sorted(r.status_code for r in answers)
    assert codes.count(201) == 3 and codes.count(409) == 3
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"idempotency_conflict"}
    assert _counts() == (1, 1, 1)


def test_a_price_change_is_seen_at_once_despite_the_cache(pg_app: Any) -> None:
    first = _post_many(pg_app, [("before", ORDER)])[0]
    assert first.json()["amount"] == 5_000
    with session_scope() as s:
        agency = s.scalar(select(Agency))
        assert agency is not None
        today = local_date(agency, utcnow())
        proc = procedure_by_code(s, agency.id, "1.001612")
        item = fee_item_on(s, proc, "CT-BS", today)
        assert item is not None
        if item.effective_from >= today:  # reprice needs a later start than the current one
            pytest.skip("demo price starts today")
        reprice_fee(s, agency, item.id, 3_000, effective_from=today)

    async def same_app_twice() -> tuple[httpx.Response, httpx.Response]:
        async with pg_app.router.lifespan_context(pg_app):
            transport = httpx.ASGITransport(app=pg_app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                headers = {**AUTH, "Idempotency-Key": "after"}
                a = await c.post("/api/v1/payment-orders", json=ORDER, headers=headers)
                headers = {**AUTH, "Idempotency-Key": "after-2"}
                b = await c.post("/api/v1/payment-orders", json=ORDER, headers=headers)
                return a, b

    a, b = asyncio.run(same_app_twice())
    assert a.status_code == b.status_code == 201
    assert a.json()["amount"] == b.json()["amount"] == 7_000  # 2 pages × 3.000 đ + 1 × 1.000 đ
    assert a.json()["lines"][0]["unit_price"] == 3_000


def test_a_reference_clash_draws_again(pg_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _post_many(pg_app, [("first", ORDER)])[0].json()["reference"]
    real = transfer_reference.generate
    draws = iter([taken, taken])

    def clashing(prefix: str = transfer_reference.DEFAULT_PREFIX) -> str:
        return next(draws, None) or real(prefix)

    monkeypatch.setattr(transfer_reference, "generate", clashing)
    answers = _post_many(pg_app, [("second", ORDER), ("third", ORDER)])
    assert [r.status_code for r in answers] == [201, 201]
    refs = {taken} | {r.json()["reference"] for r in answers}
    assert len(refs) == 3
    assert _counts() == (3, 3, 3)


def test_bad_input_on_the_sql_path_writes_nothing(pg_app: Any) -> None:
    bad = [
        ("unknown-proc", {**ORDER, "procedure_code": "9.999999"}),
        ("unknown-fee", {**ORDER, "fees": [{"fee_code": "NOPE", "quantity": 1}]}),
        ("twice", {**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": 1}] * 2}),
        ("huge", {**ORDER, "fees": [{"fee_code": "CT-BS", "quantity": 100_001}]}),
    ]
    answers = _post_many(pg_app, bad)
    assert [r.status_code for r in answers] == [422] * 4
    assert [r.json()["code"] for r in answers] == [
        "unknown_procedure",
        "unknown_fee",
        "invalid_input",
        "validation_error",
    ]
    assert _counts() == (0, 0, 0)


def test_expiry_is_the_configured_lifetime(pg_app: Any, demo: Settings) -> None:
    before = utcnow()
    body = _post_many(pg_app, [("ttl", ORDER)])[0].json()
    with session_scope() as s:
        order = s.get(PaymentOrder, body["id"])
        assert order is not None
        lifetime = order.expires_at - order.created_at
    assert lifetime == timedelta(minutes=demo.order_ttl_minutes)
    assert order.created_at >= before - timedelta(seconds=1)


def test_catalogue_additions_are_seen_at_once(pg_app: Any) -> None:
    """A procedure or fee item published after the cache was filled is found (misses are not
    cached; a fee missing from a cached entry sends us back to the database)."""
    from payments.catalog import import_catalog

    new_proc = {**ORDER, "procedure_code": "9.000001", "fees": [{"fee_code": "MOI", "quantity": 1}]}
    new_fee = {
        **ORDER,
        "fees": [{"fee_code": "CT-BS", "quantity": 1}, {"fee_code": "MOI2", "quantity": 1}],
    }
    first = _post_many(pg_app, [("miss-1", new_proc), ("warm", ORDER)])
    assert first[0].status_code == 422 and first[0].json()["code"] == "unknown_procedure"
    assert first[1].status_code == 201  # 1.001612 is now cached
    header = "procedure_code,procedure_name,field,fee_code,fee_kind,fee_name,amount,unit,max_amount,retention_percent,legal_basis\n"
    rows = '9.000001,"Thủ tục mới",Thử nghiệm,MOI,le_phi,"Lệ phí mới",15000,lần,,0,Thông tư thử\n'
    with session_scope() as s:
        agency = s.scalar(select(Agency))
        assert agency is not None
        proc = procedure_by_code(s, agency.id, "1.001612")
        rows += f'1.001612,"{proc.name}",{proc.field},MOI2,phi,"Phí mới",7000,lần,,0,Thông tư thử\n'
        import_catalog(
            s, agency, (header + rows).encode(), effective_from=local_date(agency, utcnow())
        )
    second = _post_many(pg_app, [("miss-2", new_proc), ("fee-2", new_fee)])
    assert [r.status_code for r in second] == [201, 201], [r.text for r in second]
    assert second[0].json()["amount"] == 15_000
    assert second[1].json()["amount"] == 2_000 + 7_000


def test_text_that_cannot_be_stored_is_refused_cleanly(pg_app: Any) -> None:
    """A lone UTF-16 surrogate (``"\\ud800"`` in the JSON) parses in Python but is not text
    PostgreSQL can store or UTF-8 can carry: a 422 problem, nothing written, never a 500."""

    async def run() -> list[httpx.Response]:
        async with pg_app.router.lifespan_context(pg_app):
            transport = httpx.ASGITransport(app=pg_app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                raw = [
                    b'{"dossier_code":"H01\\ud800","procedure_code":"1.001612",'
                    b'"payer":{"name":"An"},"fees":[{"fee_code":"CT-BS","quantity":1}]}',
                    b'{"dossier_code":"H01","procedure_code":"1.001612",'
                    b'"payer":{"name":"An\\udfff"},"fees":[{"fee_code":"CT-BS","quantity":1}]}',
                ]
                return [
                    await c.post(
                        "/api/v1/payment-orders",
                        content=body,
                        headers={
                            **AUTH,
                            "Idempotency-Key": f"sur-{i}",
                            "Content-Type": "application/json",
                        },
                    )
                    for i, body in enumerate(raw)
                ]

    answers = asyncio.run(run())
    assert [r.status_code for r in answers] == [422, 422], [r.text for r in answers]
    assert {r.json()["code"] for r in answers} == {"validation_error"}
    assert _counts() == (0, 0, 0)
