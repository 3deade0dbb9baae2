"""A citizen claims a transfer that did not match (issue 19, part 1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from api_flow import ORDER, create, sepay
from fastapi.testclient import TestClient
from infra.clock import bank_time, now, subprocess_env, today
from sqlalchemy import func, select
from staff_flow import sign_in

from api.demo import DEMO_AGENCY
from api.staff.models import StaffAdminEvent
from payments.claim_models import ClaimEvent, TransferClaim
from payments.models import Agency, PaymentException, PaymentOrder
from payments.states import OrderStatus as OrderStatusForTest
from settings.db import session_scope

HTML = {"Accept": "text/html"}
MOTCUA = str(Path(sys.executable).with_name("motcua"))
FACTOR = ORDER["payer"]["phone"][-4:]  # type: ignore[index]


def _dmy(day: Any) -> str:
    return str(day.strftime("%d/%m/%Y"))


def stray(client: TestClient, amount: int, ref: str, memo: str = "chuyen tien ho so") -> str:
    """A credit whose memo carries no reference of ours; returns its exception's id."""
    assert sepay(client, amount, memo, ref=ref).status_code == 200
    with session_scope() as s:
        exc_id = s.scalar(
            select(PaymentException.id)
            .where(PaymentException.amount == amount, PaymentException.state == "open")
            .order_by(PaymentException.created_at.desc())
            .limit(1)
        )
    assert exc_id is not None
    return str(exc_id)


def claim(
    client: TestClient,
    order_id: str,
    *,
    ref: str,
    amount: int | str,
    day: str | None = None,
    factor: str = FACTOR,
) -> Any:
    return client.post(
        f"/pay/{order_id}/claim",
        data={
            "transfer_date": day or _dmy(today()),
            "amount": str(amount),
            "bank": "VietinBank",
            "reference": ref,
            "last4": factor,
        },
        headers=HTML,
        follow_redirects=False,
    )


def desk(client: TestClient, who: str, exc_id: str, action: str, **fields: str) -> Any:
    token = sign_in(client, who)["X-CSRF-Token"]
    res = client.post(
        f"/staff/desk/exceptions/{exc_id}/claim/{action}",
        data={"csrf_token": token, **fields},
        headers=HTML,
        follow_redirects=False,
    )
    client.cookies.clear()
    return res


def claims_of(order_id: str) -> list[TransferClaim]:
    with session_scope() as s:
        rows = s.scalars(
            select(TransferClaim)
            .where(TransferClaim.order_id == order_id)
            .order_by(TransferClaim.created_at)
        ).all()
        s.expunge_all()
        return list(rows)


def order_of(client: TestClient, auth: dict[str, str], order_id: str) -> Any:
    return client.get(f"/api/v1/payment-orders/{order_id}", headers=auth).json()


def test_stray_transfer_claimed_proposed_then_approved_with_one_click(
    client: TestClient, auth: dict[str, str]
) -> None:
    order = create(client, auth, "c-1").json()
    exc_id = stray(client, order["amount"], "FT26C0000001")
    res = claim(
        client, order["id"], ref="ft26c-0000001", amount=f"{order['amount']:,}".replace(",", ".")
    )
    assert res.status_code == 303 and res.headers["location"] == f"/pay/{order['id']}/claim"
    [row] = claims_of(order["id"])
    assert row.state == "proposed" and row.exception_id == exc_id and not row.amounts_differ
    assert row.stated["reference"] == "FT26C0000001" and "factor" not in str(row.stated)
    page = client.get(f"/pay/{order['id']}/claim", headers=HTML)
    assert 'id="claim-pending"' in page.text
    assert 'data-claim="pending"' in client.get(f"/pay/{order['id']}", headers=HTML).text
    token = sign_in(client, "ketoan")["X-CSRF-Token"]
    queue = client.get("/staff/desk/exceptions", headers=HTML).text
    assert f'id="claim-{exc_id}"' in queue and order["reference"] in queue
    assert token
    approved = desk(client, "ketoan", exc_id, "approve")
    assert approved.status_code == 303 and "ok=claim_approved" in approved.headers["location"]
    got = order_of(client, auth, order["id"])
    assert got["status"] == "succeeded" and got["receipt"] is not None
    assert claims_of(order["id"])[0].state == "approved"
    page = client.get(f"/pay/{order['id']}/claim", headers=HTML)
    assert 'id="claim-receipt-pdf"' in page.text
    assert client.get(f"/pay/{order['id']}/bien-lai.pdf").status_code == 200
    with session_scope() as s:
        exc = s.get(PaymentException, exc_id)
        assert exc is not None and exc.resolution == "matched_manually"


