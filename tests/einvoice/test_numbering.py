"""Gapless, duplicate-free numbering under concurrent issuers and rolled-back transactions."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import select

from api.demo import DEMO_AGENCY
from einvoice.errors import SeriesExhausted
from einvoice.models import ReceiptCounter
from einvoice.numbering import MAX_NUMBER, next_number, series_for_year
from payments.agencies import add_agency
from settings.config import Settings
from settings.db import session_scope


@pytest.fixture
def agency_id(settings: Settings) -> str:
    with session_scope() as s:
        return add_agency(s, DEMO_AGENCY).id


def test_series_follows_the_year() -> None:
    assert series_for_year("26TAB", 2026) == "26TAB"
    assert series_for_year("26TAB", 2027) == "27TAB"


def test_numbers_restart_each_year_and_per_series(agency_id: str) -> None:
    with session_scope() as s:
        assert [next_number(s, agency_id, "EBL01", "26TAB", 2026) for _ in range(3)] == [1, 2, 3]
        assert next_number(s, agency_id, "EBL01", "27TAB", 2027) == 1
        assert next_number(s, agency_id, "EBL02", "26TAB", 2026) == 1


def test_exhausted_series_is_a_clear_error(agency_id: str) -> None:
    with session_scope() as s:
        s.add(
            ReceiptCounter(
                agency_id=agency_id,
                template="EBL01",
                series="26TAC",
                year=2026,
                last_number=MAX_NUMBER,
            )
        )
    with pytest.raises(SeriesExhausted), session_scope() as s:
        next_number(s, agency_id, "EBL01", "26TAC", 2026)


def test_eight_concurrent_issuers_leave_no_gap_and_no_duplicate(agency_id: str) -> None:
    taken: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def issuer(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(25):
                try:
                    with session_scope() as s:
                        n = next_number(s, agency_id, "EBL01", "26TAB", 2026)
                        if rnd.random() < 0.2:
                            raise RuntimeError("signing failed")  # rolled back: number returns
                        with lock:
                            taken.append(n)
                except RuntimeError:
                    pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=issuer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(taken) == list(range(1, len(taken) + 1))
    with session_scope() as s:
        last = s.scalar(select(ReceiptCounter.last_number).where(ReceiptCounter.series == "26TAB"))
    assert last == len(taken)
