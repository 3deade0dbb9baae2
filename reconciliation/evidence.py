"""Evidence for inspectors: one signed ZIP with the whole trail of a receipt or of a business day.

Inspectors (thanh tra, kiểm toán) ask for everything behind a payment. A bundle holds, as the
service journaled them:

- ``bank/``     the raw bank notifications / statement lines (``bank_events.raw``, byte for
                byte) and the normalised credits;
- ``order/``    the payment order with its lines, the pricing computation of each line
                (``order_lines.pricing``) and the catalogue item in force (tariff, legal basis);
- ``receipt/``  the signed XML (the legal original) and the signed PDF display copy, for every
                receipt of the replacement chain;
- ``tax/``      each 01/TH-BLĐT summary that carried a receipt, as sent (signed TDiep), with
                the tax authority's answer as recorded;
- ``close/``    the signed close report of every close version that counted it;
- ``audit/``    its audit records with their hash-chain seals (``settings.audit_chain``), with
                the canonical text each seal digests so anyone can recompute it;
- ``README.txt``, ``SHA256SUMS`` (``sha256sum -c``) and ``manifest.xml``: the SHA-256 and size
  of every other member, **signed by the agency's certificate** (enveloped XMLDSig, the same
  profile as receipts, so ``xmlsec1 --verify`` checks it offline: docs/evidence.md).

Personal data: payers' names, ID numbers, addresses, phones and e-mails are included, because
inspectors need them; the manifest says so. Secrets never are: no API key, webhook secret,
callback URL, password or private key is read, and a card gateway's ``client_secret`` inside a
journaled card event is replaced by ``[redacted]`` (the manifest lists each such member).

:func:`verify_evidence` is the check ``motcua evidence verify`` runs: the manifest's signature,
then that the manifest file is exactly what its signed content, certificate, signing time and
signature value produce (so no byte of it may change either), then every member's SHA-256, then
that nothing is missing or added. It names the first member that fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from base64 import b64decode
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree
from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import Session

from einvoice.models import Receipt, ReceiptAuditEvent
from payments.agencies import agency_by_code
from payments.models import (
    Agency,
    BankCredit,
    BankEvent,
    ExceptionAction,
    FeeItem,
    PaymentException,
    PaymentOrder,
)
from payments.signer import signer_for
from payments.usecases.receipts import (
    agency_receipt,
    display_copy,
    order_of_receipt,
    receipt_chain,
)
from reconciliation.day import BusinessDay
from reconciliation.errors import DayInFuture
from reconciliation.models import (
    Correction,
    DailyClose,
    ReconBreak,
    TaxSubmission,
    TaxSubmissionRow,
)
from settings.audit_chain import AuditSeal, canonical_record, row_hash
from settings.config import Settings
from settings.db import complete_metadata, utcnow
from settings.untrusted_xml import UntrustedXmlError, parse_untrusted
from signing.xmldsig import DS_NS, PLACEHOLDER_ID, VIETNAM_TZ, verify_enveloped
from signing.xmldsig_fast import finish, prepare, sign_enveloped_fast

__all__ = [
    "MANIFEST",
    "SUMS",
    "EvidenceBundle",
    "EvidenceCheck",
    "EvidenceProblem",
    "day_evidence",
    "receipt_evidence",
    "verify_evidence",
]

MANIFEST: Final = "manifest.xml"
SUMS: Final = "SHA256SUMS"
README: Final = "README.txt"
FORMAT_VERSION: Final = "1.0"
ROOT_TAG: Final = "HSoBChung"
"""Hồ sơ bằng chứng: the manifest's root."""
DATA_TAG: Final = "DLHSo"
SIGNED_ID: Final = "evidence"
REDACTED: Final = "[redacted]"
SECRET_KEYS: Final = frozenset({"client_secret", "secret", "api_key", "apikey", "password"})
"""Keys whose values never leave the service, wherever they appear in a journaled body."""
MAX_MEMBER_BYTES: Final = 512 * 1024 * 1024
MAX_MEMBERS: Final = 200_000
MAX_MANIFEST_BYTES: Final = 64 * 1024 * 1024

