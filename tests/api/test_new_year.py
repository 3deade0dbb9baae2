"""The New Year night, end to end (issue 12), on SQLite and PostgreSQL.

Deliberate fixed dates: this module is about the go-live boundary, 2027-01-01 00:00
Asia/Ho_Chi_Minh, when paper receipts end (Decree 254/2026) and the series' year digits turn
(``26TAB`` → ``27TAB``). It travels there with time-machine before anything is seeded (so the
demo's signing certificate is issued in that night too), and the tax-authority sandbox runs as a
separate process moved by the same offset (libfaketime), so it passes whatever the real date.

What must hold, asserted and printed:
- the first receipt of 2027 is number 1 of ``27TAB``; the last of 2026 keeps ``26TAB`` with no
  gap before it; a receipt's date (``NLap``) and its summary day are the agency-local day of
  issue;
- the 01/TH-BLĐT of 2026-12-31, sent by a close run after midnight, holds every receipt of that
  day and none of 2027;
- a replacement on 2027-01-02 of a 2026 receipt takes the next 2027 number and points back at
  the 2026 original;
- orders priced before a new fee resolution effective 2027-01-01 keep their price when paid
  after midnight, orders created after it take the new price;
- with 8 issuers working across midnight, no number is used twice and neither year has a gap.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine
from api_flow import ORDER, create, sepay
from fastapi.testclient import TestClient
from infra.cli import run_motcua
from infra.clock import GO_LIVE, ZONE, bank_time, local
from infra.tax_sandbox import tax_sandbox_process
from lxml import etree
from sqlalchemy import select

from einvoice.models import Receipt
from einvoice.tax_authority import HttpTaxAuthorityClient
from payments.agencies import agency_by_code
from payments.catalog import fee_item_on, procedure_by_code, reprice_fee
from payments.issuing import issue_for_order
from payments.models import PaymentOrder
from payments.orders import mark_succeeded
from reconciliation.models import TaxSubmission, TaxSubmissionRow
from reconciliation.service import close_day
from settings.config import Settings
from settings.db import session_scope

MIDNIGHT = local(GO_LIVE)
"""2027-01-01 00:00 local: the boundary itself."""
EVE = GO_LIVE - timedelta(days=1)
FLAT = {"procedure_code": "2.000884", "fee_code": "CT-CK"}
"""Chứng thực chữ ký: a flat amount per case, so its price is one number before and after."""


def at(**delta: float) -> datetime:
    """A moment relative to midnight, e.g. ``at(seconds=-1)`` is 2026-12-31 23:59:59 local.

    In UTC: an aware time in a ZoneInfo would make time-machine set the process's TZ too."""
    return (MIDNIGHT + timedelta(**delta)).astimezone(UTC)


@pytest.fixture
def night() -> Iterator[time_machine.Traveller]:
    """The clock stands at 2026-12-31 23:50 local and moves only when the test moves it.

    Listed first by the tests, so the demo agency, its certificate and catalogue are made in
    that night."""
    with time_machine.travel(at(minutes=-10), tick=False) as traveller:
        yield traveller


@pytest.fixture
def sandbox(night: time_machine.Traveller, tmp_path: Path) -> Iterator[str]:
    """The tax-authority sandbox as a separate process, its clock moved like ours."""
    with tax_sandbox_process(tmp_path / "tax") as url:
        yield url


def flat_order(client: TestClient, auth: dict[str, str], key: str) -> dict[str, Any]:
    body = {
        **ORDER,
        "dossier_code": f"NY-{key}",
        "procedure_code": FLAT["procedure_code"],
        "fees": [{"fee_code": FLAT["fee_code"], "quantity": 1}],
    }
    res = create(client, auth, key, body)
    assert res.status_code == 201, res.text
    return dict(res.json())


def pay_cash(client: TestClient, auth: dict[str, str], order: dict[str, Any]) -> None:
    res = client.post(
        f"/api/v1/payment-orders/{order['id']}/cash",
        json={"amount": order["amount"], "clerk": "Thủ quỹ Lan"},
        headers=auth,
    )
    assert res.status_code in (200, 201), res.text


def receipt_of(client: TestClient, auth: dict[str, str], order: dict[str, Any]) -> dict[str, Any]:
    got = client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded", got
    assert got["receipt"] is not None, got
    return dict(got["receipt"])


