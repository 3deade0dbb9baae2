"""What every HTML answer shares: templates, the language switch, money and time formats, error
pages, and the sign-in redirect. Pages, public routes (the receipt verification page) and the
problem handlers all render through here, so none of them imports another's module.

Strings are written in the templates as ``t("Vietnamese", "English")``: Vietnamese is the
first argument and always present, so no page can show a string that has no Vietnamese, and
each page keeps its own wording next to its markup (no shared catalogue to collide on).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.staff.models import Role
from settings.errors import ProblemError

__all__ = [
    "LANG_COOKIE",
    "STATIC_DIR",
    "LoginRequired",
    "error_page",
    "lang_of",
    "local",
    "render",
    "safe_next",
    "templates",
    "vnd",
    "wants_page",
]

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
LANG_COOKIE = "motcua_lang"
LANGS = ("vi", "en")
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"

HOME_BY_ROLE = (
    (Role.CLERK, "/staff/counter"),
    (Role.ACCOUNTANT, "/staff/desk"),
    (Role.ADMIN, "/staff/admin"),
)


def lang_of(request: Request) -> str:
    """``?lang=`` wins for this request, then the cookie the switch sets; Vietnamese otherwise."""
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "vi"
    return asked if asked in LANGS else "vi"


def vnd(amount: int | None) -> str:
    """Integer đồng with Vietnamese digit grouping: ``1.250.000 đ``."""
    if amount is None:
        return ""
    return f"{amount:,}".replace(",", ".") + " đ"


def local(value: datetime | str | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """A UTC instant shown in Asia/Ho_Chi_Minh, the way counters write dates (dd/mm/yyyy)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    return value.astimezone(LOCAL_TZ).strftime(fmt)


def _context(request: Request) -> dict[str, Any]:
    lang = lang_of(request)

    def t(vi: str, en: str | None = None) -> str:
        return en if (lang == "en" and en) else vi

    return {
        "lang": lang,
        "t": t,
        "staff": getattr(request.state, "staff", None),
        "path": request.url.path,
        "query": request.url.query,
    }


templates = Jinja2Templates(directory=str(TEMPLATES_DIR), context_processors=[_context])
templates.env.filters["vnd"] = vnd
templates.env.filters["local"] = local


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page, never cached (staff pages carry a CSRF token and personal data)."""
    merged = {"Cache-Control": "no-store", **(headers or {})}
    return templates.TemplateResponse(
        request, name, dict(context or {}), status_code=status_code, headers=merged
    )


def wants_page(request: Request) -> bool:
    """Browsers navigating to a page get HTML errors; API and script calls keep problem+json."""
    if request.url.path.startswith("/api/"):
        return False
    if request.headers.get("x-requested-with") or request.headers.get("x-csrf-token"):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(request: Request, exc: ProblemError) -> HTMLResponse:
    retry_after = (exc.extra or {}).get("retry_after")
    return render(
        request,
        "error.html",
        {
            "status": exc.status,
            "title_vi": exc.title_vi,
            "title_en": exc.title_en,
            "detail": exc.detail,
            "code": exc.code,
        },
        status_code=exc.status,
        headers={"Retry-After": str(retry_after)} if retry_after is not None else None,
    )


def safe_next(value: str | None, default: str = "/staff/") -> str:
    """Only a path on this site (no scheme, no host, no ``//``), so sign-in is no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


class LoginRequired(ProblemError):
    """A page needs a signed-in member; browsers are sent to the sign-in form and back."""

    code = "staff_unauthenticated"
    status = 401
    title_vi = "Chưa đăng nhập hoặc phiên làm việc đã hết hạn"
    title_en = "Not signed in, or the session has expired"

    def login_redirect(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/staff/login?next={quote(target)}&expired=1", status_code=303)
