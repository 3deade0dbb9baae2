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

from payments.credits import process_event
from payments.errors import InvalidInput
from payments.models import Agency, BankEvent, BankStatement
from payments.statements import parse_statement_file, statement_fingerprint
from settings.db import utcnow

__all__ = ["ImportReport", "import_statement"]


@dataclass(frozen=True)
class ImportReport:
    already_imported: bool
    statements: int
    lines: int
    new_events: int
    credits_matched: int
    exceptions: int
    orders_to_issue: tuple[str, ...]


def import_statement(
    session: Session, agency: Agency, data: bytes, file_format: str, *, now: datetime | None = None
) -> ImportReport:
    zone = ZoneInfo(agency.time_zone)
    now = now or utcnow()
    fingerprint = statement_fingerprint(data)
    if session.scalar(
        select(BankStatement.id).where(
            BankStatement.agency_id == agency.id, BankStatement.fingerprint == fingerprint
        )
    ):
        return ImportReport(True, 0, 0, 0, 0, 0, ())
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
    new_events: list[int] = []
    total_lines = 0
    for st in statements:
        total_lines += len(st.lines)
        for line in st.lines:
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
                continue
            new_events.append(event.id)
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
    for event_id in new_events:
        result = process_event(session, event_id)
        if result.credit is None or result.credit.event_id != event_id:
            continue  # outgoing, or a credit a webhook had already reported
        if result.order_to_issue:
            matched += 1
            to_issue.append(result.order_to_issue)
        elif result.credit.match_status != "matched":
            exceptions += 1
    session.flush()
    return ImportReport(
        False, len(statements), total_lines, len(new_events), matched, exceptions, tuple(to_issue)
    )
