"""Staff sign-in, sign-out and "who am I" (the pages of issue 6 build on these)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from api import problems
from api.deps import EngineDep, SettingsDep, unit_of_work
from api.ratelimit import rate_limit
from api.rendering import render, safe_next
from api.staff.deps import COOKIE_NAME, ClockDep, CsrfStaffDep, StaffDep
from api.staff.sessions import (
    ABSOLUTE_TIMEOUT,
    LOCKOUT_WINDOW,
    attempt_sign_in,
    delete_session,
    open_session,
)

__all__ = ["router"]

router = APIRouter(prefix="/staff", tags=["staff"])

HOME = "/staff/"
LOGIN = "/staff/login"

_FAILURES: dict[str, tuple[int, str, str, str, str]] = {
    "invalid": (
        401,
        "sign_in_failed",
        "Tên đăng nhập hoặc mật khẩu không đúng",
        "Wrong username or password",
        "wrong username or password",
    ),
    "locked": (
        429,
        "sign_in_locked",
        "Đăng nhập sai quá nhiều lần; vui lòng thử lại sau 15 phút",
        "Too many failed sign-ins; try again in 15 minutes",
        "too many failed sign-ins for this username; try again in 15 minutes",
    ),
}
"""Neither answer depends on whether the username exists (unknown names lock the same way)."""


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _client_ip(request: Request) -> str | None:
    return request.client.host[:64] if request.client else None


@router.get("/login", response_class=HTMLResponse, summary="Staff sign-in form")
def login_form(request: Request) -> HTMLResponse:
    return render(
        request,
        "staff_login.html",
        {
            "error": None,
            "next": safe_next(request.query_params.get("next"), ""),
            "expired": request.query_params.get("expired") == "1",
        },
    )


@router.post(
    "/login",
    summary="Sign in; sets the session cookie and redirects to /staff/",
    # Per client IP, before the form is read: one address cannot sweep many usernames
    # (the per-username lock-out in api.staff.sessions does not see that pattern).
    dependencies=[Depends(rate_limit("sign_in", "rate_limit_sign_in_per_minute"))],
)
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "",
) -> Response:
    """No CSRF token here (there is no session yet); the audit row commits even on failure."""
    ip = _client_ip(request)
    token: str | None = None
    with unit_of_work(engine) as session:
        now = clock()
        result = attempt_sign_in(session, username, password, now=now, ip=ip)
        if result.staff is not None:
            token, _ = open_session(session, result.staff, now=now, ip=ip)
    if token is None:
        status, code, vi, en, detail = _FAILURES[result.outcome]
        headers = (
            {"Retry-After": str(int(LOCKOUT_WINDOW.total_seconds()))}
            if result.outcome == "locked"
            else None
        )
        if _wants_html(request):
            return render(
                request,
                "staff_login.html",
                {"error": f"{vi} / {en}", "username": username, "next": safe_next(next_path, "")},
                status_code=status,
                headers=headers,
            )
        return problems.problem(status, code, vi, detail, title_en=en, headers=headers)
    target = safe_next(next_path, HOME)
    if not target.startswith("/staff/"):
        target = HOME
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.public_base_url.lower().startswith("https://"),
    )
    return response


@router.post("/logout", summary="Sign out (CSRF-protected); deletes the server-side session")
def logout(staff: CsrfStaffDep, engine: EngineDep, settings: SettingsDep) -> Response:
    with unit_of_work(engine) as session:
        delete_session(session, staff.session_hash)
    response = RedirectResponse(LOGIN, status_code=303)
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.public_base_url.lower().startswith("https://"),
    )
    return response


@router.get("/me", summary="The signed-in staff member and the CSRF token for scripts")
def me(staff: StaffDep) -> JSONResponse:
    body: dict[str, Any] = {
        "username": staff.username,
        "display_name": staff.display_name,
        "roles": sorted(r.value for r in staff.roles),
        "agency_code": staff.agency_code,
        "csrf_token": staff.csrf_token,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
