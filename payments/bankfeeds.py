"""Inbound bank-feed notifications: validate the shape, journal the raw bytes, normalise.

The raw body is stored before any processing (and before the reply), so nothing a bank feed
sent can be lost to a later bug; processing reads the journal, never the request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from payments.errors import InvalidInput
from payments.models import Agency, BankEvent
from settings.db import utcnow

__all__ = [
    "NormalisedCredit",
    "SepayPayload",
    "journal_event",
    "journal_once",
    "journal_sepay",
    "normalise",
]


class SepayPayload(BaseModel):
    """SePay's webhook body (domain.md); ``transactionDate`` is bank-local time."""

    model_config = ConfigDict(extra="allow", strict=False)

    id: StrictInt = Field(gt=0)
    gateway: str = Field(max_length=100)
    transactionDate: str = Field(pattern=r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")  # noqa: N815
    accountNumber: str = Field(max_length=32)  # noqa: N815
    code: str | None = Field(default=None, max_length=100)
    content: str = Field(default="", max_length=1000)
    transferType: Literal["in", "out"]  # noqa: N815
    transferAmount: StrictInt = Field(gt=0, lt=10**13)  # noqa: N815 (JSON true is not 1 đ)
    accumulated: int | None = None
    subAccount: str | None = Field(default=None, max_length=32)  # noqa: N815
    referenceCode: str | None = Field(default=None, max_length=128)  # noqa: N815
    description: str | None = Field(default=None, max_length=2000)


def parse_sepay(raw: bytes) -> SepayPayload:
    try:
        return SepayPayload.model_validate_json(raw)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
        raise InvalidInput("; ".join(problems), code="invalid_bank_payload") from exc


def journal_sepay(session: Session, agency: Agency, raw: bytes) -> tuple[BankEvent, bool]:
    """Stores the event once per SePay ``id``; returns it and whether it is new.

    :func:`journal_once` in the session's transaction: a repeat (a retry, a racing twin) is
    counted on the first row by the unique constraint, never inserted twice.
    """
    payload = parse_sepay(raw)
    return journal_event(session, agency.id, "sepay", str(payload.id), raw)


def journal_event(
    session: Session, agency_id: str, source: str, dedup: str, raw: bytes
) -> tuple[BankEvent, bool]:
    """:func:`journal_once` in the session's transaction, for every feed; returns the event
    (as stored) and whether it is new."""
    event_id, _pending, created = journal_once(
        session.connection(), agency_id, source, dedup, raw, utcnow()
    )
    event = session.get(BankEvent, event_id, populate_existing=True)
    assert event is not None
    return event, created


def journal_once(
    connection: Connection, agency_id: str, source: str, dedup: str, raw: bytes, now: datetime
) -> tuple[int, bool, bool]:
    """Journals one notification in one statement: (event id, still to process, new).

    Without a look-up first: the unique constraint decides between the first delivery
    (inserted) and a repeat (counted on the same row), so the webhook's write transaction is
    one statement long. On the embedded SQLite database every write waits for the one
    writer; a shorter transaction is what lets a catch-up's notifications in beside the
    issuer (issue 16). The caller commits.
    """
    dialect = connection.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(BankEvent)
        .values(
            agency_id=agency_id,
            source=source,
            dedup_key=dedup,
            raw=raw,
            received_at=now,
            duplicates=0,
        )
        .on_conflict_do_update(
            index_elements=[BankEvent.agency_id, BankEvent.source, BankEvent.dedup_key],
            set_={"duplicates": BankEvent.duplicates + 1},
        )
        .returning(BankEvent.id, BankEvent.processed_at, BankEvent.duplicates)
    )
    event_id, processed_at, duplicates = connection.execute(stmt).one()
    return int(event_id), processed_at is None, int(duplicates) == 0


@dataclass(frozen=True)
class NormalisedCredit:
    """One incoming transfer, whatever feed reported it."""

    bank_reference: str
    account_number: str
    sub_account: str | None
    amount: int
    memo: str
    booked_at: datetime
    incoming: bool


def normalise(event: BankEvent, zone: ZoneInfo) -> NormalisedCredit:
    """One normal form for every feed, so matching never depends on who reported the money."""
    if event.source == "casso":
        from payments.casso import normalise_casso

        return normalise_casso(event.raw, zone)
    if event.source == "statement":
        line = json.loads(event.raw)
        return NormalisedCredit(
            bank_reference=line["bank_reference"],
            account_number=line["account_number"],
            sub_account=None,
            amount=int(line["amount"]),
            memo=line["memo"],
            booked_at=datetime.fromisoformat(line["booked_at"]),
            incoming=bool(line["incoming"]),
        )
    if event.source != "sepay":
        raise InvalidInput(f"unknown bank event source {event.source!r}")
    data = json.loads(event.raw)
    payload = SepayPayload.model_validate(data)
    booked = datetime.strptime(payload.transactionDate, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
    # The bank's own reference identifies the credit across feeds (webhook now, statement
    # tonight); SePay's id is only the fallback when the bank gave none.
    bank_ref = payload.referenceCode or f"sepay-{payload.id}"
    memo = payload.content or payload.description or ""
    return NormalisedCredit(
        bank_reference=bank_ref,
        account_number=payload.accountNumber,
        sub_account=payload.subAccount,
        amount=payload.transferAmount,
        memo=memo,
        booked_at=booked,
        incoming=payload.transferType == "in",
    )