PERSONAL_DATA_NOTE: Final = (
    "Hồ sơ này chứa dữ liệu cá nhân của người nộp (họ tên, số định danh, địa chỉ, điện thoại, "
    "thư điện tử) vì thanh tra, kiểm toán cần đối chiếu; chỉ giao cho người có thẩm quyền và "
    "bảo quản theo quy định về bảo vệ dữ liệu cá nhân (Nghị định 13/2023/NĐ-CP). / This bundle "
    "contains payers' personal data (name, ID number, address, phone, e-mail) because "
    "inspectors and auditors need it; hand it only to those entitled and keep it as personal "
    "data."
)
SECRETS_NOTE: Final = (
    "Không chứa bí mật: không có khóa API, khóa webhook, địa chỉ callback, mật khẩu hay khóa "
    "riêng; client_secret của cổng thẻ trong nhật ký được thay bằng [redacted]. / No secrets: "
    "no API key, webhook secret, callback URL, password or private key; a card gateway's "
    "client_secret inside a journaled event is replaced by [redacted]."
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class EvidenceBundle:
    body: bytes
    name: str
    """File name to offer (ASCII)."""
    members: tuple[str, ...]


@dataclass(frozen=True)
class EvidenceProblem:
    member: str
    why: str

    def text(self) -> str:
        return f"{self.member}: {self.why}"


@dataclass(frozen=True)
class EvidenceCheck:
    problems: tuple[EvidenceProblem, ...]
    members: int = 0
    signer: str | None = None
    tax_code: str | None = None
    signing_time: str | None = None
    development: bool = False
    subject: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        if not self.ok:
            return "; ".join(p.text() for p in self.problems)
        dev = " (development certificate: NOT legally valid)" if self.development else ""
        return (
            f"intact: {self.members} member(s) match the manifest signed by {self.signer} "
            f"(MST {self.tax_code}) at {self.signing_time}{dev}; evidence of {self.subject}"
        )


# --------------------------------------------------------------------------- helpers


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} into evidence")


def _json(value: Any) -> bytes:
    return (
        json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=_plain) + "\n"
    ).encode("utf-8")


