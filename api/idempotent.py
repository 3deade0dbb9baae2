"""Idempotency-Key for every client POST (contract.md; GOV.UK Pay / Stripe habit).

The response is stored in the same transaction as the effect, so a retry after a lost answer
gets the original answer, a retry with another body gets 409 ``idempotency_conflict``, and a
racing duplicate loses on the unique constraint and is answered from the winner's record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.deps import unit_of_work
from payments import idempotency

Action = Callable[[Session], tuple[int, dict[str, Any]]]


def request_digest(body: BaseModel | None) -> str:
    """The hash remembered with a key: of the parsed body, so JSON spacing or key order in a
    retry does not count as "another body"."""
    canonical = json.dumps(
        body.model_dump(mode="json") if body is not None else None,
        sort_keys=True,
        ensure_ascii=False,
    )
    return idempotency.body_hash(canonical.encode())


def run_idempotent(
    engine: Engine,
    *,
    client_id: str,
    scope: str,
    key: str | None,
    body: BaseModel | None,
    action: Action,
    required: bool = False,
) -> JSONResponse:
    """Runs ``action`` once per (client, scope, key); without a key (when optional) it just runs."""
    if key is None and not required:
        with unit_of_work(engine) as session:
            status, payload = action(session)
        return JSONResponse(payload, status_code=status)
    key = idempotency.check_key(key)
    digest = request_digest(body)
    replayed: tuple[int, dict[str, Any]] | None = None
    try:
        with unit_of_work(engine) as session:
            # One transaction: look up the key, act, remember. A concurrent twin that commits
            # first makes our INSERT fail on the unique constraint, and we answer as it did.
            replayed = idempotency.find(session, client_id, scope, key, digest)
            if replayed is None:
                status, payload = action(session)
                idempotency.remember(session, client_id, scope, key, digest, status, payload)
    except IntegrityError:
        with unit_of_work(engine) as session:
            previous = idempotency.find(session, client_id, scope, key, digest)
        if previous is None:
            raise
        return JSONResponse(
            previous[1], status_code=previous[0], headers={"Idempotent-Replayed": "true"}
        )
    if replayed is not None:
        return JSONResponse(
            replayed[1], status_code=replayed[0], headers={"Idempotent-Replayed": "true"}
        )
    return JSONResponse(payload, status_code=status)