def stored(receipt_id: str) -> Receipt:
    with session_scope() as s:
        row = s.get(Receipt, receipt_id)
        assert row is not None
        s.expunge(row)
        return row


def nlap(receipt: Receipt) -> str:
    """The date of issue the signed XML states (Decree 254 art. 23 item 6)."""
    root = etree.fromstring(receipt.xml)
    value = root.findtext(".//NLap")
    assert value, "the receipt XML states no NLap"
    return value


def check_receipt(receipt_id: str, series: str, number: int, day: date) -> Receipt:
    row = stored(receipt_id)
    local_day = row.issued_at.astimezone(ZONE).date()
    assert (row.series, row.number, local_day) == (series, number, day), (
        row.series,
        row.number,
        row.issued_at.isoformat(),
    )
    assert row.year == day.year and row.series[:2] == f"{day.year % 100:02d}"
    assert nlap(row) == day.isoformat()
    return row


def summary_rows(day: date) -> list[tuple[str, int]]:
    """What our 01/TH-BLĐT submissions for ``day`` listed, as (series, number)."""
    with session_scope() as s:
        rows = s.execute(
            select(TaxSubmissionRow.series, TaxSubmissionRow.number)
            .join(TaxSubmission, TaxSubmission.id == TaxSubmissionRow.submission_id)
            .where(TaxSubmission.business_day == day)
            .order_by(TaxSubmissionRow.series, TaxSubmissionRow.number)
        ).all()
    return [(str(series), int(number)) for series, number in rows]


def held(sandbox: str, day: date) -> list[dict[str, Any]]:
    """What the tax authority (sandbox) holds for the demo agency on ``day``."""
    res = httpx.get(f"{sandbox}/agencies/0108424452/days/{day.isoformat()}", timeout=10)
    res.raise_for_status()
    return list(res.json()["messages"])


def close(settings: Settings, day: date, tax: HttpTaxAuthorityClient) -> Any:
    with session_scope() as s:
        report = close_day(s, settings, "DEMO-HUYEN", day, actor="Kế toán Hà", client=tax)
        return report.result.close.status, sorted(b.kind for b in report.result.breaks)


