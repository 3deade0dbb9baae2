"""``application/problem+json`` for every error, with a stable ``code`` and Vietnamese title."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from settings.errors import ProblemError

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

_HTTP_CODES: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "Yêu cầu không hợp lệ", "Bad request"),
    401: ("unauthorized", "Thiếu hoặc sai khóa truy cập", "Unauthorized"),
    403: ("forbidden", "Không có quyền truy cập", "Forbidden"),
    404: ("not_found", "Không tìm thấy", "Not found"),
    405: ("method_not_allowed", "Phương thức không được hỗ trợ", "Method not allowed"),
    413: ("payload_too_large", "Dữ liệu gửi lên quá lớn", "Payload too large"),
    415: ("unsupported_media_type", "Kiểu dữ liệu không được hỗ trợ", "Unsupported media type"),
}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    title_en: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://motcua-pay.vn/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if title_en:
        body["title_en"] = title_en
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def problem_from(exc: ProblemError) -> JSONResponse:
    retry_after = (exc.extra or {}).get("retry_after")
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return problem(
        exc.status,
        exc.code,
        exc.title_vi,
        exc.detail,
        title_en=exc.title_en,
        extra=exc.extra,
        headers=headers,
    )


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details with a stable `code` (see contract.md).",
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string", "description": "Vietnamese title"},
        "title_en": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def _document_problems(app: FastAPI) -> None:
    """Makes the OpenAPI document tell the truth about 422 answers (issue 7, fuzzing).

    FastAPI declares its own ``HTTPValidationError`` shape for every 422, but this service
    answers with problem+json (below); clients generated from the document, and the schema
    conformance fuzzing, would otherwise expect a body that never comes.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            del schemas["HTTPValidationError"]
            schemas["Problem"] = PROBLEM_SCHEMA
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                answer = (
                    operation.get("responses", {}).get("422")
                    if isinstance(operation, dict)
                    else None
                )
                if answer is not None:
                    answer["description"] = "Validation error (problem+json)"
                    answer["content"] = {
                        PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _database_unavailable(exc: BaseException) -> bool:
    """Connection-level failures (server gone, refused, shutting down), not query errors."""
    import psycopg
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if isinstance(exc.orig, BaseException) else exc
    return isinstance(exc, psycopg.OperationalError)  # incl. AdminShutdown, CannotConnectNow


def install(app: FastAPI) -> None:
    _document_problems(app)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        from api.rendering import LoginRequired, error_page, wants_page

        if wants_page(request):
            if isinstance(exc, LoginRequired) and request.method == "GET":
                return exc.login_redirect(request)
            return error_page(request, exc)
        return problem_from(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg")),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(
                400,
                "malformed_json",
                "Dữ liệu JSON không đúng cú pháp",
                "the request body is not valid JSON",
                title_en="Malformed JSON",
            )
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem(
            422,
            "validation_error",
            "Dữ liệu không hợp lệ",
            detail,
            title_en="Invalid input",
            extra={"errors": errors},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code, vi, en = _HTTP_CODES.get(exc.status_code, ("http_error", "Lỗi", "Error"))
        from api.rendering import error_page, wants_page

        if wants_page(request):
            page_exc = ProblemError(
                str(exc.detail), code=code, status=exc.status_code, title_vi=vi, title_en=en
            )
            return error_page(request, page_exc)
        return problem(exc.status_code, code, vi, str(exc.detail), title_en=en, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        if _database_unavailable(exc):
            # A restart or fail-over, not a bug: tell clients (banks retry) when to come back.
            log.warning("database unavailable: %s", type(exc).__name__)
            return problem(
                503,
                "database_unavailable",
                "Cơ sở dữ liệu tạm thời không sẵn sàng; vui lòng thử lại sau ít giây",
                "the database is temporarily unavailable; retry shortly (retries are idempotent)",
                title_en="Service temporarily unavailable",
                headers={"Retry-After": "5"},
            )
        log.exception("unhandled error", exc_info=exc)
        return problem(
            500,
            "internal_error",
            "Lỗi hệ thống; vui lòng thử lại",
            "an unexpected error occurred; it has been logged",
            title_en="Internal error",
        )
