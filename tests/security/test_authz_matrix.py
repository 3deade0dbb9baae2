"""Authorisation matrix (issue 7): every route of ``create_app()`` is classified, and checked.

``MATRIX`` below names, for each (method, path), who may call it:

* ``PUBLIC`` / ``OPS``: no credential (OPS: operations endpoints to restrict at the proxy);
* ``client(obj)``: a one-stop API client key (``Authorization: Bearer mcp_…``);
* ``FEED``: a bank-feed credential (SePay ``Apikey``; Casso signature);
* ``SIGNED``: a gateway signature (card webhook);
* ``staff(role, obj)``: a staff session with that role (no role implies another);
* ``SANDBOX``: only mounted where sandboxes are on (never in production).

``obj`` names the path parameter holding an object that belongs to an agency; the other
agency's object must answer 404 (not 403: existence is not revealed).

Checks: (1) every route is in the table and every row is a route — a new route fails
``test_every_route_is_classified`` with a ready-to-paste line; (2) anonymous callers are
refused (401/403, or a redirect to the sign-in page for staff pages); (3) the wrong kind of
credential is refused, and so is every staff role but the one required; (4) another agency's
object is 404 for the right credential; (5) sandbox routes are absent when sandboxes are off.

Adding a route: one line in ``MATRIX``. Adding a kind of object for check (4): one factory in
``other_agency_objects``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from infra.clock import today
from sec_flow import AUTH, ORDER
from sqlalchemy import select

from api.app import create_app
from api.demo import DEMO_AGENCY, DEMO_SEPAY_KEY, DEMO_STAFF_PASSWORD
from api.keysetup import dev_init
from api.staff import create_staff
from payments.agencies import add_agency
from payments.callback_models import CallbackEvent
from payments.catalog import import_catalog
from payments.credentials import add_bank_feed, add_client
from payments.models import FeeItem, PaymentException, Procedure
from payments.onestop_partners import PartnerInput, add_partner
from payments.statement_profile_store import save_profile
from reconciliation.corrections import request_correction
from reconciliation.models import ReconBreak
from reconciliation.service import close_day
from settings.config import Settings
from settings.db import session_scope, utcnow


@dataclass(frozen=True)
class Rule:
    kind: str
    role: str | None = None
    obj: str | None = None
    body: Any = None
    """JSON body that passes validation, so the object lookup is reached (check 4)."""
    form: dict[str, str] | None = None
    """Form fields instead, for the pages' POSTs."""
    note: str = ""


PUBLIC = Rule("public")
OPS = Rule("public", note="operations: restrict /metrics and /readyz at the reverse proxy")
FEED = Rule("bank-feed")
SIGNED = Rule("signed-webhook")
SANDBOX = Rule("sandbox")
PARTNER = Rule("signed-webhook", note="PP-DVCQG: partner code, MaXacThuc checksum, IP allow-list")


def client(obj: str | None = None, body: Any = None) -> Rule:
    return Rule("client", obj=obj, body=body)


def staff(
    role: str, obj: str | None = None, body: Any = None, form: dict[str, str] | None = None
) -> Rule:
    return Rule("staff", role=role, obj=obj, body=body, form=form)


WHY = "Kiểm tra phân quyền"


REASON = {"reason": "Kiểm tra phân quyền", "actor": "Kiểm thử"}
ROLES = {"clerk": "thuquy", "accountant": "ketoan", "admin": "quantri"}
"""One demo user per role (no role implies another)."""

