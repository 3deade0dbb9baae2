"""PP-DVCQG, the national payment platform protocol, for existing one-stop systems (issue 15).

Thin: read the body (bounded), rate-limit, hand the bytes to
:func:`payments.usecases.onestop_pp.answer`, dispatch its follow-ups, write its reply. Every
answer, refusals included, is in the protocol's shape and the partner's dialect (never
problem+json: a one-stop system reads ``MaLoi`` or ``error_code``); the HTTP status says the
same thing for proxies and logs (200 accepted, 4xx refused).

The body limit is enforced here, not by the service-wide middleware (``api.app`` lets these
paths through it), so an oversize message is refused in the protocol's shape too. A declared
``Content-Length`` above the limit is refused without reading; a chunked body is read only up
to the limit.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api import ratelimit
from api.downloads import document_response
from payments.onestop_pp import ProtocolError
from payments.usecases.follow_ups import run_after_commit
from payments.usecases.onestop_pp import PPReply, answer, refuse_unread
from settings.config import Settings

__all__ = ["DOOR_LIMIT", "MAX_MESSAGE_BYTES", "PATHS", "router"]

router = APIRouter(prefix="/pp/dvcqg", tags=["one-stop protocol (PP-DVCQG)"])

MAX_MESSAGE_BYTES = 64 * 1024
"""An INIT with fifty fee lines is under 20 KB."""
PATHS = ("/pp/dvcqg", "/pp/dvcqg/init", "/pp/dvcqg/query", "/pp/dvcqg/bill")
DOOR_LIMIT = 1 << 40
"""What ``api.app``'s body-limit middleware lets through on :data:`PATHS`: this module
refuses oversize messages itself, in the protocol's shape."""

_SUMMARY = (
    "PP-DVCQG message from a one-stop system (INIT, QUERY or GET_BILL), checked by the "
    "partner's MaXacThuc; see docs/onestop-pp.md"
)
_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


async def _read(request: Request) -> bytes | None:
    """The body, or ``None`` when it is larger than :data:`MAX_MESSAGE_BYTES`."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_MESSAGE_BYTES):
        return None
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_MESSAGE_BYTES:
            return None
    return bytes(received)


def _response(reply: PPReply) -> Response:
    if isinstance(reply.body, bytes):
        response = document_response(
            reply.body, reply.media_type, reply.filename or "bien-lai.pdf", private=True
        )
        if reply.links:
            response.headers["Link"] = ", ".join(
                f'<{url}>; rel="{rel}"' for rel, url in reply.links
            )
        return response
    return JSONResponse(reply.body, status_code=reply.status)


async def _handle(request: Request, expected: str | None) -> Response:
    settings: Settings = request.app.state.settings
    engine: Engine = request.app.state.engine
    source_ip = ratelimit.client_ip(request)
    try:
        ratelimit.check(settings, "pp", request, settings.rate_limit_pp_per_minute)
    except ratelimit.RateLimited as exc:
        refused = ProtocolError(ProtocolError.RATE_LIMITED, exc.detail or "")
        body = {
            "MaLoi": refused.refusal.code,
            "MoTaLoi": refused.text,
            "error_code": refused.refusal.code,
            "message": refused.text,
        }
        retry = (exc.extra or {}).get("retry_after")
        headers = {"Retry-After": str(retry)} if retry is not None else None
        return JSONResponse(body, status_code=429, headers=headers)
    raw = await _read(request)
    if raw is None:
        reply = await run_in_threadpool(
            refuse_unread,
            engine,
            ProtocolError.TOO_LARGE,
            f"messages are limited to {MAX_MESSAGE_BYTES} bytes",
            source_ip=source_ip,
        )
        return _response(reply)
    reply = await run_in_threadpool(
        answer, engine, settings, raw, source_ip=source_ip, expected_type=expected
    )
    run_after_commit(reply.follow_ups)
    return _response(reply)


@router.post("", summary=_SUMMARY, openapi_extra=_DOC)
async def any_message(request: Request) -> Response:
    """Dispatches on ``LoaiBanTin``."""
    return await _handle(request, None)


@router.post("/init", summary="PP-DVCQG INIT (same as POST /pp/dvcqg)", openapi_extra=_DOC)
async def init(request: Request) -> Response:
    return await _handle(request, "INIT")


@router.post("/query", summary="PP-DVCQG QUERY (same as POST /pp/dvcqg)", openapi_extra=_DOC)
async def query(request: Request) -> Response:
    return await _handle(request, "QUERY")


@router.post("/bill", summary="PP-DVCQG GET_BILL (same as POST /pp/dvcqg)", openapi_extra=_DOC)
async def bill(request: Request) -> Response:
    return await _handle(request, "GET_BILL")
