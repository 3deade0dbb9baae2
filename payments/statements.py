"""Bank statement files (camt.053, MT940, CSV) read into one shape, :class:`Statement`.

Webhooks are missed sometimes; the bank's daily statement is the source of truth (domain.md).
Each parser turns a file into :class:`Statement` objects whose :class:`StatementLine` carries the
**bank's own reference**, the same one a SePay or Casso webhook reports, so a credit seen by
both is recognised as one. Whatever the format, the same transaction gives an equal
``StatementLine`` (``raw``, the format-specific detail, is left out of equality).

Rules shared by every parser, because a statement drives money decisions:

* the whole file is accepted or rejected: :class:`~payments.errors.InvalidInput` with code
  ``statement_malformed`` naming the line or entry, or ``statement_currency`` for anything but
  VND (an agency's fee account is a VND account; a foreign-currency line is never a fee);
* VND has no minor unit: ``6000``, ``6000.00`` and MT940's ``6000,`` are accepted,
  ``6000.50`` is refused rather than rounded;
* files larger than :data:`MAX_STATEMENT_BYTES` are refused before parsing;
* amounts are positive integers with a separate ``incoming`` flag; times are aware, in the
  agency's zone.

Re-importing is the caller's concern: :func:`statement_fingerprint` identifies the file, and
bank references identify lines.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from typing import Any, ClassVar

import mt940
from lxml import etree

from payments.errors import InvalidInput
from settings.untrusted_xml import UntrustedXmlError, hardened_parser, parse_untrusted

__all__ = [
    "CSV_COLUMNS",
    "CSV_OPTIONAL_COLUMNS",
    "MAX_STATEMENT_BYTES",
    "STATEMENT_FORMATS",
    "Statement",
    "StatementLine",
    "line_fingerprint",
    "parse_camt053",
    "parse_csv",
    "parse_mt940",
    "parse_statement_file",
    "statement_fingerprint",
]

#: A busy agency account has a few thousand lines a day; 50 MB is months of them.
MAX_STATEMENT_BYTES = 50 * 1024 * 1024
CURRENCY = "VND"
STATEMENT_FORMATS = ("camt053", "mt940", "csv")

#: The documented CSV export: these columns (any order), header row first.
CSV_COLUMNS = ("account_number", "booked_at", "bank_reference", "amount", "direction", "memo")
#: Optional CSV columns: ``value_date`` (YYYY-MM-DD, defaults to the booking date) and
#: ``currency`` (defaults to VND; anything else is refused).
CSV_OPTIONAL_COLUMNS = ("value_date", "currency")
_CSV_MAX_ERRORS = 50


@dataclass(frozen=True)
class StatementLine:
    """One booked movement on the account.

    ``bank_reference`` is the bank's transaction reference (camt ``AcctSvcrRef``, MT940 ``:61:``
    bank reference): the key shared with webhooks. ``raw`` keeps what the file said, for staff and
    audits; it is excluded from equality so the same transaction compares equal across formats.
    """

    bank_reference: str
    booked_at: datetime
    value_date: date
    amount: int
    incoming: bool
    memo: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Statement:
    """One account's statement for a period.

    Balances are signed whole dong when the file gives them (camt ``OPBD``/``CLBD``, MT940
    ``:60F:``/``:62F:``), else ``None``; CSV exports have none. Parsers do not enforce
    :attr:`balances_consistent`; the daily close may.
    """

    account_number: str
    currency: str
    opening_date: date
    closing_date: date
    lines: list[StatementLine]
    statement_id: str | None = None
    opening_balance: int | None = None
    closing_balance: int | None = None
    #: What the parser had to do that staff should know: a fingerprint used for a line without
    #: any bank reference, a line skipped as unreadable (only when the file states no balances
    #: that would prove it mattered). Shown in the import result.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def balances_consistent(self) -> bool | None:
        """Opening balance plus the lines equals the closing balance; ``None`` if unknown."""
        if self.opening_balance is None or self.closing_balance is None:
            return None
        net = sum(line.amount if line.incoming else -line.amount for line in self.lines)
        return self.opening_balance + net == self.closing_balance


# --- shared helpers -------------------------------------------------------------------------


def _malformed(detail: str, **extra: object) -> InvalidInput:
    return InvalidInput(detail, code="statement_malformed", extra=dict(extra) or None)


def _untrustworthy(detail: str) -> InvalidInput:
    """A problem that makes the whole file untrustworthy (its stated totals disagree): never
    skipped as one bad line."""
    return InvalidInput(detail, code="statement_malformed", extra={"whole_file": True})


def _currency_error(detail: str) -> InvalidInput:
    return InvalidInput(detail, code="statement_currency")


def _check_size(data: bytes, what: str) -> None:
    if len(data) > MAX_STATEMENT_BYTES:
        raise _malformed(
            f"{what} file is {len(data)} bytes, more than the {MAX_STATEMENT_BYTES} allowed"
        )
    if not data.strip():
        raise _malformed(f"{what} file is empty")


def _decode(data: bytes, what: str) -> str:
    """UTF-8 with or without BOM; strict, so a wrongly encoded file fails naming its line."""
    _check_size(data, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _malformed(f"{what} line {line}: not UTF-8 text (byte {exc.start})") from exc


def _whole_vnd(value: Decimal, where: str) -> int:
    if not value.is_finite():
        raise _malformed(f"{where}: amount {value} is not a number")
    if value != value.to_integral_value():
        raise _malformed(
            f"{where}: amount {value} VND has a fractional part; VND has no minor unit"
        )
    return int(value)


_DECIMAL = re.compile(r"^[0-9]{1,18}(?:\.[0-9]{1,5})?$")


def _vnd_text(text: str | None, where: str) -> int:
    """``"6000"`` or ``"6000.00"`` -> 6000; refuses signs, exponents and ``"6000.50"``."""
    value = (text or "").strip()
    if not _DECIMAL.match(value):
        raise _malformed(f"{where}: amount {text!r} is not a plain decimal number")
    return _whole_vnd(Decimal(value), where)


def _at_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=zone)


def _local(moment: datetime, zone: tzinfo) -> datetime:
    """Naive times in a statement are bank-local; aware ones are converted to the agency zone."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=zone)
    return moment.astimezone(zone)


