"""Sandboxes standing in for parties that cannot run here; mounted only outside production."""

from __future__ import annotations

import json
import secrets
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import EngineDep, unit_of_work
from api.routes.bankfeeds import receive_sepay
from api.schemas import SandboxTransferIn
from payments.agencies import agency_by_code
from settings.clock import utcnow

router = APIRouter(prefix="/sandbox", tags=["sandbox"])


@router.post(
    "/bank/transfer", summary="Simulate a credit: a SePay-shaped webhook through the real path"
)
async def bank_transfer(body: SandboxTransferIn, engine: EngineDep) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        agency = agency_by_code(session, body.agency)
        agency_id, account, zone, gateway = (
            agency.id,
            agency.bank_account,
            agency.time_zone,
            f"BIN{agency.bank_bin}",
        )
    sepay_id = secrets.randbelow(2**31 - 1) + 1
    payload = {
        "id": sepay_id,
        "gateway": gateway,
        "transactionDate": utcnow().astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S"),
        "accountNumber": account,
        "code": None,
        "content": body.content,
        "transferType": "in",
        "transferAmount": body.amount,
        "accumulated": 0,
        "subAccount": None,
        "referenceCode": body.reference_code or f"FT{secrets.randbelow(10**10):010d}",
        "description": f"BankAPINotify {body.content}",
    }
    raw = json.dumps(payload, ensure_ascii=False).encode()
    event_id, created = await run_in_threadpool(receive_sepay, engine, agency_id, raw)
    return {"delivered": payload, "event_id": event_id, "new": created}