def test_amounts_differ_needs_a_second_accountant(client: TestClient, auth: dict[str, str]) -> None:
    order = create(client, auth, "c-2").json()
    paid = order["amount"] + 1000
    exc_id = stray(client, paid, "FT26C0000002")
    assert claim(client, order["id"], ref="FT26C0000002", amount=paid).status_code == 303
    [row] = claims_of(order["id"])
    assert row.state == "proposed" and row.amounts_differ
    first = desk(client, "ketoan", exc_id, "approve")
    assert first.status_code == 303 and "ok=claim_first" in first.headers["location"]
    again = desk(client, "ketoan", exc_id, "approve")
    assert again.status_code == 409 and "four_eyes" in again.text
    assert order_of(client, auth, order["id"])["status"] == "pending"
    second = desk(client, "ketoan2", exc_id, "approve")
    assert second.status_code == 303 and "ok=claim_approved" in second.headers["location"]
    assert order_of(client, auth, order["id"])["status"] == "succeeded"
    [row] = claims_of(order["id"])
    assert (row.state, row.first_approver, row.decided_by) == ("approved", "ketoan", "ketoan2")


def test_auto_approval_exact_unique_recent(client: TestClient, auth: dict[str, str]) -> None:
    done = subprocess.run(
        [MOTCUA, "agency", "claim-auto-approve", "--agency", DEMO_AGENCY.code, "--days", "3"],
        env=subprocess_env(dict(os.environ)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "on, credits up to 3 days old" in done.stdout, done.stderr
    order = create(client, auth, "c-3").json()
    stray(client, order["amount"], "FT26C0000003")
    assert claim(client, order["id"], ref="FT26C0000003", amount=order["amount"]).status_code == 303
    assert claims_of(order["id"])[0].state == "auto_approved"
    with session_scope() as s:
        agency = s.scalar(select(Agency).where(Agency.code == DEMO_AGENCY.code))
        assert agency is not None and agency.claim_auto_approve_days == 3
    got = order_of(client, auth, order["id"])
    assert got["status"] == "succeeded" and got["receipt"] is not None
    # older than N days: proposed for an accountant, not approved by itself
    late = create(client, auth, "c-4", {**ORDER, "dossier_code": "LATE"}).json()
    old = now() - timedelta(days=5)
    assert (
        sepay(client, late["amount"], "ck", ref="FT26C0000004", booked=bank_time(old)).status_code
        == 200
    )
    res = claim(client, late["id"], ref="FT26C0000004", amount=late["amount"], day=_dmy(old.date()))
    assert res.status_code == 303
    assert claims_of(late["id"])[0].state == "proposed"
    assert order_of(client, auth, late["id"])["status"] == "pending"


def test_unfound_and_not_yours_answer_byte_for_byte_alike(
    client: TestClient, auth: dict[str, str]
) -> None:
    mine = create(client, auth, "c-5").json()
    theirs = create(client, auth, "c-6", {**ORDER, "dossier_code": "OTHER"}).json()
    short = theirs["amount"] - 1000
    assert sepay(client, short, theirs["reference"], ref="FT26C0000006").status_code == 200
    exc_id = stray(client, mine["amount"], "FT26C0000007")
    before = _snapshot()
    attempts = [
        {"ref": "FT26C9999999", "amount": mine["amount"]},  # no such credit
        {"ref": "FT26C0000006", "amount": short},  # another order's credit, right data
        {"ref": "FT26C0000007", "amount": mine["amount"], "factor": "0000"},  # wrong factor
    ]
    answers, pages = [], []
    for attempt in attempts:
        answers.append(claim(client, mine["id"], **attempt))
        pages.append(client.get(f"/pay/{mine['id']}/claim", headers=HTML))
    assert len({(r.status_code, r.content, r.headers.get("location")) for r in answers}) == 1
    assert len({(p.status_code, p.content) for p in pages}) == 1
    assert 'id="claim-not-found"' in pages[0].text
    assert "FT26C0000006" not in pages[0].text and theirs["dossier_code"] not in pages[0].text
    assert _snapshot() == before  # nothing changed but the audited attempts
    assert [c.state for c in claims_of(mine["id"])] == ["not_found"] * 3
    with session_scope() as s:
        whys = [
            e.data["why"]
            for e in s.scalars(select(ClaimEvent).order_by(ClaimEvent.id))
            if e.data.get("result") == "not_found"
        ]
    assert whys == ["no_credit", "credit_of_another_order", "second_factor_wrong"]
    assert exc_id


def _snapshot() -> tuple[Any, ...]:
    with session_scope() as s:
        excs = sorted((e.id, e.state, e.order_id) for e in s.scalars(select(PaymentException)))
        orders = sorted((o.id, o.status) for o in s.scalars(select(PaymentOrder)))
        return tuple(excs), tuple(orders)


def test_claims_are_rate_limited_per_order_and_audited(
    client: TestClient, auth: dict[str, str]
) -> None:
    order = create(client, auth, "c-7").json()
    for _ in range(5):
        assert (
            claim(client, order["id"], ref="FT26C8888888", amount=order["amount"]).status_code
            == 303
        )
    limited = claim(client, order["id"], ref="FT26C8888888", amount=order["amount"])
    assert limited.status_code == 429 and "Quá nhiều yêu cầu" in limited.text
    rows = claims_of(order["id"])
    assert [r.state for r in rows] == ["not_found"] * 5 + ["rate_limited"]
    with session_scope() as s:
        events = s.scalars(
            select(ClaimEvent).where(ClaimEvent.claim_id.in_([r.id for r in rows]))
        ).all()
        assert len(events) == 6
        assert all(e.action == "submitted" and e.data["ip"] and e.data["stated"] for e in events)


def test_bad_input_is_a_clear_422_and_creates_nothing(
    client: TestClient, auth: dict[str, str]
) -> None:
    order = create(client, auth, "c-8").json()
    bad_date = claim(
        client, order["id"], ref="FT26C0000009", amount=order["amount"], day=f"31/02/{today().year}"
    )
    assert bad_date.status_code == 422 and 'data-code="invalid_claim_date"' in bad_date.text
    iso = claim(
        client, order["id"], ref="FT26C0000009", amount=order["amount"], day=today().isoformat()
    )
    assert iso.status_code == 422 and "dd/mm/yyyy" in iso.text
    words = claim(client, order["id"], ref="FT26C0000009", amount="năm nghìn")
    assert words.status_code == 422 and 'data-code="invalid_claim_amount"' in words.text
    as_json = client.post(
        f"/pay/{order['id']}/claim",
        data={
            "transfer_date": "x",
            "amount": "1",
            "bank": "VCB",
            "reference": "FT1234",
            "last4": FACTOR,
        },
        headers={"Accept": "application/json"},
        follow_redirects=False,
    )
    assert as_json.status_code == 422
    assert claims_of(order["id"]) == []
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(ClaimEvent)) == 0


def test_refused_claim_returns_the_credit_to_the_queue_and_reads_as_not_found(
    client: TestClient, auth: dict[str, str]
) -> None:
    order = create(client, auth, "c-9").json()
    exc_id = stray(client, order["amount"], "FT26C0000010")
    assert claim(client, order["id"], ref="FT26C0000010", amount=order["amount"]).status_code == 303
    short = desk(client, "ketoan", exc_id, "refuse", reason="x")
    assert short.status_code == 422  # a reason is required; nothing changed
    assert claims_of(order["id"])[0].state == "proposed"
    res = desk(client, "ketoan", exc_id, "refuse", reason="Không khớp thông tin người nộp")
    assert res.status_code == 303 and "ok=claim_refused" in res.headers["location"]
    assert claims_of(order["id"])[0].state == "refused"
    with session_scope() as s:
        exc = s.get(PaymentException, exc_id)
        assert exc is not None and exc.state == "open" and exc.order_id is None
    page = client.get(f"/pay/{order['id']}/claim", headers=HTML)
    assert 'data-claim="not_found"' in page.text and "ketoan" not in page.text
    assert desk(client, "ketoan", exc_id, "approve").status_code == 404  # no live claim


def test_admin_page_toggles_automatic_approval_and_records_it(client: TestClient) -> None:
    sign_in(client, "quantri")
    home = client.get("/staff/admin", headers=HTML)
    assert home.status_code == 200 and 'id="claims-setting"' in home.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
    assert token is not None
    for days, stored in (("2", 2), ("0", None)):
        res = client.post(
            "/staff/admin/claims",
            data={"csrf_token": token[1], "days": days},
            headers=HTML,
            follow_redirects=False,
        )
        assert res.status_code == 303, res.text
        with session_scope() as s:
            agency = s.scalar(select(Agency).where(Agency.code == DEMO_AGENCY.code))
            assert agency is not None and agency.claim_auto_approve_days == stored
    bad = client.post(
        "/staff/admin/claims", data={"csrf_token": token[1], "days": "365"}, headers=HTML
    )
    assert bad.status_code == 422
    with session_scope() as s:
        changes = s.scalars(
            select(StaffAdminEvent.detail).where(StaffAdminEvent.action == "claim_auto_approve_set")
        ).all()
    assert [(c["before"], c["after"]) for c in changes] == [(None, 2), (2, None)]


def test_a_claim_pays_an_expired_order_but_never_a_cancelled_one(
    client: TestClient, auth: dict[str, str]
) -> None:
    """An expired order may still be paid by a late transfer a person matched; the state table
    allows expired → succeeded for that move only, and never automatically."""
    late = create(client, auth, "c-exp").json()
    with session_scope() as s:
        row = s.get(PaymentOrder, late["id"])
        assert row is not None
        row.move_to(OrderStatusForTest.EXPIRED)
    exc_id = stray(client, late["amount"], "FT26C0000077")
    assert claim(client, late["id"], ref="FT26C0000077", amount=late["amount"]).status_code == 303
    approved = desk(client, "ketoan", exc_id, "approve")
    assert approved.status_code == 303 and "ok=claim_approved" in approved.headers["location"]
    got = order_of(client, auth, late["id"])
    assert got["status"] == "succeeded" and got["receipt"] is not None

    gone = create(client, auth, "c-can", {**ORDER, "dossier_code": "CAN-1"}).json()
    assert client.post(f"/api/v1/payment-orders/{gone['id']}/cancel", headers=auth).is_success
    exc_id = stray(client, gone["amount"], "FT26C0000078")
    assert claim(client, gone["id"], ref="FT26C0000078", amount=gone["amount"]).status_code == 303
    refused = desk(client, "ketoan", exc_id, "approve")
    assert refused.status_code == 409 or "claim_order_closed" in refused.text
    assert order_of(client, auth, gone["id"])["status"] == "cancelled"
