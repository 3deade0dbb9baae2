"""Issuing a receipt: check the key, take the next number, build, sign, validate and store.

Everything happens in the caller's transaction. The certificate is checked *before* a number
is taken, and any failure after that rolls the counter back with the rest, so a refused or
failed signature never burns a number (Decree 254/2026 art. 23: no gaps).

Replacement receipts (:mod:`einvoice.lifecycle`) come through here too, so that they take
their number from the same gapless counter; the audit entry ``issued`` is written with the row.

The receipt mapping (0.1 or 0.2) is the agency's on its local day of issue
(:mod:`einvoice.mapping_policy`), stored with the row; a replacement follows the same rule, so a
0.1 receipt may be replaced by a 0.2 one, which names it by template, series, number and date.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from lxml import etree
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from einvoice.audit import SYSTEM_ACTOR, AuditAction
from einvoice.document import ReceiptDocument, ReceiptRequest
from einvoice.errors import SeriesExhausted
from einvoice.mapping_policy import MappingPolicy, ReceiptMappingPolicy
from einvoice.models import Receipt, ReceiptAuditEvent, ReceiptCounter
from einvoice.numbering import MAX_NUMBER, reserve_numbers, series_for_year
from einvoice.receipt_xml import build_receipt_xml, signed_id_for, validate_receipt_xml
from settings.db import utcnow
from signing.certs import check_signing_certificate
from signing.keys import KeySource
from signing.xmldsig_fast import sign_enveloped_fast

__all__ = [
    "BatchIssued",
    "IssuePlan",
    "SignedAhead",
    "find_receipt",
    "issue_receipt",
    "issue_receipts",
    "new_verify_code",
    "plan_receipts",
    "read_counters",
    "sign_ahead",
    "store_signed",
]


def new_verify_code() -> str:
    """16 base32 characters (80 bits): short enough for a QR, unguessable for the public page."""
    return base64.b32encode(secrets.token_bytes(10)).decode().rstrip("=")


def find_receipt(session: Session, source_key: str) -> Receipt | None:
    return session.scalar(select(Receipt).where(Receipt.source_key == source_key))


@dataclass(frozen=True)
class BatchIssued:
    """What :func:`issue_receipts` did: receipts by source key (new or already issued), and the
    requests set aside with the error that stopped them (they took no number)."""

    receipts: dict[str, Receipt]
    failed: dict[str, Exception]


@dataclass(frozen=True)
class _Prepared:
    request: ReceiptRequest
    number: int
    series: str


class _ItemFailed(Exception):
    def __init__(self, source_key: str, error: Exception) -> None:
        super().__init__(source_key)
        self.source_key = source_key
        self.error = error


MAX_ATTEMPTS = 8
"""A batch with bad items is retried without them; after this many rounds the rest waits."""

SeriesKey = tuple[str, str, str, int]
"""(agency, template, series of the year, year): one gapless counter."""


@dataclass(frozen=True)
class IssuePlan:
    """What a batch reads from the database before any number is taken: the requests still to
    issue (grouped by counter), those already issued, the moment of issue and the mapping of
    each agency's local day. The certificate has been checked."""

    todo: list[ReceiptRequest]
    done: dict[str, Receipt]
    now: datetime
    mappings: dict[tuple[str, date], str]
    document_version: str
    actor: str
    reason: str | None

    def groups(
        self, requests: Sequence[ReceiptRequest] | None = None
    ) -> dict[SeriesKey, list[ReceiptRequest]]:
        """Requests by counter, in a fixed order (one lock order for every issuer)."""
        found: dict[SeriesKey, list[ReceiptRequest]] = {}
        for request in self.todo if requests is None else requests:
            local_day = self.now.astimezone(ZoneInfo(request.collector.time_zone)).date()
            series = series_for_year(request.series, local_day.year)
            found.setdefault(
                (request.agency_id, request.template, series, local_day.year), []
            ).append(request)
        return dict(sorted(found.items()))


