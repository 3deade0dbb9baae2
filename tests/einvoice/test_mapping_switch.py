"""Issue 17 on a real database (SQLite and PostgreSQL): which receipt mapping an agency issues.

A new install issues 0.2 from its first receipt; an agency already running 0.1 goes on with it
until its switch date, then issues 0.2; receipts keep the mapping they were signed in and verify
after the switch; a 0.2 replacement names a 0.1 original; the close sends one 01/TH-BLĐT for a
day with receipts of both mappings, and the tax sandbox accepts it.

"Already running" is made the way it happened: the first receipts come from the code before
issue 17 (:class:`Before17`, a policy that always answers 0.1). Switch dates are derived from the
suite's clock (tests/infra/clock.py), so the tests hold on any day, also with ``--clock``.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from infra.clock import local, today
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.demo import DEMO_AGENCY, seed
from einvoice.document import Collector, FeeKind, Payer, ReceiptLine, ReceiptRequest
from einvoice.issuing import issue_receipt
from einvoice.lifecycle import ReceiptCorrection, create_error_notice, replace_receipt
from einvoice.mapping_policy import MappingPolicy, ReceiptMappingPolicy
from einvoice.models import ErrorNotice, Receipt
from einvoice.receipt_xml import parse_receipt_xml
from einvoice.tax_authority.client import HttpTaxAuthorityClient
from einvoice.tax_authority.messages import read_message, summary_facts
from einvoice.tax_authority.sandbox import create_app
from einvoice.verification import verify_document
from payments.cash import record_cash
from payments.issuing import issue_for_order
from payments.models import Agency
from payments.orders import FeeRequest, OrderRequest, create_order
from reconciliation.models import TaxSubmission
from reconciliation.service import close_day
from settings.config import Settings, get_settings
from settings.db import session_scope
from signing.keys import KeySource, load_key_source

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


class Before17:
    """The receipt mapping as the code before issue 17 chose it: always 0.1."""

    document_version = "2.1.0"

    def mapping_for(self, session: Session, agency_id: str, local_day: date) -> str:
        return "0.1"


def switching_on(day: date) -> ReceiptMappingPolicy:
    return ReceiptMappingPolicy(switch_on=day)


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


def issue(ctx: Ctx, source: str, policy: MappingPolicy, at: datetime | None = None) -> Receipt:
    request = ReceiptRequest(
        agency_id=ctx.agency_id,
        source_key=source,
        collector=ctx.collector,
        template="EBL01",
        series=ctx.series,
        payer=Payer(name="Nguyễn Văn An", address="Số 5 phố Huế, Hà Nội", id_number="B1234567"),
        lines=(LINE,),
        payment_method="transfer",
        payment_reference="MC7Q2K9X",
    )
    with session_scope() as session:
        receipt = issue_receipt(
            session,
            request,
            ctx.key,
            verify_url_base="http://testserver",
            allow_development_certificate=True,
            policy=policy,
            now=at,
        )
        session.expunge(receipt)
        return receipt


def stated(receipt: Receipt) -> str:
    """The mapping the receipt's own XML says (and it must agree with the row's copy)."""
    parsed = parse_receipt_xml(receipt.xml)
    assert parsed.schema_version == receipt.mapping_version
    return parsed.schema_version


def xmlsec1_ok(xml: bytes, tmp_path: Path) -> None:
    if XMLSEC1 is None:
        pytest.skip("xmlsec1 not installed")
    path = tmp_path / "receipt.xml"
    path.write_bytes(xml)
    done = subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--enabled-key-data",
            "x509",
            "--insecure",
            "--id-attr:Id",
            "DLBLai",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------- the policy


def test_a_new_install_issues_0_2_from_its_first_receipt_and_never_goes_back(ctx: Ctx) -> None:
    far = switching_on(today() + timedelta(days=365))
    first = issue(ctx, "order:1", far)
    second = issue(ctx, "order:2", far)
    assert (stated(first), stated(second)) == ("0.2", "0.2")
    assert b"<PBan>2.1.0</PBan>" in first.xml and b"<STBChu>" in first.xml


def test_an_agency_running_0_1_keeps_it_until_its_switch_date(ctx: Ctx) -> None:
    running = issue(ctx, "order:1", Before17())
    tomorrow = today() + timedelta(days=1)
    still = issue(ctx, "order:2", switching_on(tomorrow))
    next_day = issue(ctx, "order:3", switching_on(tomorrow), at=local(tomorrow, 9).astimezone(UTC))
    switched = issue(ctx, "order:4", switching_on(today()))
    assert [stated(r) for r in (running, still, next_day, switched)] == ["0.1", "0.1", "0.2", "0.2"]
    assert b"<TgTTTBChu>" in still.xml and b"<NNop>" in still.xml


def test_the_switch_date_is_the_agencys_local_day(ctx: Ctx) -> None:
    """00:30 local on the switch day is still the day before in UTC: it is 0.2 already.

    Both moments are after now (the certificate was made now), whatever the suite's clock."""
    issue(ctx, "order:1", Before17())
    switch = today() + timedelta(days=2)
    early = local(switch, 0, 30).astimezone(UTC)
    assert early.date() == switch - timedelta(days=1)
    late = early - timedelta(hours=1)  # 23:30 local, the evening before the switch
    before = issue(ctx, "order:2", switching_on(switch), at=late)
    after = issue(ctx, "order:3", switching_on(switch), at=early)
    assert (stated(before), stated(after)) == ("0.1", "0.2")


