"""The audit trail is tamper-evident (issue 7): a hash chain over every audit record.

Real flows write the records (a receipt issued, staff sign-ins); sealing chains them; then the
database is tampered with directly in SQL, as an insider with database access would, and
``verify`` (and ``motcua audit verify``) must fail naming the first broken record.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sec_flow import paid_order, sign_in
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from settings.audit_chain import GENESIS, seal, verify
from settings.config import Settings
from settings.db import engine_for, session_scope


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(demo: Settings) -> Engine:
    return engine_for(demo.effective_database_url)


@pytest.fixture
def flowed(demo: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(demo)) as client:
        paid_order(client, "audit-1")  # a receipt issued: one receipt audit event
        assert sign_in(client, "thuquy", "sai-mat-khau") == 401
        assert sign_in(client, "ketoan") == 303
        yield client


def _seal(engine: Engine) -> tuple[int, int, str]:
    with session_scope(engine) as session:
        report = seal(session)
    return report.total, report.head_seq, report.head_hash


def _verify(engine: Engine) -> tuple[bool, str]:
    with session_scope(engine) as session:
        report = verify(session)
    return report.ok, report.text()


def _drop_append_only(engine: Engine, table: str) -> None:
    """What a tamperer with DDL rights does first (the app's role should not have them)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
        else:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))


def test_seal_chains_new_records_and_verify_recomputes(flowed: TestClient, engine: Engine) -> None:
    ok, message = _verify(engine)
    assert ok and "0 sealed" in message and "receipt_audit_events 1" in message
    total, seq, head = _seal(engine)
    assert total >= 3 and seq == total and head != GENESIS
    assert _seal(engine) == (0, seq, head)  # nothing new: the head stays
    ok, message = _verify(engine)
    assert ok, message
    assert f"{seq} sealed record(s), head #{seq} {head}" in message
    assert "not yet sealed: none" in message
    assert sign_in(flowed, "quantri") == 303  # more activity extends the chain
    total2, seq2, head2 = _seal(engine)
    assert (total2, seq2) == (1, seq + 1) and head2 != head
    assert _verify(engine)[0]


def test_seals_cannot_be_edited_through_the_database(flowed: TestClient, engine: Engine) -> None:
    _seal(engine)
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE audit_seals SET row_hash = 'x' WHERE seq = 1"))
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_seals WHERE seq = 1"))


def test_deleted_sign_in_is_named(flowed: TestClient, engine: Engine, demo: Settings) -> None:
    _seal(engine)
    with engine.begin() as conn:
        victim = conn.execute(
            text("SELECT id FROM staff_sign_ins WHERE success = :f"), {"f": False}
        ).scalar_one()
        conn.execute(text("DELETE FROM staff_sign_ins WHERE id = :i"), {"i": victim})
    ok, message = _verify(engine)
    assert not ok
    assert f"staff_sign_ins row {victim} was deleted after it was sealed" in message
    result = CliRunner().invoke(cli, ["audit", "verify"])
    assert result.exit_code == 1
    assert f"staff_sign_ins row {victim} was deleted" in result.output


def test_changed_receipt_audit_event_is_named(flowed: TestClient, engine: Engine) -> None:
    _seal(engine)
    _drop_append_only(engine, "receipt_audit_events")
    with engine.begin() as conn:
        event = conn.execute(text("SELECT min(id) FROM receipt_audit_events")).scalar_one()
        conn.execute(
            text("UPDATE receipt_audit_events SET actor = 'someone else' WHERE id = :i"),
            {"i": event},
        )
    ok, message = _verify(engine)
    assert not ok
    assert f"receipt_audit_events row {event} was changed after it was sealed" in message


def test_altered_seal_is_named(flowed: TestClient, engine: Engine) -> None:
    _seal(engine)
    _drop_append_only(engine, "audit_seals")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_seals SET prev_hash = :z WHERE seq = 2"), {"z": "1" * 64})
    ok, message = _verify(engine)
    assert not ok and message.startswith("BROKEN at seal #2")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_seals WHERE seq = 2"))
    ok, message = _verify(engine)
    assert not ok and "seal #2 is missing" in message


def test_cli_seal_then_verify(flowed: TestClient) -> None:
    runner = CliRunner()
    sealed = runner.invoke(cli, ["audit", "seal"])
    assert sealed.exit_code == 0, sealed.output
    assert "chain head #" in sealed.output
    checked = runner.invoke(cli, ["audit", "verify"])
    assert checked.exit_code == 0, checked.output
    assert "audit chain intact" in checked.output
