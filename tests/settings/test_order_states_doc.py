"""The state table is data; its documentation is generated from it and must not drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from payments.errors import InvalidTransition
from payments.states import OrderStatus, check_transition, render_markdown


def test_docs_match_the_table() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "order-states.md"
    assert doc.read_text(encoding="utf-8") == render_markdown()


def test_illegal_moves_raise() -> None:
    check_transition("pending", OrderStatus.SUCCEEDED)
    for final in ("succeeded", "expired", "cancelled", "failed"):
        for target in OrderStatus:
            if (final, target.value) == ("expired", "succeeded"):
                # issue 19: a late transfer a person matched (by hand or an approved claim)
                check_transition(final, target)
                continue
            with pytest.raises(InvalidTransition):
                check_transition(final, target)


def test_callback_schedule_doc_matches_the_code() -> None:
    from payments.callbacks import render_retry_schedule_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "callbacks.md"
    assert doc.read_text(encoding="utf-8") == render_retry_schedule_markdown()
