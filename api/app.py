"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from api import observability, problems
from api.pages import PAGE_ROUTERS
from api.pages.web import STATIC_DIR
from api.routes import (
    bankfeeds,
    callbacks,
    card,
    closes,
    exceptions,
    health,
    orders,
    pay,
    receipts,
    sandbox,
    verify,
)
from api.staff import routes as staff_routes
from settings.config import Profile, Settings, get_settings
from settings.db import engine_for
from settings.logging import configure_logging
from settings.worker import celery_app, configure

UPLOAD_LIMITS = {"/api/v1/verify": 5_000_000}
"""Routes that take documents may exceed the default body limit (the route checks again)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = (settings or get_settings()).check()
    configure_logging(settings.log_level)
    configure(celery_app, settings)
    engine = engine_for(settings.effective_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.profile is Profile.PRODUCTION:
            from api.startup import refuse_development_keys

            refuse_development_keys(engine)
        yield

    app = FastAPI(
        title="motcua-pay",
        version="0.1.0",
        summary="Thu phí, lệ phí và biên lai điện tử cho Bộ phận Một cửa",
        description=(
            "Fees and charges collection (VietQR, card, cash), signed e-receipts and daily "
            "reconciliation for Vietnamese one-stop shops. Errors are application/problem+json "
            "with a stable `code`."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    problems.install(app)
    observability.install(app, engine)

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        limit = UPLOAD_LIMITS.get(request.url.path, settings.max_body_bytes)
        if length is not None and (not length.isdigit() or int(length) > limit):
            return problems.problem(
                413,
                "payload_too_large",
                "Dữ liệu gửi lên quá lớn",
                f"request bodies are limited to {limit} bytes",
                title_en="Payload too large",
            )
        return await call_next(request)

    app.include_router(health.router)
    app.include_router(observability.router)
    app.include_router(orders.router)
    app.include_router(bankfeeds.router)
    app.include_router(exceptions.router)
    app.include_router(card.router)
    app.include_router(callbacks.router)
    app.include_router(closes.router)
    app.include_router(receipts.router)
    app.include_router(verify.router)
    app.include_router(pay.router)
    app.include_router(staff_routes.router)
    for page_router in PAGE_ROUTERS:
        app.include_router(page_router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    if settings.sandboxes_on:
        app.include_router(sandbox.router)
    return app
