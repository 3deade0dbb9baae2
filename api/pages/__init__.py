"""Server-rendered pages (issue 6): the counter screen, the citizen portal, the accountant desk
and the agency admin, on the shared layout and guards of :mod:`api.pages.web`.

Each module owns its routes and templates (``templates/<module>_*.html``); the API routes stay
in :mod:`api.routes` and the pages call the same service functions.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.pages import admin, counter, desk, onestop, portal, statements, web

PAGE_ROUTERS: tuple[APIRouter, ...] = (
    web.router,
    counter.router,
    portal.router,
    desk.router,
    admin.router,
    statements.router,
    onestop.router,
)

__all__ = ["PAGE_ROUTERS"]
