"""Sending messages to the tax authority, and knowing what became of them.

The authority is an external party behind a small interface (architecture.md):
:class:`TaxAuthorityClient` with one adapter, :class:`HttpTaxAuthorityClient`, which speaks the
``TDiep`` messages of :mod:`einvoice.tax_authority.messages` over HTTP — to the sandbox
(:mod:`einvoice.tax_authority.sandbox`) or to a provider's endpoint that takes the same
messages. The HTTP binding (``POST /messages``, ``GET /messages/{MTDiep}``, answers as a
``DSTDiep`` list) is ours: the authority's own is not published (Decision 1271/QĐ-CT). Messages
of both mappings are sent as they were built (:mod:`~einvoice.tax_authority.formats`): a
summary queued in 0.1 before the upgrade goes out unchanged. A "received" notice (110) is not a
verdict: the outcome waits for the result (111), unless it says "not received".

"Unknown outcome" is first class (style.md). A summary must reach the authority exactly once in
effect, so:

* a failure *before* the request left (connection refused, connect timeout) and a 500/502/503
  are retried with exponential back-off and jitter, like stripe-python;
* a failure *after* the request left (read timeout, connection dropped, 504) may or may not
  have delivered it: the client **asks** (:meth:`~TaxAuthorityClient.query`) before it sends
  again, and re-sends only when the authority says it does not hold the message. If even the
  query cannot tell, the outcome is :attr:`Outcome.UNKNOWN` and nothing is re-sent;
* an answer "duplicate" (the authority already holds this ``MTDiep``) is success: the earlier
  delivery stands. Its stored result is fetched when possible, so an earlier *rejection* is not
  mistaken for success;
* a rejection with reasons is an answer, returned as :attr:`Outcome.REJECTED`, never retried.

Re-sending is always the same bytes under the same ``MTDiep``, so the authority's duplicate
check makes a re-send harmless even when our guess about a 5xx was wrong.
"""

from __future__ import annotations

import logging
import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from typing import Final

import httpx

from einvoice.tax_authority.errors import (
    MessageInvalid,
    TaxAuthorityBadAnswer,
    TaxAuthorityRequestRefused,
    TaxAuthorityUnavailable,
    UnsafeMessage,
)
from einvoice.tax_authority.messages import (
    RESULT_TYPE_FOR,
    AuthorityAnswers,
    DataCheckResult,
    Reason,
    TechnicalAck,
    parse_answers,
    read_message,
)

__all__ = [
    "MESSAGES_PATH",
    "Ack",
    "HttpTaxAuthorityClient",
    "Outcome",
    "TaxAuthorityClient",
]

log = logging.getLogger(__name__)

MESSAGES_PATH: Final = "/messages"
XML_CONTENT_TYPE: Final = "application/xml; charset=utf-8"
_MESSAGE_ID_SHAPE: Final = re.compile(r"^[A-Za-z0-9]{1,20}[0-9A-F]{32}$")
_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503})
"""Answered without (we assume) processing the message: send again after a pause."""
_IN_DOUBT_STATUSES: Final = frozenset({500, 502})
"""Could have been processed before failing: confirm by a query before giving up."""
_UNKNOWN_STATUSES: Final = frozenset({504})
"""A gateway gave up waiting: the authority may well hold the message. Query first."""
_ANSWER_STATUSES: Final = frozenset({200, 202, 400, 409, 413, 422})
"""Statuses whose body is an acknowledgement (``DSTDiep``) to read."""


class Outcome(StrEnum):
    """What became of a message, as far as we know."""

    ACCEPTED = "accepted"
    """Received (999) and accepted on its content (the result, e.g. 204)."""
    REJECTED = "rejected"
    """Not received (999 with reasons) or not accepted (result with reasons). Final: fix the
    cause and send a *new* message; re-sending the same one would be rejected again."""
    DUPLICATE_ACCEPTED = "duplicate_accepted"
    """The authority already held this ``MTDiep`` (an earlier attempt got through): success."""
    UNKNOWN = "unknown"
    """Could not be established within the query budget — maybe delivered, maybe not, or
    received but not judged yet. Do not build a new message: :meth:`TaxAuthorityClient.query`
    the same ``message_id`` later (or re-send the same bytes, which is harmless)."""


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to one message, with the trail of how it was obtained."""

    message_id: str
    """``MTDiep`` of the message sent."""
    outcome: Outcome
    reasons: tuple[Reason, ...] = ()
    """Why it was rejected (from the 999 or the result); empty otherwise."""
    technical: TechnicalAck | None = None
    """The 999, when one was read."""
    result: DataCheckResult | None = None
    """The result (204 / 103 / 301), when one was read."""
    attempts: int = 0
    """How many times the message was POSTed."""
    queries: int = 0
    """How many status queries were made to learn the outcome."""
    resolved_by_query: bool = False
    """The outcome comes from a query after an exchange whose fate was unknown."""
    http_status: int | None = None
    request_id: str | None = None
    """The receiver's ``X-Request-Id`` of the last exchange, to find it in their logs."""

    @property
    def succeeded(self) -> bool:
        """The authority has the message and accepted it (first time or as a duplicate)."""
        return self.outcome in {Outcome.ACCEPTED, Outcome.DUPLICATE_ACCEPTED}

    @property
    def received(self) -> bool:
        """The authority holds the message (whatever its verdict)."""
        if self.outcome in {Outcome.ACCEPTED, Outcome.DUPLICATE_ACCEPTED}:
            return True
        if self.result is not None:
            return True
        return self.technical is not None and self.technical.received


