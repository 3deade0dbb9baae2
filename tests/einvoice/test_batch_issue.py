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
from einvoice.issuing import (
    SignedAhead,
    issue_receipts,
    plan_receipts,
    read_counters,
    sign_ahead,
    store_signed,
)
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


def batch(
    ctx: Ctx, requests: list[ReceiptRequest]
) -> tuple[dict[str, Receipt], dict[str, Exception]]:
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


# --- Signing outside the lock (SQLite's path: its write lock is the whole database) ---------


def sign_outside(ctx: Ctx, requests: list[ReceiptRequest]) -> SignedAhead:
    """Steps 1 and 2: read in a short transaction, then sign with no transaction open."""
    with session_scope() as session:
        plan = plan_receipts(session, requests, ctx.key, allow_development_certificate=True)
        counters = read_counters(session, plan)
    return sign_ahead(plan, counters, ctx.key, verify_url_base="http://testserver")


def test_signed_ahead_receipts_are_stored_with_the_numbers_they_carry(
    ctx: Ctx, tmp_path: Path
) -> None:
    batch(ctx, [request(ctx, "order:000001")])  # the counter exists and stands at 1
    signed = sign_outside(ctx, [request(ctx, f"order:{i:06d}") for i in range(2, 7)])
    assert [r.number for r in signed.receipts.values()] == [2, 3, 4, 5, 6]
    with session_scope() as session:
        outcome = store_signed(session, signed)
    assert outcome is not None and not outcome.failed
    assert numbers() == [1, 2, 3, 4, 5, 6]
    with session_scope() as session:
        assert session.scalars(select(ReceiptCounter.last_number)).one() == 6
        audited = session.scalar(select(func.count()).select_from(ReceiptAuditEvent))
        assert audited == 6
        xml = session.scalars(select(Receipt.xml).where(Receipt.number == 6)).one()
    xmlsec1_ok(xml, tmp_path, "DLBLai")


def test_a_new_series_is_created_by_the_first_signed_ahead_batch(ctx: Ctx) -> None:
    signed = sign_outside(ctx, [request(ctx, f"order:{i:06d}") for i in range(3)])
    with session_scope() as session:
        assert store_signed(session, signed) is not None
    assert numbers() == [1, 2, 3]


def test_numbers_taken_meanwhile_make_the_signed_batch_give_way(ctx: Ctx) -> None:
    signed = sign_outside(ctx, [request(ctx, f"order:{i:06d}") for i in range(3)])
    batch(ctx, [request(ctx, "order:counter")])  # cash at the counter took number 1 meanwhile
    with session_scope() as session:
        assert store_signed(session, signed) is None  # nothing written: the caller re-issues
    assert numbers() == [1]
    with session_scope() as session:
        assert session.scalars(select(ReceiptCounter.last_number)).one() == 1
        assert session.scalar(select(func.count()).select_from(ReceiptAuditEvent)) == 1


def test_a_source_issued_meanwhile_makes_the_signed_batch_give_way(ctx: Ctx) -> None:
    batch(ctx, [request(ctx, "order:000000")])
    signed = sign_outside(ctx, [request(ctx, "order:000001"), request(ctx, "order:000002")])
    # Another issuer stores order 2 meanwhile; the counter is then put back where this batch
    # read it, so that only the source-key check stands between the batch and a second
    # receipt for order 2 (it must hold on its own).
    with session_scope() as session:
        other = store_signed(session, sign_outside(ctx, [request(ctx, "order:000002")]))
        assert other is not None
    with session_scope() as session:
        session.execute(ReceiptCounter.__table__.update().values(last_number=1))  # as read
    with session_scope() as session:
        assert store_signed(session, signed) is None
    with session_scope() as session:
        keys = list(session.scalars(select(Receipt.source_key).order_by(Receipt.source_key)))
    assert keys == ["order:000000", "order:000002"]  # exactly once per source key


def test_a_bad_item_signed_ahead_takes_no_number(ctx: Ctx) -> None:
    bad = request(ctx, "order:bad001", payer=Payer(name="", address=None, id_number=None))
    signed = sign_outside(ctx, [request(ctx, "order:000001"), bad, request(ctx, "order:000002")])
    assert set(signed.failed) == {"order:bad001"}
    with session_scope() as session:
        outcome = store_signed(session, signed)
    assert outcome is not None and set(outcome.failed) == {"order:bad001"}
    assert numbers() == [1, 2]


def test_a_crash_between_signing_and_storing_takes_no_number(ctx: Ctx) -> None:
    signed = sign_outside(ctx, [request(ctx, f"order:{i:06d}") for i in range(4)])
    with pytest.raises(RuntimeError), session_scope() as session:
        store_signed(session, signed)
        raise RuntimeError("crash before the commit")
    assert numbers() == []
    batch(ctx, [request(ctx, "order:000009")])
    assert numbers() == [1]
