"""Synchroniser-token CSRF protection for state-changing staff requests.

The token is random per session, stored server-side with the session and handed to pages
(and to ``GET /staff/me``); a forged cross-site form cannot read it. SameSite=Lax on the
session cookie is a second line, not the defence: it does not cover same-site subdomains.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from settings.errors import ProblemError

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "CsrfRejected", "csrf_matches", "submitted_token"]

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class CsrfRejected(ProblemError):
    code = "csrf_failed"
    status = 403
    title_vi = "Phiên biểu mẫu không hợp lệ; vui lòng tải lại trang và thử lại"
    title_en = "Missing or invalid CSRF token; reload the page and try again"


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time, so the comparison leaks nothing about how much of a guess was right."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


async def submitted_token(request: Request) -> str | None:
    """The header wins (scripts); otherwise the form field (plain HTML forms).

    Starlette caches the parsed form, so the route can still read its own fields afterwards.
    """
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(_FORM_TYPES):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None