def test_the_policy_reads_the_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    day = today() + timedelta(days=3)
    monkeypatch.setenv("MOTCUA_RECEIPT_MAPPING_SWITCH_DATE", day.isoformat())
    monkeypatch.setenv("MOTCUA_TAX_DOCUMENT_VERSION", "2.1.1")
    get_settings.cache_clear()
    try:
        policy = ReceiptMappingPolicy.configured()
    finally:
        get_settings.cache_clear()
    assert (policy.switch_on, policy.document_version) == (day, "2.1.1")


# ----------------------------------------------------------------------------- across the switch


def test_a_0_1_receipt_verifies_after_the_switch_and_a_0_2_replacement_names_it(
    ctx: Ctx, tmp_path: Path
) -> None:
    original = issue(ctx, "order:1", Before17())
    with session_scope() as session:
        replacement = replace_receipt(
            session,
            original.id,
            ReceiptCorrection(lines=(dataclasses.replace(LINE, quantity=2, amount=4000),)),
            "Sai số trang: 2 trang, không phải 3",
            "Trần Thị Bình (kế toán)",
            ctx.key,
            collector=ctx.collector,
            series=ctx.series,
            verify_url_base="http://testserver",
            allow_development_certificate=True,
            policy=switching_on(today()),
        )
        session.expunge(replacement)
    assert (stated(original), stated(replacement)) == ("0.1", "0.2")
    parsed = parse_receipt_xml(replacement.xml)
    reference = parsed.replaces_reference
    assert parsed.replaces == original.id and reference is not None
    assert (reference.template, reference.series, reference.number) == (
        original.template,
        original.series,
        original.number,
    )
    assert reference.issued_on == parse_receipt_xml(original.xml).issued_on

    with session_scope() as session:
        old = verify_document(original.xml, "application/xml", session=session)
        new = verify_document(replacement.xml, "application/xml", session=session)
    assert old.valid and old.status == "replaced", old.problems
    assert old.replaced_by is not None and old.replaced_by.number == replacement.number
    assert new.valid and new.status == "valid", new.problems
    assert new.replaces is not None and new.replaces.id == original.id
    xmlsec1_ok(original.xml, tmp_path)
    xmlsec1_ok(replacement.xml, tmp_path)


