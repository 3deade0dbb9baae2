"""The staff-page guards (redirect to sign-in, or a clear refusal page instead of JSON), the
staff home and the language switch. Rendering itself is :mod:`api.rendering`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import EngineDep
from api.rendering import HOME_BY_ROLE, LANG_COOKIE, LANGS, LoginRequired, safe_next
from api.staff.csrf import CsrfRejected, csrf_matches, submitted_token
from api.staff.deps import ClockDep, NotSignedIn, RoleMissing, StaffContext, current_staff
from api.staff.models import Role

__all__ = ["PageStaff", "page_staff", "page_staff_csrf", "router"]


def _wanted(roles: tuple[Role | str, ...]) -> frozenset[Role]:
    return frozenset(Role(r) for r in roles)


def page_staff(*roles: Role | str) -> Callable[..., StaffContext]:
    """Dependency for staff pages (GET): signed in, holding one of ``roles`` if any given.

    Also leaves the member on ``request.state.staff`` so the layout can show the right menu.
    """
    wanted = _wanted(roles)

    def dependency(request: Request, engine: EngineDep, clock: ClockDep) -> StaffContext:
        try:
            staff = current_staff(request, engine, clock)
        except NotSignedIn as exc:
            raise LoginRequired(exc.detail) from exc
        request.state.staff = staff
        if wanted and not staff.roles & wanted:
            raise RoleMissing(
                "Cần vai trò / requires role: " + ", ".join(sorted(r.value for r in wanted))
            )
        return staff

    return dependency


def page_staff_csrf(*roles: Role | str) -> Callable[..., Awaitable[StaffContext]]:
    """Dependency for state-changing staff requests (forms and scripts): role plus CSRF token."""
    inner = page_staff(*roles)

    async def dependency(request: Request, engine: EngineDep, clock: ClockDep) -> StaffContext:
        staff = inner(request, engine, clock)
        if not csrf_matches(staff.csrf_token, await submitted_token(request)):
            raise CsrfRejected(
                "Thiếu hoặc sai mã chống giả mạo (csrf_token) / missing or wrong CSRF token"
            )
        return staff

    return dependency


PageStaff = Annotated[StaffContext, Depends(page_staff())]

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/staff/", response_class=HTMLResponse)
def staff_home(staff: PageStaff) -> Response:
    """Each role starts where its work is: counter, desk or admin."""
    for role, path in HOME_BY_ROLE:
        if role in staff.roles:
            return RedirectResponse(path, status_code=303)
    raise RoleMissing("Tài khoản chưa có vai trò / the account has no role")


@router.get("/lang/{code}")
def switch_language(code: str, request: Request) -> Response:
    """Sets the language cookie and goes back to the page the switch was pressed on."""
    lang = code if code in LANGS else "vi"
    response = RedirectResponse(safe_next(request.query_params.get("next"), "/"), status_code=303)
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="lax")
    return response
