"""``Idempotency-Key`` over HTTP: the request's digest and the answer as a response.

The rule itself (look up, act, remember in one transaction; a racing twin answers as the first)
is :func:`payments.usecases.orders.run_once`; this module only translates it for FastAPI.
"""

from __future__ import annotations

import json

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from payments import idempotency
from payments.usecases.orders import Answer

__all__ = ["request_digest", "response_of"]


def request_digest(body: BaseModel | None) -> str:
    """The hash remembered with a key: of the parsed body, so JSON spacing or key order in a
    retry does not count as "another body"."""
    canonical = json.dumps(
        body.model_dump(mode="json") if body is not None else None,
        sort_keys=True,
        ensure_ascii=False,
    )
    return idempotency.body_hash(canonical.encode())


def response_of(answer: Answer) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return JSONResponse(answer.payload, status_code=answer.status, headers=headers)
