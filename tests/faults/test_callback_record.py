"""The outbox records a delivery's result even when the database drops the connection just then.

Found by ``test_restart_postgres.py``: the callback had been POSTed and acknowledged, recording
the result failed on the restarting database, the event stayed leased, and when the lease ran
out it was posted (and acknowledged) a second time. ``deliver_due`` now retries the recording
(bounded), and a retry whose first commit did go through changes nothing. Deterministic here:
the failure is injected around ``payments.callbacks._record`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from infra.callback_receiver import CallbackReceiver
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from payments import callbacks as cb
from payments.callback_models import CallbackAttempt, CallbackEvent
from payments.credentials import add_client
from payments.models import Agency
from settings.config import Settings
from settings.db import engine_for, session_factory, utcnow


def _seed(factory: sessionmaker[Session], url: str) -> str:
    with factory() as session, session.begin():
        agency = Agency(
            code="FAULT-CB",
            name="UBND xã Thử Nghiệm",
            tax_code="0101234567",
            address="Số 1 đường Thử",
            bank_bin="970415",
            bank_account="113000012345",
            bank_account_name="UBND XA THU NGHIEM",
            receipt_series="C26TA",
        )
        session.add(agency)
        session.flush()
        client = add_client(session, agency, "Một cửa", url, allow_loopback=True).client
        cb.enqueue_event(
            session,
            client_id=client.id,
            url=url,
            event="payment_order.succeeded",
            data={"id": "o1", "object": "payment_order"},
            occurred_at=utcnow(),
        )
        return client.id


def _lost(when: str) -> Callable[..., str]:
    """A ``_record`` whose first call fails: ``before`` its commit, or ``after`` it (the commit
    went through, the answer was lost on the way back)."""
    real = cb._record
    calls = {"n": 0}

    def flaky(factory: Callable[[], Session], claim: object, result: object) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            if when == "after":
                real(factory, claim, result)  # type: ignore[arg-type]
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))
        return real(factory, claim, result)  # type: ignore[arg-type]

    return flaky


@pytest.mark.faults
@pytest.mark.parametrize("when", ["before", "after"])
def test_result_is_recorded_once_across_a_dropped_connection(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    factory = session_factory(engine_for(settings.effective_database_url))
    monkeypatch.setattr(cb, "RECORD_RETRY_DELAYS", (0.01, 0.01))
    monkeypatch.setattr(cb, "_record", _lost(when))
    with CallbackReceiver() as rx, httpx.Client(trust_env=False) as http:
        _seed(factory, rx.url)
        report = cb.deliver_due(factory, now=utcnow(), http=http, allow_loopback=True, timeout=5)
        # a later run (the next beat) finds nothing due: nothing is posted twice
        again = cb.deliver_due(factory, now=utcnow(), http=http, allow_loopback=True, timeout=5)
        assert report.delivered == 1 and again.attempted == 0
        assert len(rx.requests) == 1
    with factory() as session:
        event = session.scalars(select(CallbackEvent)).one()
        attempts = session.scalars(select(CallbackAttempt)).all()
    print(
        f"FAULTS callback-record[{when}]: lost={int(event.state != 'delivered')} "
        f"duplicate={max(0, len(rx.requests) - 1)} gap=0 (no receipts) | posts={len(rx.requests)} "
        f"attempts={len(attempts)}",
        flush=True,
    )
    assert event.state == "delivered" and event.lease_token is None
    assert [(a.attempt_no, a.outcome) for a in attempts] == [(1, "delivered")]