MATRIX: dict[tuple[str, str], Rule] = {
    # interactive API docs and operations
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): OPS,
    ("GET", "/metrics"): OPS,
    ("GET", "/static"): PUBLIC,
    # one-stop API (client keys)
    ("POST", "/api/v1/payment-orders"): client(),
    ("GET", "/api/v1/payment-orders"): client(),
    ("GET", "/api/v1/payment-orders/{order_id}"): client("order_id"),
    ("POST", "/api/v1/payment-orders/{order_id}/cancel"): client("order_id", {}),
    ("POST", "/api/v1/payment-orders/{order_id}/cash"): client(
        "order_id", {"amount": 5000, "clerk": "Thu"}
    ),
    ("POST", "/api/v1/payment-orders/{order_id}/refund"): client(
        "order_id", {"reason": "Kiểm tra phân quyền"}
    ),
    ("GET", "/api/v1/callbacks"): client(),
    ("GET", "/api/v1/callbacks/{event_id}/attempts"): client("event_id"),
    ("POST", "/api/v1/callbacks/{event_id}/replay"): client("event_id", {"actor": "Kiểm thử"}),
    ("POST", "/api/v1/receipts/error-notices"): client(),
    ("GET", "/api/v1/receipts/error-notices/{notice_id}"): client("notice_id"),
    ("GET", "/api/v1/receipts/error-notices/{notice_id}/xml"): client("notice_id"),
    ("POST", "/api/v1/receipts/{receipt_id}/replace"): client("receipt_id", REASON),
    ("POST", "/api/v1/receipts/{receipt_id}/cancel"): client("receipt_id"),
    ("DELETE", "/api/v1/receipts/{receipt_id}"): client("receipt_id"),
    # the payer's own links: unguessable ids, no credential (the pay page uses them)
    ("GET", "/api/v1/payment-orders/{order_id}/vietqr.png"): PUBLIC,
    ("POST", "/api/v1/payment-orders/{order_id}/card"): PUBLIC,
    ("GET", "/api/v1/receipts/{receipt_id}"): PUBLIC,
    ("GET", "/api/v1/receipts/{receipt_id}/xml"): PUBLIC,
    ("GET", "/api/v1/receipts/{receipt_id}/pdf"): PUBLIC,
    ("POST", "/api/v1/verify"): PUBLIC,
    # money in
    ("POST", "/api/v1/bank-feeds/sepay"): FEED,
    ("POST", "/api/v1/bank-feeds/casso"): FEED,
    ("POST", "/api/v1/card/webhook"): SIGNED,
    # one-stop systems speaking PP-DVCQG (partner checksum; refusals are 400/401/403)
    ("POST", "/pp/dvcqg"): PARTNER,
    ("POST", "/pp/dvcqg/init"): PARTNER,
    ("POST", "/pp/dvcqg/query"): PARTNER,
    ("POST", "/pp/dvcqg/bill"): PARTNER,
    # accountant API (staff sessions)
    ("GET", "/api/v1/payment-exceptions"): staff("accountant"),
    ("POST", "/api/v1/payment-exceptions/{exception_id}/match"): staff(
        "accountant", "exception_id", {"reason": "Kiểm tra phân quyền", "order_id": "x"}
    ),
    ("POST", "/api/v1/payment-exceptions/{exception_id}/request-topup"): staff(
        "accountant", "exception_id", {"reason": "Kiểm tra phân quyền"}
    ),
    ("POST", "/api/v1/payment-exceptions/{exception_id}/refund"): staff(
        "accountant", "exception_id", {"reason": "Kiểm tra phân quyền", "amount": 1000}
    ),
    ("POST", "/api/v1/closes"): staff("accountant"),
    ("GET", "/api/v1/closes/{day}"): staff("accountant"),
    ("GET", "/api/v1/closes/{day}/document"): staff("accountant"),
    ("POST", "/api/v1/breaks/{break_id}/corrections"): staff(
        "accountant", "break_id", {"action": "explain", "reason": "Kiểm tra phân quyền"}
    ),
    ("POST", "/api/v1/corrections/{correction_id}/approve"): staff(
        "accountant", "correction_id", {}
    ),
    ("GET", "/api/v1/reports/revenue"): staff("accountant"),
    # public pages
    ("GET", "/"): PUBLIC,
    ("GET", "/verify"): PUBLIC,
    ("GET", "/r/{code}"): PUBLIC,
    ("GET", "/lang/{code}"): PUBLIC,
    ("GET", "/pay/{order_id}"): PUBLIC,
    ("GET", "/pay/{order_id}/status"): PUBLIC,
    ("POST", "/pay/{order_id}/card"): PUBLIC,
    ("GET", "/pay/{order_id}/bien-lai.pdf"): PUBLIC,
    ("GET", "/pay/{order_id}/bien-lai.xml"): PUBLIC,
    ("GET", "/pay/{order_id}/claim"): PUBLIC,
    ("POST", "/pay/{order_id}/claim"): PUBLIC,
    ("GET", "/tra-cuu"): PUBLIC,
    ("POST", "/tra-cuu"): PUBLIC,
    ("GET", "/bang-phi/{agency_code}"): PUBLIC,
    ("GET", "/bang-phi/{agency_code}/{procedure_code}"): PUBLIC,
    ("GET", "/bang-phi/{agency_code}/{procedure_code}/qr.png"): PUBLIC,
    # staff sign-in
    ("GET", "/staff/login"): PUBLIC,
    ("POST", "/staff/login"): PUBLIC,
    ("POST", "/staff/logout"): Rule("staff-any"),
    ("GET", "/staff/me"): Rule("staff-any"),
    ("GET", "/staff/"): Rule("staff-any"),
    # counter (clerk)
    ("GET", "/staff/counter"): staff("clerk"),
    ("GET", "/staff/counter/new"): staff("clerk"),
    ("GET", "/staff/counter/new/lines"): staff("clerk"),
    ("GET", "/staff/counter/new/price"): staff("clerk"),
    ("POST", "/staff/counter/orders"): staff("clerk"),
    ("GET", "/staff/counter/orders/{order_id}"): staff("clerk", "order_id"),
    ("GET", "/staff/counter/orders/{order_id}/screen"): staff("clerk", "order_id"),
    ("GET", "/staff/counter/orders/{order_id}/status"): staff("clerk", "order_id"),
    ("POST", "/staff/counter/orders/{order_id}/cash"): staff(
        "clerk", "order_id", form={"amount": "5000"}
    ),
    ("POST", "/staff/counter/orders/{order_id}/cancel"): staff("clerk", "order_id"),
    ("GET", "/staff/counter/receipts/{receipt_id}/pdf"): staff("clerk", "receipt_id"),
    ("GET", "/staff/counter/receipts/{receipt_id}/replace"): staff("clerk", "receipt_id"),
    ("POST", "/staff/counter/receipts/{receipt_id}/replace"): staff("clerk", "receipt_id"),
    ("GET", "/staff/counter/receipts/{receipt_id}/error-notice"): staff("clerk", "receipt_id"),
    ("POST", "/staff/counter/receipts/{receipt_id}/error-notice"): staff(
        "clerk",
        "receipt_id",
        form={"reason": WHY, "tax_authority_name": "Chi cục Thuế thử", "form_token": "authz-1"},
    ),
    ("GET", "/staff/counter/till"): staff("clerk"),
    # desk (accountant)
    ("GET", "/staff/desk"): staff("accountant"),
    ("POST", "/staff/desk/close"): staff("accountant"),
    ("GET", "/staff/desk/days/{day}"): staff("accountant"),
    ("GET", "/staff/desk/days/{day}/document"): staff("accountant"),
    ("GET", "/staff/desk/days/{day}/evidence"): staff("accountant"),
    ("GET", "/staff/desk/receipts/{receipt_id}/evidence"): staff("accountant", "receipt_id"),
    ("GET", "/staff/desk/breaks/{break_id}"): staff("accountant", "break_id"),
    ("POST", "/staff/desk/breaks/{break_id}/corrections"): staff(
        "accountant", "break_id", form={"action": "explain", "reason": WHY}
    ),
    ("POST", "/staff/desk/corrections/{correction_id}/approve"): staff(
        "accountant", "correction_id"
    ),
    ("GET", "/staff/desk/charts"): staff("accountant"),
    ("GET", "/staff/desk/exports/revenue"): staff("accountant"),
    ("GET", "/staff/desk/tax"): staff("accountant"),
    ("GET", "/staff/desk/exceptions"): staff("accountant"),
    ("POST", "/staff/desk/exceptions/{exception_id}/match"): staff(
        "accountant", "exception_id", form={"order": "{own_order_id}", "reason": WHY}
    ),
    ("POST", "/staff/desk/exceptions/{exception_id}/request-topup"): staff(
        "accountant", "exception_id", form={"reason": WHY}
    ),
    ("POST", "/staff/desk/exceptions/{exception_id}/refund"): staff(
        "accountant", "exception_id", form={"amount": "1000", "reason": WHY}
    ),
    ("POST", "/staff/desk/exceptions/{exception_id}/claim/approve"): staff(
        "accountant", "exception_id", form={}
    ),
    ("POST", "/staff/desk/exceptions/{exception_id}/claim/refuse"): staff(
        "accountant", "exception_id", form={"reason": WHY}
    ),
    # admin
    ("GET", "/staff/admin"): staff("admin"),
    ("POST", "/staff/admin/claims"): staff("admin", form={"days": "0"}),
    ("GET", "/staff/admin/users"): staff("admin"),
    ("POST", "/staff/admin/users"): staff("admin"),
    ("GET", "/staff/admin/users/{staff_id}"): staff("admin", "staff_id"),
    ("POST", "/staff/admin/users/{staff_id}/roles"): staff("admin", "staff_id"),
    ("POST", "/staff/admin/users/{staff_id}/disable"): staff("admin", "staff_id"),
    ("POST", "/staff/admin/users/{staff_id}/enable"): staff("admin", "staff_id"),
    ("POST", "/staff/admin/users/{staff_id}/password"): staff("admin", "staff_id"),
    ("GET", "/staff/admin/catalog"): staff("admin"),
    ("POST", "/staff/admin/catalog/import"): staff("admin"),
    ("GET", "/staff/admin/catalog/fees/{fee_id}"): staff("admin", "fee_id"),
    ("POST", "/staff/admin/catalog/fees/{fee_id}/price"): staff("admin", "fee_id"),
    ("POST", "/staff/admin/catalog/fees/{fee_id}/tariff"): staff("admin", "fee_id"),
    ("GET", "/staff/admin/statements"): staff("admin"),
    ("POST", "/staff/admin/statements/preview"): staff("admin"),
    ("POST", "/staff/admin/statements/profiles"): staff("admin"),
    ("POST", "/staff/admin/statements/profiles/{profile_id}/delete"): staff("admin", "profile_id"),
    ("POST", "/staff/admin/statements/import"): staff("admin"),
    ("GET", "/staff/admin/keys"): staff("admin"),
    ("POST", "/staff/admin/keys/clients"): staff("admin"),
    ("POST", "/staff/admin/keys/clients/{client_id}/revoke"): staff("admin", "client_id"),
    ("POST", "/staff/admin/keys/feeds"): staff("admin"),
    ("POST", "/staff/admin/keys/feeds/{feed_id}/revoke"): staff("admin", "feed_id"),
    ("GET", "/staff/admin/certificate"): staff("admin"),
    ("GET", "/staff/admin/onestop"): staff("admin"),
    ("POST", "/staff/admin/onestop/partners"): staff("admin"),
    ("POST", "/staff/admin/onestop/partners/{partner_id}/revoke"): staff("admin", "partner_id"),
    ("GET", "/staff/admin/onestop/deliveries/{delivery_id}"): staff("admin", "delivery_id"),
    # sandboxes (embedded demo only)
    ("POST", "/sandbox/bank/transfer"): SANDBOX,
}

