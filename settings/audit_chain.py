"""Tamper-evident audit trail: a SHA-256 hash chain over the audit records (issue 7).

The audit records themselves stay where their packages write them (receipt lifecycle events,
exception resolutions, applied corrections with their approvals, staff sign-ins, admin changes,
callback delivery attempts and replays). Writing them takes no extra lock: the hot issuing path is
untouched. A separate sealing step, run by the scheduler every few minutes and by
``motcua audit seal``, appends one row to ``audit_seals`` for every audit record not yet
sealed, in a deterministic order::

    row_hash   = sha256(canonical JSON of the record, with its table name)
    chain_hash = sha256(prev chain_hash | table | key | row_hash)

``motcua audit verify`` recomputes every hash from the live records. Changing or deleting a
sealed record, or editing, removing or re-ordering a seal, breaks the chain at that point and
is reported with the record's table and key. ``audit_seals`` is itself append-only (database
triggers). What a chain alone cannot show is the loss of its *newest* seals together with
their records: the chain head (sequence and hash) is therefore logged at every seal, so it can
be compared with a copy kept elsewhere (see docs/security.md).

Records become sealable once they are final (e.g. a correction only when it is ``applied``,
its approval being part of what is sealed); the other tables are append-only.

Which tables are audit records is not known here: they belong to the packages above, which
``settings`` may not import or name. The composition root (top layer) lists them, in one
fixed order, with :func:`register_sources`. One list in one place rather than each package
registering its own table: the order of the sources is the order records are sealed in, and
it must not depend on which module a process happened to import first.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    UniqueConstraint,
    cast,
    exists,
    func,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from settings.db import Base, UTCDateTime, complete_metadata, utcnow

__all__ = [
    "GENESIS",
    "AuditSeal",
    "SealReport",
    "Source",
    "VerifyReport",
    "canonical_record",
    "chain_hash",
    "register_sources",
    "row_hash",
    "seal",
    "sources",
    "verify",
]

log = logging.getLogger(__name__)

GENESIS = "0" * 64
"""The ``prev_hash`` of the first seal."""
_PG_LOCK_KEY = 0x6D6F7463_7561_0001 & 0x7FFFFFFFFFFFFFFF
"""pg_advisory_xact_lock key: one sealer at a time (SQLite's BEGIN IMMEDIATE does this)."""


class AuditSeal(Base):
    """One link of the chain: which record, its hash, and the running chain hash."""

    __tablename__ = "audit_seals"
    __table_args__ = (UniqueConstraint("source", "row_key"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    """1, 2, 3, … without gaps; a second sealer racing for the same number fails on the key."""
    source: Mapped[str] = mapped_column(String(64))
    row_key: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


@dataclass(frozen=True)
class Source:
    """An audit table: its key column, the order rows are sealed in, and when a row is final."""

    table: str
    key: str
    order: tuple[str, ...]
    final_column: str | None = None
    final_values: tuple[str, ...] = ()

    def columns(self) -> Table:
        return complete_metadata().tables[self.table]

    def final(self, table: Table) -> ColumnElement[bool] | None:
        if self.final_column is None:
            return None
        return table.c[self.final_column].in_(self.final_values)


_SOURCES: dict[str, Source] = {}
"""The registered audit tables by name, in registration (= sealing) order."""


def register_sources(*added: Source) -> None:
    """Adds audit tables to the chain (the composition root calls this once, in a fixed order).

    Registering the same source again is a no-op, so importing the composition root twice is
    harmless; a different definition under a known table name is refused, because sealed
    hashes would no longer be recomputed the way they were made.
    """
    for source in added:
        known = _SOURCES.get(source.table)
        if known is not None and known != source:
            raise ValueError(f"audit source {source.table!r} is already registered differently")
        _SOURCES.setdefault(source.table, source)


def sources() -> tuple[Source, ...]:
    """The registered audit tables; refuses to seal or verify against none.

    An empty list would make ``seal`` a silent no-op and ``verify`` report every sealed row as
    "an unknown table": a process that forgot the composition root must fail loudly.
    """
    if not _SOURCES:
        raise RuntimeError(
            "no audit sources registered: import the composition root (the top layer) first"
        )
    return tuple(_SOURCES.values())


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # a naive value would be ambiguous; UTC columns never are
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        raise TypeError("audit records carry no floats (money is integer VND)")
    return value


def canonical_record(source: str, row: Mapping[Any, Any]) -> str:
    """The exact text :func:`row_hash` digests (UTF-8): shown to inspectors so that anyone can
    recompute a seal with ``sha256sum`` (reconciliation/evidence.py)."""
    body = {"source": source, "row": {str(k): _plain(v) for k, v in row.items()}}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    )


def row_hash(source: str, row: Mapping[Any, Any]) -> str:
    """sha256 of a canonical JSON: sorted keys, no spaces, UTF-8, times as UTC ISO 8601.

    Values are those the ORM types hand back, so SQLite and PostgreSQL hash the same record
    the same way (a backup restored into the other database still verifies).
    """
    return hashlib.sha256(canonical_record(source, row).encode("utf-8")).hexdigest()


def chain_hash(prev: str, source: str, key: str, digest: str) -> str:
    return hashlib.sha256(f"{prev}|{source}|{key}|{digest}".encode()).hexdigest()


@dataclass
class SealReport:
    sealed: dict[str, int] = field(default_factory=dict)
    head_seq: int = 0
    head_hash: str = GENESIS

    @property
    def total(self) -> int:
        return sum(self.sealed.values())

    def text(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in self.sealed.items() if v) or "nothing new"
        return (
            f"sealed {self.total} record(s) ({parts}); chain head #{self.head_seq} {self.head_hash}"
        )


def _head(session: Session) -> tuple[int, str]:
    last = session.scalar(select(AuditSeal).order_by(AuditSeal.seq.desc()).limit(1))
    return (last.seq, last.chain_hash) if last is not None else (0, GENESIS)


def _unsealed(source: Source) -> Select[Any]:
    table = source.columns()
    key = cast(table.c[source.key], String)
    sealed = exists().where(AuditSeal.source == source.table, AuditSeal.row_key == key)
    query = select(table).where(~sealed)
    final = source.final(table)
    if final is not None:
        query = query.where(final)
    return query.order_by(*(table.c[c] for c in source.order))


def seal(session: Session, *, limit: int = 5_000) -> SealReport:
    """Seals up to ``limit`` new final audit records; the caller commits.

    Rows are picked by "not sealed yet" rather than "key above the last one", so a record
    whose transaction commits late (PostgreSQL hands out ids before commit) is sealed at the
    next run instead of being skipped forever.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    seq, prev = _head(session)
    report = SealReport()
    left = limit
    for source in sources():
        report.sealed[source.table] = 0
        if left <= 0:
            continue
        for row in session.execute(_unsealed(source).limit(left)).mappings():
            key = str(row[source.key])
            digest = row_hash(source.table, row)
            seq += 1
            link = chain_hash(prev, source.table, key, digest)
            session.add(
                AuditSeal(
                    seq=seq,
                    source=source.table,
                    row_key=key,
                    row_hash=digest,
                    prev_hash=prev,
                    chain_hash=link,
                )
            )
            prev = link
            report.sealed[source.table] += 1
            left -= 1
        session.flush()
    report.head_seq, report.head_hash = seq, prev
    log.info("audit chain head #%d %s (%d new)", seq, prev, report.total)
    return report


@dataclass
class VerifyReport:
    seals: int = 0
    head_hash: str = GENESIS
    unsealed: dict[str, int] = field(default_factory=dict)
    broken_seq: int | None = None
    broken: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def text(self) -> str:
        waiting = ", ".join(f"{k} {v}" for k, v in self.unsealed.items() if v) or "none"
        if not self.ok:
            return f"BROKEN at seal #{self.broken_seq}: {self.broken}"
        return (
            f"audit chain intact: {self.seals} sealed record(s), head #{self.seals} "
            f"{self.head_hash}; not yet sealed: {waiting}"
        )


def _seals(session: Session, batch: int) -> Iterator[list[AuditSeal]]:
    after = 0
    while True:
        rows = list(
            session.scalars(
                select(AuditSeal).where(AuditSeal.seq > after).order_by(AuditSeal.seq).limit(batch)
            )
        )
        if not rows:
            return
        yield rows
        after = rows[-1].seq


def _records(session: Session, source: Source, keys: list[str]) -> dict[str, Mapping[Any, Any]]:
    table = source.columns()
    query = select(table).where(cast(table.c[source.key], String).in_(keys))
    return {str(r[source.key]): r for r in session.execute(query).mappings()}


def verify(session: Session, *, batch: int = 1_000) -> VerifyReport:
    """Recomputes the whole chain from the records; stops at the first break."""
    report = VerifyReport()
    prev, expected = GENESIS, 1
    by_name = {src.table: src for src in sources()}

    def broken(seq: int, why: str) -> VerifyReport:
        report.broken_seq, report.broken = seq, why
        return report

    for rows in _seals(session, batch):
        by_source: dict[str, list[str]] = {}
        for s in rows:
            by_source.setdefault(s.source, []).append(s.row_key)
        records: dict[tuple[str, str], Mapping[Any, Any]] = {}
        for name, keys in by_source.items():
            source = by_name.get(name)
            if source is None:
                continue
            for key, found in _records(session, source, keys).items():
                records[(name, key)] = found
        for s in rows:
            where = f"{s.source} row {s.row_key}"
            if s.seq != expected:
                return broken(expected, f"seal #{expected} is missing (next is #{s.seq})")
            if s.prev_hash != prev:
                return broken(s.seq, f"seal of {where} does not follow the previous seal")
            if chain_hash(prev, s.source, s.row_key, s.row_hash) != s.chain_hash:
                return broken(s.seq, f"seal of {where} was altered")
            row = records.get((s.source, s.row_key))
            if s.source not in by_name:
                return broken(s.seq, f"seal names an unknown table {s.source!r}")
            if row is None:
                return broken(s.seq, f"{where} was deleted after it was sealed")
            if row_hash(s.source, row) != s.row_hash:
                return broken(s.seq, f"{where} was changed after it was sealed")
            prev, expected = s.chain_hash, expected + 1
            report.seals += 1
    report.head_hash = prev
    for source in by_name.values():
        count = select(func.count()).select_from(_unsealed(source).order_by(None).subquery())
        report.unsealed[source.table] = int(session.scalar(count) or 0)
    return report
