"""A stand-in for the tax authority's receiving system, run as a separate process.

Why it exists: the real endpoint cannot be reached from a laptop or CI, yet the daily close must
be exercised end to end, including the failures that make tax clients hard (architecture.md:
sandboxes speak the party's real format, are separate processes, and are never reachable in
production — :func:`create_app` and :func:`main` refuse to start in the production profile).

It speaks the messages of :mod:`einvoice.tax_authority.messages` in **both mappings**, each
judged by its own schemas and answered with its own codes (:mod:`einvoice.tax_authority.formats`):
0.2, the confirmed e-document codes with ``PBan`` 2.1.0 or 2.1.1 (109 → 110 + 111, 304 → 301,
01/TH-BLĐT → the configured, unconfirmed codes, 400 → 204 by default), and our old 0.1 (100 →
103, 300 → 301, 400 → 204, ``PBan`` 0.1) for messages queued before the upgrade. It reads the
configured 01/TH-BLĐT codes from the same ``MOTCUA_*`` settings as the service. Over the HTTP
binding the client uses:

* ``POST /messages`` — a ``TDiep``. Read with a hardened parser (no DTD, no entities, no
  network, size-capped: a DOCTYPE is a 400), envelope checked against the ``tdiep-<mapping>.xsd``
  its ``PBan`` names; then answered with a ``DSTDiep`` holding the 999 technical
  acknowledgement and, when received, the result(s) in the request's mapping: 204 / 111 / 301,
  with 110 (received / not received) before the 111 of a 0.2 registration; a 0.2 registration
  whose content fails is answered 110 "not received" and no 111. The content check covers the
  document's schema (of the envelope's mapping: a 0.1 document in a 0.2 envelope is refused),
  the collector's XMLDSig signature (:func:`signing.xmldsig.verify_enveloped`, chained to
  ``trusted_ca`` when one is given), the tax codes (envelope = document = certificate) and,
  for 01/TH-BLĐT, the order of summaries per day (one first summary, then supplements with new
  ``BSLThu``). Those order rules are our reading of the invoice-summary precedent, not a
  confirmed rule.
* ``GET /messages/{MTDiep}`` — the stored 999 and result(s); 404 when not held.
* ``GET /agencies/{tax_code}/days/{YYYY-MM-DD}`` — JSON list of what is held for that agency
  and day (``message_type`` is the code as received; summaries by the day they summarise,
  other messages by the day received), with how many POSTs carried each message, so tests can
  prove that nothing was stored twice.
* ``POST /_faults`` — JSON ``{"mode": ..., "times": n, "delay_seconds": s, "reason": ...}``
  switches a fault for the next ``times`` POSTs: ``none``; ``timeout`` (store and judge the
  message, then sleep past the client's timeout before answering: the unknown outcome the
  client must resolve by query); ``5xx`` (answer 503 without processing); ``reject`` (a valid
  message is rejected in its result with ``reason``); ``duplicate`` (store the message, but
  answer "already held", as after a lost earlier answer). ``GET /_faults`` shows the state.

Storage is the sandbox's own SQLite file in ``data_dir``, never the service's database.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Final, Literal

import uvicorn
from cryptography import x509
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from lxml import etree
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from einvoice.tax_authority.errors import MessageInvalid, SandboxRefused, UnsafeMessage
from einvoice.tax_authority.formats import LEGACY, current
from einvoice.tax_authority.messages import (
    MAX_MESSAGE_BYTES,
    RESULT_TYPE_FOR,
    EnvelopeHeader,
    MessageFormat,
    MessageType,
    Reason,
    ReasonCode,
    SummaryFacts,
    answers_bytes,
    build_result,
    build_technical_ack,
    document_tax_code,
    load_xml,
    message_bytes,
    read_message_tree,
    signed_data_tag,
    summary_facts,
    validate_document,
)
from settings.config import Profile, Settings
from signing.certs import same_tax_code
from signing.xmldsig import VIETNAM_TZ, verify_enveloped

__all__ = [
    "DB_FILE_NAME",
    "DEFAULT_RECEIVER_CODE",
    "FaultMode",
    "FaultSettings",
    "create_app",
    "main",
    "refuse_in_production",
]

DEFAULT_RECEIVER_CODE: Final = "TCT"
"""``MNNhan`` the sandbox answers to, and ``MNGui`` of its answers (Tổng cục Thuế)."""
DB_FILE_NAME: Final = "tax-authority-sandbox.sqlite3"
XML_MEDIA_TYPE: Final = "application/xml"
_MAX_REASON_LINES: Final = 20
_TAX_CODE_SHAPE: Final = re.compile(r"^\d{10}(-\d{3})?$")
"""Only a well-formed MST read from an unverified document is echoed in the result."""

FaultMode = Literal["none", "timeout", "5xx", "reject", "duplicate"]


class FaultSettings(BaseModel):
    """The body of ``POST /_faults``: which failure to play for the next ``times`` POSTs."""

    mode: FaultMode = "none"
    times: int = Field(default=1, ge=1, le=100)
    delay_seconds: float = Field(default=5.0, gt=0, le=120)
    """For ``timeout``: how long to sleep before answering; set above the client's timeout."""
    reason: str = Field(default="Dữ liệu bị từ chối (sandbox)", min_length=1, max_length=1000)
    """For ``reject``: the reason written in the result."""