def test_new_year_night_end_to_end(
    night: time_machine.Traveller,
    sandbox: str,
    client: TestClient,
    auth: dict[str, str],
    demo: Settings,
) -> None:
    tax = HttpTaxAuthorityClient(sandbox, httpx.Client(timeout=30), timeout=30)
    # A new fee resolution: from 2027-01-01 the flat fee costs 2,000 đ more.
    with session_scope() as s:
        agency = agency_by_code(s, "DEMO-HUYEN")
        proc = procedure_by_code(s, agency.id, FLAT["procedure_code"])
        old_item = fee_item_on(s, proc, FLAT["fee_code"], EVE)
        old_price = old_item.amount
        reprice_fee(s, agency, old_item.id, old_price + 2_000, effective_from=GO_LIVE)
    new_price = old_price + 2_000

    night.move_to(at(minutes=-5))  # 23:55: four citizens at the counter
    a, b, c, d = (flat_order(client, auth, f"eve-{n}") for n in "abcd")
    assert {o["amount"] for o in (a, b, c, d)} == {old_price}

    night.move_to(at(minutes=-2))  # 23:58 cash: the first receipt of the night
    pay_cash(client, auth, a)
    night.move_to(at(seconds=-30))  # 23:59:30 a transfer, notified at once
    assert sepay(client, b["amount"], b["reference"], booked=bank_time(at(seconds=-30))).is_success
    # 23:59:59 booked by the bank, notified at 00:00:02: issued in 2027.
    night.move_to(at(seconds=2))
    assert sepay(client, c["amount"], c["reference"], booked=bank_time(at(seconds=-1))).is_success
    night.move_to(at(seconds=30))  # 00:00:30 cash for an order priced on the 31st
    pay_cash(client, auth, d)
    night.move_to(at(minutes=1))  # 00:01 a new order takes the new price
    e = flat_order(client, auth, "new-e")
    assert e["amount"] == new_price
    night.move_to(at(minutes=2))
    pay_cash(client, auth, e)

    ra = check_receipt(receipt_of(client, auth, a)["id"], "26TAB", 1, EVE)
    rb = check_receipt(receipt_of(client, auth, b)["id"], "26TAB", 2, EVE)
    rc = check_receipt(receipt_of(client, auth, c)["id"], "27TAB", 1, GO_LIVE)
    rd = check_receipt(receipt_of(client, auth, d)["id"], "27TAB", 2, GO_LIVE)
    re_ = check_receipt(receipt_of(client, auth, e)["id"], "27TAB", 3, GO_LIVE)
    assert [r.total for r in (ra, rb, rc, rd)] == [old_price] * 4  # priced on the 31st
    assert re_.total == new_price
    with session_scope() as s:
        paid_c = s.get(PaymentOrder, c["id"])
        assert paid_c is not None  # the money arrived on the 31st: the payment is of that day
        assert paid_c.paid_at is not None
        assert paid_c.paid_at.astimezone(ZONE) == at(seconds=-1)

    # 00:05: the accountant closes the 31st after midnight.
    night.move_to(at(minutes=5))
    status, breaks = close(demo, EVE, tax)
    assert summary_rows(EVE) == [("26TAB", 1), ("26TAB", 2)]  # every receipt of the day, no 2027
    [sent] = held(sandbox, EVE)
    assert (sent["status"], sent["row_count"], sent["total_amount"]) == (
        "accepted",
        2,
        2 * old_price,
    )
    assert (status, breaks) == ("clean", [])

    # 2027-01-02 10:00: a 2026 receipt is replaced, then both new days are closed.
    night.move_to(local(GO_LIVE + timedelta(days=1), 10, 0).astimezone(UTC))
    res = client.post(
        f"/api/v1/receipts/{rb.id}/replace",
        json={
            "reason": "Sai số định danh người nộp",
            "actor": "Thủ quỹ Lan",
            "payer": {"id_number": "001090054321"},
        },
        headers=auth,
    )
    assert res.status_code == 201, res.text
    replacement = check_receipt(res.json()["id"], "27TAB", 4, GO_LIVE + timedelta(days=1))
    assert replacement.replaces_id == rb.id
    assert close(demo, GO_LIVE, tax)[0] == "clean"
    assert summary_rows(GO_LIVE) == [("27TAB", 1), ("27TAB", 2), ("27TAB", 3)]
    close(demo, GO_LIVE + timedelta(days=1), tax)
    assert summary_rows(GO_LIVE + timedelta(days=1)) == [("27TAB", 4)]
    with session_scope() as s:
        [sub] = s.scalars(
            select(TaxSubmission).where(TaxSubmission.business_day == GO_LIVE + timedelta(days=1))
        ).all()
        summary = etree.fromstring(sub.xml)
    # The replacing row names its 2026 original by its own date of issue.
    assert EVE.isoformat() in {el.text for el in summary.iter() if isinstance(el.tag, str)}
    assert held(sandbox, GO_LIVE + timedelta(days=1))[0]["status"] == "accepted"
    print(
        "\nNew Year night: 2026 → 26TAB 1..2 (last at 23:59:30), 2027 → 27TAB 1..3 "
        f"(first at 00:00:02, credit booked 23:59:59), replacement 27TAB 4 of 26TAB 2; "
        f"01/TH-BLĐT {EVE}: 2 rows accepted; prices {old_price} before, {new_price} after"
    )


@dataclass
class _Tally:
    issued: int = 0
    errors: list[BaseException] | None = None


ISSUERS = 8
PER_ISSUER = 10