def plan_receipts(
    session: Session,
    requests: Sequence[ReceiptRequest],
    key: KeySource,
    *,
    allow_development_certificate: bool,
    now: datetime | None = None,
    actor: str = SYSTEM_ACTOR,
    reason: str | None = None,
    policy: MappingPolicy | None = None,
) -> IssuePlan:
    """Reads only: which requests are still to issue, and with which mapping; refuses a
    certificate the collector may not sign with (:class:`~signing.errors.CertificateRejected`)
    before anything else happens."""
    keys = list(dict.fromkeys(r.source_key for r in requests))
    unique = {r.source_key: r for r in requests}
    done: dict[str, Receipt] = {}
    for offset in range(0, len(keys), 500):
        chunk = keys[offset : offset + 500]
        done.update(
            {
                r.source_key: r
                for r in session.scalars(select(Receipt).where(Receipt.source_key.in_(chunk)))
            }
        )
    todo = [unique[k] for k in keys if k not in done]
    now = now or utcnow()
    policy = policy or ReceiptMappingPolicy.configured()
    mappings: dict[tuple[str, date], str] = {}
    if todo:
        for tax_code in {r.collector.tax_code for r in todo}:
            check_signing_certificate(
                key.certificate,
                expected_tax_code=tax_code,
                now=now,
                allow_development=allow_development_certificate,
            )
        for request in todo:
            local_day = now.astimezone(ZoneInfo(request.collector.time_zone)).date()
            if (request.agency_id, local_day) not in mappings:
                mappings[(request.agency_id, local_day)] = policy.mapping_for(
                    session, request.agency_id, local_day
                )
    return IssuePlan(todo, done, now, mappings, policy.document_version, actor, reason)


def issue_receipts(
    session: Session,
    requests: Sequence[ReceiptRequest],
    key: KeySource,
    *,
    verify_url_base: str,
    allow_development_certificate: bool,
    now: datetime | None = None,
    actor: str = SYSTEM_ACTOR,
    reason: str | None = None,
    policy: MappingPolicy | None = None,
) -> BatchIssued:
    """Issues every request not issued yet, as one batch of one collector (``key``'s).

    Numbers are reserved per series in one statement and used in order within the batch; the
    whole batch runs in a savepoint, so a request that cannot be built, signed or validated
    is set aside (with its error) and the batch is redone without it: it never takes a
    number, and the others still go out. A certificate the collector may not sign with stops
    the whole batch before any number is taken (:class:`~signing.errors.CertificateRejected`).

    The counter's row lock is held from the reservation to the caller's commit, across the
    signatures: a number must not become visible before its signed receipt exists (no gaps
    after a crash), and signing a receipt costs well under a millisecond, so a batch of a few
    hundred holds the lock for a fraction of a second. An agency that needs more spreads
    issuance over several series (docs/operations.md). Where the lock is the whole database
    (SQLite), :func:`sign_ahead` and :func:`store_signed` sign outside it instead.
    """
    plan = plan_receipts(
        session,
        requests,
        key,
        allow_development_certificate=allow_development_certificate,
        now=now,
        actor=actor,
        reason=reason,
        policy=policy,
    )
    done = dict(plan.done)
    failed: dict[str, Exception] = {}
    todo = list(plan.todo)
    for _attempt in range(MAX_ATTEMPTS):
        if not todo:
            break
        try:
            with session.begin_nested():
                firsts = {
                    group: reserve_numbers(session, *group, len(members))
                    for group, members in plan.groups(todo).items()
                }
                issued = _sign_numbered(plan, todo, firsts, key, verify_url_base)
                _store(session, plan, issued)
        except _ItemFailed as bad:
            failed[bad.source_key] = bad.error
            todo = [r for r in todo if r.source_key != bad.source_key]
            continue
        done.update(issued)
        todo = []
    for request in todo:  # pragma: no cover - only after MAX_ATTEMPTS bad items in a row
        failed.setdefault(request.source_key, RuntimeError("set aside: too many failed items"))
    return BatchIssued(done, failed)


@dataclass(frozen=True)
class SignedAhead:
    """Receipts built and signed with the numbers that follow the counters as they were read;
    stored only if no other issuer took a number of those series meanwhile."""

    plan: IssuePlan
    receipts: dict[str, Receipt]
    failed: dict[str, Exception]
    expected: dict[SeriesKey, tuple[int, int]]
    """Per counter: the last number read, and how many numbers these receipts use."""


def read_counters(session: Session, plan: IssuePlan) -> dict[SeriesKey, int]:
    """The last number of each counter the plan needs (0 for a counter not created yet)."""
    found: dict[SeriesKey, int] = {}
    for group in plan.groups():
        agency_id, template, series, year = group
        last = session.scalar(
            select(ReceiptCounter.last_number).where(
                ReceiptCounter.agency_id == agency_id,
                ReceiptCounter.template == template,
                ReceiptCounter.series == series,
                ReceiptCounter.year == year,
            )
        )
        found[group] = int(last or 0)
    return found