class TaxAuthorityClient(ABC):
    """The tax authority as the rest of the service sees it: send a message, ask about one."""

    @abstractmethod
    def send(self, message: bytes) -> Ack:
        """Deliver one ``TDiep`` (as built, signed, by :mod:`~einvoice.tax_authority.messages`)
        and return what became of it. Never raises for a rejection; raises
        :class:`~einvoice.tax_authority.errors.TaxAuthorityUnavailable` only when the message is
        known *not* to have been delivered."""

    @abstractmethod
    def query(self, message_id: str) -> Ack | None:
        """What the authority holds for ``message_id``; ``None`` when it holds nothing."""


class _Failure(Enum):
    NOT_SENT = "not_sent"
    """The request never reached the receiver (or was answered 'not processed')."""
    UNKNOWN = "unknown"
    """The request left; whether it was processed is unknown."""


@dataclass(frozen=True, slots=True)
class _Exchange:
    failure: _Failure | None
    response: httpx.Response | None = None
    in_doubt: bool = False
    why: str = ""


class HttpTaxAuthorityClient(TaxAuthorityClient):
    """The HTTP adapter: ``POST {base_url}/messages``, ``GET {base_url}/messages/{MTDiep}``.

    ``http`` is injected (its transport, TLS and auth are the caller's: a provider's endpoint
    needs its own credentials); ``timeout`` applies to each request; ``max_attempts`` bounds
    the POSTs of one :meth:`send`, ``query_attempts`` the GETs of one :meth:`query`;
    ``result_polls`` bounds the queries for a result after a bare "received". Back-off before
    retry ``n`` is ``min(max_backoff, backoff * 2**(n-1))``, half of it fixed and half random
    (jitter), so that many collectors retrying after an outage do not hit the authority in step.
    ``sleep`` and ``rng`` are injectable so that tests need not wait.
    """

    def __init__(
        self,
        base_url: str,
        http: httpx.Client,
        *,
        timeout: float = 30.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        query_attempts: int = 3,
        result_polls: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1 or query_attempts < 1 or result_polls < 0:
            raise ValueError("max_attempts and query_attempts must be >= 1, result_polls >= 0")
        if timeout <= 0 or backoff < 0 or max_backoff < 0:
            raise ValueError("timeout must be positive, backoff and max_backoff not negative")
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.query_attempts = query_attempts
        self.result_polls = result_polls
        self._sleep = sleep
        self._rng = rng or random.SystemRandom()

    def __repr__(self) -> str:
        return f"HttpTaxAuthorityClient(base_url={self.base_url!r})"

    # ------------------------------------------------------------------ plumbing

    def _pause(self, retry: int) -> None:
        delay = min(self.max_backoff, self.backoff * (2 ** max(0, retry - 1)))
        self._sleep(delay / 2 + self._rng.uniform(0, delay / 2))

    def _exchange(self, request: Callable[[], httpx.Response]) -> _Exchange:
        try:
            response = request()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return _Exchange(_Failure.NOT_SENT, why=f"{type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            # ReadTimeout, WriteTimeout, ReadError, WriteError, RemoteProtocolError...: the
            # request (or part of it) left, so the receiver may have processed it.
            return _Exchange(_Failure.UNKNOWN, why=f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if status in _RETRY_STATUSES:
            return _Exchange(
                _Failure.NOT_SENT,
                response,
                in_doubt=status in _IN_DOUBT_STATUSES,
                why=f"HTTP {status}",
            )
        if status in _UNKNOWN_STATUSES:
            return _Exchange(_Failure.UNKNOWN, response, why=f"HTTP {status}")
        return _Exchange(None, response)

    @staticmethod
    def _request_id(response: httpx.Response | None) -> str | None:
        return None if response is None else response.headers.get("x-request-id")

    def _answers(
        self, response: httpx.Response, message_id: str, attempts: int
    ) -> AuthorityAnswers:
        try:
            return parse_answers(response.content)
        except (UnsafeMessage, MessageInvalid) as exc:
            raise TaxAuthorityBadAnswer(
                f"the answer to {message_id} could not be read: {exc.detail}",
                message_id=message_id,
                http_status=response.status_code,
                request_id=self._request_id(response),
                attempts=attempts,
            ) from exc

    def _refused(self, response: httpx.Response, message_id: str, attempts: int) -> Exception:
        return TaxAuthorityRequestRefused(
            f"HTTP {response.status_code} without an acknowledgement for {message_id}",
            message_id=message_id,
            http_status=response.status_code,
            request_id=self._request_id(response),
            attempts=attempts,
        )

    # ------------------------------------------------------------------ query

    def query(self, message_id: str) -> Ack | None:
        """Ask the authority what it holds for ``message_id`` (its 999 and result).

        ``None``: it holds nothing under that id, so sending the message is safe. An
        :class:`Ack` with :attr:`Outcome.UNKNOWN` and ``technical.received``: held, not judged.

        :raises TaxAuthorityUnavailable: no answer within ``query_attempts`` (the question,
            not the message, failed).
        :raises TaxAuthorityRequestRefused: an HTTP error without an answer (e.g. 401).
        :raises TaxAuthorityBadAnswer: an answer we cannot read.
        """
        if not _MESSAGE_ID_SHAPE.match(message_id):
            raise ValueError(f"not an MTDiep: {message_id!r}")
        url = f"{self.base_url}{MESSAGES_PATH}/{message_id}"
        last = _Exchange(_Failure.NOT_SENT)
        for attempt in range(1, self.query_attempts + 1):
            if attempt > 1:
                self._pause(attempt - 1)
            last = self._exchange(
                lambda: self.http.get(
                    url, headers={"Accept": "application/xml"}, timeout=self.timeout
                )
            )
            if last.failure is not None:
                log.info("query %s: %s (attempt %d)", message_id, last.why, attempt)
                continue
            response = last.response
            assert response is not None
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self._refused(response, message_id, 0)
            answers = self._answers(response, message_id, 0)
            return self._verdict(answers, message_id, response, attempts=0)
        raise TaxAuthorityUnavailable(
            f"no answer to the query for {message_id} after {self.query_attempts} attempts "
            f"({last.why})",
            message_id=message_id,
            http_status=None if last.response is None else last.response.status_code,
            request_id=self._request_id(last.response),
        )

    def _verdict(
        self,
        answers: AuthorityAnswers,
        message_id: str,
        response: httpx.Response,
        *,
        attempts: int,
    ) -> Ack:
        """Turn the 999 and the result into an :class:`Ack` (duplicates are handled by send)."""
        ack = answers.ack_for(message_id)
        result = answers.result_for(message_id)

        def make(outcome: Outcome, reasons: tuple[Reason, ...] = ()) -> Ack:
            return Ack(
                message_id=message_id,
                outcome=outcome,
                reasons=reasons,
                technical=ack,
                result=result,
                attempts=attempts,
                http_status=response.status_code,
                request_id=self._request_id(response),
            )

        if ack is not None and not ack.received and not ack.duplicate:
            return make(Outcome.REJECTED, ack.reasons)
        if result is not None:
            if result.accepted:
                return make(Outcome.ACCEPTED)
            return make(Outcome.REJECTED, result.reasons)
        if ack is None:
            raise TaxAuthorityBadAnswer(
                f"the answer holds neither an acknowledgement nor a result for {message_id}",
                message_id=message_id,
                http_status=response.status_code,
                request_id=self._request_id(response),
                attempts=attempts,
            )
        return make(Outcome.UNKNOWN)

    def _ask(self, message_id: str) -> tuple[Ack | None, bool]:
        """One :meth:`query`; ``(ack or None, answered)``: unanswered means still unknown."""
        try:
            return self.query(message_id), True
        except TaxAuthorityUnavailable as exc:
            log.warning("query for %s unanswered: %s", message_id, exc.detail)
            return None, False

    # ------------------------------------------------------------------ send

    def send(self, message: bytes) -> Ack:
        """POST one ``TDiep``; retry, resolve unknown outcomes by query, and report.

        :raises MessageInvalid: ``message`` is not a valid envelope of a request type (our bug;
            nothing is sent).
        :raises TaxAuthorityUnavailable: every attempt failed and the authority does not hold
            the message: send the same bytes again later.
        :raises TaxAuthorityRequestRefused: an HTTP error without an acknowledgement.
        :raises TaxAuthorityBadAnswer: an answer we cannot read.
        """
        header = read_message(message).header
        kind = header.known_type
        if kind is None or kind not in RESULT_TYPE_FOR:
            raise MessageInvalid(
                [f"MLTDiep {header.message_type} is not a request we send"], document="TDiep"
            )
        message_id = header.message_id
        url = f"{self.base_url}{MESSAGES_PATH}"
        headers = {
            "Content-Type": XML_CONTENT_TYPE,
            "Accept": "application/xml",
            "Idempotency-Key": message_id,
        }
        attempts = 0
        queries = 0
        in_doubt = False
        last = _Exchange(_Failure.NOT_SENT)
        while attempts < self.max_attempts:
            if attempts:
                self._pause(attempts)
            attempts += 1
            last = self._exchange(
                lambda: self.http.post(url, content=message, headers=headers, timeout=self.timeout)
            )
            if last.failure is _Failure.NOT_SENT:
                in_doubt = in_doubt or last.in_doubt
                log.info("send %s: %s (attempt %d), retrying", message_id, last.why, attempts)
                continue
            if last.failure is _Failure.UNKNOWN:
                log.warning("send %s: %s (attempt %d): asking", message_id, last.why, attempts)
                queries += 1
                held, answered = self._ask(message_id)
                if not answered:
                    return self._unknown(message_id, attempts, queries, last)
                if held is None:
                    in_doubt = False  # confirmed not held: sending again is safe
                    continue
                return self._settle(held, attempts=attempts, queries=queries, by_query=True)
            response = last.response
            assert response is not None
            if response.status_code not in _ANSWER_STATUSES:
                raise self._refused(response, message_id, attempts)
            answers = self._answers(response, message_id, attempts)
            ack = answers.ack_for(message_id)
            if ack is not None and ack.duplicate:
                return self._duplicate(message_id, ack, attempts, queries, response)
            verdict = self._verdict(answers, message_id, response, attempts=attempts)
            return self._settle(verdict, attempts=attempts, queries=queries, by_query=False)

        if in_doubt:
            queries += 1
            held, answered = self._ask(message_id)
            if not answered:
                return self._unknown(message_id, attempts, queries, last)
            if held is not None:
                return self._settle(held, attempts=attempts, queries=queries, by_query=True)
        raise TaxAuthorityUnavailable(
            f"{message_id} was not delivered after {attempts} attempts ({last.why})",
            message_id=message_id,
            http_status=None if last.response is None else last.response.status_code,
            request_id=self._request_id(last.response),
            attempts=attempts,
        )

    def _unknown(self, message_id: str, attempts: int, queries: int, last: _Exchange) -> Ack:
        log.warning("send %s: outcome unknown after %d queries", message_id, queries)
        return Ack(
            message_id=message_id,
            outcome=Outcome.UNKNOWN,
            attempts=attempts,
            queries=queries,
            http_status=None if last.response is None else last.response.status_code,
            request_id=self._request_id(last.response),
        )

    def _settle(self, ack: Ack, *, attempts: int, queries: int, by_query: bool) -> Ack:
        """Wait (boundedly) for a result when the authority has only said "received"."""
        polls = 0
        current = ack
        while current.outcome is Outcome.UNKNOWN and polls < self.result_polls:
            polls += 1
            self._pause(polls)
            held, answered = self._ask(ack.message_id)
            if answered and held is not None:
                current = replace(held, technical=held.technical or current.technical)
        return replace(
            current,
            attempts=attempts,
            queries=queries + polls,
            resolved_by_query=by_query or current is not ack,
        )

    def _duplicate(
        self,
        message_id: str,
        ack: TechnicalAck,
        attempts: int,
        queries: int,
        response: httpx.Response,
    ) -> Ack:
        """The authority already holds this ``MTDiep``: success, unless it had rejected it.

        The stored verdict is fetched so that an earlier rejection is reported as such; when
        it cannot be fetched (or is not judged yet), the duplicate counts as success.
        """
        held, _answered = self._ask(message_id)
        if held is not None and held.outcome is Outcome.REJECTED:
            return replace(held, attempts=attempts, queries=queries + 1, resolved_by_query=True)
        return Ack(
            message_id=message_id,
            outcome=Outcome.DUPLICATE_ACCEPTED,
            technical=ack,
            result=None if held is None else held.result,
            attempts=attempts,
            queries=queries + 1,
            resolved_by_query=held is not None,
            http_status=response.status_code,
            request_id=self._request_id(response),
        )
