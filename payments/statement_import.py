"""Importing a bank statement: the day's source of truth for what reached the account.

Each line is journaled as a bank event keyed by the bank's own reference, so a credit already
seen through a webhook (same reference) is not counted twice, and re-importing the same file —
or an overlapping one — adds nothing. A statement for another account, or dated in the future,
is refused whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payments.credits import ProcessResult, process_events
from payments.errors import InvalidInput
from payments.models import Agency, BankEvent, BankStatement
from payments.statement_profile_store import resolve_profile
from payments.statement_profiles import StatementProfile
from payments.statement_tables import TABLE_FORMATS, parse_table
from payments.statements import parse_statement_file, statement_fingerprint
from settings.db import utcnow

__all__ = ["ImportReport", "import_statement", "preview_import"]


@dataclass(frozen=True)
class ImportReport:
    """What an import did, for the accountant (issue 18, point 5).

    ``lines`` were read; of the incoming ones ``credits_new`` were not known before and
    ``credits_known`` were (an earlier import or a webhook had the same bank reference);
    ``credits_matched`` of the new ones paid an order and ``exceptions`` went to the
    exceptions queue; ``debits_ignored`` outgoing lines are not fees. ``balance_checks`` says,
    per statement that states both balances, that they agree with its lines (a statement whose
    balances disagree is refused). ``columns`` names the spreadsheet columns used.
    """

    already_imported: bool
    statements: int
    lines: int
    new_events: int
    credits_matched: int
    exceptions: int
    orders_to_issue: tuple[str, ...]
    credits_new: int = 0
    credits_known: int = 0
    debits_ignored: int = 0
    warnings: tuple[str, ...] = ()
    balance_checks: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()


def import_statement(
    session: Session,
    agency: Agency,
    data: bytes,
    file_format: str,
    *,
    now: datetime | None = None,
    profile: str | StatementProfile | None = None,
) -> ImportReport:
    """Journals the file's lines (nothing at all if any check fails) and processes the new ones.

    ``csv`` and ``xlsx`` go through :func:`payments.statement_tables.parse_table` (``profile``
    names a column-mapping profile, built in or the agency's own, or is one; without one the
    header and columns are found); ``profile`` with another format is refused.
    """
    zone = ZoneInfo(agency.time_zone)
    now = now or utcnow()
    if profile is not None:  # a wrong option is said before "imported before" hides it
        if file_format not in TABLE_FORMATS:
            raise InvalidInput(
                f"--profile applies to csv and xlsx statements, not {file_format}",
                code="statement_format_unknown",
            )
        if not isinstance(profile, StatementProfile):
            profile = resolve_profile(session, agency.id, profile)
    fingerprint = statement_fingerprint(data)
    if session.scalar(
        select(BankStatement.id).where(
            BankStatement.agency_id == agency.id, BankStatement.fingerprint == fingerprint
        )
    ):
        return ImportReport(True, 0, 0, 0, 0, 0, ())
    columns: tuple[str, ...] = ()
    if file_format in TABLE_FORMATS:
        table = parse_table(data, file_format, zone, profile)
        statements, columns = table.statements, table.columns
    else:
        statements = parse_statement_file(data, file_format, zone)
    if not statements:
        raise InvalidInput("the file holds no statement", code="statement_malformed")
    today = now.astimezone(zone).date()
    for st in statements:
        if st.account_number.replace(" ", "") != agency.bank_account:
            raise InvalidInput(
                f"statement is for account {st.account_number}, not {agency.bank_account}",
                code="statement_wrong_account",
            )
        if st.closing_date > today or any(line.booked_at > now for line in st.lines):
            raise InvalidInput("statement dated in the future", code="statement_in_future")
    balance_checks: list[str] = []
    for number, st in enumerate(statements, start=1):
        consistent = st.balances_consistent
        if consistent is None:
            continue
        name = f"statement {st.statement_id or number}"
        net = (st.closing_balance or 0) - (st.opening_balance or 0)
        if not consistent:
            lines_net = sum(x.amount if x.incoming else -x.amount for x in st.lines)
            raise InvalidInput(
                f"{name}: opening balance {st.opening_balance} and closing balance "
                f"{st.closing_balance} differ by {net}, its lines by {lines_net}: the file "
                "is incomplete or altered / số dư đầu kỳ, cuối kỳ không khớp với các giao dịch",
                code="statement_malformed",
            )
        balance_checks.append(
            f"{name}: opening {st.opening_balance} + lines {net:+d} = closing "
            f"{st.closing_balance}: OK"
        )
    new_events: list[int] = []
    new_incoming: set[int] = set()
    total_lines = credits_known = debits = 0
    for st in statements:
        total_lines += len(st.lines)
        for line in st.lines:
            if not line.incoming:
                debits += 1
            raw = json.dumps(
                {
                    "account_number": st.account_number,
                    "bank_reference": line.bank_reference,
                    "booked_at": line.booked_at.isoformat(),
                    "value_date": line.value_date.isoformat(),
                    "amount": line.amount,
                    "incoming": line.incoming,
                    "memo": line.memo,
                },
                ensure_ascii=False,
            ).encode()
            event = BankEvent(
                agency_id=agency.id, source="statement", dedup_key=line.bank_reference, raw=raw
            )
            try:
                with session.begin_nested():
                    session.add(event)
            except IntegrityError:
                credits_known += int(line.incoming)
                continue
            new_events.append(event.id)
            if line.incoming:
                new_incoming.add(event.id)
    session.add(
        BankStatement(
            agency_id=agency.id,
            fingerprint=fingerprint,
            file_format=file_format,
            account_number=statements[0].account_number,
            opening_date=min(st.opening_date for st in statements),
            closing_date=max(st.closing_date for st in statements),
            lines=total_lines,
            new_lines=len(new_events),
        )
    )
    matched = exceptions = 0
    to_issue: list[str] = []
    credits_new = 0
    results = process_events(session, new_events) if new_events else {}
    for event_id in new_events:
        result = results.get(event_id, ProcessResult(None, None))
        if result.credit is None or result.credit.event_id != event_id:
            if event_id in new_incoming:
                credits_known += 1  # a credit a webhook had already reported
            continue  # outgoing, or already known
        credits_new += 1
        if result.order_to_issue:
            matched += 1
            to_issue.append(result.order_to_issue)
        elif result.credit.match_status != "matched":
            exceptions += 1
    session.flush()
    return ImportReport(
        False,
        len(statements),
        total_lines,
        len(new_events),
        matched,
        exceptions,
        tuple(to_issue),
        credits_new=credits_new,
        credits_known=credits_known,
        debits_ignored=debits,
        warnings=tuple(w for st in statements for w in st.warnings),
        balance_checks=tuple(balance_checks),
        columns=columns,
    )


def preview_import(
    session: Session,
    agency: Agency,
    data: bytes,
    file_format: str,
    *,
    now: datetime | None = None,
    profile: str | StatementProfile | None = None,
) -> ImportReport:
    """What :func:`import_statement` would report, with nothing kept: the same code runs in a
    savepoint that is rolled back, so the preview can never disagree with the real import
    (the admin page shows it before a profile is saved)."""
    savepoint = session.begin_nested()
    try:
        return import_statement(session, agency, data, file_format, now=now, profile=profile)
    finally:
        savepoint.rollback()