def test_an_error_notice_about_a_0_1_receipt_is_written_in_0_2(ctx: Ctx) -> None:
    original = issue(ctx, "order:1", Before17())
    with session_scope() as session:
        notice = create_error_notice(
            session,
            [original.id],
            "Sai địa chỉ người nộp: Số 7, không phải Số 5 phố Huế",
            "Lê Văn Cường (một cửa)",
            ctx.key,
            collector=ctx.collector,
            tax_authority_name="Chi cục Thuế khu vực Sơn Hà",
            allow_development_certificate=True,
            document_version="2.1.1",
        )
        xml = session.get(ErrorNotice, notice.id).xml  # type: ignore[union-attr]
    root = etree.fromstring(xml)
    assert root.findtext("DLTBao/PBan") == "2.1.1"
    item = root.find("DLTBao/DSCTu/CTu")
    assert item is not None
    assert (item.findtext("KHMSCTu"), item.findtext("SCTu"), item.findtext("LCTDT")) == (
        "EBL01",
        str(original.number),
        "3",
    )


# ----------------------------------------------------------------------------- the close


def _paid_cash_order(settings: Settings, dossier: str) -> Receipt:
    with session_scope() as session:
        agency = session.scalars(select(Agency)).one()
        order = create_order(
            session,
            agency,
            OrderRequest(
                dossier_code=dossier,
                procedure_code="1.001612",
                payer={"name": "Nguyễn Văn An", "id_number": "001090012345"},
                fees=(FeeRequest(fee_code="CT-BS", quantity=3),),
            ),
            client_id=None,
            ttl=timedelta(days=1),
            max_amount=settings.max_order_amount,
        )
        record_cash(session, order.id, agency_id=agency.id, amount=order.amount, clerk="Lan")
        receipt = issue_for_order(session, order.id, settings)
        assert receipt is not None
        session.expunge(receipt)
        return receipt


def test_the_close_sends_one_summary_for_a_day_with_both_mappings(
    ctx: Ctx, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Morning, before the upgrade: the old code issues 0.1.
    with monkeypatch.context() as before:
        before.setattr(ReceiptMappingPolicy, "configured", classmethod(lambda cls: Before17()))
        morning = _paid_cash_order(settings, "H01.22-SWITCH-0001")
    # The upgrade, configured to switch today: the same day's next receipt is 0.2.
    monkeypatch.setenv("MOTCUA_RECEIPT_MAPPING_SWITCH_DATE", today().isoformat())
    get_settings.cache_clear()
    afternoon = _paid_cash_order(settings, "H01.22-SWITCH-0002")
    assert (stated(morning), stated(afternoon)) == ("0.1", "0.2")

    app = create_app(tmp_path / "tax-sandbox", environ={})
    with TestClient(app, base_url="http://sandbox") as http, session_scope() as session:
        client = HttpTaxAuthorityClient("http://sandbox", http, max_attempts=1)
        report = close_day(
            session, settings, DEMO_AGENCY.code, today(), actor="test", client=client
        )
        assert not report.result.breaks, report.summary_text()
        submission = session.scalars(select(TaxSubmission)).one()
        assert submission.status == "accepted", submission.reason
        message = read_message(submission.xml)
        held = http.get(f"/agencies/{DEMO_AGENCY.tax_code}/days/{today().isoformat()}").json()

    assert (message.header.version, message.header.message_type) == ("2.1.0", "400")
    document = message.documents[0]
    facts = summary_facts(document)
    assert (facts.row_count, facts.total_amount) == (2, morning.total + afternoon.total)
    numbers = [
        int(e.text or "0") for e in document.iterfind("DLBTHop/NDBTHDLieu/DSDLieu/DLieu/SCTu")
    ]
    assert numbers == [morning.number, afternoon.number]
    (summary,) = held["messages"]
    assert (summary["status"], summary["row_count"], summary["message_type"]) == (
        "accepted",
        2,
        "400",
    )
    t = report.result.close.totals
    assert t["receipts"]["count"] == 2
    assert [s["status"] for s in t["tax_summaries"]] == ["accepted"]
