"""The HTTP baseline: a bare FastAPI app with one ``async def`` JSON POST echoing a small body.

Served exactly like our app in the benchmarks (uvicorn, 1 worker, uvloop + httptools, access
log off), so ``our req/s ÷ bare req/s`` measures what our code costs on top of the framework:

    .venv/bin/python -m uvicorn bench.bare_app:app --loop uvloop --http httptools \\
        --no-access-log --log-level warning --port 8001
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI(title="bare baseline")


class Fee(BaseModel):
    fee_code: str = Field(min_length=1, max_length=32)
    quantity: int = Field(default=1, ge=1)


class Echo(BaseModel):
    dossier_code: str = Field(min_length=1, max_length=64)
    procedure_code: str = Field(min_length=1, max_length=32)
    payer: dict[str, str]
    fees: list[Fee]


@app.post("/echo")
async def echo(body: Echo) -> Echo:
    return body


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
