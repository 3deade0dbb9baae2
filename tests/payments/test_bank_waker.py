"""The bank-event waker (issue 16): the first notification of a quiet moment wakes the worker
at once; those within the window share one trailing wake-up, sent by the waker's own thread."""

from __future__ import annotations

import time

import pytest

import payments.usecases.follow_ups as follow_ups
from settings.worker import celery_app


def test_a_burst_costs_one_wake_up_now_and_one_at_the_end_of_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, tuple[object, ...]]] = []
    monkeypatch.setattr(celery_app.conf, "task_always_eager", False)
    monkeypatch.setattr(
        follow_ups, "dispatch", lambda task, *args, **_: sent.append((task.name, args))
    )
    waker = follow_ups._Waker()
    for event_id in range(1, 11):  # well inside one window
        waker.wake(event_id)
    assert sent == [("payments.process_bank_event", (1,))]  # the first one: at once
    deadline = time.monotonic() + 5  # bounded wait for the trailing wake-up
    while len(sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent[1] == ("payments.process_bank_event", (2,))  # one more, for all the others
    time.sleep(3 * follow_ups.WAKE_WINDOW_SECONDS)
    assert len(sent) == 2  # nothing else was due
    waker.wake(11)  # a quiet moment later: at once again
    assert sent[-1] == ("payments.process_bank_event", (11,)) and len(sent) == 3


def test_eager_mode_runs_every_wake_up_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[object] = []
    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)
    monkeypatch.setattr(follow_ups, "dispatch", lambda task, *args, **_: sent.append(args))
    waker = follow_ups._Waker()
    for event_id in (1, 2, 3):
        waker.wake(event_id)
    assert sent == [(1,), (2,), (3,)]
