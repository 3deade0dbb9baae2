"""Pages: admin (issue 6). UNFINISHED: routes are being built."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["pages"], include_in_schema=False)
