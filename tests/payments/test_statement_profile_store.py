"""Agency-defined statement profiles (issue 18): checked before they are stored, unique per
agency, never a built-in name, and found by ``motcua bank import --profile NAME`` for that
agency only. Dates from the suite's clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from infra.clock import ZONE, Clock
from sqlalchemy import func, select
from test_statement_bank_layouts import as_csv, rows_of, transactions
from typer.testing import CliRunner

from api.cli import app as cli
from api.demo import DEMO_AGENCY, seed
from payments.agencies import add_agency, agency_by_code
from payments.errors import InvalidInput, NotFound
from payments.models import BankEvent
from payments.statement_profile_store import (
    ProfileNameTaken,
    agency_profiles,
    delete_profile,
    resolve_profile,
    save_profile,
)
from payments.statement_profiles import BUILT_IN_PROFILES, profile_from_json
from payments.statement_tables import parse_table
from settings.config import Settings
from settings.db import session_scope

# The VietinBank layout with its bare "Nợ"/"Có" columns renamed the way one agency's export
# shows them: neither auto nor the built-in profile reads it, an agency profile does.
OWN: dict[str, Any] = {
    "name": "ctg-chi-nhanh",
    "description": "VietinBank export of our branch",
    "columns": {
        "date": ["Ngày giao dịch"],
        "description": ["Diễn giải"],
        "debit": ["Tiền ra"],
        "credit": ["Tiền vào"],
        "balance": ["Số dư"],
        "reference": ["Số giao dịch"],
    },
    "date_formats": ["%d/%m/%Y %H:%M:%S"],
    "thousands": ".",
}


def own_layout_csv(clock: Clock) -> bytes:
    rows = rows_of("vietinbank", transactions(clock.today() - timedelta(days=1), clock), "dots")
    header = rows[8]
    rows[8] = ["Tiền ra" if h == "Nợ" else "Tiền vào" if h == "Có" else h for h in header]
    return as_csv(rows)


@pytest.fixture
def demo(settings: Settings) -> Iterator[Settings]:
    seed(settings)
    yield settings


def test_profile_json_round_trip_and_checks() -> None:
    profile = profile_from_json(OWN)
    assert profile_from_json(profile.to_json()) == profile
    assert profile.to_json()["columns"]["credit"] == ["Tiền vào"]  # as written, for people
    bad: list[tuple[dict[str, Any], str]] = [
        ({**OWN, "name": "A B"}, "profile name"),
        ({**OWN, "columns": {"date": ["Ngày"]}}, "credit"),
        ({**OWN, "columns": {**OWN["columns"], "colour": ["x"]}}, "unknown field"),
        ({**OWN, "thousands": "'"}, "thousands"),
        ({**OWN, "date_formats": ["%H:%M"]}, "day, month and year"),
        ({**OWN, "header_row": 0}, "header_row"),
        ({**OWN, "credit_marks": ["C"], "debit_marks": ["c"]}, "both"),
    ]
    for data, needle in bad:
        with pytest.raises(InvalidInput) as caught:
            profile_from_json(data)
        assert caught.value.code == "statement_profile_invalid"
        assert needle in caught.value.detail, caught.value.detail


def test_save_resolve_delete(demo: Settings, clock: Clock) -> None:
    with session_scope() as session:
        agency = agency_by_code(session, "DEMO-HUYEN")
        other = add_agency(session, replace(DEMO_AGENCY, code="KHAC-XA", name="UBND xã Khác"))
        row = save_profile(session, agency.id, OWN, created_by="quantri", now=clock.now())
        with pytest.raises(ProfileNameTaken):
            save_profile(session, agency.id, OWN, created_by="quantri", now=clock.now())
        with pytest.raises(ProfileNameTaken):
            save_profile(
                session, agency.id, {**OWN, "name": "vietcombank"}, created_by="x", now=clock.now()
            )
        assert set(agency_profiles(session, agency.id)) == {"ctg-chi-nhanh"}
        assert resolve_profile(session, agency.id, "CTG-Chi-Nhanh").name == "ctg-chi-nhanh"
        assert resolve_profile(session, agency.id, "bidv") is BUILT_IN_PROFILES["bidv"]
        with pytest.raises(InvalidInput):  # another agency does not see it
            resolve_profile(session, other.id, "ctg-chi-nhanh")
        with pytest.raises(NotFound):
            delete_profile(session, other.id, row.id)
        # the same name is free for another agency
        save_profile(session, other.id, OWN, created_by="xa.khac", now=clock.now())
        delete_profile(session, agency.id, row.id)
        assert agency_profiles(session, agency.id) == {}


def test_only_the_agency_profile_reads_its_layout(clock: Clock) -> None:
    data = own_layout_csv(clock)
    for name in ("auto", "vietinbank"):
        with pytest.raises(InvalidInput):
            parse_table(data, "csv", ZONE, name)
    (statement,) = parse_table(data, "csv", ZONE, profile_from_json(OWN)).statements
    assert [x.amount for x in statement.lines] == [1_250_000, 30_000, 1_500_000]


def test_cli_import_with_a_stored_profile(demo: Settings, clock: Clock, tmp_path: Path) -> None:
    with session_scope() as session:
        agency = agency_by_code(session, "DEMO-HUYEN")
        save_profile(session, agency.id, OWN, created_by="quantri", now=clock.now())
    path = tmp_path / "saoke.csv"
    path.write_bytes(own_layout_csv(clock))
    args = ["bank", "import", str(path), "--agency", "DEMO-HUYEN", "--format", "csv"]
    refused = CliRunner().invoke(cli, args)  # auto cannot read it: nothing imported
    assert refused.exit_code != 0
    result = CliRunner().invoke(cli, [*args, "--profile", "ctg-chi-nhanh"])
    assert result.exit_code == 0, result.output
    assert "lines read: 3; credits new: 2, already known: 0" in result.output
    assert "debits ignored: 1" in result.output
    assert "balance check: statement 1: opening 12500000" in result.output
    again = CliRunner().invoke(cli, [*args, "--profile", "ctg-chi-nhanh"])
    assert "imported before" in again.output
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(BankEvent)) == 3
