"""Kept for :mod:`api.app`, which includes this router: the citizen's payment page
(``/pay/{order_id}``, what ``pay_url`` opens) and its status poll moved to
:mod:`api.pages.portal` with the rest of the citizen portal (issue 6)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["citizen"])