def _redact(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        changed = False
        for k, v in value.items():
            if str(k).lower() in SECRET_KEYS and v not in (None, ""):
                out[k], changed = REDACTED, True
            else:
                out[k], sub = _redact(v)
                changed = changed or sub
        return out, changed
    if isinstance(value, list):
        items = [_redact(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    return value, False


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


@dataclass
class _Bundle:
    """Members in the order they are written; each record is added once."""

    members: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)

    def first(self, kind: str, key: object) -> bool:
        token = (kind, str(key))
        if token in self.seen:
            return False
        self.seen.add(token)
        return True

    def add(self, name: str, data: bytes) -> None:
        if name in self.members:
            raise ValueError(f"member {name} written twice")
        self.members[name] = data


# --------------------------------------------------------------------------- collecting


def _add_event(bundle: _Bundle, event: BankEvent) -> None:
    if not bundle.first("event", event.id):
        return
    raw = bytes(event.raw)
    name = f"bank/event-{event.id}-{event.source}"
    try:
        parsed = json.loads(raw)
    except ValueError:
        bundle.add(f"{name}.raw", raw)
        return
    redacted, changed = _redact(parsed)
    if changed:
        bundle.add(f"{name}.json", _json(redacted))
        bundle.notes.append(
            f"{name}.json: giá trị bí mật được thay bằng {REDACTED} / secret values redacted"
        )
    else:
        bundle.add(f"{name}.json", raw)  # byte for byte as journaled


def _add_credit(session: Session, bundle: _Bundle, credit: BankCredit) -> None:
    if not bundle.first("credit", credit.id):
        return
    event = session.get(BankEvent, credit.event_id)
    if event is not None:
        _add_event(bundle, event)
    exc = session.scalar(select(PaymentException).where(PaymentException.credit_id == credit.id))
    bundle.add(
        f"bank/credit-{credit.id}.json",
        _json(
            {
                "id": credit.id,
                "bank_event_id": credit.event_id,
                "bank_reference": credit.bank_reference,
                "account_number": credit.account_number,
                "amount": credit.amount,
                "memo": credit.memo,
                "booked_at": credit.booked_at,
                "recorded_at": credit.created_at,
                "order_id": credit.order_id,
                "match_status": credit.match_status,
                "exception": (
                    {
                        "id": exc.id,
                        "kind": exc.kind,
                        "amount": exc.amount,
                        "state": exc.state,
                        "resolution": exc.resolution,
                        "order_id": exc.order_id,
                        "created_at": exc.created_at,
                        "resolved_at": exc.resolved_at,
                    }
                    if exc is not None
                    else None
                ),
            }
        ),
    )


def _card_events(session: Session, order: PaymentOrder) -> list[BankEvent]:
    """Card gateway events journaled for the order (the order id is in their metadata)."""
    until = (order.paid_at or utcnow()) + timedelta(days=1)
    found: list[BankEvent] = []
    for event in session.scalars(
        select(BankEvent)
        .where(
            BankEvent.agency_id == order.agency_id,
            BankEvent.source == "card",
            BankEvent.received_at >= order.created_at,
            BankEvent.received_at <= until,
        )
        .order_by(BankEvent.id)
    ):
        try:
            body = json.loads(event.raw)
            meta = body["data"]["object"]["metadata"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(meta, dict) and meta.get("order_id") == order.id:
            found.append(event)
    return found


def _fee_item(item: FeeItem | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {
        "id": item.id,
        "procedure_code": item.procedure.code,
        "procedure_name": item.procedure.name,
        "code": item.code,
        "kind": item.kind,
        "name": item.name,
        "amount": item.amount,
        "unit": item.unit,
        "max_amount": item.max_amount,
        "retention_percent": item.retention_percent,
        "legal_basis": item.legal_basis,
        "effective_from": item.effective_from,
        "effective_to": item.effective_to,
        "tariff": item.tariff,
    }


def _add_order(session: Session, bundle: _Bundle, order: PaymentOrder) -> list[BankCredit]:
    """Adds the order and the credits that paid it (or tried to); returns those credits."""
    if not bundle.first("order", order.id):
        return []
    credits = list(
        session.scalars(
            select(BankCredit)
            .where(
                or_(
                    BankCredit.order_id == order.id,
                    BankCredit.id.in_(
                        select(PaymentException.credit_id).where(
                            PaymentException.order_id == order.id
                        )
                    ),
                )
            )
            .order_by(BankCredit.booked_at, BankCredit.id)
        )
    )
    for credit in credits:
        _add_credit(session, bundle, credit)
    if order.payment_method == "card":
        for event in _card_events(session, order):
            _add_event(bundle, event)
    if order.payment_method == "cash":
        bundle.notes.append(
            f"order/order-{order.id}.json: thu tiền mặt tại quầy, không có dòng ngân hàng / "
            "cash at the counter: no bank line"
        )
    lines = []
    for line in sorted(order.lines, key=lambda x: x.position):
        lines.append(
            {
                "position": line.position,
                "fee_code": line.fee_code,
                "fee_name": line.fee_name,
                "kind": line.kind,
                "unit": line.unit,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "amount": line.amount,
                "retention_percent": line.retention_percent,
                "legal_basis": line.legal_basis,
                "exemption_category": line.exemption_category,
                "exemption_legal_basis": line.exemption_legal_basis,
                "pricing": line.pricing,
                "catalogue_item": _fee_item(session.get(FeeItem, line.fee_item_id)),
            }
        )
    bundle.add(
        f"order/order-{order.id}.json",
        _json(
            {
                "id": order.id,
                "agency_code": order.agency.code,
                "dossier_code": order.dossier_code,
                "procedure_code": order.procedure_code,
                "procedure_name": order.procedure_name,
                "reference": order.reference,
                "status": order.status,
                "amount": order.amount,
                "currency": "VND",
                "payer": order.payer,
                "created_at": order.created_at,
                "expires_at": order.expires_at,
                "paid_at": order.paid_at,
                "payment_method": order.payment_method,
                "collected_by": order.collected_by,
                "receipt_id": order.receipt_id,
                "vietqr_payload": order.vietqr_payload,
                "lines": lines,
            }
        ),
    )
    return credits


def _receipt_name(receipt: Receipt) -> str:
    return f"receipt/{receipt.template}-{receipt.series}-{receipt.number:08d}"


def _add_receipt(session: Session, settings: Settings, bundle: _Bundle, receipt: Receipt) -> None:
    if not bundle.first("receipt", receipt.id):
        return
    name = _receipt_name(receipt)
    bundle.add(f"{name}.xml", bytes(receipt.xml))
    bundle.add(f"{name}.pdf", display_copy(session, settings, receipt))


def _add_submission(bundle: _Bundle, sub: TaxSubmission) -> None:
    if not bundle.first("submission", sub.id):
        return
    name = f"tax/{sub.business_day.isoformat()}-{sub.supplement_no}-{sub.message_id}"
    bundle.add(f"{name}.xml", bytes(sub.xml))
    bundle.add(
        f"{name}-answer.json",
        _json(
            {
                "form": "01/TH-BLĐT",
                "business_day": sub.business_day,
                "supplement_no": sub.supplement_no,
                "message_id": sub.message_id,
                "status": sub.status,
                "reason": sub.reason,
                "late": sub.late,
                "total": sub.total,
                "created_at": sub.created_at,
                "sent_at": sub.sent_at,
                "answered_at": sub.answered_at,
            }
        ),
    )


def _add_close(bundle: _Bundle, close: DailyClose) -> None:
    if not bundle.first("close", close.id):
        return
    name = f"close/{close.business_day.isoformat()}-v{close.version}"
    if close.document is not None:
        bundle.add(f"{name}.xml", bytes(close.document))
        return
    bundle.add(
        f"{name}.json",
        _json(
            {
                "business_day": close.business_day,
                "version": close.version,
                "status": close.status,
                "watermark": close.watermark,
                "actor": close.actor,
                "totals": close.totals,
                "breaks_open": close.breaks_open,
                "signed": False,
            }
        ),
    )


@dataclass
class _AuditWanted:
    receipt_ids: set[str] = field(default_factory=set)
    credit_ids: set[str] = field(default_factory=set)
    order_ids: set[str] = field(default_factory=set)
    break_days: set[date] = field(default_factory=set)


def _audit_records(session: Session, agency_id: str, wanted: _AuditWanted) -> bytes:
    """Each audit record with the canonical text its seal digests and the seal itself."""
    tables = complete_metadata().tables
    keys: list[tuple[str, str]] = []
    if wanted.receipt_ids:
        ids = sorted(wanted.receipt_ids)
        keys += [
            ("receipt_audit_events", str(i))
            for i in session.scalars(
                select(ReceiptAuditEvent.id)
                .where(
                    or_(
                        ReceiptAuditEvent.receipt_id.in_(ids),
                        ReceiptAuditEvent.related_receipt_id.in_(ids),
                    )
                )
                .order_by(ReceiptAuditEvent.id)
            )
        ]
    if wanted.credit_ids:
        keys += [
            ("payment_exception_actions", str(i))
            for i in session.scalars(
                select(ExceptionAction.id)
                .join(PaymentException, PaymentException.id == ExceptionAction.exception_id)
                .where(PaymentException.credit_id.in_(sorted(wanted.credit_ids)))
                .order_by(ExceptionAction.id)
            )
        ]
    refs = wanted.receipt_ids | wanted.credit_ids | wanted.order_ids
    conditions = []
    if refs:
        conditions.append(ReconBreak.ref.in_(sorted(refs)))
    if wanted.break_days:
        conditions.append(ReconBreak.business_day.in_(sorted(wanted.break_days)))
    if conditions:
        keys += [
            ("recon_corrections", str(i))
            for i in session.scalars(
                select(Correction.id)
                .join(ReconBreak, ReconBreak.id == Correction.break_id)
                .where(ReconBreak.agency_id == agency_id, or_(*conditions))
                .order_by(Correction.requested_at, Correction.id)
            )
        ]
    records = []
    for source, key in keys:
        table = tables[source]
        key_column = table.c["id"]
        row = (
            session.execute(select(table).where(cast(key_column, String) == key)).mappings().first()
        )
        if row is None:  # pragma: no cover - the key was just read
            continue
        digest = row_hash(source, row)
        seal = session.scalar(
            select(AuditSeal).where(AuditSeal.source == source, AuditSeal.row_key == key)
        )
        records.append(
            {
                "source": source,
                "key": key,
                "canonical": canonical_record(source, row),
                "row_hash": digest,
                "seal": (
                    {
                        "seq": seal.seq,
                        "row_hash": seal.row_hash,
                        "prev_hash": seal.prev_hash,
                        "chain_hash": seal.chain_hash,
                        "sealed_at": seal.sealed_at,
                        "matches_record": seal.row_hash == digest,
                    }
                    if seal is not None
                    else None
                ),
            }
        )
    head = session.scalar(select(AuditSeal).order_by(AuditSeal.seq.desc()).limit(1))
    return _json(
        {
            "how_to_check": (
                "sha256(canonical as UTF-8) = row_hash; "
                "chain_hash = sha256(prev_hash + '|' + source + '|' + key + '|' + row_hash); "
                "seal null: written after the last seal (sealed every 5 minutes)"
            ),
            "chain_head": (
                {"seq": head.seq, "chain_hash": head.chain_hash, "sealed_at": head.sealed_at}
                if head is not None
                else None
            ),
            "records": records,
        }
    )


def _closes_for(
    session: Session, agency: Agency, recorded: Mapping[date, datetime]
) -> list[DailyClose]:
    """Close versions of each day made after the record of that day was written (they saw it)."""
    found: list[DailyClose] = []
    for day, since in sorted(recorded.items()):
        found += list(
            session.scalars(
                select(DailyClose)
                .where(
                    DailyClose.agency_id == agency.id,
                    DailyClose.business_day == day,
                    DailyClose.watermark >= since,
                )
                .order_by(DailyClose.version)
            )
        )
    return found


def _local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def _note_seen(recorded: dict[date, datetime], day: date, at: datetime) -> None:
    if day not in recorded or at < recorded[day]:
        recorded[day] = at


# --------------------------------------------------------------------------- manifest


def _text(parent: etree._Element, tag: str, value: str | None) -> etree._Element:
    el = etree.SubElement(parent, tag)
    if value:  # no empty text: the manifest must rebuild byte for byte (verify_evidence)
        el.text = value
    return el


def _manifest_data(
    agency: Agency,
    subject_kind: str,
    subject: str,
    members: Mapping[str, bytes],
    notes: list[str],
    certificate: x509.Certificate,
    now: datetime,
) -> etree._Element:
    data = etree.Element(DATA_TAG, Id=SIGNED_ID)
    _text(data, "PBan", FORMAT_VERSION)
    _text(data, "Loai", subject_kind)
    _text(data, "DoiTuong", subject)
    _text(data, "MST", agency.tax_code)
    _text(data, "TDVi", agency.name)
    _text(data, "MaDVi", agency.code)
    _text(data, "TGLap", now.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    cert = etree.SubElement(data, "CTS")
    _text(cert, "ChuThe", certificate.subject.rfc4514_string())
    _text(cert, "Seri", format(certificate.serial_number, "x"))
    _text(cert, "SHA256", _fingerprint(certificate))
    _text(data, "DLCNhan", PERSONAL_DATA_NOTE)
    _text(data, "BMat", SECRETS_NOTE)
    notes_el = etree.SubElement(data, "GChu")
    for note in notes:
        _text(notes_el, "Dong", note)
    files = etree.SubElement(data, "DSTep")
    for name, body in members.items():
        tep = etree.SubElement(files, "Tep")
        _text(tep, "Ten", name)
        _text(tep, "SHA256", _sha256(body))
        _text(tep, "KThuoc", str(len(body)))
    return data


def _envelope(data: etree._Element) -> etree._Element:
    root = etree.Element(ROOT_TAG)
    root.append(data)
    sig = etree.SubElement(etree.SubElement(root, "DSCKS"), "NLap")
    etree.SubElement(sig, f"{{{DS_NS}}}Signature", Id=PLACEHOLDER_ID, nsmap={"ds": DS_NS})
    return root


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _readme(subject: str, agency: Agency) -> bytes:
    text = f"""HỒ SƠ BẰNG CHỨNG / EVIDENCE BUNDLE
{subject}
{agency.name} (MST {agency.tax_code})

Kiểm tra không cần phần mềm của chúng tôi / Checking without our software
(Debian/Ubuntu: apt-get install unzip xmlsec1 coreutils):

  mkdir ev && cd ev && unzip -q ../FILE.zip
  # 1. Chữ ký của đơn vị trên manifest.xml / the agency's signature on the manifest
  xmlsec1 --verify --enabled-key-data x509 --trusted-pem CA.pem --id-attr:Id {DATA_TAG} manifest.xml
  #    (chứng thư thử nghiệm / development certificate: --insecure instead of --trusted-pem)
  # 2. SHA256SUMS là tệp manifest đã ký / SHA256SUMS is the one the signed manifest names
  H=$(sha256sum SHA256SUMS | cut -d' ' -f1)
  grep -c "<Ten>SHA256SUMS</Ten><SHA256>$H</SHA256>" manifest.xml     # prints 1
  # 3. Mọi tệp khác đúng từng byte / every other member is intact
  sha256sum -c SHA256SUMS
  # 4. Không thiếu, không thừa tệp / nothing missing, nothing added
  (cut -c67- SHA256SUMS; echo SHA256SUMS; echo manifest.xml) | sort > ../expected
  find . -type f | sed 's|^\\./||' | sort | diff ../expected -

Hoặc / or: motcua evidence verify FILE.zip   (exit 0: nguyên vẹn / intact)

{PERSONAL_DATA_NOTE}

{SECRETS_NOTE}

Nội dung / Contents: bank/ (dòng ngân hàng như đã ghi nhật ký / raw bank lines as journaled),
order/ (đơn thu, biểu phí / order, lines, tariff), receipt/ (XML gốc có ký số + PDF / signed XML
legal original + PDF display copy), tax/ (01/TH-BLĐT và phản hồi của CQT / summaries and the tax
authority's answer), close/ (biên bản đối soát có ký số / signed close reports), audit/ (nhật ký
và dấu niêm phong chuỗi băm / audit records with their hash-chain seals).
"""
    return text.encode("utf-8")


def _finish(
    session: Session,
    settings: Settings,
    agency: Agency,
    bundle: _Bundle,
    *,
    kind: str,
    subject: str,
    filename: str,
    now: datetime,
) -> EvidenceBundle:
    signer = signer_for(session, agency.id, settings)
    members: dict[str, bytes] = {README: _readme(subject, agency), **bundle.members}
    sums = "".join(f"{_sha256(body)}  {name}\n" for name, body in members.items())
    members[SUMS] = sums.encode("utf-8")
    data = _manifest_data(agency, kind, subject, members, bundle.notes, signer.key.certificate, now)
    root = sign_enveloped_fast(
        _envelope(data),
        signed_id=SIGNED_ID,
        key=signer.key,
        signing_time=now,
        tz=signer.zone,
        copy=False,
    )
    members[MANIFEST] = _serialise(root)
    out = io.BytesIO()
    stamp = now.astimezone(signer.zone).timetuple()[:6]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, body)
    return EvidenceBundle(out.getvalue(), filename, tuple(members))


# --------------------------------------------------------------------------- use cases


def _whole_chain(session: Session, receipt: Receipt) -> list[Receipt]:
    root, seen = receipt, {receipt.id}
    while root.replaces_id is not None and root.replaces_id not in seen and len(seen) < 50:
        previous = session.get(Receipt, root.replaces_id)
        if previous is None:
            break
        root = previous
        seen.add(root.id)
    return receipt_chain(session, root.id)


def receipt_evidence(
    session: Session,
    settings: Settings,
    receipt_id: str,
    *,
    agency_id: str | None = None,
    now: datetime | None = None,
) -> EvidenceBundle:
    """The trail of one receipt (with its whole replacement chain), signed by its agency.

    ``agency_id`` limits it to that agency's receipts (staff pages); ``None`` for the CLI.
    """
    now = now or utcnow()
    receipt = agency_receipt(session, receipt_id, agency_id)
    agency = session.get(Agency, receipt.agency_id)
    assert agency is not None
    zone = ZoneInfo(agency.time_zone)
    bundle = _Bundle()
    chain = _whole_chain(session, receipt)
    wanted = _AuditWanted(receipt_ids={r.id for r in chain})
    recorded: dict[date, datetime] = {}
    order = order_of_receipt(session, receipt)
    if order is not None:
        credits = _add_order(session, bundle, order)
        wanted.order_ids.add(order.id)
        if order.paid_at is not None:
            _note_seen(recorded, _local_day(order.paid_at, zone), order.paid_at)
        for credit in credits:
            wanted.credit_ids.add(credit.id)
            _note_seen(recorded, _local_day(credit.booked_at, zone), credit.created_at)
    for r in chain:
        _add_receipt(session, settings, bundle, r)
        _note_seen(recorded, _local_day(r.issued_at, zone), r.created_at)
    subs = session.scalars(
        select(TaxSubmission)
        .where(
            TaxSubmission.id.in_(
                select(TaxSubmissionRow.submission_id).where(
                    TaxSubmissionRow.receipt_id.in_([r.id for r in chain])
                )
            )
        )
        .order_by(TaxSubmission.business_day, TaxSubmission.supplement_no, TaxSubmission.created_at)
    )
    for sub in subs:
        _add_submission(bundle, sub)
    for close in _closes_for(session, agency, recorded):
        _add_close(bundle, close)
    bundle.add("audit/records.json", _audit_records(session, agency.id, wanted))
    subject = (
        f"Biên lai / receipt {receipt.template} {receipt.series} số {receipt.number} "
        f"(id {receipt.id})"
    )
    return _finish(
        session,
        settings,
        agency,
        bundle,
        kind="receipt",
        subject=subject,
        filename=(
            f"bang-chung-bien-lai-{receipt.template}-{receipt.series}-{receipt.number:08d}.zip"
        ),
        now=now,
    )


def day_evidence(
    session: Session,
    settings: Settings,
    agency_code: str,
    day: date,
    *,
    now: datetime | None = None,
) -> EvidenceBundle:
    """The trail of one business day: every credit booked, payment, receipt issued, summary
    and close version of the day, signed by the agency."""
    now = now or utcnow()
    agency = agency_by_code(session, agency_code)
    zone = ZoneInfo(agency.time_zone)
    if day > now.astimezone(zone).date():
        raise DayInFuture(f"{day} has not begun yet in {agency.time_zone}")
    bday = BusinessDay(day, zone)
    bundle = _Bundle()
    wanted = _AuditWanted(break_days={day})
    for credit in session.scalars(
        select(BankCredit)
        .where(
            BankCredit.agency_id == agency.id,
            BankCredit.booked_at >= bday.start_utc,
            BankCredit.booked_at < bday.end_utc,
        )
        .order_by(BankCredit.booked_at, BankCredit.id)
    ):
        _add_credit(session, bundle, credit)
        wanted.credit_ids.add(credit.id)
    for order in session.scalars(
        select(PaymentOrder)
        .where(
            PaymentOrder.agency_id == agency.id,
            PaymentOrder.paid_at >= bday.start_utc,
            PaymentOrder.paid_at < bday.end_utc,
        )
        .order_by(PaymentOrder.paid_at, PaymentOrder.id)
    ):
        for credit in _add_order(session, bundle, order):
            wanted.credit_ids.add(credit.id)
        wanted.order_ids.add(order.id)
    for receipt in session.scalars(
        select(Receipt)
        .where(
            Receipt.agency_id == agency.id,
            Receipt.issued_at >= bday.start_utc,
            Receipt.issued_at < bday.end_utc,
        )
        .order_by(Receipt.series, Receipt.number)
    ):
        _add_receipt(session, settings, bundle, receipt)
        wanted.receipt_ids.add(receipt.id)
    for sub in session.scalars(
        select(TaxSubmission)
        .where(TaxSubmission.agency_id == agency.id, TaxSubmission.business_day == day)
        .order_by(TaxSubmission.supplement_no, TaxSubmission.created_at)
    ):
        _add_submission(bundle, sub)
    for close in session.scalars(
        select(DailyClose)
        .where(DailyClose.agency_id == agency.id, DailyClose.business_day == day)
        .order_by(DailyClose.version)
    ):
        _add_close(bundle, close)
    bundle.add("audit/records.json", _audit_records(session, agency.id, wanted))
    return _finish(
        session,
        settings,
        agency,
        bundle,
        kind="day",
        subject=f"Ngày / business day {day.isoformat()} — {agency.code} ({bday.describe()})",
        filename=f"bang-chung-{agency.code}-{day.isoformat()}.zip",
        now=now,
    )


# --------------------------------------------------------------------------- verification


def _signed_members(data: etree._Element) -> list[tuple[str, str, int]]:
    files = data.find("DSTep")
    out: list[tuple[str, str, int]] = []
    if files is None:
        return out
    for tep in files.findall("Tep"):
        name = tep.findtext("Ten") or ""
        digest = (tep.findtext("SHA256") or "").lower()
        size = tep.findtext("KThuoc") or "-1"
        out.append((name, digest, int(size) if size.isdigit() else -1))
    return out


def _rebuilt(raw: bytes, signed: etree._Element, certificate: x509.Certificate) -> bytes | None:
    """The manifest as its signed content, certificate, signing time and signature value make
    it; any byte of the file outside the signed data that differs shows up here."""
    try:
        root = parse_untrusted(raw, what="manifest.xml", max_bytes=MAX_MANIFEST_BYTES)
    except UntrustedXmlError:
        return None
    ns = {"ds": DS_NS}
    value = root.findtext(".//ds:Signature/ds:SignatureValue", namespaces=ns)
    when = root.findtext(".//ds:Signature/ds:Object//SigningTime", namespaces=ns)
    if value is None or when is None:
        return None
    try:
        signing_time = datetime.strptime(when, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=VIETNAM_TZ)
        signature_value = b64decode(value)
    except ValueError:
        return None
    data = etree.fromstring(etree.tostring(signed))
    prepared = prepare(
        _envelope(data),
        signed_id=SIGNED_ID,
        certificate=certificate,
        signing_time=signing_time,
        tz=VIETNAM_TZ,
        copy=False,
    )
    return _serialise(finish(prepared, signature_value))


def verify_evidence(data: bytes, *, trusted_ca: x509.Certificate | None = None) -> EvidenceCheck:
    """Checks a bundle; every problem names the member it is about (``manifest.xml`` for the
    signature), the first one first."""

    def failed(*problems: EvidenceProblem, **kw: Any) -> EvidenceCheck:
        return EvidenceCheck(problems=problems, **kw)

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return failed(EvidenceProblem("(archive)", f"not a readable ZIP archive: {exc}"))
    if len(infos) > MAX_MEMBERS:
        return failed(EvidenceProblem("(archive)", f"more than {MAX_MEMBERS} members"))
    names: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.is_dir():
            continue
        if info.filename in names:
            return failed(EvidenceProblem(info.filename, "appears twice in the archive"))
        if info.file_size > MAX_MEMBER_BYTES:
            return failed(EvidenceProblem(info.filename, "larger than any evidence member"))
        names[info.filename] = info

    def read(name: str) -> bytes | EvidenceProblem:
        try:
            return archive.read(names[name])
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            return EvidenceProblem(name, f"unreadable in the archive ({exc})")

    if MANIFEST not in names:
        return failed(EvidenceProblem(MANIFEST, "missing: the signed manifest is not there"))
    if names[MANIFEST].file_size > MAX_MANIFEST_BYTES:
        return failed(EvidenceProblem(MANIFEST, "too large"))
    raw = read(MANIFEST)
    if isinstance(raw, EvidenceProblem):
        return failed(raw)
    try:
        status = verify_enveloped(raw, trusted_ca=trusted_ca, max_bytes=MAX_MANIFEST_BYTES)
    except ValueError as exc:  # e.g. a certificate whose unsigned fields no longer parse
        return failed(EvidenceProblem(MANIFEST, f"signature broken: unreadable ({exc})"))
    if not status.valid or status.signed_element is None or status.certificate is None:
        why = "; ".join(status.problems) or "not valid"
        return failed(EvidenceProblem(MANIFEST, f"signature broken: {why}"))
    signed = status.signed_element
    info_kw: dict[str, Any] = {
        "signer": status.signer_common_name,
        "tax_code": status.tax_code,
        "signing_time": status.signing_time,
        "development": status.development,
        "subject": signed.findtext("DoiTuong"),
    }
    if signed.tag != DATA_TAG or signed.findtext("PBan") != FORMAT_VERSION:
        return failed(EvidenceProblem(MANIFEST, "not an evidence manifest"), **info_kw)
    if signed.findtext("CTS/SHA256") != _fingerprint(status.certificate):
        return failed(
            EvidenceProblem(MANIFEST, "the certificate is not the one the manifest names"),
            **info_kw,
        )
    if status.tax_code is not None and status.tax_code != signed.findtext("MST"):
        return failed(
            EvidenceProblem(MANIFEST, "signed by a certificate of another tax code"), **info_kw
        )
    if _rebuilt(raw, signed, status.certificate) != raw:
        return failed(
            EvidenceProblem(MANIFEST, "changed outside its signed data (signature block)"),
            **info_kw,
        )
    problems: list[EvidenceProblem] = []
    listed = _signed_members(signed)
    listed_names = {name for name, _, _ in listed}
    for name, digest, size in listed:
        if name not in names:
            problems.append(EvidenceProblem(name, "missing from the archive"))
            continue
        body = read(name)
        if isinstance(body, EvidenceProblem):
            problems.append(body)
            continue
        if len(body) != size or _sha256(body) != digest:
            problems.append(
                EvidenceProblem(
                    name,
                    f"changed: SHA-256 {_sha256(body)} ≠ {digest} signed in the manifest",
                )
            )
    for name in names:
        if name != MANIFEST and name not in listed_names:
            problems.append(EvidenceProblem(name, "extra member: not in the signed manifest"))
    return failed(*problems, members=len(listed), **info_kw)