DUMMY = {
    "day": (today() - timedelta(days=1)).isoformat(),  # a business day that is over
    "code": "vi",
    "agency_code": DEMO_AGENCY.code,
}
"""Values for path parameters that are not objects; objects get a made-up id."""


def app_routes(settings: Settings) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(create_app(settings).routes):
        methods = getattr(context, "methods", None) or {"GET"}  # a Mount (static) has none
        for method in methods:
            if method != "HEAD":
                found.add((method, context.path))
    return found


def fill(path: str, objects: dict[str, str] | None = None) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if objects and name in objects:
            return objects[name]
        return DUMMY.get(name, "00000000000000000000000000000000")

    filled = re.sub(r"\{(\w+)(?::\w+)?\}", value, path)
    return filled + "/app.css" if path == "/static" else filled


def call(
    client: TestClient,
    method: str,
    path: str,
    body: Any = None,
    form: dict[str, str] | None = None,
    **headers: str,
) -> httpx.Response:
    sends = method in ("POST", "DELETE")
    response: httpx.Response = client.request(
        method,
        path,
        json=body if sends and body is not None and form is None else None,
        data=form if sends else None,
        headers=headers or None,
        follow_redirects=False,
    )
    return response


def refused(response: httpx.Response) -> bool:
    if response.status_code in (401, 403):
        return True
    location = response.headers.get("location", "")
    return response.status_code in (302, 303, 307) and location.startswith("/staff/login")