def refuse_in_production(environ: dict[str, str] | None = None) -> None:
    """Raise :class:`SandboxRefused` in the production profile or when sandboxes are disabled.

    The raw environment is checked as well as the settings (which also read ``.env``), and an
    unreadable configuration refuses too: when in doubt, a sandbox stays down.
    """
    env = dict(os.environ if environ is None else environ)
    if env.get("MOTCUA_PROFILE", "").strip().lower() == Profile.PRODUCTION.value:
        raise SandboxRefused("MOTCUA_PROFILE=production: the sandbox refuses to start")
    try:
        settings = Settings()
    except Exception as exc:
        raise SandboxRefused(f"settings unreadable, refusing to start: {exc}") from exc
    if settings.profile is Profile.PRODUCTION:
        raise SandboxRefused("production profile: the sandbox refuses to start")
    if not settings.sandboxes_on:
        raise SandboxRefused("sandboxes are disabled (MOTCUA_SANDBOXES_ENABLED=false)")


# --------------------------------------------------------------------------- storage

_SCHEMA_SQL: Final = """
CREATE TABLE IF NOT EXISTS messages (
    message_id     TEXT PRIMARY KEY,
    message_type   TEXT NOT NULL,
    sender_code    TEXT NOT NULL,
    tax_code       TEXT NOT NULL,
    day            TEXT NOT NULL,
    first          INTEGER,
    supplement_no  INTEGER,
    row_count      INTEGER,
    total_amount   INTEGER,
    sha256         TEXT NOT NULL,
    body           BLOB NOT NULL,
    received_at    TEXT NOT NULL,
    accepted       INTEGER NOT NULL,
    reasons        TEXT NOT NULL,
    ack_xml        BLOB NOT NULL,
    result_xml     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_day ON messages (tax_code, day);
CREATE TABLE IF NOT EXISTS posts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT,
    received_at  TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    http_status  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS posts_by_message ON posts (message_id);
"""


@dataclass(frozen=True, slots=True)
class _Stored:
    message_id: str
    sha256: str
    ack_xml: bytes
    result_xml: bytes