def statement_fingerprint(data: bytes) -> str:
    """SHA-256 of the file's bytes (hex): the caller refuses or no-ops a second import of it."""
    return hashlib.sha256(data).hexdigest()


# --- camt.053 -------------------------------------------------------------------------------

_xml_parser = hardened_parser
"""The parser camt.053 is read with (the service's one hardened parser; tests reach it here)."""


def _parse_xml(data: bytes) -> etree._Element:
    _check_size(data, "camt.053")
    head = data[:4]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        # ISO 20022 messages are UTF-8: a format rule, said as such rather than as "unsafe".
        raise _malformed("camt.053 must be UTF-8 encoded XML")
    try:
        # Comments and processing instructions are dropped: they would split an element's text
        # (``Ustrd``, references) and a statement is never signed.
        return parse_untrusted(
            data, what="camt.053", max_bytes=MAX_STATEMENT_BYTES, strip_comments=True
        )
    except UntrustedXmlError as exc:
        raise _malformed(str(exc)) from exc


def _local_name(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _kids(element: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in element if _local_name(child) == name]


def _find(element: etree._Element | None, path: str) -> etree._Element | None:
    """First element along ``A/B/C`` by local name, whatever the camt.053 version's namespace."""
    current = element
    for name in path.split("/"):
        if current is None:
            return None
        found = _kids(current, name)
        current = found[0] if found else None
    return current


def _findall(element: etree._Element, path: str) -> list[etree._Element]:
    """Every element along ``A/B/C`` by local name (a batch entry has several ``TxDtls``)."""
    nodes = [element]
    for name in path.split("/"):
        nodes = [kid for node in nodes for kid in _kids(node, name)]
    return nodes


def _text(element: etree._Element | None, path: str | None = None) -> str | None:
    node = _find(element, path) if path else element
    if node is None or node.text is None:
        return None
    value = node.text.strip()
    return value or None


def _camt_amount(element: etree._Element | None, where: str) -> int:
    if element is None:
        raise _malformed(f"{where}: no Amt")
    currency = (element.get("Ccy") or "").strip().upper()
    if not currency:
        raise _malformed(f"{where}: Amt has no Ccy attribute")
    if currency != CURRENCY:
        raise _currency_error(f"{where}: amount in {currency}; only {CURRENCY} is accepted")
    return _vnd_text(element.text, where)


def _camt_direction(element: etree._Element, where: str) -> bool:
    indicator = _text(element, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise _malformed(f"{where}: CdtDbtInd must be CRDT or DBIT, not {indicator!r}")
    return indicator == "CRDT"


def _camt_date(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text[:10])
    except ValueError as exc:
        raise _malformed(f"{where}: {text!r} is not a date") from exc


def _camt_moment(holder: etree._Element | None, zone: tzinfo, where: str) -> datetime | None:
    """``DtTm`` (offset or bank-local) or ``Dt`` (midnight, agency zone) inside ``holder``."""
    if holder is None:
        return None
    stamp = _text(holder, "DtTm")
    if stamp is not None:
        try:
            return _local(datetime.fromisoformat(stamp), zone)
        except ValueError as exc:
            raise _malformed(f"{where}: {stamp!r} is not a date-time") from exc
    day = _text(holder, "Dt")
    if day is not None:
        return _at_midnight(_camt_date(day, where), zone)
    return None


def _ustrd(tx: etree._Element | None) -> str:
    if tx is None:
        return ""
    parts = [_text(node) or "" for node in _findall(tx, "RmtInf/Ustrd")]
    return " ".join(part for part in parts if part)


#: Values banks put in a reference field that mean "there is none".
_PLACEHOLDER_REFS = frozenset({"NOTPROVIDED", "NONREF", "NONE", "NULL", "N/A", "NA", "-", "0"})
#: A reference shorter than this is a position within the file (NtryRef "1", "2", ...), not a
#: key that tells one day's transfer from another's; used as a dedup key it would silently
#: swallow tomorrow's entry 1 as a duplicate of today's.
_MIN_REFERENCE_LENGTH = 6


def _usable_reference(value: str | None, *, fallback: bool = False) -> str | None:
    """``value`` if it can identify a transfer. ``AcctSvcrRef``/``EndToEndId`` are taken as
    before issue 18 (any non-placeholder text, so references already journaled stay the
    same); the newer ``fallback`` fields (``NtryRef``, ``TxId``) must also be long enough not
    to be a mere position in the file."""
    if not value:
        return None
    value = value.strip()
    if value.upper() in _PLACEHOLDER_REFS or len(value) > 128:
        return None
    if fallback and len(value) < _MIN_REFERENCE_LENGTH:
        return None
    return value


def _tx_reference(tx: etree._Element | None) -> str | None:
    """The transaction's own reference: ``AcctSvcrRef``, else a non-placeholder ``EndToEndId``
    (the order kept from before issue 18, so references already journaled stay the same), else
    ``TxId``."""
    if tx is None:
        return None
    return (
        _usable_reference(_text(tx, "Refs/AcctSvcrRef"))
        or _usable_reference(_text(tx, "Refs/EndToEndId"))
        or _usable_reference(_text(tx, "Refs/TxId"), fallback=True)
    )


def line_fingerprint(
    account: str, booked: date, amount: int, incoming: bool, memo: str, occurrence: int
) -> str:
    """A stable stand-in reference for a line the bank gave no reference: the same line of the
    same file gives the same key on every import, so re-importing adds nothing.

    ``occurrence`` counts earlier lines of the file with the same account, day, amount,
    direction and memo (two identical transfers the same day stay two), rather than the line's
    position in the file, so an overlapping statement that adds other lines before it still
    gives the same key.
    """
    text = "\x1f".join(
        (account, booked.isoformat(), str(amount), "C" if incoming else "D", memo, str(occurrence))
    )
    return "fp-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _status(entry: etree._Element) -> str | None:
    node = _find(entry, "Sts")
    if node is None:
        return None
    # camt.053.001.02: <Sts>BOOK</Sts>; .08 and later: <Sts><Cd>BOOK</Cd></Sts>.
    return _text(node, "Cd") or _text(node, "Prtry") or _text(node)


def _party(tx: etree._Element | None, role: str) -> str | None:
    if tx is None:
        return None
    return _text(tx, f"RltdPties/{role}/Nm") or _text(tx, f"RltdPties/{role}/Pty/Nm")


def _camt_entry_lines(
    entry: etree._Element, where: str, statement_id: str | None, index: int, zone: tzinfo
) -> list[StatementLine]:
    amount = _camt_amount(_find(entry, "Amt"), where)
    if amount <= 0:
        raise _malformed(f"{where}: amount must be positive")
    incoming = _camt_direction(entry, where)
    booked = _camt_moment(_find(entry, "BookgDt"), zone, where)
    value_moment = _camt_moment(_find(entry, "ValDt"), zone, where)
    if booked is None:
        booked = value_moment
    if booked is None:
        raise _malformed(f"{where}: no BookgDt (nor ValDt)")
    value_date = value_moment.date() if value_moment is not None else booked.date()
    txs = _findall(entry, "NtryDtls/TxDtls")
    entry_ref = _text(entry, "AcctSvcrRef")
    base_raw: dict[str, Any] = {
        "format": "camt053",
        "statement_id": statement_id,
        "entry": index,
        "entry_ref": _text(entry, "NtryRef"),
        "acct_svcr_ref": entry_ref,
        "status": _status(entry),
        "reversal": (_text(entry, "RvslInd") or "").lower() in ("true", "1"),
        "entry_amount": _text(entry, "Amt"),
        "additional_info": _text(entry, "AddtlNtryInf"),
    }

    if len(txs) <= 1:
        tx = txs[0] if txs else None
        reference = (
            _usable_reference(entry_ref)
            or _usable_reference(_text(tx, "Refs/AcctSvcrRef"))
            or _usable_reference(_text(tx, "Refs/EndToEndId"))
            or _usable_reference(_text(entry, "NtryRef"), fallback=True)
            or _usable_reference(_text(tx, "Refs/TxId"), fallback=True)
            or ""  # none at all: parse_camt053 gives the line a fingerprint and a warning
        )
        memo = _ustrd(tx) or _text(entry, "AddtlNtryInf") or _text(tx, "AddtlTxInf") or ""
        raw = base_raw | {
            "end_to_end_id": _text(tx, "Refs/EndToEndId"),
            "tx_id": _text(tx, "Refs/TxId"),
            "debtor": _party(tx, "Dbtr"),
            "creditor": _party(tx, "Cdtr"),
        }
        return [StatementLine(reference, booked, value_date, amount, incoming, memo, raw)]

    # A batch booking: one entry, several transfers. Each is its own credit (its own memo and
    # reference), so split it, and insist that the parts add up to the entry.
    lines: list[StatementLine] = []
    net = 0
    for position, tx in enumerate(txs, start=1):
        tx_where = f"{where}, transaction {position}"
        # (never ``a or b`` on lxml elements: an element without children is falsy)
        amount_node = _find(tx, "Amt")
        if amount_node is None:
            amount_node = _find(tx, "AmtDtls/TxAmt/Amt")
        tx_amount = _camt_amount(amount_node, tx_where)
        if tx_amount <= 0:
            raise _malformed(f"{tx_where}: amount must be positive")
        tx_incoming = (
            _camt_direction(tx, tx_where) if _find(tx, "CdtDbtInd") is not None else incoming
        )
        reference = _tx_reference(tx) or ""  # fingerprinted by parse_camt053 when empty
        net += tx_amount if tx_incoming == incoming else -tx_amount
        raw = base_raw | {
            "transaction": position,
            "end_to_end_id": _text(tx, "Refs/EndToEndId"),
            "tx_id": _text(tx, "Refs/TxId"),
            "debtor": _party(tx, "Dbtr"),
            "creditor": _party(tx, "Cdtr"),
        }
        memo = _ustrd(tx) or _text(tx, "AddtlTxInf") or ""
        lines.append(
            StatementLine(reference, booked, value_date, tx_amount, tx_incoming, memo, raw)
        )
    if net != amount:
        raise _untrustworthy(f"{where}: its transactions add up to {net}, the entry says {amount}")
    return lines


def _camt_balance(
    stmt: etree._Element, codes: Sequence[str], where: str
) -> tuple[int, date] | None:
    for balance in _kids(stmt, "Bal"):
        code = _text(balance, "Tp/CdOrPrtry/Cd") or _text(balance, "Tp/CdOrPrtry/Prtry")
        if code not in codes:
            continue
        balance_where = f"{where}, balance {code}"
        amount = _camt_amount(_find(balance, "Amt"), balance_where)
        signed = amount if _camt_direction(balance, balance_where) else -amount
        day_text = _text(balance, "Dt/Dt") or _text(balance, "Dt/DtTm")
        if day_text is None:
            raise _malformed(f"{balance_where}: no date")
        return signed, _camt_date(day_text, balance_where)
    return None


def _period_day(stamp: str | None, zone: tzinfo, where: str) -> date | None:
    if stamp is None:
        return None
    try:
        return _local(datetime.fromisoformat(stamp), zone).date()
    except ValueError as exc:
        raise _malformed(f"{where}: FrToDt {stamp!r} is not a date-time") from exc


def parse_camt053(data: bytes, zone: tzinfo) -> list[Statement]:
    """ISO 20022 ``camt.053`` (001.02 to 001.13): elements are found by local name, so the
    version's namespace does not matter, and the XML is read with DTDs, entities and network
    access off (a DOCTYPE is refused).

    Only booked entries (``Sts`` ``BOOK``, or no status) become lines: pending or
    information-only entries are not money on the account.
    """
    root = _parse_xml(data)
    namespace = etree.QName(root).namespace or ""
    if _local_name(root) != "Document" or (namespace and "camt.053" not in namespace):
        raise _malformed(f"not a camt.053 document (root {root.tag!r})")
    container = _find(root, "BkToCstmrStmt")
    statements_xml = _kids(container, "Stmt") if container is not None else []
    if not statements_xml:
        raise _malformed("camt.053 has no BkToCstmrStmt/Stmt")

    statements: list[Statement] = []
    for number, stmt in enumerate(statements_xml, start=1):
        statement_id = _text(stmt, "Id")
        where = f"statement {statement_id or number}"
        account = _text(stmt, "Acct/Id/IBAN") or _text(stmt, "Acct/Id/Othr/Id")
        if not account:
            raise _malformed(f"{where}: no Acct/Id (IBAN or Othr/Id)")
        account_currency = (_text(stmt, "Acct/Ccy") or CURRENCY).upper()
        if account_currency != CURRENCY:
            raise _currency_error(f"{where}: account currency is {account_currency}")

        lines: list[StatementLine] = []
        skipped: list[str] = []
        for index, entry in enumerate(_kids(stmt, "Ntry"), start=1):
            reference = _text(entry, "AcctSvcrRef")
            entry_ref = _text(entry, "NtryRef")
            entry_where = f"{where}, entry {index}" + (
                f" ({reference})" if reference else f" (NtryRef {entry_ref})" if entry_ref else ""
            )
            status = _status(entry)
            if status is not None and status.upper() != "BOOK":
                continue
            try:
                lines.extend(_camt_entry_lines(entry, entry_where, statement_id, index, zone))
            except InvalidInput as exc:
                # One unreadable entry does not sink the file (issue 18)... unless it is about
                # money in another currency or totals that disagree: then nothing is trusted.
                if exc.code != "statement_malformed" or exc.extra.get("whole_file"):
                    raise
                skipped.append(exc.detail)
        lines, warnings = _fingerprint_missing(account, lines)
        opening_stated = _camt_balance(stmt, ("OPBD", "PRCD"), where)
        closing_stated = _camt_balance(stmt, ("CLBD",), where)
        if skipped:
            if opening_stated is not None and closing_stated is not None:
                raise _untrustworthy(
                    "; ".join(skipped) + f" — {where} states opening and closing balances, so "
                    "the file cannot be imported without this entry"
                )
            warnings = [f"skipped: {detail}" for detail in skipped] + warnings

        # OPBD is today's opening balance; PRCD (the previous closing) has the same amount but
        # yesterday's date, so it only dates the statement when nothing else does.
        opening = _camt_balance(stmt, ("OPBD",), where)
        previous = _camt_balance(stmt, ("PRCD",), where) if opening is None else None
        closing = _camt_balance(stmt, ("CLBD",), where)
        line_days = sorted(line.booked_at.date() for line in lines)
        opening_date = (
            (opening[1] if opening else None)
            or _period_day(_text(stmt, "FrToDt/FrDtTm"), zone, where)
            or (line_days[0] if line_days else None)
            or (previous[1] if previous else None)
        )
        closing_date = (
            (closing[1] if closing else None)
            or _period_day(_text(stmt, "FrToDt/ToDtTm"), zone, where)
            or (line_days[-1] if line_days else None)
            or opening_date
        )
        if opening is None:
            opening = previous
        if opening_date is None or closing_date is None:
            raise _malformed(f"{where}: no balances, period or entries to date it by")
        statements.append(
            Statement(
                account_number=account,
                currency=CURRENCY,
                opening_date=opening_date,
                closing_date=closing_date,
                lines=lines,
                statement_id=statement_id,
                opening_balance=opening[0] if opening else None,
                closing_balance=closing[0] if closing else None,
                warnings=tuple(warnings),
            )
        )
    return statements


def _fingerprint_missing(
    account: str, lines: list[StatementLine]
) -> tuple[list[StatementLine], list[str]]:
    """Gives every line without a bank reference its :func:`line_fingerprint`, with a warning
    naming it (such a line is never matched to a webhook that reported the same transfer)."""
    seen: dict[tuple[date, int, bool, str], int] = {}
    result: list[StatementLine] = []
    warnings: list[str] = []
    for line in lines:
        key = (line.booked_at.date(), line.amount, line.incoming, line.memo)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        if line.bank_reference:
            result.append(line)
            continue
        reference = line_fingerprint(account, *key, occurrence)
        where = f"entry {line.raw.get('entry')}" + (
            f", transaction {line.raw['transaction']}" if "transaction" in line.raw else ""
        )
        warnings.append(
            f"{where}: no bank reference (AcctSvcrRef, EndToEndId, NtryRef, TxId); "
            f"identified by fingerprint {reference}"
        )
        result.append(dataclasses.replace(line, bank_reference=reference))
    return result, warnings


# --- MT940 ----------------------------------------------------------------------------------

_MT940_OPTIONS = mt940.Options(
    reversal_sign=True,
    case_insensitive_marks=True,
    unbounded_details=True,
    strip_bom=True,
    merge_keeps_values=True,
)
_STATEMENT_START = re.compile(r"(?m)^:20:")


class _StatementNumber(mt940.tags.StatementNumber):
    """``:28C:`` read as free text (the slug stays ``statement_number``).

    SWIFT says ``5n[/5n]``, but banks write ``:28C:STMT325/001``, an eleven-digit date-based
    number or ``00001/00001/1``: the library refuses the whole file for a field we never use to
    decide anything (issue 18). Any 1-35 characters are kept as they are, for the raw record.
    """

    pattern: ClassVar[str] = r"""^
    (?P<statement_number>[^/\n]{1,35}?)
    (?:/(?P<sequence_number>[^\n]{0,35}))?
    $"""


_MT940_TAGS: dict[int | str, mt940.tags.Tag] = {28: _StatementNumber()}

# SWIFT FIN envelope around a message: {1:basic}{2:application}{3:{user}} then the text block
# {4: ... -} and the trailer {5:{CHK:...}}. Only block 4 is the statement. The header is cut
# from the start of its line and the trailer replaced by MT940's own "-" terminator, so line
# numbers in error messages still point into the file as uploaded.
_SWIFT_HEADER = re.compile(
    r"(?m)^[ \t]*\{1:[^{}\n]*\}(?:\{2:[^{}\n]*\})?(?:\{3:(?:\{[^{}\n]*\})*\})?\{4:[ \t]*"
)
_SWIFT_TRAILER = re.compile(r"(?m)-\}(?:\{[0-9A-Z]{1,3}:(?:\{[^{}\n]*\}|[^{}\n])*\})*[ \t]*$")
_SWIFT_BLOCK4_ONLY = re.compile(r"(?m)^[ \t]*\{4:[ \t]*")


def _unwrap_swift(text: str) -> str:
    """The MT940 text with any SWIFT FIN block wrappers ``{1:}{2:}{3:}{4:`` ... ``-}{5:}``
    removed; a file without them is returned unchanged.

    Left in, the trailer ``-}`` would be read as part of the last ``:86:`` memo, and a header
    on the same line as ``:20:`` hides the statement start. A header without its ``-}`` (or the
    other way round) is a truncated or mangled file and is refused.
    """
    headers = len(_SWIFT_HEADER.findall(text)) or len(_SWIFT_BLOCK4_ONLY.findall(text))
    trailers = len(_SWIFT_TRAILER.findall(text))
    if not headers and not trailers:
        return text
    if headers != trailers:
        raise _malformed(
            f"MT940: {headers} SWIFT message header(s) {{1:..}}{{4: but {trailers} "
            "end(s) -} (truncated or mangled file?)"
        )
    text = _SWIFT_HEADER.sub("", text)
    text = _SWIFT_BLOCK4_ONLY.sub("", text)
    return _SWIFT_TRAILER.sub("-", text)


def _mt940_line_of(text: str, needle: str) -> int | None:
    position = text.find(needle) if needle else -1
    return text.count("\n", 0, position) + 1 if position >= 0 else None


def _mt940_amount(amount: object, where: str) -> int:
    """A signed :class:`mt940.models.Amount` as whole dong, VND only."""
    if not isinstance(amount, mt940.models.Amount):
        raise _malformed(f"{where}: no amount")
    currency = str(amount.currency or "").upper()
    if currency != CURRENCY:
        raise _currency_error(f"{where}: amount in {currency or '?'}; only VND is accepted")
    return _whole_vnd(Decimal(amount.amount), where)


def _mt940_balance(balance: object, where: str, tag: str) -> tuple[int, date]:
    if not isinstance(balance, mt940.models.Balance) or balance.date is None:
        raise _malformed(f"{where}: {tag} balance is incomplete")
    value = _mt940_amount(balance.amount, f"{where}, {tag} balance")
    day = balance.date
    return value, date(day.year, day.month, day.day)


_MT940_61_AMOUNT = re.compile(r"^:61:\d{6}(?:\d{4})?R?[CD][A-Z]?([0-9,]+)")
"""The amount field of a ``:61:`` line: date, optional entry date, mark, funds code, amount."""


def _mt940_account(identification: str) -> str:
    # ":25:ICBVVNVX/113000012345" (BIC/account) or plain "113000012345"; some banks add a
    # currency suffix after a space.
    account = identification.strip().rsplit("/", 1)[-1].strip()
    return account.split()[0] if account else account


def parse_mt940(data: bytes, zone: tzinfo) -> list[Statement]:
    """SWIFT MT940 via the ``mt940`` library: ``:25:`` account, ``:60F:``/``:62F:`` balances,
    ``:61:`` lines, ``:86:`` memo.

    * The bank reference is the ``:61:`` bank reference (after ``//``), else the customer
      reference unless it is ``NONREF``.
    * ``:86:`` is wrapped at 65 characters by the bank; the line breaks are not part of the memo
      and are removed without adding a space (a reference broken across lines is rejoined).
    * MT940 has booking *dates* only: ``booked_at`` is the entry date (else the value date) at
      00:00 in ``zone``.
    * ``C`` and ``RD`` (reversed debit) are incoming; ``D`` and ``RC`` are outgoing.
    * A statement without ``:25:``, ``:60F:`` or ``:62F:`` is refused: that is how a truncated
      file shows.
    """
    text = _unwrap_swift(_decode(data, "MT940").replace("\r\n", "\n").replace("\r", "\n"))
    if not _STATEMENT_START.search(text):
        raise _malformed("no MT940 statement found (no line starting with :20:)")
    for number, raw_line in enumerate(text.split("\n"), start=1):
        # SWIFT caps :61: amounts at 15 characters; the library silently cuts a longer one
        # and reads the rest as the reference, so a mangled line would become a wrong credit
        # (found by the hostile-input tests of issue 7).
        match = _MT940_61_AMOUNT.match(raw_line)
        if match and len(match.group(1)) > 15:
            raise _malformed(f"MT940 line {number}: :61: amount longer than 15 characters")
    try:
        # A file object, never the text itself: mt940 reads a str that happens to name an
        # existing path *as that file*, which an uploaded statement must not be able to do.
        blocks = mt940.parse_statements(io.StringIO(text), tags=_MT940_TAGS, options=_MT940_OPTIONS)
    except Exception as exc:  # an untrusted file can make the library fail in many ways
        detail = str(exc.args[0]) if exc.args else type(exc).__name__
        bad = exc.args[2] if len(exc.args) > 2 and isinstance(exc.args[2], str) else ""
        line = _mt940_line_of(text, bad)
        where = f"MT940 line {line}" if line else "MT940"
        raise _malformed(f"{where}: cannot be parsed ({detail})") from exc
    if not blocks:
        raise _malformed("no MT940 statement found")

    statements: list[Statement] = []
    for number, block in enumerate(blocks, start=1):
        info = block.data
        reference = str(info.get("transaction_reference") or "").strip()
        where = f"statement {number}" + (f" (:20:{reference})" if reference else "")
        account = _mt940_account(str(info.get("account_identification") or ""))
        if not account:
            raise _malformed(f"{where}: no :25: account identification")
        opening_raw = info.get("final_opening_balance") or info.get("intermediate_opening_balance")
        closing_raw = info.get("final_closing_balance") or info.get("intermediate_closing_balance")
        if opening_raw is None:
            raise _malformed(f"{where}: no :60F: (or :60M:) opening balance")
        if closing_raw is None:
            raise _malformed(f"{where}: no :62F: (or :62M:) closing balance (truncated file?)")
        # :60M:/:62M: are the intermediate balances of a statement split over several
        # messages (page 1 ends :62M:, page 2 opens :60M:): each page balances on its own.
        opening_tag = ":60F:" if info.get("final_opening_balance") else ":60M:"
        closing_tag = ":62F:" if info.get("final_closing_balance") else ":62M:"
        opening = _mt940_balance(opening_raw, where, opening_tag)
        closing = _mt940_balance(closing_raw, where, closing_tag)

        lines: list[StatementLine] = []
        for index, transaction in enumerate(block, start=1):
            tx = transaction.data
            bank_ref = str(tx.get("bank_reference") or "").strip()
            customer_ref = str(tx.get("customer_reference") or "").strip()
            line_ref = bank_ref or customer_ref
            line_where = f"{where}, :61: line {index}" + (f" ({line_ref})" if line_ref else "")
            if not bank_ref and customer_ref.upper() != "NONREF":
                bank_ref = customer_ref
            if not bank_ref:
                raise _malformed(f"{line_where}: no bank reference")
            amount = abs(_mt940_amount(tx.get("amount"), line_where))
            if amount == 0:
                raise _malformed(f"{line_where}: amount must be positive")
            status = str(tx.get("status") or "").upper()
            if status not in ("C", "D", "RC", "RD"):
                raise _malformed(f"{line_where}: debit/credit mark {status!r}")
            value_day = tx.get("date")
            if value_day is None:
                raise _malformed(f"{line_where}: no value date")
            value_date = date(value_day.year, value_day.month, value_day.day)
            entry_day = tx.get("entry_date") or value_day
            booked = _at_midnight(date(entry_day.year, entry_day.month, entry_day.day), zone)
            details = str(tx.get("transaction_details") or "")
            memo = "".join(details.splitlines()).strip()
            raw = {
                "format": "mt940",
                "statement_reference": reference or None,
                "line": index,
                "status": status,
                "transaction_type": tx.get("id"),
                "customer_reference": customer_ref or None,
                "bank_reference": str(tx.get("bank_reference") or "") or None,
                "extra_details": str(tx.get("extra_details") or "") or None,
                "details": details,
            }
            lines.append(
                StatementLine(
                    bank_reference=bank_ref,
                    booked_at=booked,
                    value_date=value_date,
                    amount=amount,
                    incoming=status in ("C", "RD"),
                    memo=memo,
                    raw=raw,
                )
            )
        statements.append(
            Statement(
                account_number=account,
                currency=CURRENCY,
                opening_date=opening[1],
                closing_date=closing[1],
                lines=lines,
                statement_id=reference or None,
                opening_balance=opening[0],
                closing_balance=closing[0],
            )
        )
    return statements


# --- CSV ------------------------------------------------------------------------------------

# At most two decimals: "6.000" is six thousand in a Vietnamese-locale spreadsheet, and
# reading it as 6 dong would be silently wrong, so it is refused rather than guessed.
_CSV_AMOUNT = re.compile(r"^([+-]?)([0-9]{1,18}(?:\.[0-9]{1,2})?)$")
_CSV_ACCOUNT = re.compile(r"^[0-9A-Za-z.\-]{1,34}$")


def _csv_row(row: dict[str, str], line: int, zone: tzinfo) -> tuple[str, StatementLine] | list[str]:
    """The row's account and line, or the list of what is wrong with it."""
    problems: list[str] = []
    account = row["account_number"].strip()
    if not _CSV_ACCOUNT.match(account):
        problems.append(f"line {line}: account_number {account!r} is not an account number")
    booked: datetime | None = None
    try:
        booked = datetime.strptime(row["booked_at"].strip(), "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=zone
        )
    except ValueError:
        problems.append(f"line {line}: booked_at {row['booked_at']!r} is not YYYY-MM-DD HH:MM:SS")
    reference = row["bank_reference"].strip()
    if not reference or len(reference) > 128:
        problems.append(f"line {line}: bank_reference is empty or longer than 128 characters")
    amount = 0
    sign = ""
    match = _CSV_AMOUNT.match(row["amount"].strip())
    if not match:
        problems.append(
            f"line {line}: amount {row['amount']!r} is not a whole number of dong "
            "(digits only, optional sign, no thousands separators)"
        )
    else:
        sign = match.group(1)
        try:
            amount = _whole_vnd(Decimal(match.group(2)), f"line {line}")
        except InvalidInput as exc:
            problems.append(exc.detail)
        else:
            if amount == 0:
                problems.append(f"line {line}: amount must not be 0")
    direction = row["direction"].strip().lower()
    incoming = True
    if direction == "in":
        if sign == "-":
            problems.append(f"line {line}: direction 'in' with a negative amount")
    elif direction == "out":
        incoming = False
    elif direction == "":
        incoming = sign != "-"
    else:
        problems.append(f"line {line}: direction must be 'in', 'out' or empty, not {direction!r}")
    value_date: date | None = booked.date() if booked else None
    value_text = (row.get("value_date") or "").strip()
    if value_text:
        try:
            value_date = date.fromisoformat(value_text)
        except ValueError:
            problems.append(f"line {line}: value_date {value_text!r} is not YYYY-MM-DD")
    if problems:
        return problems
    assert booked is not None and value_date is not None
    raw: dict[str, Any] = {"format": "csv", "line": line, "row": dict(row)}
    memo = row["memo"].strip()
    return account, StatementLine(reference, booked, value_date, amount, incoming, memo, raw)


def parse_csv(data: bytes, zone: tzinfo) -> list[Statement]:
    """The simple CSV export (UTF-8, BOM optional, comma-separated, RFC 4180 quoting).

    Header row naming the columns of :data:`CSV_COLUMNS` in any order, optionally
    :data:`CSV_OPTIONAL_COLUMNS`::

        account_number,booked_at,bank_reference,amount,direction,memo
        113000012345,2026-11-20 08:15:02,976T2611200417,6000,in,MBVCB.3278123.MC7KD4WQ2RXHG...
        113000012345,2026-11-20 14:05:00,976T2611202051,-150000,,"NOP TIEN PHI, LE PHI ..."

    ``booked_at`` is bank-local ``YYYY-MM-DD HH:MM:SS``; ``direction`` is ``in`` or ``out``,
    or empty with a signed ``amount`` (a leading ``-`` is outgoing). ``amount`` is whole dong,
    ``6000`` or ``6000.00``; ``6.000`` and ``6,000`` are refused as ambiguous (thousands
    separators in a Vietnamese-locale spreadsheet). One :class:`Statement` per
    account in file order, dated by its first and last booking; no balances. Any bad row rejects
    the file, and the error lists every bad line (``extra["errors"]``).
    """
    text = _decode(data, "CSV")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    # Each record with the physical line it starts on (a quoted memo may span lines).
    rows: list[tuple[int, list[str]]] = []
    try:
        start = 1
        for values in reader:
            rows.append((start, values))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise _malformed(f"CSV line {reader.line_num}: {exc}") from exc
    if not rows:
        raise _malformed("CSV file has no header row")
    header_line, header = rows[0]
    columns = [name.strip().lower() for name in header]
    missing = [name for name in CSV_COLUMNS if name not in columns]
    unknown = [name for name in columns if name not in CSV_COLUMNS + CSV_OPTIONAL_COLUMNS]
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if missing or unknown or duplicated:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if unknown:
            parts.append("unknown " + ", ".join(repr(name) for name in unknown))
        if duplicated:
            parts.append("repeated " + ", ".join(duplicated))
        raise _malformed(f"CSV line {header_line}: bad header ({'; '.join(parts)})")

    errors: list[str] = []
    by_account: dict[str, list[StatementLine]] = {}
    for line, values in rows[1:]:
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(columns):
            errors.append(f"line {line}: {len(values)} fields, the header has {len(columns)}")
            continue
        row = dict(zip(columns, values, strict=True))
        currency = (row.get("currency") or "").strip().upper() or CURRENCY
        if currency != CURRENCY:
            raise _currency_error(f"CSV line {line}: currency {currency}; only VND is accepted")
        result = _csv_row(row, line, zone)
        if isinstance(result, list):
            errors.extend(result)
        else:
            account, statement_line = result
            by_account.setdefault(account, []).append(statement_line)
    if errors:
        shown = errors[:_CSV_MAX_ERRORS]
        more = len(errors) - len(shown)
        detail = "; ".join(shown) + (f"; and {more} more" if more else "")
        raise _malformed(f"CSV rejected: {detail}", errors=errors)

    return [
        Statement(
            account_number=account,
            currency=CURRENCY,
            opening_date=min(line.booked_at.date() for line in lines),
            closing_date=max(line.booked_at.date() for line in lines),
            lines=lines,
        )
        for account, lines in by_account.items()
    ]


# --- dispatch -------------------------------------------------------------------------------

_PARSERS: dict[str, Callable[[bytes, tzinfo], list[Statement]]] = {
    "camt053": parse_camt053,
    "mt940": parse_mt940,
    "csv": parse_csv,
}


def parse_statement_file(data: bytes, fmt: str, zone: tzinfo) -> list[Statement]:
    """``motcua bank import --format camt053|mt940|csv`` in one call."""
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise InvalidInput(
            f"unknown statement format {fmt!r}; use one of {', '.join(STATEMENT_FORMATS)}",
            code="statement_format_unknown",
        )
    return parser(data, zone)
