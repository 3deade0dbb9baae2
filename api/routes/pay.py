"""The citizen's payment page that ``pay_url`` opens (issue 6 turns it into the full portal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.deps import EngineDep, SettingsDep, unit_of_work
from einvoice.models import Receipt
from payments.orders import get_order
from payments.presenters import order_json

router = APIRouter(tags=["citizen"])
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))


def _public(engine: Any, order_id: str, base_url: str) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        order = get_order(session, order_id)
        receipt = session.get(Receipt, order.receipt_id) if order.receipt_id else None
        data = order_json(order, receipt, base_url)
    data.pop("callback_url", None)
    data["payer"] = {"name": data["payer"].get("name")}
    return data


@router.get("/pay/{order_id}", response_class=HTMLResponse, summary="Citizen payment page")
def pay_page(
    order_id: str, request: Request, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    order = _public(engine, order_id, settings.public_base_url)
    return templates.TemplateResponse(request, "pay.html", {"order": order})


@router.get("/pay/{order_id}/status", summary="What the payment page polls")
def pay_status(order_id: str, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    order = _public(engine, order_id, settings.public_base_url)
    return {"status": order["status"], "receipt": order["receipt"]}