class _Store:
    """The sandbox's own SQLite file; one connection guarded by a lock (one process)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA_SQL)

    def get(self, message_id: str) -> _Stored | None:
        with self.lock:
            row = self._db.execute(
                "SELECT message_id, sha256, ack_xml, result_xml FROM messages WHERE message_id = ?",
                (message_id,),
            ).fetchone()
        if row is None:
            return None
        return _Stored(row[0], row[1], bytes(row[2]), bytes(row[3]))

    def accepted_summaries(self, tax_code: str, day: str) -> list[tuple[bool, int | None]]:
        """Summaries of either mapping (``message_type`` holds the code as received)."""
        codes = tuple(f.code(MessageType.DAILY_SUMMARY) for f in (LEGACY, current()))
        with self.lock:
            rows = self._db.execute(
                "SELECT first, supplement_no FROM messages WHERE tax_code = ? AND day = ? "
                "AND message_type IN (?, ?) AND accepted = 1",
                (tax_code, day, *codes),
            ).fetchall()
        return [(bool(first), supplement) for first, supplement in rows]

    def insert(self, values: dict[str, object]) -> None:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.lock:
            self._db.execute(
                f"INSERT INTO messages ({columns}) VALUES ({marks})",  # noqa: S608 - fixed names
                tuple(values.values()),
            )

    def log_post(self, message_id: str | None, outcome: str, http_status: int) -> None:
        with self.lock:
            self._db.execute(
                "INSERT INTO posts (message_id, received_at, outcome, http_status) "
                "VALUES (?, ?, ?, ?)",
                (message_id, datetime.now(UTC).isoformat(), outcome, http_status),
            )

    def day_listing(self, tax_code: str, day: str) -> list[dict[str, object]]:
        with self.lock:
            rows = self._db.execute(
                "SELECT m.message_id, m.message_type, m.first, m.supplement_no, m.row_count, "
                "m.total_amount, m.received_at, m.accepted, m.reasons, "
                "(SELECT COUNT(*) FROM posts p WHERE p.message_id = m.message_id) "
                "FROM messages m WHERE m.tax_code = ? AND m.day = ? ORDER BY m.received_at",
                (tax_code, day),
            ).fetchall()
        return [
            {
                "message_id": row[0],
                "message_type": row[1],
                "first": None if row[2] is None else bool(row[2]),
                "supplement_no": row[3],
                "row_count": row[4],
                "total_amount": row[5],
                "received_at": row[6],
                "status": "accepted" if row[7] else "rejected",
                "reasons": json.loads(row[8]),
                "posts": row[9],
            }
            for row in rows
        ]


# --------------------------------------------------------------------------- processing


@dataclass(slots=True)
class _Faults:
    """The fault being played; consumed one POST at a time."""

    current: FaultSettings = field(default_factory=FaultSettings)
    remaining: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, settings: FaultSettings) -> None:
        with self.lock:
            self.current = settings
            self.remaining = 0 if settings.mode == "none" else settings.times

    def take(self) -> FaultSettings | None:
        with self.lock:
            if self.remaining <= 0:
                return None
            self.remaining -= 1
            return self.current

    def state(self) -> dict[str, object]:
        with self.lock:
            mode = self.current.mode if self.remaining > 0 else "none"
            return {
                "mode": mode,
                "remaining": self.remaining,
                **self.current.model_dump(exclude={"mode"}),
            }


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    message_id: str | None
    outcome: str


def _reasons_from(code: ReasonCode, lines: Sequence[str]) -> list[Reason]:
    return [Reason(code.value, line) for line in list(lines)[:_MAX_REASON_LINES]] or [
        Reason(code.value, code.value)
    ]


class _Processor:
    """Judges one POSTed message, stores it, and builds the answer."""

    def __init__(self, store: _Store, receiver_code: str, trusted_ca: x509.Certificate | None):
        self.store = store
        self.receiver_code = receiver_code
        self.trusted_ca = trusted_ca

    def _not_received(
        self, header: EnvelopeHeader | None, reasons: list[Reason], status: int, outcome: str
    ) -> _Answer:
        ack = build_technical_ack(
            sender_code=self.receiver_code,
            referenced=header,
            received=False,
            reasons=reasons,
            now=datetime.now(UTC),
        )
        message_id = None if header is None else header.message_id
        return _Answer(status, answers_bytes([ack]), message_id, outcome)

    def too_large(self, max_bytes: int) -> _Answer:
        reasons = _reasons_from(ReasonCode.TOO_LARGE, [f"larger than {max_bytes} bytes"])
        return self._not_received(None, reasons, 413, ReasonCode.TOO_LARGE.value)

    def process(self, body: bytes, fault: FaultSettings | None) -> _Answer:
        try:
            root = load_xml(body)
        except UnsafeMessage as exc:
            code = ReasonCode(str(exc.extra.get("reason", ReasonCode.UNSAFE_XML)))
            status = 413 if code is ReasonCode.TOO_LARGE else 400
            return self._not_received(None, _reasons_from(code, [exc.detail]), status, code.value)
        try:
            message = read_message_tree(root)
        except MessageInvalid as exc:
            reasons = _reasons_from(ReasonCode.ENVELOPE_INVALID, exc.errors)
            return self._not_received(None, reasons, 400, "envelope_invalid")
        header = message.header
        if header.receiver_code != self.receiver_code:
            reasons = _reasons_from(
                ReasonCode.WRONG_RECEIVER,
                [f"MNNhan is {header.receiver_code}, this system is {self.receiver_code}"],
            )
            return self._not_received(header, reasons, 200, "wrong_receiver")
        kind = header.known_type
        if kind is None or kind not in RESULT_TYPE_FOR:
            reasons = _reasons_from(
                ReasonCode.UNKNOWN_TYPE, [f"MLTDiep {header.message_type} is not handled"]
            )
            return self._not_received(header, reasons, 200, "unknown_type")

        digest = hashlib.sha256(body).hexdigest()
        with self.store.lock:
            existing = self.store.get(header.message_id)
            if existing is not None:
                if existing.sha256 == digest:
                    reasons = _reasons_from(
                        ReasonCode.DUPLICATE,
                        [f"MTDiep {header.message_id} was already received; its result stands"],
                    )
                    return self._not_received(header, reasons, 200, "duplicate")
                reasons = _reasons_from(
                    ReasonCode.MESSAGE_ID_REUSED,
                    [f"MTDiep {header.message_id} was already used for other content"],
                )
                return self._not_received(header, reasons, 200, "message_id_reused")
            return self._judge_and_store(message.root, header, kind, body, digest, fault)

    def _judge_and_store(
        self,
        root: etree._Element,
        header: EnvelopeHeader,
        kind: MessageType,
        body: bytes,
        digest: str,
        fault: FaultSettings | None,
    ) -> _Answer:
        now = datetime.now(UTC)
        reasons: list[Reason] = []
        documents = list(root.iterfind("DLieu/*"))
        facts: SummaryFacts | None = None
        tax_code: str | None = header.tax_code
        if len(documents) != 1:
            reasons += _reasons_from(ReasonCode.DOCUMENT_INVALID, ["DLieu must hold one document"])
        else:
            document = documents[0]
            try:
                validate_document(kind, document, signed=False, fmt=header.format)
            except MessageInvalid as exc:
                reasons += _reasons_from(ReasonCode.DOCUMENT_INVALID, exc.errors)
            status = verify_enveloped(message_bytes(document), trusted_ca=self.trusted_ca)
            signed = status.signed_element
            if not status.valid or signed is None:
                reasons += _reasons_from(ReasonCode.SIGNATURE_INVALID, status.problems)
            elif signed.tag != signed_data_tag(kind):
                reasons += _reasons_from(
                    ReasonCode.SIGNATURE_INVALID,
                    [f"the signature covers {signed.tag}, not {signed_data_tag(kind)}"],
                )
            else:
                reasons += self._tax_code_reasons(header, signed, status.tax_code)
                if kind is MessageType.DAILY_SUMMARY and not reasons:
                    facts = summary_facts(signed)
                    reasons += self._sequence_reasons(facts)
            if facts is None and kind is MessageType.DAILY_SUMMARY:
                facts = self._unverified_facts(document)
            stated = document_tax_code(document)
            if tax_code is None and stated is not None and _TAX_CODE_SHAPE.match(stated):
                tax_code = stated
        content_reasons = list(reasons)
        if not reasons and fault is not None and fault.mode == "reject":
            reasons.append(Reason(ReasonCode.REJECTED.value, fault.reason))
        accepted = not reasons

        ack = build_technical_ack(
            sender_code=self.receiver_code, referenced=header, received=True, now=now
        )
        results = self._results(header, kind, tax_code, content_reasons, reasons, now)
        day = facts.day if facts is not None else now.astimezone(VIETNAM_TZ).date()
        self.store.insert(
            {
                "message_id": header.message_id,
                "message_type": header.message_type,
                "sender_code": header.sender_code,
                "tax_code": tax_code or "",
                "day": day.isoformat(),
                "first": None if facts is None else int(facts.first),
                "supplement_no": None if facts is None else facts.supplement_no,
                "row_count": None if facts is None else facts.row_count,
                "total_amount": None if facts is None else facts.total_amount,
                "sha256": digest,
                "body": body,
                "received_at": now.isoformat(),
                "accepted": int(accepted),
                "reasons": json.dumps(
                    [{"code": r.code, "description": r.description} for r in reasons],
                    ensure_ascii=False,
                ),
                "ack_xml": message_bytes(ack),
                "result_xml": answers_bytes(results),
            }
        )
        if fault is not None and fault.mode == "duplicate":
            reasons_dup = _reasons_from(
                ReasonCode.DUPLICATE,
                [f"MTDiep {header.message_id} was already received; its result stands"],
            )
            return self._not_received(header, reasons_dup, 200, "duplicate_fault")
        return _Answer(
            200,
            answers_bytes([ack, *results]),
            header.message_id,
            "accepted" if accepted else "rejected",
        )

    def _results(
        self,
        header: EnvelopeHeader,
        kind: MessageType,
        tax_code: str | None,
        content_reasons: list[Reason],
        reasons: list[Reason],
        now: datetime,
    ) -> list[etree._Element]:
        """The result messages, in the request's mapping: the verdict (204 / 111 / 301), after
        the "received" notice where the mapping has one (110 before 111). A message whose
        content fails gets 110 "not received" and no verdict, as the tax authority does for
        the e-invoice registration (102 without 103)."""
        fmt: MessageFormat | None = header.format
        received = None if fmt is None else fmt.received_type(kind)
        results: list[etree._Element] = []
        if received is not None:
            results.append(
                build_result(
                    sender_code=self.receiver_code,
                    referenced=header,
                    request_type=kind,
                    result_type=received,
                    tax_code=tax_code,
                    accepted=not content_reasons,
                    reasons=content_reasons,
                    now=now,
                )
            )
            if content_reasons:
                return results
        results.append(
            build_result(
                sender_code=self.receiver_code,
                referenced=header,
                request_type=kind,
                tax_code=tax_code,
                accepted=not reasons,
                reasons=reasons,
                now=now,
            )
        )
        return results

    @staticmethod
    def _tax_code_reasons(
        header: EnvelopeHeader, signed: etree._Element, certificate_tax_code: str | None
    ) -> list[Reason]:
        stated = document_tax_code(signed)
        problems: list[str] = []
        if header.tax_code is None or stated is None or header.tax_code != stated:
            problems.append(f"envelope MST {header.tax_code} differs from document MST {stated}")
        if certificate_tax_code is None or stated is None:
            problems.append("the signing certificate carries no UID=MST:")
        elif not same_tax_code(certificate_tax_code, stated):
            problems.append(
                f"the certificate is for MST {certificate_tax_code}, the document for {stated}"
            )
        return _reasons_from(ReasonCode.TAX_CODE_MISMATCH, problems) if problems else []

    def _sequence_reasons(self, facts: SummaryFacts) -> list[Reason]:
        held = self.store.accepted_summaries(facts.tax_code, facts.day.isoformat())
        has_first = any(first for first, _ in held)
        numbers = {number for first, number in held if not first}
        day = facts.day.isoformat()
        if facts.first and has_first:
            problem = f"a first summary for {day} was already accepted; send a supplement"
        elif not facts.first and not has_first:
            problem = f"supplement {facts.supplement_no} for {day} without a first summary"
        elif not facts.first and facts.supplement_no in numbers:
            problem = f"supplement {facts.supplement_no} for {day} was already accepted"
        else:
            return []
        return _reasons_from(ReasonCode.SUMMARY_SEQUENCE, [problem])

    @staticmethod
    def _unverified_facts(document: etree._Element) -> SummaryFacts | None:
        """For the listing only: what a rejected summary claims, when it can be read at all."""
        try:
            return summary_facts(document)
        except (MessageInvalid, ValueError):
            return None


# --------------------------------------------------------------------------- app


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(content=body, status_code=status, media_type=XML_MEDIA_TYPE)


def create_app(
    data_dir: Path,
    *,
    receiver_code: str = DEFAULT_RECEIVER_CODE,
    trusted_ca: x509.Certificate | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
    environ: dict[str, str] | None = None,
) -> FastAPI:
    """The sandbox as an ASGI app; refuses to be built in the production profile.

    :raises SandboxRefused: production profile, or sandboxes disabled.
    """
    refuse_in_production(environ)
    store = _Store(data_dir / DB_FILE_NAME)
    processor = _Processor(store, receiver_code, trusted_ca)
    faults = _Faults()
    app = FastAPI(
        title="Tax authority sandbox (motcua-pay)",
        description="NOT the tax authority. Development stand-in speaking TDiep mappings 0.1 "
        "and 0.2.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["X-Request-Id"] = uuid.uuid4().hex
        return response

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "receiver_code": receiver_code}

    def too_large() -> Response:
        """Refused unread, before buffering more than ``max_bytes``; still answered with a 999."""
        store.log_post(None, ReasonCode.TOO_LARGE.value, 413)
        answer = processor.too_large(max_bytes)
        return _xml(answer.body, answer.status)

    @app.post("/messages")
    async def post_message(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return too_large()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                return too_large()
            chunks.append(chunk)
        body = b"".join(chunks)
        fault = faults.take()
        if fault is not None and fault.mode == "5xx":
            store.log_post(None, "fault_5xx", 503)
            return JSONResponse({"detail": "sandbox fault: service unavailable"}, status_code=503)
        answer = await run_in_threadpool(processor.process, body, fault)
        store.log_post(answer.message_id, answer.outcome, answer.status)
        if fault is not None and fault.mode == "timeout":
            await asyncio.sleep(fault.delay_seconds)
        return _xml(answer.body, answer.status)

    @app.get("/messages/{message_id}")
    def get_message(
        message_id: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9]{1,20}[0-9A-F]{32}$")],
    ) -> Response:
        stored = store.get(message_id)
        if stored is None:
            raise HTTPException(status_code=404, detail="no message with this MTDiep")
        ack = load_xml(stored.ack_xml)
        held = load_xml(stored.result_xml)
        # A DSTDiep of results; a lone TDiep in files written before there could be several.
        results = list(held.iterfind("TDiep")) if held.tag == "DSTDiep" else [held]
        return _xml(answers_bytes([ack, *results]))

    @app.get("/agencies/{tax_code}/days/{day}")
    def list_day(
        tax_code: Annotated[str, PathParam(pattern=r"^\d{10}(-\d{3})?$")],
        day: date,
    ) -> dict[str, object]:
        return {
            "tax_code": tax_code,
            "day": day.isoformat(),
            "messages": store.day_listing(tax_code, day.isoformat()),
        }

    @app.post("/_faults")
    def set_faults(settings: FaultSettings) -> dict[str, object]:
        faults.set(settings)
        return faults.state()

    @app.get("/_faults")
    def get_faults() -> dict[str, object]:
        return faults.state()

    return app


def _load_certificate(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def main(
    port: int,
    data_dir: Path,
    *,
    trusted_ca_path: Path | None = None,
    receiver_code: str = DEFAULT_RECEIVER_CODE,
) -> None:
    """Run the sandbox on ``127.0.0.1:port`` until stopped (SIGINT/SIGTERM).

    Loopback only, by design: a sandbox is never meant to be reachable from elsewhere.

    :raises SandboxRefused: production profile, or sandboxes disabled.
    """
    refuse_in_production()
    trusted_ca = None if trusted_ca_path is None else _load_certificate(trusted_ca_path)
    app = create_app(data_dir, receiver_code=receiver_code, trusted_ca=trusted_ca)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
    )


def _cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tax-authority sandbox (not the real one)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--trusted-ca", type=Path, default=None)
    parser.add_argument("--receiver-code", default=DEFAULT_RECEIVER_CODE)
    args = parser.parse_args(argv)
    try:
        main(
            args.port,
            args.data_dir,
            trusted_ca_path=args.trusted_ca,
            receiver_code=args.receiver_code,
        )
    except SandboxRefused as exc:
        raise SystemExit(f"tax-authority sandbox: {exc.detail}") from exc


if __name__ == "__main__":
    _cli()