def sign_ahead(
    plan: IssuePlan, counters: dict[SeriesKey, int], key: KeySource, *, verify_url_base: str
) -> SignedAhead:
    """Builds and signs the plan's receipts outside any transaction (no lock held), numbered
    after ``counters``. A request that cannot be built, signed or validated is set aside and
    the others are renumbered without it, so it takes no number."""
    todo = list(plan.todo)
    failed: dict[str, Exception] = {}
    for _attempt in range(MAX_ATTEMPTS):
        groups = plan.groups(todo)
        firsts = {group: counters.get(group, 0) + 1 for group in groups}
        try:
            receipts = _sign_numbered(plan, todo, firsts, key, verify_url_base)
        except _ItemFailed as bad:
            failed[bad.source_key] = bad.error
            todo = [r for r in todo if r.source_key != bad.source_key]
            continue
        expected = {
            group: (counters.get(group, 0), len(members)) for group, members in groups.items()
        }
        return SignedAhead(plan, receipts, failed, expected)
    for request in todo:  # pragma: no cover - only after MAX_ATTEMPTS bad items in a row
        failed.setdefault(request.source_key, RuntimeError("set aside: too many failed items"))
    return SignedAhead(plan, {}, failed, {})


def store_signed(session: Session, signed: SignedAhead) -> BatchIssued | None:
    """Takes the numbers ``signed`` used and stores its receipts, in the caller's (write)
    transaction, only if each counter still stands where it was read and no receipt of these
    source keys appeared meanwhile (compare-and-set); otherwise ``None`` and nothing is
    written: the caller rolls back and signs again, or issues under the lock.

    Gapless as the locked path: the numbers become visible in the same commit as their signed
    receipts, and a crash before it leaves the counters untouched.
    """
    keys = list(signed.receipts)
    for offset in range(0, len(keys), 500):
        chunk = keys[offset : offset + 500]
        if session.scalar(select(Receipt.id).where(Receipt.source_key.in_(chunk)).limit(1)):
            return None
    for (agency_id, template, series, year), (last, used) in signed.expected.items():
        if not _advance_counter(session, agency_id, template, series, year, last, last + used):
            return None
    _store(session, signed.plan, signed.receipts)
    return BatchIssued({**signed.plan.done, **signed.receipts}, dict(signed.failed))


