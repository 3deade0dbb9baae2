"""What a use case asks to happen after its transaction commits.

A use case never dispatches a task itself: the row the task works from must be committed
first, or the worker may look before it exists. It returns these values instead, and the
adapter runs them once its unit of work has committed. Every follow-up is also found again by
the database sweep (the journal and paid orders without a receipt are the queue), so a lost
dispatch only delays work.
"""

from __future__ import annotations

import asyncio
import os
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

    The trailing wake-ups are sent by one long-lived thread per process: starting a timer
    thread per window cost a webhook ~0.2 ms under the lock (py-spy, issue 16).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._last = -1e9
        self._pending: int | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

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
        with self._cond:
            if self._pending is not None:
                return False  # a wake-up is already due within the window: it claims this one too
            now = time.monotonic()
            if now - self._last >= WAKE_WINDOW_SECONDS:
                self._last = now
                return True
            self._pending = event_id
            self._ensure_thread()
            self._cond.notify()
            return False

    def _ensure_thread(self) -> None:
        # A forked child (a prefork worker) inherits the object but not the thread.
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="bank-waker", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None:
                    self._cond.wait()
                delay = WAKE_WINDOW_SECONDS - (time.monotonic() - self._last)
            if delay > 0:
                time.sleep(delay)
            with self._cond:
                event_id, self._pending = self._pending, None
                self._last = time.monotonic()
            if event_id is not None:
                dispatch(tasks.process_bank_event, event_id)


_bank_waker = _Waker()
