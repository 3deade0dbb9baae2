"""Staff sign-in (issue 6, item 1) end to end on both database backends.

The app is built with ``create_app`` and the staff router included here (the wiring into
``create_app`` is the integrator's). Time is injected through ``get_clock`` so the lock-out
and session-expiry windows are crossed without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from infra.clock import now
from sqlalchemy import select

import api.staff.models  # noqa: F401  (metadata must know the staff tables)
from api.app import create_app
from api.demo import DEMO_AGENCY
from api.deps import EngineDep, unit_of_work
from api.staff.deps import (
    COOKIE_NAME,
    Clock,
    StaffContext,
    StaffDep,
    ensure_same_agency,
    get_clock,
    require_role,
)
from api.staff.models import StaffAccount, StaffSession, StaffSignIn
from api.staff.passwords import WeakPassword, hash_password, needs_rehash
from api.staff.routes import router
from api.staff.sessions import StaffAccountError, create_staff
from payments.agencies import add_agency
from payments.models import Agency
from settings.config import Settings
from settings.db import engine_for, load_all_models, session_scope

PASSWORD = "mật-khẩu-đủ-dài-2026"
T0 = now().replace(microsecond=0)  # the injected clock starts at the suite's now


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def _add_test_routes(app: FastAPI) -> None:
    """Stand-ins for the future pages: one role-gated, one agency-scoped."""

    @app.get("/staff/_test/accounting")
    def accounting(
        staff: Annotated[StaffContext, Depends(require_role("accountant", "admin"))],
    ) -> dict[str, str]:
        return {"ok": staff.username}

    @app.get("/staff/_test/colleague/{username}")
    def colleague(username: str, staff: StaffDep, engine: EngineDep) -> dict[str, str]:
        with unit_of_work(engine) as session:
            other = session.scalar(select(StaffAccount).where(StaffAccount.username == username))
            return {"username": ensure_same_agency(staff, other).username}

    @app.get("/staff/_test/colleague-403/{username}")
    def colleague_403(username: str, staff: StaffDep, engine: EngineDep) -> dict[str, str]:
        with unit_of_work(engine) as session:
            other = session.scalar(select(StaffAccount).where(StaffAccount.username == username))
            return {"username": ensure_same_agency(staff, other, reveal=True).username}


def _seed_staff(settings: Settings) -> None:
    with session_scope(engine_for(settings.effective_database_url)) as session:
        agency = session.scalar(select(Agency).where(Agency.code == DEMO_AGENCY.code))
        assert agency is not None
        other = add_agency(session, replace(DEMO_AGENCY, code="KHAC-XA", name="UBND xã Khác"))
        create_staff(session, agency.id, "Clerk.An", "Nguyễn Văn An", PASSWORD, ["clerk"])
        create_staff(session, agency.id, "ketoan.binh", "Trần Thị Bình", PASSWORD, ["accountant"])
        create_staff(session, other.id, "xa.khac", "Lê Văn Cường", PASSWORD, ["clerk"])


def _app(settings: Settings, clock: Clock) -> FastAPI:
    # These tests sign in many times a minute from one address to test the per-username
    # lock-out; the per-IP limit in front of it is tested in tests/security/test_rate_limits.py.
    settings = settings.model_copy(update={"rate_limit_sign_in_per_minute": 1000})
    app = create_app(settings)
    app.include_router(router)
    _add_test_routes(app)
    app.dependency_overrides[get_clock] = lambda: clock
    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def staff_client(demo: Settings, clock: FakeClock) -> Iterator[TestClient]:
    _seed_staff(demo)
    with TestClient(_app(demo, clock)) as test_client:
        yield test_client


def _login(
    client: TestClient, username: str = "clerk.an", password: str = PASSWORD
) -> httpx.Response:
    response: httpx.Response = client.post(
        "/staff/login",
        data={"username": username, "password": password},
        follow_redirects=False,
    )
    return response


def _audit(settings: Settings) -> list[StaffSignIn]:
    with session_scope(engine_for(settings.effective_database_url)) as session:
        return list(session.scalars(select(StaffSignIn).order_by(StaffSignIn.id)))


def _session_count(settings: Settings) -> int:
    with session_scope(engine_for(settings.effective_database_url)) as session:
        return len(list(session.scalars(select(StaffSession))))


def test_staff_tables_match_migration(database_url: str) -> None:
    metadata = load_all_models()
    with engine_for(database_url).connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), metadata
        )
    assert diff == [], diff


def test_login_form_is_bilingual(staff_client: TestClient) -> None:
    page = staff_client.get("/staff/login")
    assert page.status_code == 200
    assert "Đăng nhập cán bộ" in page.text and "Mật khẩu" in page.text
    assert 'name="username"' in page.text and 'type="password"' in page.text
    english = staff_client.get("/staff/login?lang=en")
    assert "Staff sign-in" in english.text and "Password" in english.text


def test_sign_in_sets_a_safe_cookie_and_me_works(staff_client: TestClient, demo: Settings) -> None:
    response = _login(staff_client, "  CLERK.AN ")
    assert response.status_code == 303
    assert response.headers["location"] == "/staff/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "path=/" in lowered
    assert "secure" not in lowered  # public base URL is http://testserver
    me = staff_client.get("/staff/me")
    assert me.status_code == 200
    body = me.json()
    assert body["username"] == "clerk.an"
    assert body["display_name"] == "Nguyễn Văn An"
    assert body["roles"] == ["clerk"]
    assert body["agency_code"] == DEMO_AGENCY.code
    assert len(body["csrf_token"]) >= 40
    [row] = _audit(demo)
    assert (row.username, row.success, row.outcome, row.ip) == (
        "clerk.an",
        True,
        "ok",
        "testclient",
    )
    with session_scope(engine_for(demo.effective_database_url)) as session:
        [stored] = list(session.scalars(select(StaffSession)))
        assert stored.id_hash != staff_client.cookies[COOKIE_NAME]  # only a hash is stored


def test_cookie_is_secure_behind_https(demo: Settings, clock: FakeClock) -> None:
    _seed_staff(demo)
    https = demo.model_copy(update={"public_base_url": "https://thuphi.example.gov.vn"})
    with TestClient(_app(https, clock)) as client:
        response = _login(client)
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()


def test_wrong_password_is_401_and_audited(staff_client: TestClient, demo: Settings) -> None:
    response = _login(staff_client, password="sai-mat-khau-roi")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "sign_in_failed"
    assert COOKIE_NAME not in response.headers.get("set-cookie", "")
    unknown = _login(staff_client, username="khong.ton.tai")
    assert unknown.json()["detail"] == response.json()["detail"]
    rows = _audit(demo)
    assert [(r.username, r.success, r.outcome) for r in rows] == [
        ("clerk.an", False, "invalid"),
        ("khong.ton.tai", False, "invalid"),
    ]
    assert all(r.at == T0 for r in rows)
    assert staff_client.get("/staff/me").status_code == 401


def test_browser_gets_the_form_back_with_the_error(staff_client: TestClient) -> None:
    response = staff_client.post(
        "/staff/login",
        data={"username": "clerk.an", "password": "sai-mat-khau-roi"},
        headers={"Accept": "text/html"},
    )
    assert response.status_code == 401
    assert "Tên đăng nhập hoặc mật khẩu không đúng" in response.text


def test_lock_out_after_five_failures_then_unlock(
    staff_client: TestClient, demo: Settings, clock: FakeClock
) -> None:
    for _ in range(5):
        assert _login(staff_client, password="sai-mat-khau-roi").status_code == 401
        clock.advance(minutes=1)
    locked = _login(staff_client)  # the right password, still refused
    assert locked.status_code == 429
    assert locked.json()["code"] == "sign_in_locked"
    # an unknown username locks the same way, so the answer reveals nothing
    for _ in range(5):
        _login(staff_client, username="khong.ton.tai")
    assert (
        _login(staff_client, username="khong.ton.tai").json()["detail"] == locked.json()["detail"]
    )
    clock.advance(minutes=10)  # 14 minutes after the first failure: 4 still in the window
    assert _login(staff_client).status_code == 303
    outcomes = [r.outcome for r in _audit(demo) if r.username == "clerk.an"]
    assert outcomes == ["invalid"] * 5 + ["locked", "ok"]


def test_lock_lasts_the_whole_window(staff_client: TestClient, clock: FakeClock) -> None:
    for _ in range(5):
        _login(staff_client, password="sai-mat-khau-roi")
    clock.advance(minutes=14, seconds=59)
    assert _login(staff_client).status_code == 429
    clock.advance(seconds=1)
    assert _login(staff_client).status_code == 303


def test_success_resets_the_failure_count(staff_client: TestClient, clock: FakeClock) -> None:
    for _ in range(4):
        _login(staff_client, password="sai-mat-khau-roi")
    assert _login(staff_client).status_code == 303
    clock.advance(seconds=1)
    for _ in range(4):
        _login(staff_client, password="sai-mat-khau-roi")
    assert _login(staff_client).status_code == 303


@pytest.mark.parametrize(
    ("idle", "active_for", "alive"),
    [
        (timedelta(hours=7, minutes=59), None, True),
        (timedelta(hours=8), None, False),
        (None, timedelta(hours=12), False),
    ],
)
def test_session_expiry(
    staff_client: TestClient,
    demo: Settings,
    clock: FakeClock,
    idle: timedelta | None,
    active_for: timedelta | None,
    alive: bool,
) -> None:
    assert _login(staff_client).status_code == 303
    if idle is not None:
        clock.now += idle
    if active_for is not None:  # used every 4 hours: never idle, but the day is over
        for _ in range(3):
            clock.advance(hours=4)
            staff_client.get("/staff/me")
    response = staff_client.get("/staff/me")
    assert (response.status_code == 200) is alive
    if not alive:
        assert response.status_code == 401
        assert response.json()["code"] == "staff_unauthenticated"
        assert _session_count(demo) == 0  # the expired row is gone


def test_logout_requires_csrf(staff_client: TestClient, demo: Settings) -> None:
    _login(staff_client)
    token = staff_client.get("/staff/me").json()["csrf_token"]
    forged = staff_client.post("/staff/logout", follow_redirects=False)
    assert forged.status_code == 403
    assert forged.headers["content-type"] == "application/problem+json"
    assert forged.json()["code"] == "csrf_failed"
    wrong = staff_client.post(
        "/staff/logout", data={"csrf_token": token[:-2] + "xx"}, follow_redirects=False
    )
    assert wrong.status_code == 403
    assert staff_client.get("/staff/me").status_code == 200  # nothing changed
    assert _session_count(demo) == 1

    done = staff_client.post("/staff/logout", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/staff/login"
    assert _session_count(demo) == 0
    staff_client.cookies.clear()
    assert staff_client.get("/staff/me").status_code == 401


def test_logout_with_csrf_header_and_old_cookie_is_dead(staff_client: TestClient) -> None:
    _login(staff_client)
    cookie = staff_client.cookies[COOKIE_NAME]
    token = staff_client.get("/staff/me").json()["csrf_token"]
    done = staff_client.post(
        "/staff/logout", headers={"X-CSRF-Token": token}, follow_redirects=False
    )
    assert done.status_code == 303
    staff_client.cookies.set(COOKIE_NAME, cookie)  # a stolen copy no longer works
    assert staff_client.get("/staff/me").status_code == 401


def test_logout_without_session_is_401(staff_client: TestClient) -> None:
    assert staff_client.post("/staff/logout", data={"csrf_token": "x"}).status_code == 401


def test_role_check(staff_client: TestClient) -> None:
    assert staff_client.get("/staff/_test/accounting").status_code == 401
    _login(staff_client)
    refused = staff_client.get("/staff/_test/accounting")
    assert refused.status_code == 403
    assert refused.json()["code"] == "staff_forbidden"
    staff_client.cookies.clear()
    _login(staff_client, "ketoan.binh")
    assert staff_client.get("/staff/_test/accounting").json() == {"ok": "ketoan.binh"}


def test_other_agency_object_is_hidden(staff_client: TestClient) -> None:
    _login(staff_client)
    assert staff_client.get("/staff/_test/colleague/ketoan.binh").json() == {
        "username": "ketoan.binh"
    }
    hidden = staff_client.get("/staff/_test/colleague/xa.khac")
    assert hidden.status_code == 404
    assert staff_client.get("/staff/_test/colleague/nobody").status_code == 404
    assert staff_client.get("/staff/_test/colleague-403/xa.khac").status_code == 403


def test_create_staff_rules(demo: Settings) -> None:
    with session_scope(engine_for(demo.effective_database_url)) as session:
        agency = session.scalar(select(Agency).where(Agency.code == DEMO_AGENCY.code))
        assert agency is not None
        with pytest.raises(WeakPassword):
            create_staff(session, agency.id, "an.nguyen", "An", "ngan-qua", ["clerk"])
        with pytest.raises(StaffAccountError):
            create_staff(session, agency.id, "a", "An", PASSWORD, ["clerk"])
        with pytest.raises(WeakPassword):
            create_staff(session, agency.id, "thu.quy.01", "An", "thu.quy.01", ["clerk"])
        with pytest.raises(StaffAccountError):
            create_staff(session, agency.id, "thu.quy", "An", PASSWORD, ["cashier"])
        with pytest.raises(StaffAccountError):
            create_staff(session, agency.id, "thu.quy", "An", PASSWORD, [])
        with pytest.raises(StaffAccountError) as missing:
            create_staff(session, "no-such-agency", "thu.quy", "An", PASSWORD, ["clerk"])
        assert missing.value.status == 404
        account = create_staff(
            session, agency.id, "thu.quy", "An", PASSWORD, ["admin", "clerk", "admin"]
        )
        assert account.roles == "admin clerk"
        assert account.password_hash.startswith("$argon2id$")
        with pytest.raises(StaffAccountError) as taken:
            create_staff(session, agency.id, "THU.QUY", "An", PASSWORD, ["clerk"])
        assert taken.value.status == 409


def test_old_hash_is_upgraded_on_sign_in(staff_client: TestClient, demo: Settings) -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak) and not needs_rehash(hash_password(PASSWORD))
    url = demo.effective_database_url
    with session_scope(engine_for(url)) as session:
        account = session.scalar(select(StaffAccount).where(StaffAccount.username == "clerk.an"))
        assert account is not None
        account.password_hash = weak
    assert _login(staff_client).status_code == 303
    with session_scope(engine_for(url)) as session:
        account = session.scalar(select(StaffAccount).where(StaffAccount.username == "clerk.an"))
        assert account is not None
        assert not needs_rehash(account.password_hash)