def test_eight_issuers_straddling_midnight(
    night: time_machine.Traveller,
    client: TestClient,
    auth: dict[str, str],
    demo: Settings,
) -> None:
    """8 threads issue receipts for paid orders while the clock crosses midnight: the numbers
    of each year are 1..n with neither gap nor repeat, each in the series of its own year."""
    night.move_to(at(seconds=-50))
    orders = [flat_order(client, auth, f"mass-{i}")["id"] for i in range(ISSUERS * PER_ISSUER)]
    with session_scope() as s:
        for order_id in orders:
            row = s.get(PaymentOrder, order_id)
            assert row is not None
            mark_succeeded(row, method="cash", at=datetime.now(UTC))
    shares = [orders[i::ISSUERS] for i in range(ISSUERS)]
    tally = _Tally(errors=[])
    lock = threading.Lock()
    start = threading.Barrier(ISSUERS + 1)

    def issuer(share: list[str]) -> None:
        try:
            start.wait(timeout=30)
            for order_id in share:
                with session_scope() as s:
                    assert issue_for_order(s, order_id, demo) is not None
                with lock:
                    tally.issued += 1
        except BaseException as exc:
            assert tally.errors is not None
            tally.errors.append(exc)

    threads = [threading.Thread(target=issuer, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    night.move_to(at(seconds=-1), tick=True)  # 23:59:59, and the clock runs
    start.wait(timeout=30)
    # Midnight comes after a third of the receipts at the latest, wherever the threads are.
    deadline = threading.Event()
    while tally.issued < len(orders) // 3 and not tally.errors and datetime.now(UTC) < MIDNIGHT:
        deadline.wait(0.005)
    if datetime.now(UTC) < MIDNIGHT:
        night.move_to(MIDNIGHT.astimezone(UTC), tick=True)
    for thread in threads:
        thread.join(timeout=300)
    assert not tally.errors, tally.errors
    assert tally.issued == len(orders)

    by_year: dict[int, list[Receipt]] = defaultdict(list)
    with session_scope() as s:
        receipts = list(s.scalars(select(Receipt)))
        for r in receipts:
            s.expunge(r)
        owners = [o.receipt_id for o in s.scalars(select(PaymentOrder))]
    for r in receipts:
        local_day = r.issued_at.astimezone(ZONE).date()
        assert r.year == local_day.year and r.series == f"{local_day.year % 100:02d}TAB"
        assert nlap(r) == local_day.isoformat()
        by_year[r.year].append(r)
    assert len(receipts) == len(orders) and len(set(owners)) == len(orders)  # one each
    assert sorted(by_year) == [2026, 2027], "the issuers did not straddle midnight"
    for year, rows in by_year.items():
        numbers = sorted(r.number for r in rows)
        assert numbers == list(range(1, len(rows) + 1)), (year, numbers)
    last_2026 = max(by_year[2026], key=lambda r: r.number)
    first_2027 = min(by_year[2027], key=lambda r: r.number)
    print(
        f"\n8 issuers across midnight: {len(receipts)} receipts, "
        f"26TAB 1..{len(by_year[2026])} (last {last_2026.issued_at.astimezone(ZONE):%H:%M:%S.%f}), "
        f"27TAB 1..{len(by_year[2027])} (first {first_2027.issued_at.astimezone(ZONE):%H:%M:%S.%f}); "
        "no gap, no repeat, one receipt per order"
    )


def test_catalogue_imported_after_midnight_takes_effect_on_new_years_day(
    night: time_machine.Traveller, demo: Settings, tmp_path: Path
) -> None:
    """``motcua catalog import`` without ``--effective-from`` means the agency's today: at 00:30
    on 1 January in Vietnam the machine's UTC date is still 31 December."""
    source = Path(__file__).resolve().parents[2] / "payments" / "data" / "demo_catalog.csv"
    header, *rows = source.read_text(encoding="utf-8").splitlines()
    changed = [  # the price and, since issue 14, the tariff column that states it
        r.replace(",10000,", ",13000,", 1).replace("10000/", "13000/", 1)
        if f",{FLAT['fee_code']}," in r
        else r
        for r in rows
    ]
    assert changed != rows
    path = tmp_path / "nghi-quyet-2027.csv"
    path.write_text("\n".join([header, *changed]) + "\n", encoding="utf-8")
    night.move_to(at(minutes=30))
    done = run_motcua("catalog", "import", str(path), "--agency", "DEMO-HUYEN")
    assert done.returncode == 0, done.stdout + done.stderr
    with session_scope() as s:
        agency = agency_by_code(s, "DEMO-HUYEN")
        proc = procedure_by_code(s, agency.id, FLAT["procedure_code"])
        assert fee_item_on(s, proc, FLAT["fee_code"], GO_LIVE).amount == 13_000
        assert fee_item_on(s, proc, FLAT["fee_code"], EVE).amount == 10_000
