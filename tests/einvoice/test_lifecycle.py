"""Receipt lifecycle on a real database (SQLite and PostgreSQL): replacement, 04/SS-CTĐT, audit,
write-once rows. Circular 91/2026 art. 20: replace or notify, never cancel."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from api.demo import seed
from einvoice.audit import AuditAction, receipt_history
from einvoice.document import Collector, FeeKind, Payer, ReceiptLine, ReceiptRequest
from einvoice.error_notice import (
    FORM_NUMBER,
    load_error_notice_xml,
    notice_from_element,
    validate_error_notice_xml,
)
from einvoice.errors import (
    ErrorNoticeConflict,
    InvalidLifecycleInput,
    InvalidNoticeTransition,
    NothingToCorrect,
    ReceiptAlreadyReplaced,
    ReceiptImmutable,
    ReceiptNotFound,
    ReceiptReplaced,
    UseErrorNotice,
)
from einvoice.issuing import issue_receipt
from einvoice.lifecycle import (
    ReceiptCorrection,
    create_error_notice,
    mark_error_notice,
    original_content,
    queued_error_notices,
    replace_receipt,
)
from einvoice.models import ErrorNotice, NoticeStatus, Receipt, ReceiptAuditEvent
from einvoice.receipt_xml import parse_receipt_xml
from payments.models import Agency
from settings.config import Settings
from settings.db import session_scope
from signing.keys import KeySource, load_key_source
from signing.xmldsig import verify_enveloped

XMLSEC1 = shutil.which("xmlsec1")

LINE = ReceiptLine(
    fee_code="CT-BS",
    name="Phí chứng thực bản sao từ bản chính",
    kind=FeeKind.PHI,
    quantity=3,
    unit_price=2000,
    amount=6000,
    unit="trang",
)


@dataclass(frozen=True)
class Ctx:
    agency_id: str
    collector: Collector
    series: str
    key: KeySource


@pytest.fixture
def ctx(settings: Settings) -> Ctx:
    seed(settings)
    with session_scope() as session:
        agency = session.scalars(select(Agency)).one()
        assert agency.signing_key_ref
        return Ctx(
            agency_id=agency.id,
            collector=Collector(
                name=agency.name,
                tax_code=agency.tax_code,
                address=agency.address,
                time_zone=agency.time_zone,
            ),
            series=agency.receipt_series,
            key=load_key_source(agency.signing_key_ref),
        )


def issue(ctx: Ctx, source: str = "order:1") -> str:
    request = ReceiptRequest(
        agency_id=ctx.agency_id,
        source_key=source,
        collector=ctx.collector,
        template="EBL01",
        series=ctx.series,
        payer=Payer(name="Nguyễn Văn An", address="Số 5 phố Huế, Hà Nội", id_number="001090012345"),
        lines=(LINE,),
        payment_method="transfer",
        payment_reference="MC7Q2K9X",
        procedure_code="1.001612",
        procedure_name="Chứng thực bản sao",
        dossier_code="H01.22-261121-0001",
    )
    with session_scope() as session:
        receipt = issue_receipt(
            session,
            request,
            ctx.key,
            verify_url_base="http://testserver",
            allow_development_certificate=True,
        )
        return receipt.id


def replace(ctx: Ctx, receipt_id: str, correction: ReceiptCorrection, **kwargs: object) -> str:
    with session_scope() as session:
        replacement = replace_receipt(
            session,
            receipt_id,
            correction,
            kwargs.pop("reason", "Sai số tiền: thu 6.000 đ, ghi 60.000 đ"),  # type: ignore[arg-type]
            kwargs.pop("actor", "Trần Thị Bình (kế toán)"),  # type: ignore[arg-type]
            ctx.key,
            collector=ctx.collector,
            series=ctx.series,
            verify_url_base="http://testserver",
            allow_development_certificate=True,
            **kwargs,  # type: ignore[arg-type]
        )
        return replacement.id


AMOUNT_FIX = ReceiptCorrection(lines=(dataclasses.replace(LINE, quantity=2, amount=4000),))
"""Art. 20 "any other error": the amount was wrong (2 pages, not 3)."""


def xmlsec1_ok(xml: bytes, tmp_path: Path, element: str) -> None:
    if XMLSEC1 is None:
        pytest.skip("xmlsec1 not installed")
    path = tmp_path / "doc.xml"
    path.write_bytes(xml)
    done = subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--enabled-key-data",
            "x509",
            "--insecure",
            "--id-attr:Id",
            element,
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------- replacement


def test_replacement_takes_the_next_number_and_references_the_original(
    ctx: Ctx, tmp_path: Path
) -> None:
    original_id = issue(ctx)
    replacement_id = replace(ctx, original_id, AMOUNT_FIX)
    with session_scope() as session:
        original = session.get(Receipt, original_id)
        replacement = session.get(Receipt, replacement_id)
        assert original is not None and replacement is not None
        assert (original.number, replacement.number) == (1, 2)
        assert replacement.series == original.series and replacement.template == "EBL01"
        assert original.replaced_by_id == replacement.id and original.status == "replaced"
        assert replacement.replaces_id == original.id and replacement.status == "valid"
        assert replacement.total == 4000 and original.total == 6000
        assert replacement.source_key == f"replace:{original.id}"
        xml = replacement.xml
        original_parsed = original_content(original)

    parsed = parse_receipt_xml(xml)
    assert parsed.replaces == original_id
    ref = parsed.replaces_reference
    assert ref is not None
    assert (ref.template, ref.series, ref.number) == ("EBL01", original_parsed.series, 1)
    assert ref.issued_on == original_parsed.issued_on
    root = etree.fromstring(xml)
    related = root.find("DLBLai/TTChung/TTBLLQuan")
    assert related is not None
    assert related.findtext("TCBLai") == "1" and related.findtext("SCTuCLQuan") == "1"
    # the one-stop context and the payment are the original's
    assert parsed.payment_reference == "MC7Q2K9X" and parsed.dossier_code == "H01.22-261121-0001"
    assert parsed.payer_name == "Nguyễn Văn An" and parsed.total_in_words == "Bốn nghìn đồng"
    status = verify_enveloped(xml)
    assert status.valid, status.problems
    xmlsec1_ok(xml, tmp_path, "DLBLai")


def test_a_receipt_is_replaced_once_then_its_replacement_is_replaced(ctx: Ctx) -> None:
    original_id = issue(ctx)
    second = replace(ctx, original_id, AMOUNT_FIX)
    with pytest.raises(ReceiptAlreadyReplaced) as info:
        replace(ctx, original_id, ReceiptCorrection(payer=Payer(name="X", id_number="1234567")))
    assert info.value.extra["replaced_by"] == second
    third = replace(
        ctx, second, ReceiptCorrection(payer=Payer(name="Nguyễn Văn An", id_number="001090099999"))
    )
    with session_scope() as session:
        numbers = [session.get(Receipt, rid).number for rid in (original_id, second, third)]  # type: ignore[union-attr]
        assert numbers == [1, 2, 3]
        assert parse_receipt_xml(session.get(Receipt, third).xml).replaces == second  # type: ignore[union-attr]


def test_name_or_address_errors_are_not_replaced_and_burn_no_number(ctx: Ctx) -> None:
    original_id = issue(ctx)
    with pytest.raises(NothingToCorrect):
        replace(ctx, original_id, ReceiptCorrection())
    with pytest.raises(UseErrorNotice) as info:
        replace(
            ctx,
            original_id,
            ReceiptCorrection(
                payer=Payer(name="Nguyễn Văn Ân", address="Số 7 phố Huế", id_number="001090012345")
            ),
        )
    assert info.value.code == "use_error_notice" and "04/SS-CTĐT" in info.value.title_vi
    with pytest.raises(InvalidLifecycleInput):
        replace(ctx, original_id, AMOUNT_FIX, reason="sai")
    with pytest.raises(ReceiptNotFound):
        replace(ctx, original_id, AMOUNT_FIX, agency_id="someone-else")
    assert issue(ctx, "order:2") and _numbers() == [1, 2]


def _numbers() -> list[int]:
    with session_scope() as session:
        return sorted(r.number for r in session.scalars(select(Receipt)))


def test_every_lifecycle_action_is_audited(ctx: Ctx) -> None:
    original_id = issue(ctx)
    replacement_id = replace(ctx, original_id, AMOUNT_FIX)
    with session_scope() as session:
        history = receipt_history(session, original_id)
        actions = [(e.action, e.receipt_id, e.related_receipt_id) for e in history]
        assert actions == [
            (AuditAction.ISSUED, original_id, None),
            (AuditAction.ISSUED, replacement_id, original_id),
            (AuditAction.REPLACED, original_id, replacement_id),
        ]
        issued, _, replaced = history
        assert issued.actor == "system" and "MC7Q2K9X" in (issued.reason or "")
        assert replaced.actor == "Trần Thị Bình (kế toán)"
        assert replaced.reason == "Sai số tiền: thu 6.000 đ, ghi 60.000 đ"
        assert replaced.at is not None and replaced.at.tzinfo is not None
        assert replaced.details["changed"] == ["amount", "lines"]
        assert replaced.details["replacement"]["number"] == 2


# ----------------------------------------------------------------------------- write-once


def test_signed_receipts_are_write_once_in_the_orm(ctx: Ctx) -> None:
    original_id = issue(ctx)
    with pytest.raises(ReceiptImmutable), session_scope() as session:
        receipt = session.get(Receipt, original_id)
        assert receipt is not None
        receipt.total = 1
        session.flush()
    with pytest.raises(ReceiptImmutable), session_scope() as session:
        session.delete(session.get(Receipt, original_id))
        session.flush()
    with pytest.raises(ReceiptImmutable), session_scope() as session:
        event = session.scalars(select(ReceiptAuditEvent)).first()
        assert event is not None
        event.reason = "rewritten"
        session.flush()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE receipts SET total = 1",
        "UPDATE receipts SET payer_name = 'Người khác'",
        "UPDATE receipts SET number = number + 10",
        "UPDATE receipts SET mapping_version = mapping_version || '.9'",
        "DELETE FROM receipts",
        "UPDATE receipt_audit_events SET actor = 'x'",
        "DELETE FROM receipt_audit_events",
    ],
)
def test_the_database_refuses_edits_that_bypass_the_orm(ctx: Ctx, statement: str) -> None:
    issue(ctx)
    with pytest.raises(DBAPIError, match=r"write-once|append-only"), session_scope() as session:
        session.execute(text(statement))


def test_the_replacement_link_is_written_once(ctx: Ctx) -> None:
    original_id = issue(ctx)
    replace(ctx, original_id, AMOUNT_FIX)
    with pytest.raises(DBAPIError, match="write-once"), session_scope() as session:
        session.execute(
            text("UPDATE receipts SET replaced_by_id = NULL WHERE id = :id"), {"id": original_id}
        )
    with session_scope() as session:  # a link from NULL to a value is the one allowed change
        session.execute(text("UPDATE receipts SET replaced_by_id = replaced_by_id"))


# ----------------------------------------------------------------------------- 04/SS-CTĐT


def notice(ctx: Ctx, ids: list[str], **kwargs: object) -> str:
    with session_scope() as session:
        made = create_error_notice(
            session,
            ids,
            kwargs.pop("reason", "Sai địa chỉ người nộp: ghi Số 5, đúng là Số 7 phố Huế"),  # type: ignore[arg-type]
            "Lê Văn Cường (một cửa)",
            ctx.key,
            collector=ctx.collector,
            tax_authority_name="Chi cục Thuế khu vực Sơn Hà",
            allow_development_certificate=True,
            **kwargs,  # type: ignore[arg-type]
        )
        return made.id


def test_error_notice_is_signed_valid_and_queued(ctx: Ctx, tmp_path: Path) -> None:
    first, second = issue(ctx), issue(ctx, "order:2")
    notice_id = notice(ctx, [first, second], tax_authority_code="10123", place="Sơn Hà")
    with session_scope() as session:
        row = session.get(ErrorNotice, notice_id)
        assert row is not None and row.status == NoticeStatus.QUEUED == "queued"
        xml = row.xml
        assert [n.id for n in queued_error_notices(session)] == [notice_id]
        history = receipt_history(session, first)
        assert [e.action for e in history] == [AuditAction.ISSUED, AuditAction.ERROR_NOTICE]
        assert history[1].notice_id == notice_id and history[1].actor == "Lê Văn Cường (một cửa)"

    root = load_error_notice_xml(xml)
    validate_error_notice_xml(root)  # against einvoice/schemas/04-ss-ctdt-0.2.xsd
    status = verify_enveloped(xml)
    assert status.valid, status.problems
    assert status.tax_code == ctx.collector.tax_code
    parsed = notice_from_element(status.signed_element)  # type: ignore[arg-type]
    assert parsed.form_number == FORM_NUMBER == "04/SS-CTĐT"
    assert parsed.tax_authority_name == "Chi cục Thuế khu vực Sơn Hà"
    assert parsed.tax_authority_code == "10123" and parsed.place == "Sơn Hà"
    assert parsed.tax_code == ctx.collector.tax_code
    assert (parsed.schema_version, parsed.document_version) == ("0.2", "2.1.0")
    assert [(e.template, e.number, e.document_kind, e.kind) for e in parsed.entries] == [
        ("EBL01", 1, "3", None),
        ("EBL01", 2, "3", None),
    ]
    assert root.findtext("DLTBao/Loai") == "1"
    assert [e.tag for e in root.iterfind("DLTBao/DSCTu/CTu[1]/*")] == [
        "STT",
        "KHMSCTu",
        "KHCTu",
        "SCTu",
        "NLap",
        "LCTDT",
        "LDo",
    ]
    assert root.find("DSCKS/NNT") is not None
    xmlsec1_ok(xml, tmp_path, "DLTBao")
    # no reissue: the numbers are untouched and the next receipt goes on from 3
    issue(ctx, "order:3")
    assert _numbers() == [1, 2, 3]


def test_error_notice_rules(ctx: Ctx) -> None:
    first = issue(ctx)
    with pytest.raises(ReceiptNotFound):
        notice(ctx, ["nope"])
    with pytest.raises(InvalidLifecycleInput):
        notice(ctx, [])
    made = notice(ctx, [first], source_key="k-1")
    assert notice(ctx, [first], source_key="k-1") == made  # idempotent
    with pytest.raises(ErrorNoticeConflict):
        notice(ctx, [first], source_key="k-1", reason="Một lý do khác hẳn")
    replace(ctx, first, AMOUNT_FIX)
    with pytest.raises(ReceiptReplaced):
        notice(ctx, [first])


def test_error_notice_outbox_transitions_are_audited(ctx: Ctx) -> None:
    notice_id = notice(ctx, [issue(ctx)])
    with session_scope() as session:
        with pytest.raises(InvalidNoticeTransition):
            mark_error_notice(session, notice_id, NoticeStatus.ACKNOWLEDGED)
        mark_error_notice(
            session, notice_id, NoticeStatus.SENT, message_id="V0108424452" + "A" * 32
        )
        mark_error_notice(session, notice_id, NoticeStatus.ACKNOWLEDGED)
        row = session.get(ErrorNotice, notice_id)
        assert row is not None and row.status == "acknowledged" and row.message_id
        events = session.scalars(
            select(ReceiptAuditEvent).where(
                ReceiptAuditEvent.notice_id == notice_id,
                ReceiptAuditEvent.action == AuditAction.NOTICE_STATUS,
            )
        ).all()
        assert [(e.details["from"], e.details["to"]) for e in events] == [
            ("queued", "sent"),
            ("sent", "acknowledged"),
        ]
        assert queued_error_notices(session) == []


def test_the_triggers_freeze_the_same_columns_as_the_orm() -> None:
    import importlib.util

    from einvoice.models import RECEIPT_FROZEN_COLUMNS

    def migration(name: str) -> object:
        path = Path(__file__).parents[2] / "settings/migrations/versions" / name
        spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    first = migration("0002_receipt_lifecycle.py")
    latest = migration("0012_receipt_mapping_version.py")  # recreated them with mapping_version
    assert latest.RECEIPT_FROZEN_0002 == first.RECEIPT_FROZEN  # type: ignore[attr-defined]
    assert set(latest.RECEIPT_FROZEN) == RECEIPT_FROZEN_COLUMNS  # type: ignore[attr-defined]
    columns = set(Receipt.__table__.columns.keys())
    assert columns >= RECEIPT_FROZEN_COLUMNS and "replaced_by_id" not in RECEIPT_FROZEN_COLUMNS
