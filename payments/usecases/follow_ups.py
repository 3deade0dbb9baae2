"""What a use case asks to happen after its transaction commits.

A use case never dispatches a task itself: the row the task works from must be committed
first, or the worker may look before it exists. It returns these values instead, and the
adapter runs them once its unit of work has committed. Every follow-up is also found again by
the database sweep (the journal and paid orders without a receipt are the queue), so a lost
dispatch only delays work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from payments import tasks
from settings.worker import dispatch

__all__ = ["FollowUp", "IssueReceipt", "ProcessBankEvent", "ProcessCardEvent", "run_after_commit"]


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
            dispatch(tasks.process_bank_event, item.event_id)
        else:
            dispatch(tasks.process_card_event, item.event_id)
