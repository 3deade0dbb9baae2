"""The bank-statement admin page (issue 18) through FastAPI's TestClient: a profile made from an
uploaded sample (columns prefilled by detection, or chosen when detection cannot), the parsed
lines and the import report previewed before saving, saved, used for a real import; bad
uploads answered with a clear error and nothing saved; only an agency admin may use it.

Statement files are written in the layouts of tests/payments/test_statement_bank_layouts.py,
dated yesterday by the suite's clock.
"""

from __future__ import annotations

import html
import io
import re
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from infra.clock import Clock
from sqlalchemy import func, select

from api.demo import DEMO_AGENCY
from api.staff.models import StaffAdminEvent
from payments.agencies import add_agency
from payments.models import BankEvent, BankStatement
from payments.models import StatementProfile as StoredProfile
from payments.statement_profile_store import save_profile
from settings.config import Settings
from settings.db import engine_for, session_scope

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payments"))
from test_statement_bank_layouts import (
    as_csv,
    rows_of,
    statement_file,
    transactions,
)

HTML = {"Accept": "text/html"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _db(settings: Settings) -> Any:
    return session_scope(engine_for(settings.effective_database_url))


def _count(settings: Settings, model: Any) -> int:
    with _db(settings) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _sign_in(client: TestClient, username: str) -> str:
    from api.demo import DEMO_STAFF_PASSWORD

    client.cookies.clear()
    response = client.post(
        "/staff/login",
        data={"username": username, "password": DEMO_STAFF_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    token: str = client.get("/staff/me").json()["csrf_token"]
    return token


@pytest.fixture
def admin(client: TestClient) -> str:
    return _sign_in(client, "quantri")


@pytest.fixture
def vcb_xlsx(clock: Clock) -> bytes:
    return statement_file(
        "vietcombank", transactions(clock.today() - timedelta(days=1), clock), "xlsx", "dots"
    )


@pytest.fixture
def own_csv(clock: Clock) -> bytes:
    """An export whose money columns auto cannot name ("Tiền vào" / "Tiền ra")."""
    rows = rows_of("vietinbank", transactions(clock.today() - timedelta(days=1), clock), "dots")
    rows[8] = ["Tiền ra" if h == "Nợ" else "Tiền vào" if h == "Có" else h for h in rows[8]]
    return as_csv(rows)


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden {name}"
    return html.unescape(match.group(1))


def _selected(page: str) -> dict[str, str]:
    """The form's current values, as a browser would send them back."""
    form: dict[str, str] = {}
    for name in ("data", "filename", "base"):
        form[name] = _hidden(page, name)
    for select_ in re.finditer(r'<select id="(\w+)" name="\w+">(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', select_.group(2))
        form[select_.group(1)] = html.unescape(chosen.group(1)) if chosen else ""
    for area in re.finditer(r'<textarea id="(\w+)"[^>]*>(.*?)</textarea>', page, re.S):
        form[area.group(1)] = html.unescape(area.group(2))
    header_row = re.search(r'id="header_row"[^>]*value="(\d*)"', page)
    form["header_row"] = header_row.group(1) if header_row else ""
    if re.search(r'name="header_find" value="1" checked', page):
        form["header_find"] = "1"
    return form


def _preview(client: TestClient, csrf: str, name: str, data: bytes, base: str = "auto") -> Any:
    kind = XLSX if name.endswith(".xlsx") else "text/csv"
    return client.post(
        "/staff/admin/statements/preview",
        data={"csrf_token": csrf, "base": base},
        files={"file": (name, io.BytesIO(data), kind)},
        headers=HTML,
    )


def test_page_lists_built_in_profiles_marked_unconfirmed(client: TestClient, admin: str) -> None:
    page = client.get("/staff/admin/statements", headers=HTML)
    assert page.status_code == 200
    for name in ("vietcombank", "vietinbank", "bidv", "agribank", "techcombank", "mb", "acb"):
        assert f'data-profile="{name}"' in page.text
    assert "Chưa xác nhận" in page.text and "chưa đối chiếu với tệp xuất thật" in page.text
    english = client.get("/staff/admin/statements?lang=en", headers=HTML)
    assert "Unconfirmed" in english.text and "Built-in profiles" in english.text
    home = client.get("/staff/admin", headers=HTML)
    assert 'href="/staff/admin/statements"' in home.text


def test_sample_preview_save_and_import(
    client: TestClient, admin: str, demo: Settings, vcb_xlsx: bytes
) -> None:
    page = _preview(client, admin, "saoke-vcb.xlsx", vcb_xlsx)
    assert page.status_code == 200, page.text
    text = page.text
    # prefilled by detection: the header row and each column found
    form = _selected(text)
    assert form["header_row"] == "9" and form["header_find"] == "1"
    assert form["col_date"] == "1" and form["col_credit"] == "4" and form["col_balance"] == "5"
    # the parsed lines and the report preview, before anything is saved
    assert 'id="parsed-lines"' in text
    for ref in ("FT26001A0001", "FT26001A0002", "FT26001A0003"):
        assert ref in text
    assert "1.250.000 đ" in text and "13.750.000 đ" in text  # credit, running balance
    assert 'id="report-preview"' in text and 'data-k="credits_new">2<' in text
    assert 'data-k="debits_ignored">1<' in text and "OK" in text
    assert _count(demo, BankEvent) == 0 and _count(demo, StoredProfile) == 0
    assert _count(demo, BankStatement) == 0

    form.update(csrf_token=admin, name="vcb-huyen", description="Sao kê VCB của huyện")
    saved = client.post(
        "/staff/admin/statements/profiles", data=form, headers=HTML, follow_redirects=False
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == "/staff/admin/statements?done=saved"
    with _db(demo) as session:
        row = session.scalar(select(StoredProfile))
        assert row is not None and row.name == "vcb-huyen" and row.created_by == "quantri"
        assert row.profile["columns"]["credit"] == ["Số tiền ghi có"]
        assert row.profile["header_row"] is None
        event = session.scalar(
            select(StaffAdminEvent).where(StaffAdminEvent.action == "statement_profile_saved")
        )
        assert event is not None and event.detail["lines"] == 3
    listing = client.get("/staff/admin/statements?done=saved", headers=HTML).text
    assert 'data-profile="vcb-huyen"' in listing and "Số tiền ghi có" in listing

    def do_import() -> Any:
        return client.post(
            "/staff/admin/statements/import",
            data={"csrf_token": admin, "profile": "vcb-huyen"},
            files={"file": ("saoke.xlsx", io.BytesIO(vcb_xlsx), XLSX)},
            headers=HTML,
        )

    first = do_import()
    assert first.status_code == 200, first.text
    assert 'id="import-report"' in first.text
    for key, value in (("lines", 3), ("credits_new", 2), ("credits_known", 0)):
        assert f'data-k="{key}">{value}<' in first.text
    assert _count(demo, BankEvent) == 3
    again = do_import()
    assert 'data-already="1"' in again.text and _count(demo, BankEvent) == 3


def test_columns_chosen_by_hand_when_detection_cannot(
    client: TestClient, admin: str, demo: Settings, own_csv: bytes
) -> None:
    first = _preview(client, admin, "saoke.csv", own_csv)
    assert first.status_code == 200
    assert 'id="no-header"' in first.text and 'id="parsed-lines"' not in first.text
    form = _selected(first.text)
    form.update(csrf_token=admin, header_row="9")
    with_header = client.post("/staff/admin/statements/preview", data=form, headers=HTML)
    assert ">5. Tiền vào</option>" in with_header.text  # the header row's cells to choose from
    form = _selected(with_header.text)
    form.update(
        csrf_token=admin,
        header_row="9",
        header_find="1",
        col_date="1",
        col_description="2",
        col_debit="3",
        col_credit="4",
        col_balance="5",
        col_reference="6",
    )
    chosen = client.post("/staff/admin/statements/preview", data=form, headers=HTML)
    assert chosen.status_code == 200
    assert 'id="parsed-lines"' in chosen.text and "FT26001A0003" in chosen.text
    form.update(name="ctg-rieng")
    saved = client.post(
        "/staff/admin/statements/profiles", data=form, headers=HTML, follow_redirects=False
    )
    assert saved.status_code == 303, saved.text
    imported = client.post(
        "/staff/admin/statements/import",
        data={"csrf_token": admin, "profile": "ctg-rieng"},
        files={"file": ("saoke.csv", io.BytesIO(own_csv), "text/csv")},
        headers=HTML,
    )
    assert 'data-k="credits_new">2<' in imported.text
    assert _count(demo, BankEvent) == 3


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("saoke.xlsx", b"PK\x03\x04 not really a zip", "không đọc được tệp Excel"),
        (
            "saoke.xlsx",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
            + b"\x00" * 504
            + "EncryptionInfo".encode("utf-16-le"),
            "password-protected",
        ),
        ("saoke.csv", b"", "choose a sample"),
        ("saoke.csv", b"\xff\xfe\x00bad", "UTF-8"),
    ],
    ids=["not-a-zip", "encrypted", "empty", "not-utf8"],
)
def test_bad_sample_upload_is_a_clear_error_and_saves_nothing(
    client: TestClient, admin: str, demo: Settings, name: str, data: bytes, needle: str
) -> None:
    page = _preview(client, admin, name, data)
    assert page.status_code == 422
    assert 'id="statement-error"' in page.text and needle in html.unescape(page.text)
    assert _count(demo, StoredProfile) == 0 and _count(demo, BankEvent) == 0


def test_save_refusals_keep_the_preview_and_save_nothing(
    client: TestClient, admin: str, demo: Settings, vcb_xlsx: bytes
) -> None:
    form = _selected(_preview(client, admin, "saoke.xlsx", vcb_xlsx).text)
    form.update(csrf_token=admin)
    cases = [
        ({"name": ""}, 422, "give the profile a name"),
        ({"name": "Tên có dấu"}, 422, "profile name"),
        ({"name": "auto"}, 409, "built-in"),
        ({"name": "vcb", "col_credit": "", "col_debit": ""}, 422, "credit"),
        ({"name": "vcb", "thousands": ",", "header_find": ""}, 422, "row 10"),
        ({"name": "vcb", "date_formats": "%Y-%m-%d"}, 422, "date"),
    ]
    for change, status, needle in cases:
        page = client.post(
            "/staff/admin/statements/profiles", data={**form, **change}, headers=HTML
        )
        assert page.status_code == status, (change, page.text[:500])
        assert 'id="save-error"' in page.text and needle in html.unescape(page.text), change
        assert 'id="mapping-form"' in page.text  # the preview again, to correct
    assert _count(demo, StoredProfile) == 0
    damaged = client.post(
        "/staff/admin/statements/profiles",
        data={**form, "name": "vcb", "data": "%%%"},
        headers=HTML,
    )
    assert damaged.status_code == 422 and "upload it again" in damaged.text
    assert _count(demo, StoredProfile) == 0


def test_import_refusal_names_the_row_and_writes_nothing(
    client: TestClient, admin: str, demo: Settings, clock: Clock
) -> None:
    rows = rows_of("mb", transactions(clock.today() - timedelta(days=1), clock), "dots")
    rows[10][2] = "hôm qua"  # the second line's date
    page = client.post(
        "/staff/admin/statements/import",
        data={"csrf_token": admin, "profile": "mb"},
        files={"file": ("saoke.csv", io.BytesIO(as_csv(rows)), "text/csv")},
        headers=HTML,
    )
    assert page.status_code == 422
    assert "row 11" in page.text and "hôm qua" in html.unescape(page.text)
    assert _count(demo, BankEvent) == 0 and _count(demo, BankStatement) == 0


def test_delete_and_other_agency(
    client: TestClient, admin: str, demo: Settings, clock: Clock
) -> None:
    spec = {"name": "mine", "columns": {"date": ["Ngày GD"], "credit": ["Ghi có"]}}
    with _db(demo) as session:
        from payments.agencies import agency_by_code

        own = save_profile(
            session, agency_by_code(session, "DEMO-HUYEN").id, spec, created_by="x", now=clock.now()
        )
        other_agency = add_agency(session, replace(DEMO_AGENCY, code="KHAC-XA", name="Xã Khác"))
        theirs = save_profile(session, other_agency.id, spec, created_by="y", now=clock.now())
        own_id, their_id = own.id, theirs.id
    refused = client.post(
        f"/staff/admin/statements/profiles/{their_id}/delete",
        data={"csrf_token": admin},
        headers=HTML,
    )
    assert refused.status_code == 404
    # another agency's profile is not offered and not usable here
    assert 'data-profile="mine"' in client.get("/staff/admin/statements", headers=HTML).text
    done = client.post(
        f"/staff/admin/statements/profiles/{own_id}/delete",
        data={"csrf_token": admin},
        headers=HTML,
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].endswith("done=deleted")
    assert _count(demo, StoredProfile) == 1  # theirs remains


def test_only_an_admin_may(client: TestClient, demo: Settings, vcb_xlsx: bytes) -> None:
    client.cookies.clear()
    anonymous = client.get("/staff/admin/statements", headers=HTML, follow_redirects=False)
    assert anonymous.status_code == 303 and "/staff/login" in anonymous.headers["location"]
    for username in ("thuquy", "ketoan"):  # a clerk, an accountant
        csrf = _sign_in(client, username)
        assert client.get("/staff/admin/statements", headers=HTML).status_code == 403
        assert _preview(client, csrf, "saoke.xlsx", vcb_xlsx).status_code == 403
        imported = client.post(
            "/staff/admin/statements/import",
            data={"csrf_token": csrf},
            files={"file": ("saoke.xlsx", io.BytesIO(vcb_xlsx), XLSX)},
            headers=HTML,
        )
        assert imported.status_code == 403
    _sign_in(client, "quantri")
    no_csrf = _preview(client, "wrong-token", "saoke.xlsx", vcb_xlsx)
    assert no_csrf.status_code == 403
    assert _count(demo, BankEvent) == 0 and _count(demo, StoredProfile) == 0
