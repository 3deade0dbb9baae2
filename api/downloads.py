"""Downloads: the ``Content-Disposition`` a saved file keeps its Vietnamese name with."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi.responses import Response
from sqlalchemy.orm import Session

from payments.models import Agency
from reconciliation.usecases import revenue_file, revenue_report

__all__ = ["attachment", "revenue_export"]


def attachment(name: str, fallback: str) -> str:
    """``Content-Disposition`` with the Vietnamese name (RFC 6266 ``filename*``) and an ASCII
    fallback for old clients, so a saved file keeps its diacritics where the browser can."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in fallback)
    return f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(name, safe='')}"


def revenue_export(
    session: Session, agency: Agency, date_from: date, last: date, fmt: str
) -> Response | dict[str, Any]:
    """The revenue report as JSON or a download (shared by the API and the desk)."""
    if fmt == "json":
        return revenue_report(session, agency, date_from, last).as_json()
    out = revenue_file(session, agency, date_from, last, fmt)
    return Response(
        out.body,
        media_type=out.media_type,
        headers={"Content-Disposition": attachment(out.name, out.fallback)},
    )


def document_response(
    body: bytes, media_type: str, name: str, *, download: bool = False, private: bool = False
) -> Response:
    """A receipt's PDF or XML: shown in the browser, or saved (``download``); ``private``
    answers are never cached (staff and citizen pages)."""
    disposition = "attachment" if download else "inline"
    headers = {"Content-Disposition": f'{disposition}; filename="{name}"'}
    if private:
        headers["Cache-Control"] = "no-store"
    return Response(body, media_type=media_type, headers=headers)
