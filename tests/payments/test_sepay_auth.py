"""SePay's ``Authorization`` header in the two spellings SePay itself uses, and nothing else.

SePay's dashboard documents ``Authorization: Apikey <key>``; the example of SePay's own client
library sends ``Authorization: Bearer Apikey <key>`` (issue 18), which used to get 401. Both must
reach the journal; every other shape must stay a 401 that journals nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from infra.clock import bank_time
from sqlalchemy import func, select

from api.app import create_app
from api.demo import DEMO_SEPAY_KEY, seed
from api.routes.bankfeeds import sepay_key
from payments.models import BankEvent
from settings.config import Settings
from settings.db import session_scope


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    seed(settings)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _events() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(BankEvent)) or 0)


def _body(sepay_id: int) -> dict[str, object]:
    return {
        "id": sepay_id,
        "gateway": "VietinBank",
        "transactionDate": bank_time(),
        "accountNumber": "113000012345",
        "code": None,
        "content": "CT DEN chuyen tien",
        "transferType": "in",
        "transferAmount": 6000,
        "accumulated": 6000,
        "subAccount": None,
    }


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Apikey k3y", "k3y"),
        ("apikey   k3y ", "k3y"),
        ("Bearer Apikey k3y", "k3y"),
        ("bearer APIKEY k3y", "k3y"),
        ("Bearer k3y", None),
        ("k3y", None),
        ("Apikey", None),
        ("Bearer Apikey", None),
        ("Apikey Apikey k3y", None),
        ("Bearer Bearer Apikey k3y", None),
        ("Bearer Apikey k3y extra", None),
        ("Basic Apikey k3y", None),
        ("", None),
        (None, None),
    ],
)
def test_sepay_key_reads_only_sepays_two_spellings(
    header: str | None, expected: str | None
) -> None:
    assert sepay_key(header) == expected


def test_bearer_apikey_is_accepted_end_to_end(client: TestClient) -> None:
    res = client.post(
        "/api/v1/bank-feeds/sepay",
        json=_body(91001),
        headers={"Authorization": f"Bearer Apikey {DEMO_SEPAY_KEY}"},
    )
    assert res.status_code == 200, res.text
    assert res.json() == {"success": True}
    assert _events() == 1


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {DEMO_SEPAY_KEY}",
        DEMO_SEPAY_KEY,
        f"Bearer Apikey {DEMO_SEPAY_KEY}x",
        f"Bearer Apikey {DEMO_SEPAY_KEY} {DEMO_SEPAY_KEY}",
        f"Token Apikey {DEMO_SEPAY_KEY}",
    ],
    ids=["bearer-without-apikey", "bare-key", "wrong-key", "two-keys", "other-scheme"],
)
def test_other_shapes_are_still_refused(client: TestClient, header: str) -> None:
    res = client.post(
        "/api/v1/bank-feeds/sepay", json=_body(91002), headers={"Authorization": header}
    )
    assert res.status_code == 401
    assert _events() == 0
