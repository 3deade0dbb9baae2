"""The batch issuer (issue 16): consecutive numbers reserved at once, bad items set aside
without a number, exactly once per source key, every receipt signed and audited."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import test_lifecycle
from sqlalchemy import func, select
from test_lifecycle import LINE, Ctx, xmlsec1_ok

from einvoice.audit import AuditAction
from einvoice.document import Payer, ReceiptRequest
from einvoice.issuing import issue_receipts
from einvoice.models import Receipt, ReceiptAuditEvent, ReceiptCounter
from einvoice.numbering import reserve_numbers
from settings.config import Settings
from settings.db import session_scope


@pytest.fixture
def ctx(settings: Settings) -> Ctx:
    """The agency of the lifecycle tests, seeded the same way."""
    return test_lifecycle.ctx.__wrapped__(settings)  # type: ignore[attr-defined,no-any-return]


def request(ctx: Ctx, source: str, **changes: object) -> ReceiptRequest:
    base = ReceiptRequest(
        agency_id=ctx.agency_id,
        source_key=source,
        collector=ctx.collector,
        template="EBL01",
        series=ctx.series,
        payer=Payer(name="Nguyễn Văn An", address="Số 5 phố Huế, Hà Nội", id_number="001090012345"),
        lines=(LINE,),
        payment_method="transfer",
        payment_reference=f"REF{source[-6:]}",
        procedure_code="1.001612",
        procedure_name="Chứng thực bản sao",
        dossier_code="H01.22-261121-0001",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def batch(ctx: Ctx, requests: list[ReceiptRequest]) -> tuple[dict[str, Receipt], dict[str, Exception]]:
    with session_scope() as session:
        outcome = issue_receipts(
            session,
            requests,
            ctx.key,
            verify_url_base="http://testserver",
            allow_development_certificate=True,
        )
        return outcome.receipts, outcome.failed


def numbers() -> list[int]:
    with session_scope() as session:
        return list(session.scalars(select(Receipt.number).order_by(Receipt.number)))


def test_a_batch_takes_consecutive_numbers_in_one_reservation(ctx: Ctx, tmp_path: Path) -> None:
    receipts, failed = batch(ctx, [request(ctx, f"order:{i:06d}") for i in range(25)])
    assert not failed
    by_key = sorted(receipts.values(), key=lambda r: r.source_key)
    assert [r.number for r in by_key] == list(range(1, 26))  # in request order, no gap
    with session_scope() as session:
        counter = session.scalars(select(ReceiptCounter)).one()
        assert counter.last_number == 25
        audited = session.scalar(
            select(func.count())
            .select_from(ReceiptAuditEvent)
            .where(ReceiptAuditEvent.action == AuditAction.ISSUED.value)
        )
        assert audited == 25
        stored = session.get(Receipt, by_key[-1].id)
        assert stored is not None
        xml = stored.xml
    xmlsec1_ok(xml, tmp_path, "DLBLai")  # an independent verifier accepts what the batch signed


def test_a_bad_item_is_set_aside_and_takes_no_number(ctx: Ctx) -> None:
    good = [request(ctx, f"order:{i:06d}") for i in range(5)]
    # A payer name the schema refuses (empty): this item cannot be a valid receipt.
    bad = request(ctx, "order:bad001", payer=Payer(name="", address=None, id_number=None))
    receipts, failed = batch(ctx, [good[0], good[1], bad, good[2], good[3], good[4]])
    assert set(failed) == {"order:bad001"}
    assert len(receipts) == 5
    assert numbers() == [1, 2, 3, 4, 5]  # the bad item left no hole
    receipts, failed = batch(ctx, [request(ctx, "order:000009")])
    assert not failed and numbers() == [1, 2, 3, 4, 5, 6]


def test_exactly_once_per_source_key(ctx: Ctx) -> None:
    first, _ = batch(ctx, [request(ctx, "order:000001"), request(ctx, "order:000002")])
    again, failed = batch(
        ctx,
        [request(ctx, "order:000002"), request(ctx, "order:000002"), request(ctx, "order:000003")],
    )
    assert not failed
    assert again["order:000002"].id == first["order:000002"].id
    assert numbers() == [1, 2, 3]


def test_a_rolled_back_batch_gives_its_numbers_back(ctx: Ctx) -> None:
    with pytest.raises(RuntimeError), session_scope() as session:
        issue_receipts(
            session,
            [request(ctx, f"order:{i:06d}") for i in range(10)],
            ctx.key,
            verify_url_base="http://testserver",
            allow_development_certificate=True,
        )
        raise RuntimeError("crash before the commit")
    assert numbers() == []
    batch(ctx, [request(ctx, "order:000100")])
    assert numbers() == [1]


def test_reserve_numbers_is_consecutive(ctx: Ctx) -> None:
    # The year is only the counter's key here (no clock involved): any year would do.
    with session_scope() as session:
        assert reserve_numbers(session, ctx.agency_id, "EBL01", "26TAB", 2026, 3) == 1
        assert reserve_numbers(session, ctx.agency_id, "EBL01", "26TAB", 2026, 4) == 4
        assert reserve_numbers(session, ctx.agency_id, "EBL01", "26TAB", 2026, 1) == 8
