"""Issue 14 on the staff pages: the counter's totals as you type come from the server's pricing
(no arithmetic in the page), the counter's order carries copies, and the admin page previews a
tariff in its text form before saving it as a new effective-dated row."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from infra.clock import today
from sqlalchemy import select

from api.demo import DEMO_STAFF_PASSWORD
from payments.models import FeeItem, PaymentOrder, Procedure
from settings.db import session_scope

HTML = {"Accept": "text/html"}


def sign_in(client: TestClient, username: str) -> str:
    client.cookies.clear()
    response = client.post(
        "/staff/login",
        data={"username": username, "password": DEMO_STAFF_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return str(client.get("/staff/me").json()["csrf_token"])


def _lines(client: TestClient) -> dict[str, str]:
    page = client.get("/staff/counter/new?procedure=1.001612", headers=HTML)
    assert page.status_code == 200
    assert "tối đa 200.000 đ/bản" in page.text  # the tariff in words on each line
    assert 'name="line-0-copies"' in page.text or 'name="line-1-copies"' in page.text
    return {
        code: index
        for index, code in re.findall(r'name="line-(\d+)-fee_code" value="([^"]+)"', page.text)
    }


def test_counter_totals_are_priced_by_the_server(client: TestClient) -> None:
    sign_in(client, "thuquy")
    index = _lines(client)
    ct, hk = index["CT-BS"], index["HKD-TL"]
    params = {
        "procedure_code": "1.001612",
        f"line-{ct}-fee_code": "CT-BS",
        f"line-{ct}-quantity": "3",
        f"line-{ct}-copies": "2",
        f"line-{hk}-fee_code": "HKD-TL",
        f"line-{hk}-quantity": "1",
        f"line-{hk}-reduction": "TRUCTUYEN",
    }
    # the form's lines are numbered in catalogue order: send them in that order
    ordered = dict(sorted(params.items(), key=lambda kv: kv[0]))
    res = client.get("/staff/counter/new/price", params=ordered)
    assert res.status_code == 200, res.text
    data = res.json()
    amounts = {line["fee_code"]: line["amount"] for line in data["lines"]}
    assert amounts == {"CT-BS": 10_000, "HKD-TL": 50_000}
    assert data["total"] == 60_000 and data["total_text"] == "60.000 đ"
    by_code = {line["fee_code"]: line for line in data["lines"]}
    assert by_code["CT-BS"]["breakdown"]["vi"].endswith("× 2 bản = 10.000 đ")
    bad = client.get(
        "/staff/counter/new/price",
        params={**ordered, f"line-{ct}-copies": "0"},
    ).json()
    ct_line = next(line for line in bad["lines"] if line["fee_code"] == "CT-BS")
    assert ct_line["amount"] == 0 and "số bản" in ct_line["error"]


def test_counter_order_with_copies_is_priced_like_the_api(client: TestClient) -> None:
    csrf = sign_in(client, "thuquy")
    page = client.get("/staff/counter/new?procedure=1.001612", headers=HTML).text
    token = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert token is not None
    index = {c: i for i, c in re.findall(r'name="line-(\d+)-fee_code" value="([^"]+)"', page)}
    fields = {"csrf_token": csrf, "form_token": token.group(1), "procedure_code": "1.001612"}
    for code, i in index.items():
        fields[f"line-{i}-fee_code"] = code
        fields[f"line-{i}-quantity"] = "0"
    fields.update(
        {
            f"line-{index['CT-BS']}-quantity": "3",
            f"line-{index['CT-BS']}-copies": "2",
            "dossier_code": "H01.22-261203-0900",
            "payer_name": "Nguyễn Văn An",
            "payer_id_number": "001090012345",
        }
    )
    done = client.post("/staff/counter/orders", data=fields, headers=HTML, follow_redirects=False)
    assert done.status_code == 303, done.text
    order_id = done.headers["location"].split("/orders/")[1].split("?")[0]
    with session_scope() as s:
        order = s.get(PaymentOrder, order_id)
        assert order is not None and order.amount == 10_000
        assert order.lines[0].pricing is not None
    shown = client.get(f"/staff/counter/orders/{order_id}", headers=HTML).text
    assert "(2 trang × 2.000 đ + 1 trang × 1.000 đ) × 2 bản = 10.000 đ" in shown


def test_admin_previews_a_tariff_then_saves_it_as_a_new_row(client: TestClient) -> None:
    csrf = sign_in(client, "quantri")
    with session_scope() as s:
        item = s.scalar(
            select(FeeItem)
            .join(Procedure)
            .where(
                Procedure.code == "1.001612",
                FeeItem.code == "CT-BS",
                FeeItem.effective_to.is_(None),
            )
        )
        assert item is not None
        old_id = item.id
    page = client.get(f"/staff/admin/catalog/fees/{old_id}")
    assert "2000/trang; từ trang 3: 1000/trang; tối đa 200000/bản" in page.text
    url = f"/staff/admin/catalog/fees/{old_id}/tariff"
    tariff = "2000/trang; từ trang 3: 1500/trang; tối đa 200000/bản"
    form = {"csrf_token": csrf, "tariff": tariff, "quantity": "3", "copies": "1"}
    preview = client.post(url, data={**form, "action": "preview"})
    assert preview.status_code == 200, preview.text
    assert "2 trang × 2.000 đ + 1 trang × 1.500 đ = 5.500 đ" in preview.text
    assert 'value="save"' in preview.text
    with session_scope() as s:
        assert s.get(FeeItem, old_id).effective_to is None  # type: ignore[union-attr]
    bad = client.post(url, data={**form, "tariff": "hai nghìn", "action": "preview"})
    assert bad.status_code == 422
    later_day = today() + timedelta(days=30)  # a future effective date, from the clock
    later = later_day.isoformat()
    saved = client.post(
        url, data={**form, "action": "save", "effective_from": later}, follow_redirects=False
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].endswith("done=tariff")
    with session_scope() as s:
        new = s.scalar(
            select(FeeItem)
            .join(Procedure)
            .where(Procedure.code == "1.001612", FeeItem.code == "CT-BS")
            .order_by(FeeItem.effective_from.desc())
        )
        assert new is not None and new.id != old_id and new.effective_from == later_day
        assert new.tariff is not None and new.tariff["tiers"] == [[1, 2000], [3, 1500]]