@pytest.fixture
def app_client(demo: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(demo)) as test_client:
        yield test_client


@pytest.fixture
def sessions(demo: Settings) -> Iterator[dict[str, tuple[TestClient, str]]]:
    """A signed-in TestClient and its CSRF token per demo role."""
    app = create_app(demo)
    clients: dict[str, tuple[TestClient, str]] = {}
    for role, username in ROLES.items():
        c = TestClient(app)
        c.__enter__()
        signed = c.post(
            "/staff/login",
            data={"username": username, "password": DEMO_STAFF_PASSWORD},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text
        clients[role] = (c, c.get("/staff/me").json()["csrf_token"])
    yield clients
    for c, _ in clients.values():
        c.__exit__(None, None, None)


# ----------------------------------------------------------------------------- (1) coverage


def test_every_route_is_classified(demo: Settings) -> None:
    routes = app_routes(demo)
    missing = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    message = []
    if missing:
        message.append(
            f"{len(missing)} UNCLASSIFIED route(s); add a line to MATRIX in "
            "tests/security/test_authz_matrix.py for each:\n"
            + "\n".join(
                f'    ("{m}", "{p}"): staff("?"),  # or client(), PUBLIC …' for m, p in missing
            )
        )
    if stale:
        message.append(
            f"{len(stale)} MATRIX row(s) name no route (renamed or removed?):\n"
            + "\n".join(f"    {m} {p}" for m, p in stale)
        )
    assert not message, "\n".join(message)


# ----------------------------------------------------------------------------- (2) anonymous


def test_anonymous_is_refused(app_client: TestClient) -> None:
    failures = []
    for (method, path), rule in sorted(MATRIX.items()):
        if rule.kind in ("public", "sandbox"):
            continue
        response = call(app_client, method, fill(path), rule.body)
        ok = refused(response)
        if rule.kind in ("bank-feed", "signed-webhook"):
            # a missing signature is a bad request (400) or, with cards off, no route (404)
            ok = ok or response.status_code in (400, 404)
        if not ok:
            failures.append(f"{method} {path}: {response.status_code}")
    assert not failures, "anonymous callers got through:\n" + "\n".join(failures)


# ----------------------------------------------------------------------------- (3) wrong kind


def test_wrong_credential_kind_is_refused(
    app_client: TestClient, sessions: dict[str, tuple[TestClient, str]]
) -> None:
    sepay = {"Authorization": f"Apikey {DEMO_SEPAY_KEY}"}
    failures = []
    for (method, path), rule in sorted(MATRIX.items()):
        url = fill(path)
        attempts: list[tuple[str, httpx.Response]] = []
        if rule.kind == "client":
            attempts.append(("bank-feed key", call(app_client, method, url, rule.body, **sepay)))
            admin, csrf = sessions["admin"]
            attempts.append(
                ("staff session", call(admin, method, url, rule.body, **{"X-CSRF-Token": csrf}))
            )
        elif rule.kind in ("bank-feed", "signed-webhook"):
            response = call(app_client, method, url, {}, **AUTH)
            attempts.append(("client key", response))
        elif rule.kind == "staff":
            attempts.append(("client key", call(app_client, method, url, rule.body, **AUTH)))
            for role, (signed_in, csrf) in sessions.items():
                if role != rule.role:
                    attempts.append(
                        (
                            f"{role} session",
                            call(signed_in, method, url, rule.body, **{"X-CSRF-Token": csrf}),
                        )
                    )
        for label, response in attempts:
            ok = refused(response) or (
                rule.kind in ("bank-feed", "signed-webhook") and response.status_code in (400, 404)
            )
            if not ok:
                failures.append(f"{method} {path} with {label}: {response.status_code}")
    assert not failures, "wrong credentials got through:\n" + "\n".join(failures)


# ----------------------------------------------------------------------------- (4) other agency


def other_agency_objects(demo: Settings, app_client: TestClient) -> dict[str, str]:
    """A second agency with one object of each kind; returns {path parameter: id}."""
    with session_scope() as session:
        other = add_agency(
            session,
            replace(
                DEMO_AGENCY,
                code="KHAC-XA",
                name="UBND xã Khác (thử)",
                bank_account="113000099999",
            ),
        )
        catalog = resources.files("payments").joinpath("data/demo_catalog.csv").read_bytes()
        import_catalog(session, other, catalog, effective_from=today() - timedelta(days=400))
        issued = add_client(
            session, other, "Một cửa xã Khác", "http://127.0.0.1:9/cb", allow_loopback=True
        )
        feed, _ = add_bank_feed(session, other, "sepay")
        colleague = create_staff(
            session, other.id, "xa.khac", "Lê Văn Khác", DEMO_STAFF_PASSWORD, ["clerk"]
        )
        fee_id = session.scalar(
            select(FeeItem.id).join(Procedure).where(Procedure.agency_id == other.id).limit(1)
        )
        profile = save_profile(
            session,
            other.id,
            {"name": "x1", "columns": {"date": ["Ngày GD"], "credit": ["Ghi có"]}},
            created_by="t",
            now=utcnow(),
        )
        partner = add_partner(
            session,
            other,
            PartnerInput(code="PP-KHAC", confirm_url="http://127.0.0.1:9/confirm"),
            allow_loopback=True,
        ).partner
        confirm = CallbackEvent(
            id="evt_" + "0" * 31 + "1",
            kind="pp_confirm",
            partner_id=partner.id,
            url=partner.confirm_url,
            event="payment_order.succeeded",
            body=b"{}",
            created_at=utcnow(),
            enqueued_at=utcnow(),
            state="failed",
        )
        session.add(confirm)
        objects = {
            "partner_id": str(partner.id),
            "delivery_id": confirm.id,
            "client_id": str(issued.client.id),
            "feed_id": str(feed.id),
            "staff_id": str(colleague.id),
            "fee_id": str(fee_id),
            "profile_id": str(profile.id),
        }
        other_key = issued.api_key
    dev_init(demo, "KHAC-XA")
    key = {"Authorization": f"Bearer {other_key}"}
    order = app_client.post(
        "/api/v1/payment-orders",
        json={**ORDER, "dossier_code": "KHAC-1"},
        headers={**key, "Idempotency-Key": "other-1"},
    ).json()
    paid = app_client.post(
        "/sandbox/bank/transfer",
        json={"agency": "KHAC-XA", "amount": order["amount"], "content": order["reference"]},
    )
    assert paid.status_code == 200, paid.text
    receipt = app_client.get(f"/api/v1/payment-orders/{order['id']}", headers=key).json()["receipt"]
    unpaid = app_client.post(
        "/api/v1/payment-orders",
        json={**ORDER, "dossier_code": "KHAC-2"},
        headers={**key, "Idempotency-Key": "other-2"},
    ).json()
    objects["order_id"] = unpaid["id"]
    own = app_client.post(  # one of the caller's own orders, for forms that name one
        "/api/v1/payment-orders",
        json={**ORDER, "dossier_code": "OWN-1"},
        headers={**AUTH, "Idempotency-Key": "own-1"},
    )
    objects["own_order_id"] = own.json()["id"]
    objects["receipt_id"] = receipt["id"]
    stray = app_client.post(
        "/sandbox/bank/transfer",
        json={"agency": "KHAC-XA", "amount": 12_345, "content": "khong co ma"},
    )
    assert stray.status_code == 200, stray.text
    with session_scope() as session:
        objects["exception_id"] = str(
            session.scalar(
                select(PaymentException.id).where(PaymentException.agency_id == other.id)
            )
        )
    with session_scope() as session:  # a close with a break, and a correction awaiting approval
        close_day(session, demo, "KHAC-XA", today(ZoneInfo(other.time_zone)), actor="xa")
        break_id = session.scalar(select(ReconBreak.id).where(ReconBreak.agency_id == other.id))
        if break_id is not None:
            objects["break_id"] = str(break_id)
            correction = request_correction(
                session,
                break_id,
                agency_id=other.id,
                action="refund_instruction",
                reason=WHY,
                actor="xa.khac",
                params={"amount": 12_345},
            )
            objects["correction_id"] = str(correction.id)
    events = app_client.get("/api/v1/callbacks", headers=key).json()["data"]
    if events:
        objects["event_id"] = events[0]["id"]
    notice = app_client.post(
        "/api/v1/receipts/error-notices",
        json={
            "receipt_ids": [receipt["id"]],
            "tax_authority_name": "Chi cục Thuế khu vực thử",
            **REASON,
        },
        headers=key,
    )
    if notice.status_code == 201:
        objects["notice_id"] = notice.json()["id"]
    return objects


def test_other_agencys_objects_are_404(
    demo: Settings, app_client: TestClient, sessions: dict[str, tuple[TestClient, str]]
) -> None:
    objects = other_agency_objects(demo, app_client)
    failures, inconclusive, unfinished = [], [], set()
    for (method, path), rule in sorted(MATRIX.items()):
        if rule.obj is None:
            continue
        if rule.obj not in objects:
            unfinished.add(f"{rule.obj} ({method} {path})")
            continue
        url = fill(path, objects)
        if rule.kind == "client":
            response = call(app_client, method, url, rule.body, **AUTH)
        else:
            signed_in, csrf = sessions[rule.role or ""]
            response = call(signed_in, method, url, rule.body, rule.form, **{"X-CSRF-Token": csrf})
        if response.status_code == 404:
            continue
        if response.status_code == 422:  # the body was refused before the object was read
            inconclusive.append(f"{method} {path} ({response.text[:200]!r})")
        else:
            failures.append(f"{method} {path}: {response.status_code} {response.text[:120]}")
    if inconclusive or unfinished:
        warnings.warn(
            "authz matrix: cross-agency check not conclusive (give the row a valid body) for "
            + ", ".join(inconclusive)
            + "; UNFINISHED (no factory for the object kind): "
            + ", ".join(sorted(unfinished)),
            stacklevel=1,
        )
    assert not failures, "another agency's objects were reachable:\n" + "\n".join(failures)


# ----------------------------------------------------------------------------- (5) sandbox


def test_sandbox_routes_absent_when_sandboxes_are_off(demo: Settings) -> None:
    off = demo.model_copy(update={"sandboxes_enabled": False})
    routes = app_routes(off)
    sandbox_rows = [key for key, rule in MATRIX.items() if rule.kind == "sandbox"]
    assert sandbox_rows
    assert not set(sandbox_rows) & routes
    with TestClient(create_app(off)) as c:
        for method, path in sandbox_rows:
            assert call(c, method, fill(path), {}).status_code in (404, 405)
