"""The agency admin pages (issue 6, item 5) through FastAPI's TestClient, on both backends.

Each action is checked in the database (what changed, and that a ``staff_admin_events`` row
records it), refusals are checked to change nothing, and secrets are checked to appear in the
one response that issues them and nowhere else (later pages, the database, the logs).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from api_flow import ORDER, create
from fastapi.testclient import TestClient
from infra.clock import today as clock_today
from sqlalchemy import func, select

import api.deps
from api.demo import CATALOG_FROM, DEMO_AGENCY, DEMO_STAFF_PASSWORD
from api.pages.admin import certificate_status
from api.staff.models import StaffAccount, StaffAdminEvent, StaffSession
from api.staff.sessions import create_staff
from payments.agencies import add_agency
from payments.catalog import import_catalog
from payments.credentials import add_bank_feed, add_client, hash_key
from payments.models import (
    Agency,
    ApiClient,
    BankFeedCredential,
    FeeItem,
    PaymentOrder,
    Procedure,
)
from settings.config import Settings
from settings.db import engine_for, session_scope

HTML = {"Accept": "text/html"}
NEW_PASSWORD = "mật-khẩu-mới-đủ-dài"
CSV_HEADER = (
    "procedure_code,procedure_name,field,fee_code,fee_kind,fee_name,amount,unit,max_amount,"
    "retention_percent,legal_basis\n"
)
OTHER_ROW = "8.000001,Thủ tục xã khác,Khác,XK-1,phi,Phí xã khác,5000,lần,,0,Thông tư 9\n".encode()


def _db(settings: Settings) -> Any:
    return session_scope(engine_for(settings.effective_database_url))


def _sign_in(client: TestClient, username: str, password: str = DEMO_STAFF_PASSWORD) -> str:
    """Signs ``client`` in and returns the session's CSRF token."""
    response = client.post(
        "/staff/login",
        data={"username": username, "password": password},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    me = client.get("/staff/me")
    assert me.status_code == 200
    token: str = me.json()["csrf_token"]
    return token


def _second(client: TestClient) -> TestClient:
    """Another browser on the same app (its own cookie jar)."""
    return TestClient(client.app)


def _events(settings: Settings, action: str) -> list[StaffAdminEvent]:
    with _db(settings) as session:
        rows = list(
            session.scalars(
                select(StaffAdminEvent)
                .where(StaffAdminEvent.action == action)
                .order_by(StaffAdminEvent.id)
            )
        )
        session.expunge_all()
        return rows


def _account(settings: Settings, username: str) -> StaffAccount | None:
    with _db(settings) as session:
        row = session.scalar(select(StaffAccount).where(StaffAccount.username == username))
        if row is not None:
            session.expunge(row)
        return row


def _count(settings: Settings, model: Any) -> int:
    with _db(settings) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def admin(client: TestClient) -> str:
    return _sign_in(client, "quantri")


@pytest.fixture
def other_agency(demo: Settings) -> dict[str, str]:
    """A second agency with its own staff member, API client and bank-feed key."""
    with _db(demo) as session:
        other = add_agency(session, replace(DEMO_AGENCY, code="KHAC-XA", name="UBND xã Khác"))
        member = create_staff(session, other.id, "xa.khac", "Lê Văn Cường", NEW_PASSWORD, ["clerk"])
        issued = add_client(session, other, "Một cửa xã Khác", None, allow_loopback=True)
        feed, _ = add_bank_feed(session, other, "sepay")
        import_catalog(session, other, CSV_HEADER.encode() + OTHER_ROW, effective_from=CATALOG_FROM)
        item = session.scalar(
            select(FeeItem).join(Procedure).where(Procedure.agency_id == other.id)
        )
        assert item is not None
        return {"staff": member.id, "client": issued.client.id, "feed": feed.id, "fee": item.id}


# --- access ---------------------------------------------------------------------------


def test_pages_render_in_vietnamese_and_english(client: TestClient, admin: str) -> None:
    for path, vi, en in (
        ("/staff/admin", "Quản trị đơn vị", "Agency administration"),
        ("/staff/admin/users", "Cán bộ và vai trò", "Staff and roles"),
        ("/staff/admin/catalog", "Danh mục phí, lệ phí", "Fee catalogue"),
        ("/staff/admin/keys", "Khóa API và khóa nguồn dữ liệu ngân hàng", "API clients"),
        ("/staff/admin/certificate", "Chứng thư số ký biên lai", "Receipt signing certificate"),
    ):
        page = client.get(path, headers=HTML)
        assert page.status_code == 200, (path, page.text[:500])
        assert vi in page.text
        assert page.headers["cache-control"] == "no-store"
        assert en in client.get(path + "?lang=en", headers=HTML).text
    users = client.get("/staff/admin/users").text
    for username in ("thuquy", "ketoan", "ketoan2", "quantri"):
        assert username in users
    catalog = client.get("/staff/admin/catalog").text
    assert (
        "CT-BS" in catalog and "2.000 đ" in catalog and CATALOG_FROM.strftime("%d/%m/%Y") in catalog
    )


def test_clerk_is_refused_and_nothing_changes(client: TestClient, demo: Settings) -> None:
    token = _sign_in(client, "thuquy")
    page = client.get("/staff/admin", headers=HTML)
    assert page.status_code == 403
    assert "Tài khoản không có quyền" in page.text
    assert client.get("/staff/admin/users").status_code == 403
    before = _count(demo, StaffAccount)
    refused = client.post(
        "/staff/admin/users",
        data={
            "csrf_token": token,
            "username": "moi.tao",
            "display_name": "X",
            "roles": "clerk",
            "password": NEW_PASSWORD,
        },
    )
    assert refused.status_code == 403
    assert _count(demo, StaffAccount) == before
    assert _count(demo, StaffAdminEvent) == 0


def test_signed_out_browser_goes_to_sign_in(client: TestClient) -> None:
    response = client.get("/staff/admin/keys", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/staff/login?next=/staff/admin/keys")


def test_missing_csrf_is_refused_and_nothing_changes(
    client: TestClient, admin: str, demo: Settings
) -> None:
    before = _count(demo, StaffAccount)
    thuquy = _account(demo, "thuquy")
    assert thuquy is not None
    attempts = [
        ("/staff/admin/users", {"username": "moi.tao", "display_name": "X", "roles": "clerk"}),
        (f"/staff/admin/users/{thuquy.id}/roles", {"roles": ["clerk", "admin"]}),
        (f"/staff/admin/users/{thuquy.id}/disable", {}),
        (f"/staff/admin/users/{thuquy.id}/password", {"password": NEW_PASSWORD}),
        ("/staff/admin/keys/clients", {"name": "Không token"}),
        ("/staff/admin/keys/feeds", {"provider": "sepay"}),
    ]
    clients_before = _count(demo, ApiClient)
    feeds_before = _count(demo, BankFeedCredential)
    for path, data in attempts:
        assert client.post(path, data=data).status_code == 403, path
        assert client.post(path, data={**data, "csrf_token": "wrong"}).status_code == 403, path
    after = _account(demo, "thuquy")
    assert after is not None
    assert (after.roles, after.active, after.password_hash) == (
        thuquy.roles,
        thuquy.active,
        thuquy.password_hash,
    )
    assert _count(demo, StaffAccount) == before
    assert _count(demo, ApiClient) == clients_before
    assert _count(demo, BankFeedCredential) == feeds_before
    assert _count(demo, StaffAdminEvent) == 0


def test_other_agencys_objects_are_404_and_unchanged(
    client: TestClient, admin: str, demo: Settings, other_agency: dict[str, str]
) -> None:
    staff_id, client_id, feed_id = (
        other_agency["staff"],
        other_agency["client"],
        other_agency["feed"],
    )
    assert client.get(f"/staff/admin/users/{staff_id}", headers=HTML).status_code == 404
    for path, data in (
        (f"/staff/admin/users/{staff_id}/roles", {"roles": ["admin"]}),
        (f"/staff/admin/users/{staff_id}/disable", {}),
        (f"/staff/admin/users/{staff_id}/password", {"password": ""}),
        (f"/staff/admin/keys/clients/{client_id}/revoke", {}),
        (f"/staff/admin/keys/feeds/{feed_id}/revoke", {}),
        (
            f"/staff/admin/catalog/fees/{other_agency['fee']}/price",
            {"amount": "1", "effective_from": clock_today().isoformat()},
        ),
    ):
        response = client.post(path, data={**data, "csrf_token": admin})
        assert response.status_code == 404, (path, response.text[:300])
    assert client.get(f"/staff/admin/catalog/fees/{other_agency['fee']}").status_code == 404
    member = _account(demo, "xa.khac")
    assert member is not None and member.active and member.roles == "clerk"
    with _db(demo) as session:
        other_client = session.get(ApiClient, client_id)
        other_feed = session.get(BankFeedCredential, feed_id)
        assert other_client is not None and other_client.active
        assert other_feed is not None and other_feed.active
    assert _count(demo, StaffAdminEvent) == 0
    # and the other agency's people are not listed either
    assert "xa.khac" not in client.get("/staff/admin/users").text
    assert "Một cửa xã Khác" not in client.get("/staff/admin/keys").text


# --- users and roles ------------------------------------------------------------------


def test_create_account_with_a_chosen_password(
    client: TestClient, admin: str, demo: Settings
) -> None:
    response = client.post(
        "/staff/admin/users",
        data={
            "csrf_token": admin,
            "username": "Clerk.Moi",
            "display_name": "Đỗ Thị Mới",
            "roles": ["clerk"],
            "password": NEW_PASSWORD,
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/staff/admin/users?done=created"
    created = _account(demo, "clerk.moi")
    assert created is not None and created.roles == "clerk" and created.active
    (event,) = _events(demo, "staff_created")
    assert event.target_id == created.id and event.actor_username == "quantri"
    assert event.detail == {"username": "clerk.moi", "roles": "clerk"}
    assert NEW_PASSWORD not in str(event.detail)
    _sign_in(_second(client), "clerk.moi", NEW_PASSWORD)
    listing = client.get("/staff/admin/users?done=created").text
    assert "Đã tạo tài khoản." in listing and "Đỗ Thị Mới" in listing


def test_generated_password_is_shown_once_and_works(
    client: TestClient, admin: str, demo: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = client.post(
        "/staff/admin/users",
        data={
            "csrf_token": admin,
            "username": "ketoan3",
            "display_name": "Vũ Văn Ba",
            "roles": ["accountant", "clerk"],
            "password": "",
        },
    )
    assert response.status_code == 200
    assert "Chỉ hiển thị một lần" in response.text
    found = re.search(r'data-secret="password">([^<]+)<', response.text)
    assert found is not None
    password = found.group(1)
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", password)
    account = _account(demo, "ketoan3")
    assert account is not None and account.roles == "accountant clerk"
    assert password not in account.password_hash
    _sign_in(_second(client), "ketoan3", password)
    for path in ("/staff/admin/users", f"/staff/admin/users/{account.id}", "/staff/admin"):
        assert password not in client.get(path).text
    assert "admin change" in caplog.text and password not in caplog.text
    assert password not in str([e.detail for e in _events(demo, "staff_created")])


def test_weak_password_and_bad_username_are_refused(
    client: TestClient, admin: str, demo: Settings
) -> None:
    before = _count(demo, StaffAccount)
    weak = client.post(
        "/staff/admin/users",
        data={
            "csrf_token": admin,
            "username": "clerk.yeu",
            "display_name": "Yếu",
            "roles": ["clerk"],
            "password": "ngan",
        },
    )
    assert weak.status_code == 422
    assert "ít nhất 10 ký tự" in weak.text and "Không có gì đã bị thay đổi" in weak.text
    assert 'value="clerk.yeu"' in weak.text  # the form keeps what was typed
    taken = client.post(
        "/staff/admin/users",
        data={
            "csrf_token": admin,
            "username": "thuquy",
            "display_name": "Trùng",
            "roles": ["clerk"],
            "password": NEW_PASSWORD,
        },
    )
    assert taken.status_code == 409 and "đã được dùng" in taken.text
    no_role = client.post(
        "/staff/admin/users",
        data={
            "csrf_token": admin,
            "username": "khong.vai",
            "display_name": "Không vai trò",
            "password": NEW_PASSWORD,
        },
    )
    assert no_role.status_code == 422 and "ít nhất một vai trò" in no_role.text
    assert _count(demo, StaffAccount) == before
    assert _count(demo, StaffAdminEvent) == 0


def test_change_roles_disable_enable_and_reset(
    client: TestClient, admin: str, demo: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    thuquy = _account(demo, "thuquy")
    assert thuquy is not None
    clerk = _second(client)
    _sign_in(clerk, "thuquy")

    roles = client.post(
        f"/staff/admin/users/{thuquy.id}/roles",
        data={"csrf_token": admin, "roles": ["clerk", "accountant"]},
        follow_redirects=False,
    )
    assert roles.status_code == 303
    assert _account(demo, "thuquy").roles == "accountant clerk"  # type: ignore[union-attr]
    (event,) = _events(demo, "staff_roles_changed")
    assert event.detail == {"username": "thuquy", "before": "clerk", "after": "accountant clerk"}
    assert clerk.get("/staff/me").json()["roles"] == ["accountant", "clerk"]

    disabled = client.post(
        f"/staff/admin/users/{thuquy.id}/disable",
        data={"csrf_token": admin},
        follow_redirects=False,
    )
    assert disabled.status_code == 303
    assert not _account(demo, "thuquy").active  # type: ignore[union-attr]
    assert clerk.get("/staff/me").status_code == 401  # signed out at once
    with _db(demo) as session:
        assert session.scalar(select(func.count()).where(StaffSession.staff_id == thuquy.id)) == 0
    refused = clerk.post(
        "/staff/login",
        data={"username": "thuquy", "password": DEMO_STAFF_PASSWORD},
        follow_redirects=False,
    )
    assert refused.status_code == 401
    assert len(_events(demo, "staff_disabled")) == 1

    enabled = client.post(
        f"/staff/admin/users/{thuquy.id}/enable",
        data={"csrf_token": admin},
        follow_redirects=False,
    )
    assert enabled.status_code == 303
    _sign_in(clerk, "thuquy")
    assert len(_events(demo, "staff_enabled")) == 1

    reset = client.post(
        f"/staff/admin/users/{thuquy.id}/password", data={"csrf_token": admin, "password": ""}
    )
    assert reset.status_code == 200 and "Chỉ hiển thị một lần" in reset.text
    found = re.search(r'data-secret="password">([^<]+)<', reset.text)
    assert found is not None
    new_password = found.group(1)
    assert clerk.get("/staff/me").status_code == 401  # the old session ended
    assert (
        clerk.post(
            "/staff/login",
            data={"username": "thuquy", "password": DEMO_STAFF_PASSWORD},
            follow_redirects=False,
        ).status_code
        == 401
    )
    _sign_in(clerk, "thuquy", new_password)
    (reset_event,) = _events(demo, "staff_password_reset")
    assert reset_event.detail == {"username": "thuquy", "generated": True}
    assert "admin change" in caplog.text and new_password not in caplog.text
    assert new_password not in client.get(f"/staff/admin/users/{thuquy.id}").text

    chosen = client.post(
        f"/staff/admin/users/{thuquy.id}/password",
        data={"csrf_token": admin, "password": NEW_PASSWORD},
        follow_redirects=False,
    )
    assert chosen.status_code == 303
    _sign_in(_second(client), "thuquy", NEW_PASSWORD)
    page = client.get(f"/staff/admin/users/{thuquy.id}").text
    assert "Đặt lại mật khẩu" in page and "Đổi vai trò" in page  # the history lists them


def test_admin_cannot_lock_themself_out(client: TestClient, admin: str, demo: Settings) -> None:
    me = _account(demo, "quantri")
    assert me is not None
    drop = client.post(
        f"/staff/admin/users/{me.id}/roles", data={"csrf_token": admin, "roles": ["clerk"]}
    )
    assert drop.status_code == 409
    assert "không thể bỏ vai trò quản trị của chính mình" in drop.text
    disable = client.post(f"/staff/admin/users/{me.id}/disable", data={"csrf_token": admin})
    assert disable.status_code == 409
    assert "không thể vô hiệu hóa tài khoản của chính mình" in disable.text
    reset = client.post(
        f"/staff/admin/users/{me.id}/password", data={"csrf_token": admin, "password": ""}
    )
    assert reset.status_code == 409
    after = _account(demo, "quantri")
    assert after is not None and after.roles == "admin" and after.active
    assert after.password_hash == me.password_hash
    assert _count(demo, StaffAdminEvent) == 0
    # adding a role to oneself is fine
    more = client.post(
        f"/staff/admin/users/{me.id}/roles",
        data={"csrf_token": admin, "roles": ["admin", "accountant"]},
        follow_redirects=False,
    )
    assert more.status_code == 303
    assert _account(demo, "quantri").roles == "accountant admin"  # type: ignore[union-attr]


# --- catalogue ------------------------------------------------------------------------


def _local_today() -> date:
    return clock_today(ZoneInfo(DEMO_AGENCY.time_zone))


def _fee_id(settings: Settings, procedure: str, fee: str) -> str:
    with _db(settings) as session:
        item = session.scalar(
            select(FeeItem)
            .join(Procedure)
            .where(Procedure.code == procedure, FeeItem.code == fee, FeeItem.effective_to.is_(None))
        )
        assert item is not None
        return item.id


def test_new_price_is_a_new_row_and_earlier_orders_keep_theirs(
    client: TestClient, admin: str, demo: Settings, auth: dict[str, str]
) -> None:
    before = create(client, auth, "admin-price-1")
    assert before.status_code == 201, before.text
    assert before.json()["amount"] == 5_000  # 2 pages × 2.000 đ + 1 page × 1.000 đ
    old_id = _fee_id(demo, "1.001612", "CT-BS")
    today = _local_today()

    page = client.get(f"/staff/admin/catalog/fees/{old_id}")
    assert page.status_code == 200 and "Lịch sử mức thu" in page.text
    response = client.post(
        f"/staff/admin/catalog/fees/{old_id}/price",
        data={"csrf_token": admin, "amount": "3.000", "effective_from": today.isoformat()},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    new_id = _fee_id(demo, "1.001612", "CT-BS")
    assert new_id != old_id
    assert response.headers["location"] == f"/staff/admin/catalog/fees/{new_id}?done=repriced"
    with _db(demo) as session:
        old = session.get(FeeItem, old_id)
        new = session.get(FeeItem, new_id)
        assert old is not None and new is not None
        assert (old.amount, old.effective_from, old.effective_to) == (
            2_000,
            CATALOG_FROM,
            today - timedelta(days=1),
        )
        assert (new.amount, new.effective_from, new.effective_to) == (3_000, today, None)
        assert (new.max_amount, new.unit, new.legal_basis) == (
            old.max_amount,
            old.unit,
            old.legal_basis,
        )
        earlier = session.get(PaymentOrder, before.json()["id"])
        assert earlier is not None and earlier.amount == 5_000
        assert earlier.lines[0].unit_price == 2_000 and earlier.lines[0].fee_item_id == old_id
    after = create(client, auth, "admin-price-2", {**ORDER, "dossier_code": "H01.22-261121-0002"})
    assert after.status_code == 201, after.text
    assert after.json()["amount"] == 7_000  # the first price changes; the tier from page 3 stays
    (event,) = _events(demo, "fee_repriced")
    assert event.detail["old_amount"] == 2_000 and event.detail["new_amount"] == 3_000
    assert event.detail["fee_code"] == "CT-BS" and event.target_id == new_id
    history = client.get(f"/staff/admin/catalog/fees/{new_id}?done=repriced").text
    assert "3.000 đ" in history and "2.000 đ" in history and "giữ nguyên số tiền" in history
    # the old row cannot be repriced again (its successor is the one to change)
    again = client.post(
        f"/staff/admin/catalog/fees/{old_id}/price",
        data={
            "csrf_token": admin,
            "amount": "4000",
            "effective_from": (today + timedelta(days=5)).isoformat(),
        },
    )
    assert again.status_code == 422


def test_bad_price_edits_change_nothing(client: TestClient, admin: str, demo: Settings) -> None:
    fee_id = _fee_id(demo, "2.000884", "CT-CK")
    today = _local_today()
    rows_before = _count(demo, FeeItem)
    for amount, day, expected in (
        ("mười nghìn", today.isoformat(), "số nguyên đồng"),
        ("-5", today.isoformat(), "số nguyên đồng"),
        ("12000", (today - timedelta(days=1)).isoformat(), "ngày đã qua"),
        ("12000", today.strftime("%d/%m/%Y"), "YYYY-MM-DD"),
        ("10.000", today.isoformat(), "already costs"),
    ):
        response = client.post(
            f"/staff/admin/catalog/fees/{fee_id}/price",
            data={"csrf_token": admin, "amount": amount, "effective_from": day},
        )
        assert response.status_code == 422, (amount, day)
        assert expected in response.text, (amount, day, response.text[:2000])
        assert "Không có gì đã bị thay đổi" in response.text
    capped = _fee_id(demo, "1.001612", "CT-BS")
    over_cap = client.post(
        f"/staff/admin/catalog/fees/{capped}/price",
        data={"csrf_token": admin, "amount": "250000", "effective_from": today.isoformat()},
    )
    assert over_cap.status_code == 422 and "cap" in over_cap.text
    assert _count(demo, FeeItem) == rows_before
    assert _count(demo, StaffAdminEvent) == 0


def _upload(client: TestClient, token: str, body: str, day: str) -> httpx.Response:
    response: httpx.Response = client.post(
        "/staff/admin/catalog/import",
        data={"csrf_token": token, "effective_from": day},
        files={"file": ("danh-muc.csv", body.encode("utf-8"), "text/csv")},
    )
    return response


def test_bad_catalogue_lists_every_bad_line_and_imports_nothing(
    client: TestClient, admin: str, demo: Settings
) -> None:
    procedures, fees = _count(demo, Procedure), _count(demo, FeeItem)
    body = CSV_HEADER + (
        "9.000001,Thủ tục mới,Thử nghiệm,TN-1,phi,Phí thử,15000,lần,,0,Thông tư 1\n"
        "9.000002,Thủ tục sai,Thử nghiệm,TN-2,phi,Phí thử,15.5,lần,,0,Thông tư 1\n"
        "9.000003,Thủ tục sai,Thử nghiệm,TN-3,thue,Thuế,1000,lần,,0,Thông tư 1\n"
    )
    response = _upload(client, admin, body, _local_today().isoformat())
    assert response.status_code == 422
    assert "Tệp bị từ chối toàn bộ" in response.text
    assert "line 3: amount must be a whole number" in response.text
    assert "line 4: fee_kind must be" in response.text
    assert "line 2" not in response.text
    assert (_count(demo, Procedure), _count(demo, FeeItem)) == (procedures, fees)
    assert _count(demo, StaffAdminEvent) == 0
    missing = _upload(client, admin, "a,b\n1,2\n", _local_today().isoformat())
    assert missing.status_code == 422 and "line 1: missing columns" in missing.text
    no_csrf = client.post(
        "/staff/admin/catalog/import",
        data={"effective_from": _local_today().isoformat()},
        files={"file": ("danh-muc.csv", (CSV_HEADER + body.splitlines()[1]).encode(), "text/csv")},
    )
    assert no_csrf.status_code == 403
    assert _count(demo, Procedure) == procedures


def test_good_catalogue_imports_with_its_effective_date(
    client: TestClient, admin: str, demo: Settings
) -> None:
    start = _local_today() + timedelta(days=10)
    body = CSV_HEADER + (
        "9.000001,Thủ tục mới,Thử nghiệm,TN-1,phi,Phí thử,15000,lần,,0,Thông tư 1\n"
        '2.000884,"Chứng thực chữ ký trong các giấy tờ, văn bản (áp dụng cả trường hợp chứng '
        'thực điểm chỉ)",Chứng thực,CT-CK,phi,Phí chứng thực chữ ký,12000,trường hợp,,0,'
        "Thông tư 226/2016/TT-BTC\n"
    )
    response = _upload(client, admin, body, start.isoformat())
    assert response.status_code == 200, response.text[:1000]
    assert "Đã nhập danh mục" in response.text
    with _db(demo) as session:
        versions = list(
            session.scalars(
                select(FeeItem)
                .join(Procedure)
                .where(Procedure.code == "2.000884", FeeItem.code == "CT-CK")
                .order_by(FeeItem.effective_from)
            )
        )
        assert [(v.amount, v.effective_from, v.effective_to) for v in versions] == [
            (10_000, CATALOG_FROM, start - timedelta(days=1)),
            (12_000, start, None),
        ]
    (event,) = _events(demo, "catalog_imported")
    assert event.detail["fees_created"] == 1 and event.detail["fees_repriced"] == 1
    assert event.detail["file"] == "danh-muc.csv"
    listing = client.get("/staff/admin/catalog?q=TN-1").text
    assert "Phí thử" in listing and "15.000 đ" in listing and "CT-CK" not in listing


# --- API clients and bank-feed keys ---------------------------------------------------


def test_api_client_key_is_shown_once_hashed_and_never_logged(
    client: TestClient, admin: str, demo: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = client.post(
        "/staff/admin/keys/clients",
        data={
            "csrf_token": admin,
            "name": "Cổng dịch vụ công tỉnh",
            "callback_url": "https://motcua.example.gov.vn/cb",
        },
    )
    assert response.status_code == 200, response.text[:500]
    assert "Chỉ hiển thị một lần" in response.text and "data-copy=" in response.text
    key = re.search(r'data-secret="api_key">([^<]+)<', response.text)
    secret = re.search(r'data-secret="callback_secret">([^<]+)<', response.text)
    assert key is not None and secret is not None
    api_key, callback_secret = key.group(1), secret.group(1)
    assert api_key.startswith("mcp_live_") and callback_secret.startswith("whsec_")
    with _db(demo) as session:
        row = session.scalar(select(ApiClient).where(ApiClient.name == "Cổng dịch vụ công tỉnh"))
        assert row is not None
        assert row.key_hash == hashlib.sha256(api_key.encode()).hexdigest() == hash_key(api_key)
        assert row.key_prefix == api_key[:12] and api_key not in (row.key_prefix, row.key_hash)
        client_id = row.id
    (event,) = _events(demo, "api_client_created")
    assert event.target_id == client_id and event.detail["key_prefix"] == api_key[:12]
    assert api_key not in str(event.detail) and callback_secret not in str(event.detail)
    # a second view shows the prefix only
    listing = client.get("/staff/admin/keys").text
    assert api_key[:12] in listing
    assert api_key not in listing and callback_secret not in listing
    # the key works for the API ...
    auth = {"Authorization": f"Bearer {api_key}"}
    assert create(client, auth, "admin-key-1").status_code == 201
    # ... until it is revoked
    revoked = client.post(
        f"/staff/admin/keys/clients/{client_id}/revoke",
        data={"csrf_token": admin},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert len(_events(demo, "api_client_revoked")) == 1
    api.deps._client_cache.clear()  # the 30 s key cache, not under test here
    assert create(client, auth, "admin-key-2").status_code == 401
    assert "Đã thu hồi" in client.get("/staff/admin/keys").text
    assert "admin change" in caplog.text  # the logs are captured, and hold no secret:
    assert api_key not in caplog.text and callback_secret not in caplog.text


def test_bad_callback_url_is_refused(client: TestClient, admin: str, demo: Settings) -> None:
    before = _count(demo, ApiClient)
    response = client.post(
        "/staff/admin/keys/clients",
        data={"csrf_token": admin, "name": "Sai địa chỉ", "callback_url": "ftp://example.vn/x"},
    )
    assert response.status_code == 422 and "https" in response.text
    assert 'value="Sai địa chỉ"' in response.text
    assert _count(demo, ApiClient) == before


def test_bank_feed_key_is_shown_once_and_revocable(
    client: TestClient, admin: str, demo: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = client.post("/staff/admin/keys/feeds", data={"csrf_token": admin, "provider": "momo"})
    assert bad.status_code == 422
    response = client.post(
        "/staff/admin/keys/feeds", data={"csrf_token": admin, "provider": "sepay"}
    )
    assert response.status_code == 200
    found = re.search(r'data-secret="feed_key">([^<]+)<', response.text)
    assert found is not None
    key = found.group(1)
    with _db(demo) as session:
        row = session.scalar(
            select(BankFeedCredential).where(BankFeedCredential.key_hash == hash_key(key))
        )
        assert row is not None and row.provider == "sepay" and row.secret is None
        assert row.key_prefix == key[:6]
        feed_id = row.id
    listing = client.get("/staff/admin/keys").text
    assert key[:6] in listing and key not in listing
    (event,) = _events(demo, "bank_feed_created")
    assert key not in str(event.detail)
    assert (
        client.post(
            f"/staff/admin/keys/feeds/{feed_id}/revoke",
            data={"csrf_token": admin},
            follow_redirects=False,
        ).status_code
        == 303
    )
    with _db(demo) as session:
        assert session.get(BankFeedCredential, feed_id).active is False  # type: ignore[union-attr]
    assert len(_events(demo, "bank_feed_revoked")) == 1
    assert "admin change" in caplog.text and key not in caplog.text


# --- certificate ----------------------------------------------------------------------


def test_certificate_page_flags_the_demo_certificate(client: TestClient, admin: str) -> None:
    page = client.get("/staff/admin/certificate", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert 'data-level="warn"' in text
    assert "Chứng thư thử nghiệm – KHÔNG có giá trị pháp lý" in text
    assert "Khớp MST đơn vị" in text and "0108424452" in text
    assert "UID=MST:0108424452" in text or "MST:0108424452" in text
    days = re.search(r'id="days-left">(\d+)<', text)
    assert days is not None and 700 <= int(days.group(1)) <= 730
    home = client.get("/staff/admin").text
    assert "Thử nghiệm – không có giá trị pháp lý" in home


def test_certificate_status_expiry_mismatch_and_missing(demo: Settings) -> None:
    with _db(demo) as session:
        agency = session.scalar(select(Agency).where(Agency.code == DEMO_AGENCY.code))
        assert agency is not None
        now = datetime.now(UTC)
        current = certificate_status(agency, now)
        assert current.level == "warn" and current.development and current.tax_code_matches
        assert current.key_usage_ok and current.not_after is not None
        soon = certificate_status(agency, current.not_after - timedelta(days=10, hours=1))
        assert soon.level == "warn" and soon.days_left == 10
        assert any("hết hạn sau 10 ngày" in vi for vi, _ in soon.problems)
        expired = certificate_status(agency, current.not_after + timedelta(days=1))
        assert expired.level == "bad" and expired.problems[0][1] == "The certificate has expired"
        session.expunge(agency)
    other = replace_agency(agency, tax_code="0312345678")
    mismatch = certificate_status(other, now)
    assert mismatch.level == "bad" and not mismatch.tax_code_matches
    missing = certificate_status(replace_agency(agency, signing_key_ref=None), now)
    assert missing.level == "bad" and not missing.configured
    broken = certificate_status(
        replace_agency(agency, signing_key_ref="pkcs12:/nonexistent/org.p12"), now
    )
    assert broken.level == "bad" and broken.problems[0][0].startswith("Không đọc được")


def replace_agency(agency: Agency, **changes: Any) -> Agency:
    """A detached copy with a few fields changed (never saved)."""
    fields = {c.key: getattr(agency, c.key) for c in Agency.__table__.columns}
    fields.update(changes)
    return Agency(**fields)
