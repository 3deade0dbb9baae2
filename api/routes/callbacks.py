"""The client's callback delivery log, and manual replay (contract.md "Callbacks")."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClientDep, EngineDep, unit_of_work
from payments.callbacks import RETRY_SCHEDULE, delivery_log, list_deliveries, replay
from payments.presenters import iso

router = APIRouter(prefix="/api/v1/callbacks", tags=["callbacks"])


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str = Field(min_length=1, max_length=255)


@router.get("", summary="Callbacks sent to this client, newest first, with their state")
def list_(
    client: ClientDep,
    engine: EngineDep,
    state: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        items = list_deliveries(session, client.id, state=state, limit=limit)
        return {
            "object": "list",
            "retry_schedule_seconds": list(RETRY_SCHEDULE),
            "data": [item.as_json() for item in items],
        }


@router.get("/{event_id}/attempts", summary="Every delivery attempt of one callback")
def attempts(event_id: str, client: ClientDep, engine: EngineDep) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        rows = delivery_log(session, event_id, client_id=client.id)
        data = []
        for row in rows:
            item = dataclasses.asdict(row)
            item["at"] = iso(row.at)
            data.append(item)
        return {"object": "list", "data": data}


@router.post("/{event_id}/replay", summary="Send a delivered or failed callback again (audited)")
def replay_(event_id: str, body: ReplayIn, client: ClientDep, engine: EngineDep) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        event = replay(session, event_id, f"{body.actor} (via {client.name})", client_id=client.id)
        return {"id": event.id, "state": event.state, "next_attempt_at": iso(event.next_attempt_at)}