def _advance_counter(
    session: Session, agency_id: str, template: str, series: str, year: int, last: int, to: int
) -> bool:
    if to > MAX_NUMBER:
        raise SeriesExhausted(f"series {template}/{series} cannot go past {MAX_NUMBER} in {year}")
    where = (
        ReceiptCounter.agency_id == agency_id,
        ReceiptCounter.template == template,
        ReceiptCounter.series == series,
        ReceiptCounter.year == year,
    )
    moved = session.execute(
        update(ReceiptCounter)
        .where(*where, ReceiptCounter.last_number == last)
        .values(last_number=to)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount == 1:  # type: ignore[attr-defined]
        return True
    if last != 0 or session.scalar(select(ReceiptCounter.last_number).where(*where)) is not None:
        return False
    session.add(
        ReceiptCounter(
            agency_id=agency_id, template=template, series=series, year=year, last_number=to
        )
    )
    session.flush()
    return True


def _sign_numbered(
    plan: IssuePlan,
    requests: list[ReceiptRequest],
    firsts: dict[SeriesKey, int],
    key: KeySource,
    verify_url_base: str,
) -> dict[str, Receipt]:
    """Builds and signs each request with its number (consecutive from its counter's first);
    raises :class:`_ItemFailed` naming the first request that cannot be issued."""
    signer_subject = key.certificate.subject.rfc4514_string()
    receipts: dict[str, Receipt] = {}
    for group, members in plan.groups(requests).items():
        series = group[2]
        for offset, request in enumerate(members):
            zone = ZoneInfo(request.collector.time_zone)
            mapping = plan.mappings[(request.agency_id, plan.now.astimezone(zone).date())]
            item = _Prepared(request, firsts[group] + offset, series)
            try:
                receipt = _signed_receipt(
                    request,
                    item,
                    key,
                    zone,
                    plan.now,
                    verify_url_base,
                    mapping,
                    plan.document_version,
                    signer_subject,
                )
            except Exception as exc:  # this request is set aside; the batch is redone without it
                raise _ItemFailed(request.source_key, exc) from exc
            receipts[request.source_key] = receipt
    return receipts


def _store(session: Session, plan: IssuePlan, receipts: dict[str, Receipt]) -> None:
    session.add_all(receipts.values())
    session.flush()
    if not receipts:
        return
    # Plain rows, not objects: nothing reads them back in this transaction, and without the
    # generated ids to return the driver sends them as one pipelined executemany (issue 16).
    session.execute(
        insert(ReceiptAuditEvent),
        [
            dict(
                at=plan.now,
                agency_id=r.agency_id,
                action=AuditAction.ISSUED.value,
                receipt_id=r.id,
                related_receipt_id=r.replaces_id,
                notice_id=None,
                actor=plan.actor,
                reason=plan.reason or f"payment {r.payment_reference} collected",
                details={
                    "source_key": r.source_key,
                    "template": r.template,
                    "series": r.series,
                    "number": r.number,
                    "total": r.total,
                    "mapping": r.mapping_version,
                },
            )
            for r in receipts.values()
        ],
    )


def _signed_receipt(
    request: ReceiptRequest,
    item: _Prepared,
    key: KeySource,
    zone: ZoneInfo,
    now: datetime,
    verify_url_base: str,
    mapping: str,
    document_version: str,
    signer_subject: str,
) -> Receipt:
    receipt_id = uuid.uuid4().hex
    verify_code = new_verify_code()
    doc = ReceiptDocument(
        receipt_id=receipt_id,
        template=request.template,
        series=item.series,
        number=item.number,
        issued_at=now,
        collector=request.collector,
        payer=request.payer,
        lines=request.lines,
        payment_method=request.payment_method,
        payment_reference=request.payment_reference,
        procedure_code=request.procedure_code,
        procedure_name=request.procedure_name,
        dossier_code=request.dossier_code,
        verify_code=verify_code,
        verify_url=f"{verify_url_base.rstrip('/')}/r/{verify_code}",
        replaces=request.replaces,
        replaces_reference=request.replaces_reference,
        notes=request.notes,
        mapping_version=mapping,
        document_version=document_version,
    )
    root = build_receipt_xml(doc)
    signed = sign_enveloped_fast(
        root, signed_id=signed_id_for(doc), key=key, signing_time=now, tz=zone, copy=False
    )
    validate_receipt_xml(signed)
    return Receipt(
        id=receipt_id,
        agency_id=request.agency_id,
        source_key=request.source_key,
        template=request.template,
        series=item.series,
        year=now.astimezone(zone).date().year,
        number=item.number,
        issued_at=now,
        total=doc.total,
        payer_name=request.payer.name,
        payment_method=request.payment_method,
        payment_reference=request.payment_reference,
        verify_code=verify_code,
        lines=[{**asdict(line), "kind": line.kind.value} for line in request.lines],
        xml=etree.tostring(signed, xml_declaration=True, encoding="UTF-8"),
        signer_subject=signer_subject,
        replaces_id=request.replaces,
        collector_tax_code=request.collector.tax_code,
        mapping_version=mapping,
    )


def issue_receipt(
    session: Session,
    request: ReceiptRequest,
    key: KeySource,
    *,
    verify_url_base: str,
    allow_development_certificate: bool,
    now: datetime | None = None,
    actor: str = SYSTEM_ACTOR,
    reason: str | None = None,
    policy: MappingPolicy | None = None,
) -> Receipt:
    """Issue the receipt ``request`` asks for, or return the one already issued for its key:
    :func:`issue_receipts` with a batch of one (the counter, a card webhook, an exempt order).

    ``actor`` and ``reason`` go to the audit trail; by default the service itself issued it
    because a payment was recognised. ``policy`` chooses the receipt mapping; by default the
    settings' (:meth:`ReceiptMappingPolicy.configured`).
    """
    outcome = issue_receipts(
        session,
        [request],
        key,
        verify_url_base=verify_url_base,
        allow_development_certificate=allow_development_certificate,
        now=now,
        actor=actor,
        reason=reason,
        policy=policy,
    )
    if request.source_key in outcome.failed:
        raise outcome.failed[request.source_key]
    return outcome.receipts[request.source_key]
