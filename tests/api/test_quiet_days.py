"""A desk that is calm when nothing is wrong (issue 19, part 3).

A day with nothing to reconcile is grey "Không phát sinh" and counts as closed; the scheduler
closes such past days itself, signed, and sends no 01/TH-BLĐT for them (no receipt, no row:
reconciliation/quiet.py). Today with activity waits for the scheduled close instead of being
red; red means a person has to act. Date fields read and write dd/mm/yyyy, ISO still accepted.
"""

from __future__ import annotations

import re
from datetime import timedelta

from api_flow import ORDER, create, sepay
from fastapi.testclient import TestClient
from infra.clock import ZONE, bank_time, local, now, today
from sqlalchemy import select
from staff_flow import sign_in

from api.demo import DEMO_AGENCY
from payments.models import Agency
from reconciliation.models import DailyClose, TaxSubmission
from reconciliation.quiet import QUIET_ACTOR
from reconciliation.tasks import close_due
from settings.config import Settings
from settings.db import session_scope
from signing.xmldsig import verify_enveloped

HTML = {"Accept": "text/html"}


def statuses(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-day="([0-9-]{10})" data-status="(\w+)"', html))


def test_fresh_install_is_grey_not_red(client: TestClient, demo: Settings) -> None:
    sign_in(client, "ketoan")
    home = client.get("/staff/desk", headers=HTML).text
    days = statuses(home)
    assert len(days) >= 10 and set(days.values()) == {"grey"}, days
    assert 'data-status="red"' not in home and "Chưa đối soát" not in home
    assert re.search(r'id="today-status" data-status="grey"', home)
    assert "Không phát sinh" in home
    # The date field is text in dd/mm/yyyy, whatever the browser's language:
    assert 'type="date"' not in home
    field = re.search(r'<input id="close-day"[^>]*>', home)
    assert field is not None
    assert 'type="text"' in field[0] and f'value="{today().strftime("%d/%m/%Y")}"' in field[0]
    assert 'placeholder="dd/mm/yyyy"' in field[0] and "pattern=" in field[0]
    day = client.get(f"/staff/desk/days/{today()}", headers=HTML).text
    assert 'id="day-status" data-status="grey"' in day and "không có gì để đối soát" in day


def test_the_close_form_takes_dd_mm_yyyy_and_iso(client: TestClient, demo: Settings) -> None:
    token = sign_in(client, "ketoan")["X-CSRF-Token"]
    for typed in (today().strftime("%d/%m/%Y"), today().isoformat()):
        done = client.post(
            "/staff/desk/close",
            data={"csrf_token": token, "day": typed},
            headers=HTML,
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == f"/staff/desk/days/{today().isoformat()}?ok=closed"
    wrong = client.post(
        "/staff/desk/close",
        data={"csrf_token": token, "day": f"31/02/{today().year}"},
        headers=HTML,
        follow_redirects=False,
    )
    assert wrong.status_code == 422 and "dd/mm/yyyy" in wrong.text
    with session_scope() as session:
        versions = session.scalars(
            select(DailyClose.version).where(DailyClose.business_day == today())
        ).all()
    assert sorted(versions) == [1, 2]
    day = client.get(f"/staff/desk/days/{today()}", headers=HTML).text
    assert 'id="day-status" data-status="grey"' in day  # closed, still nothing happened
    assert "Đã tự động đối soát và ký số" in day or "Lần" in day


def test_scheduler_closes_quiet_past_days_signed_and_leaves_busy_ones_to_a_person(
    client: TestClient, demo: Settings
) -> None:
    """The agency exists for 5 days; money came in 2 days ago (nobody matched it)."""
    first = today() - timedelta(days=5)
    busy = today() - timedelta(days=2)
    with session_scope() as session:
        agency = session.scalar(select(Agency).where(Agency.code == DEMO_AGENCY.code))
        assert agency is not None
        agency.created_at = local(first, 8)
    stray = sepay(client, 20000, "CHUYEN TIEN KHONG RO NOI DUNG", booked=bank_time(local(busy, 10)))
    assert stray.status_code == 200

    assert close_due()["closed"] >= 4
    with session_scope() as session:
        closes = {
            c.business_day: c
            for c in session.scalars(select(DailyClose).where(DailyClose.business_day < today()))
        }
        quiet = [first + timedelta(days=i) for i in range(5) if first + timedelta(days=i) != busy]
        assert sorted(closes) == quiet
        for close in closes.values():
            assert close.actor == QUIET_ACTOR and close.status == "clean" and close.version == 1
            assert close.totals["receipts"]["count"] == 0 and close.totals["tax_summaries"] == []
            assert close.document is not None
            check = verify_enveloped(close.document)
            assert check.valid and check.tax_code == DEMO_AGENCY.tax_code, check.problems
        assert session.scalars(select(TaxSubmission)).all() == []  # no receipt, no summary
    again = close_due()
    with session_scope() as session:
        assert len(
            session.scalars(select(DailyClose).where(DailyClose.business_day < today())).all()
        ) == len(quiet)
    assert again["closed"] <= 1  # at most today, at its close time

    sign_in(client, "ketoan")
    grey = client.get(f"/staff/desk/days/{quiet[-1]}", headers=HTML).text
    assert 'id="day-status" data-status="grey"' in grey and "Đã tự động đối soát và ký số" in grey
    red = client.get(f"/staff/desk/days/{busy}", headers=HTML).text
    assert 'id="day-status" data-status="red"' in red and "Chưa đối soát" in red


def test_today_with_payments_waits_for_the_scheduled_close(
    client: TestClient, auth: dict[str, str], demo: Settings
) -> None:
    order = create(client, auth, "quiet-1", {**ORDER, "dossier_code": "Q-1"}).json()
    sepay(client, order["amount"], order["reference"])
    sign_in(client, "ketoan")
    settings = client.app.state.settings  # type: ignore[attr-defined]
    settings.close_time = "23:59" if now().astimezone(ZONE).strftime("%H:%M") < "23:59" else "00:00"
    home = client.get("/staff/desk", headers=HTML).text
    if settings.close_time == "23:59":
        assert re.search(r'id="today-status" data-status="waiting"', home), home
        assert "tự động đối soát lúc 23:59" in home.lower() or "23:59" in home
        assert 'data-status="red"' not in home
    settings.close_time = "00:00"  # the scheduled close is due and has not run: act
    home = client.get("/staff/desk", headers=HTML).text
    assert re.search(r'id="today-status" data-status="red"', home)
    assert "Chưa đối soát" in home
