"""FastAPI dependencies for staff pages: who is signed in, CSRF, roles and agency scoping.

Route handlers get a :class:`StaffContext`, a plain frozen snapshot, instead of an ORM object,
so nothing depends on a database session that has already been closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Request

from api.deps import EngineDep, unit_of_work
from api.staff.csrf import CsrfRejected, csrf_matches, submitted_token
from api.staff.models import Role
from api.staff.sessions import load_session
from payments.models import Agency
from settings.db import utcnow
from settings.errors import ProblemError

__all__ = [
    "COOKIE_NAME",
    "Clock",
    "ClockDep",
    "CsrfStaffDep",
    "HasAgency",
    "NotSignedIn",
    "RoleMissing",
    "StaffContext",
    "StaffDep",
    "current_staff",
    "ensure_same_agency",
    "get_clock",
    "require_csrf",
    "require_role",
]

COOKIE_NAME = "motcua_session"

Clock = Callable[[], datetime]


def get_clock() -> Clock:
    """Overridden in tests (``app.dependency_overrides``) to move time without sleeping."""
    return utcnow


ClockDep = Annotated[Clock, Depends(get_clock)]


class NotSignedIn(ProblemError):
    code = "staff_unauthenticated"
    status = 401
    title_vi = "Chưa đăng nhập hoặc phiên làm việc đã hết hạn"
    title_en = "Not signed in, or the session has expired"


class RoleMissing(ProblemError):
    code = "staff_forbidden"
    status = 403
    title_vi = "Tài khoản không có quyền thực hiện việc này"
    title_en = "Your account does not have the role for this"


@dataclass(frozen=True)
class StaffContext:
    staff_id: str
    username: str
    display_name: str
    roles: frozenset[Role]
    agency_id: str
    agency_code: str
    session_hash: str
    csrf_token: str


def current_staff(request: Request, engine: EngineDep, clock: ClockDep) -> StaffContext:
    """The signed-in staff member from the ``motcua_session`` cookie, or 401."""
    token = request.cookies.get(COOKIE_NAME)
    with unit_of_work(engine) as session:
        found = load_session(session, token, now=clock())
        if found is None:
            context = None
        else:
            row, staff = found
            agency = session.get(Agency, staff.agency_id)
            context = StaffContext(
                staff_id=staff.id,
                username=staff.username,
                display_name=staff.display_name,
                roles=staff.role_set,
                agency_id=staff.agency_id,
                agency_code=agency.code if agency is not None else "",
                session_hash=row.id_hash,
                csrf_token=row.csrf_token,
            )
    if context is None:
        # raised after the unit of work commits, so an expired session's row stays deleted
        raise NotSignedIn("Vui lòng đăng nhập lại / please sign in again")
    return context


StaffDep = Annotated[StaffContext, Depends(current_staff)]


async def require_csrf(request: Request, staff: StaffDep) -> StaffContext:
    """Use on every POST/PUT/PATCH/DELETE staff route: 403 unless the session's token came."""
    if not csrf_matches(staff.csrf_token, await submitted_token(request)):
        raise CsrfRejected(
            "Thiếu hoặc sai mã chống giả mạo (csrf_token) / missing or wrong CSRF token"
        )
    return staff


CsrfStaffDep = Annotated[StaffContext, Depends(require_csrf)]


def require_role(*roles: Role | str) -> Callable[[StaffContext], Awaitable[StaffContext]]:
    """A dependency admitting staff holding any of ``roles``; 403 otherwise.

    No role implies another (an admin is not an accountant unless given both), so the
    second-person rules of the accountant desk cannot be side-stepped by an admin.
    """
    wanted = frozenset(Role(r) for r in roles)
    if not wanted:
        raise ValueError("require_role needs at least one role")

    async def dependency(staff: StaffDep) -> StaffContext:
        if not staff.roles & wanted:
            raise RoleMissing(
                "Cần vai trò / requires role: " + ", ".join(sorted(r.value for r in wanted))
            )
        return staff

    return dependency


class HasAgency(Protocol):
    @property
    def agency_id(self) -> str: ...


T = TypeVar("T", bound=HasAgency)


def ensure_same_agency(staff: StaffContext, obj: T | None, *, reveal: bool = False) -> T:
    """The object if it belongs to the staff's agency.

    Otherwise 404 by default, the same answer as a missing object, so ids of other agencies'
    orders cannot be probed; ``reveal=True`` answers 403 where existence is not a secret.
    """
    if obj is not None and obj.agency_id == staff.agency_id:
        return obj
    if obj is not None and reveal:
        raise RoleMissing(
            "Đối tượng thuộc đơn vị khác / this belongs to another agency",
            code="staff_other_agency",
        )
    raise ProblemError(
        "Không tìm thấy / not found",
        code="not_found",
        status=404,
        title_vi="Không tìm thấy",
        title_en="Not found",
    )


AccountantDep = Annotated[StaffContext, Depends(require_role(Role.ACCOUNTANT))]
"""Reading the close, breaks, exceptions and reports: a signed-in accountant of the agency."""


async def _accountant_csrf(request: Request, staff: AccountantDep) -> StaffContext:
    return await require_csrf(request, staff)


AccountantCsrfDep = Annotated[StaffContext, Depends(_accountant_csrf)]
"""Changing anything (close, correct, approve, resolve): an accountant plus the CSRF token."""
