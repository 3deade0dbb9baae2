"""What a use case asks to happen after its transaction commits.

A use case never dispatches a task itself: the row the task works from must be committed
first, or the worker may look before it exists. It returns these values instead, and the
adapter runs them once its unit of work has committed. Every follow-up is also found again by
the database sweep (the journal and paid orders without a receipt are the queue), so a lost
dispatch only delays work.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from payments import tasks
from settings.worker import celery_app, dispatch

__all__ = [
    "FollowUp",
    "IssueReceipt",
    "ProcessBankEvent",
    "ProcessCardEvent",
    "bank_event_journaled",
    "run_after_commit",
]


@dataclass(frozen=True)
class IssueReceipt:
    """A paid order without a receipt: issue it (the worker, or inline when eager)."""

    order_id: str


@dataclass(frozen=True)
class ProcessBankEvent:
    """A journaled bank notification still to match."""

    event_id: int


@dataclass(frozen=True)
class ProcessCardEvent:
    """A journaled card-gateway event still to apply."""

    event_id: int


FollowUp = IssueReceipt | ProcessBankEvent | ProcessCardEvent


def run_after_commit(follow_ups: Iterable[FollowUp]) -> None:
    """Dispatches each follow-up; a broker failure is logged by ``dispatch``, never raised."""
    for item in follow_ups:
        if isinstance(item, IssueReceipt):
            dispatch(tasks.issue_receipt, item.order_id)
        elif isinstance(item, ProcessBankEvent):
            _bank_waker.wake(item.event_id)
        else:
            dispatch(tasks.process_card_event, item.event_id)


async def bank_event_journaled(event_id: int) -> None:
    """:func:`run_after_commit` of one :class:`ProcessBankEvent`, for an ``async`` webhook:
    the broker is only touched (in the thread pool) when a wake-up is due now."""
    if _bank_waker.due_now(event_id):
        await asyncio.to_thread(dispatch, tasks.process_bank_event, event_id)


WAKE_WINDOW_SECONDS = 0.05
"""Bank notifications arriving within this window share one wake-up of the batch issuer."""


class _Waker:
    """Coalesces the worker's wake-ups for bank events, per process.

    The batch issuer claims every journaled event when it wakes, so one message per
    notification is wasted work under a burst (and on the embedded SQLite broker each publish
    costs a synced write, ~7 ms, that webhooks queue behind). The first notification of a
    quiet moment wakes the worker at once (no added latency); those that follow within
    :data:`WAKE_WINDOW_SECONDS` are covered by one trailing wake-up at the window's end, so no
    event is left waiting for the poller. Eager (tests) runs inline as always.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = -1e9
        self._trailing: threading.Timer | None = None

    def wake(self, event_id: int) -> None:
        if self.due_now(event_id):
            dispatch(tasks.process_bank_event, event_id)

    def due_now(self, event_id: int) -> bool:
        """Books this notification; ``True`` when the caller must send the wake-up now.

        Cheap and never blocking on the broker, so an ``async`` webhook asks it on the event
        loop and leaves the thread pool alone for the nine notifications in ten that are
        covered by a wake-up already due (issue 16).
        """
        if celery_app.conf.task_always_eager:
            return True
        with self._lock:
            now = time.monotonic()
            if self._trailing is not None:
                return False  # a wake-up is already due within the window: it claims this one too
            if now - self._last >= WAKE_WINDOW_SECONDS:
                self._last = now
                send_now = True
            else:
                delay = WAKE_WINDOW_SECONDS - (now - self._last)
                self._trailing = threading.Timer(delay, self._fire, args=(event_id,))
                self._trailing.daemon = True
                self._trailing.start()
                send_now = False
        return send_now

    def _fire(self, event_id: int) -> None:
        with self._lock:
            self._trailing = None
            self._last = time.monotonic()
        dispatch(tasks.process_bank_event, event_id)


_bank_waker = _Waker()
