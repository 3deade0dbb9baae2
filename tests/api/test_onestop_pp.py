"""PP-DVCQG conformance (issue 15): the two known one-stop clients, played byte for byte.

* **OpenCPS v2** (``pay-gate-integration``): amounts as strings, ``ThoiGianGD`` on a 24-hour
  clock, ``MaThamChieu`` = dossier code without non-word characters + a timestamp, ``MaDVC`` =
  ``MaTTHC + ".01"``, ``SoCMNDNguoiNop`` ``000000000``; reads ``MaLoi``/``UrlThanhToan`` and
  ``UrlBienLai``.
* **The .NET one-stop system**: amounts as JSON numbers, ``ThoiGianGD`` written with ``hh`` (a
  12-hour clock), ``LoaiPhiLePhi`` as text; reads ``error_code``/``message`` and saves the
  GET_BILL body as the receipt's PDF.

Each message is serialised as its client does and its ``MaXacThuc`` computed here with
``hashlib`` in the documented field order (never by the code under test). The partner's
CONFIRM endpoint is a real HTTP server on 127.0.0.1, reached by the worker's own delivery
function. Amounts come from the demo catalogue's tariffs, never typed in.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_flow import count, sepay
from fastapi.testclient import TestClient
from infra.callback_receiver import CallbackReceiver
from infra.cli import run_motcua
from infra.clock import Clock
from infra.tax_sandbox import tax_sandbox_process
from sqlalchemy import select
from staff_flow import sign_in

from api.app import create_app
from api.demo import DEMO_AGENCY
from api.ratelimit import WINDOW_SECONDS
from payments import callbacks
from payments.agencies import agency_by_code
from payments.callback_models import CallbackAttempt, CallbackEvent
from payments.catalog import fee_item_on, procedure_by_code
from payments.models import PaymentOrder
from payments.onestop_models import OnestopMessage, OnestopTransaction
from payments.onestop_partners import PartnerInput, add_partner
from payments.order_draft import FeeRequest, FeeSpec, price_fee
from settings import audit_chain
from settings.config import Settings
from settings.db import session_factory, session_scope, utcnow

PP = "/pp/dvcqg"
PROCEDURE = "1.001612"  # Đăng ký thành lập hộ kinh doanh (demo catalogue): CT-BS and HKD-TL
PARTNER_IP = "203.0.113.7"
INIT_ORDER = (
    "LoaiBanTin",
    "PhienBan",
    "MaDoiTac",
    "MaThamChieu",
    "SoTien",
    "LoaiHinhThanhToan",
    "MaKenhThanhToan",
    "MaThietBi",
    "NgonNgu",
    "MaTienTe",
    "MaNganHang",
    "ThongTinGiaoDich",
    "ThoiGianGD",
    "Ip",
)
POLL_ORDER = ("LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD")
CONFIRM_ORDER = (
    "LoaiBanTin",
    "MaLoi",
    "MaDoiTac",
    "MaThamChieu",
    "SoTien",
    "MaTienTe",
    "MaGiaoDich",
    "MaNganHang",
    "ThoiGianGD",
    "ThongTinGiaoDich",
)
FEE_MAP = {"PHI_CHUNG_THUC_BAN_SAO": "CT-BS", "LE_PHI_DK_HKD": "HKD-TL"}
ACK = json.dumps({"MaLoi": "00", "MoTaLoi": "Thanh cong"}).encode()
PDFSIG = shutil.which("pdfsig")
XMLSEC1 = shutil.which("xmlsec1")


def sha(values: list[str], secret: str) -> str:
    return hashlib.sha256("|".join([*values, secret]).encode("utf-8")).hexdigest()


def tariff(fee_code: str, quantity: int, clock: Clock) -> int:
    """What the demo agency's published tariff of today charges (the one pricing engine)."""
    with session_scope() as session:
        agency = agency_by_code(session, DEMO_AGENCY.code)
        procedure = procedure_by_code(session, agency.id, PROCEDURE)
        item = fee_item_on(session, procedure, fee_code, clock.today())
        assert item is not None
        return price_fee(FeeSpec.of(item), FeeRequest(fee_code=fee_code, quantity=quantity))[
            1
        ].amount


# --------------------------------------------------------------------------- the two clients


class OpenCps:
    """OpenCPS v2 as onestop-pp.md describes it."""

    def __init__(self, code: str, secret: str, clock: Clock) -> None:
        self.code, self.secret, self.clock = code, secret, clock

    CREATED = timedelta(hours=-2)
    """OpenCPS stamps every message with its payment file's creation time, not the send time."""

    def stamp(self, shift: timedelta = CREATED) -> str:
        return (self.clock.local_now() + shift).strftime("%Y%m%d%H%M%S")

    def init(
        self,
        dossier: str,
        lines: list[tuple[str, str, int]],
        *,
        shift: timedelta | None = None,
        total: int | None = None,
        info: dict[str, Any] | None = None,
        reference: str | None = None,
        secret: str | None = None,
    ) -> dict[str, Any]:
        amount = sum(a for _, _, a in lines) if total is None else total
        stamp = self.stamp() if shift is None else self.stamp(shift)
        message: dict[str, Any] = {
            "LoaiBanTin": "INIT",
            "PhienBan": "1.0.6",
            "MaDoiTac": self.code,
            "MaThamChieu": reference or re.sub(r"\W", "", dossier) + stamp,
            "SoTien": str(amount),
            "LoaiHinhThanhToan": "PAY",
            "MaKenhThanhToan": "1",
            "MaThietBi": "1",
            "NgonNgu": "vi-VN",
            "MaTienTe": "VND",
            "MaNganHang": "PAYMENT",
            "ThongTinGiaoDich": f"THANH TOAN HO SO {dossier}",
            "ThoiGianGD": stamp,
            "Ip": PARTNER_IP,
        }
        message["MaXacThuc"] = sha([message[n] for n in INIT_ORDER], secret or self.secret)
        message["ThongTinBienLai"] = {
            "MaDichVu": 2,  # OpenCPS writes it with getInt: a JSON number
            "MaTTHC": PROCEDURE,
            "TenTTHC": "Đăng ký thành lập hộ kinh doanh",
            "MaDVC": PROCEDURE + ".01",
            "TenDVC": "Đăng ký thành lập hộ kinh doanh",
            "MaDonVi": "000.00.12.H01",
            "TenDonVi": DEMO_AGENCY.name,
            "MaHoSo": dossier,
            "TKThuHuong": DEMO_AGENCY.bank_account,
            "MaNHThuHuong": DEMO_AGENCY.bank_bin,
            "TenTKThuHuong": DEMO_AGENCY.bank_account_name,
            "NoiDungThanhToan": f"Thanh toan ho so {dossier}",
            "HoTenNguoiNop": "Nguyễn Văn An",
            "SoCMNDNguoiNop": "000000000",
            "DiaChiNguoiNop": "Số 5 ngõ 12 phố Huế",
            "HuyenNguoiNop": "Quận Hai Bà Trưng",
            "TinhNguoiNop": "Hà Nội",
            "MaCoQuanQD": "",
            "TenCoQuanQD": "",
            "KhoBac": "",
            "NgayQD": "",
            "SoQD": "",
            "TaiKhoanThuNSNN": "",
            # Always one phí and one lệ phí line, both with MaPhiLePhi "2" and a number amount
            # (0 when the procedure has none of that kind): told apart by LoaiPhiLePhi only.
            "PhiLePhi": [
                {
                    "LoaiPhiLePhi": kind,
                    "MaPhiLePhi": "2",
                    "TenPhiLePhi": "Phí" if kind == "1" else "Lệ phí",
                    "SoTien": sum(a for _, k, a in lines if k == kind),
                }
                for kind in ("1", "2")
            ],
            "DSKhoanNop": [{"NoiDung": f"Thanh toan ho so {dossier}", "SoTien": str(amount)}],
            **(info or {}),
        }
        return message

    def poll(self, kind: str, reference: str) -> dict[str, Any]:
        message = {
            "LoaiBanTin": kind,
            "PhienBan": "1.0.6",
            "MaDoiTac": self.code,
            "MaThamChieu": reference,
            "ThoiGianGD": self.stamp(),
        }
        message["MaXacThuc"] = sha([message[n] for n in POLL_ORDER], self.secret)
        return message

    @staticmethod
    def body(message: dict[str, Any]) -> bytes:
        return json.dumps(message, ensure_ascii=False).encode("utf-8")  # Jackson-like: UTF-8


class DotNet(OpenCps):
    """The .NET client: ``hh`` (12-hour) timestamps of the send time, numbers for amounts, its
    own fee codes (mapped on the partner), compact JSON."""

    def stamp(self, shift: timedelta = timedelta()) -> str:
        return (self.clock.local_now() + shift).strftime("%Y%m%d%I%M%S")

    def init(self, dossier: str, lines: list[tuple[str, str, int]], **kw: Any) -> dict[str, Any]:
        amount = sum(a for _, _, a in lines)
        stamp = self.stamp()
        message: dict[str, Any] = {
            "LoaiBanTin": "INIT",
            "PhienBan": "1.0.6",
            "MaDoiTac": self.code,
            "MaThamChieu": "DVC" + stamp + dossier[-4:],
            "SoTien": amount,
            "LoaiHinhThanhToan": "PAY",
            "MaKenhThanhToan": "1",
            "MaThietBi": "1",
            "NgonNgu": "vi-VN",
            "MaTienTe": "VND",
            "MaNganHang": "PAYMENT",
            "ThongTinGiaoDich": f"THANH TOAN HO SO {dossier}",
            "ThoiGianGD": stamp,
            "Ip": "10.0.0.15",
            "ThongTinBienLai": {
                "MaDichVu": "2",
                "MaTTHC": PROCEDURE,
                "TenTTHC": "Đăng ký thành lập hộ kinh doanh",
                "MaDVC": PROCEDURE,
                "MaHoSo": dossier,
                "TKThuHuong": DEMO_AGENCY.bank_account,
                "MaNHThuHuong": DEMO_AGENCY.bank_bin,
                "HoTenNguoiNop": "Trần Thị Bình",
                "SoCMNDNguoiNop": "001190012345",
                "DiaChiNguoiNop": "Thôn Đông",
                "PhiLePhi": [
                    {
                        "LoaiPhiLePhi": "Phi" if kind == "1" else "LePhi",
                        "MaPhiLePhi": code,
                        "TenPhiLePhi": code,
                        "SoTien": a,
                    }
                    for code, kind, a in lines
                ],
            },
        }
        message["MaXacThuc"] = sha([str(message[n]) for n in INIT_ORDER], self.secret)
        return message

    @staticmethod
    def body(message: dict[str, Any]) -> bytes:
        return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def partner_rx() -> Iterator[CallbackReceiver]:
    with CallbackReceiver(path="/o/pgi/ppdvcqg/dpnhankqthanhtoanhs") as rx:
        rx.response_body = ACK
        yield rx


def _partner(
    code: str,
    url: str,
    reply: str,
    bill: str,
    ips: tuple[str, ...] = (),
    *,
    fee_map: dict[str, str] | None = None,
    skew: int = 300,
) -> str:
    with session_scope() as session:
        issued = add_partner(
            session,
            agency_by_code(session, DEMO_AGENCY.code),
            PartnerInput(
                code=code,
                confirm_url=url,
                reply_dialect=reply,
                bill_dialect=bill,
                allowed_ips=ips,
                fee_map=fee_map,
                clock_skew_seconds=skew,
            ),
            allow_loopback=True,
        )
        return issued.secret


@pytest.fixture
def opencps(demo: Settings, partner_rx: CallbackReceiver, clock: Clock) -> OpenCps:
    secret = _partner(
        "OPENCPS-SONHA", partner_rx.url, "maloi", "url", ("203.0.113.0/24",), skew=4 * 86_400
    )
    return OpenCps("OPENCPS-SONHA", secret, clock)


@pytest.fixture
def dotnet(demo: Settings, partner_rx: CallbackReceiver, clock: Clock) -> DotNet:
    secret = _partner(
        "DVC-NET", partner_rx.url + "/DvcPayment/Confirm", "error_code", "pdf", fee_map=FEE_MAP
    )
    return DotNet("DVC-NET", secret, clock)


@pytest.fixture
def pp(client: TestClient) -> TestClient:
    """The one-stop system's server calling us from its allowed address."""
    return TestClient(client.app, client=(PARTNER_IP, 50123))


def lines(clock: Clock) -> list[tuple[str, str, int]]:
    """Three pages certified (CT-BS) and the household-business fee (HKD-TL), as priced today."""
    return [
        ("PHI_CHUNG_THUC_BAN_SAO", "1", tariff("CT-BS", 3, clock)),
        ("LE_PHI_DK_HKD", "2", tariff("HKD-TL", 1, clock)),
    ]


def deliver(at: Any = None) -> callbacks.DeliveryReport:
    """What the worker runs (``payments.deliver_callbacks``), driven to ``at``."""
    with httpx.Client() as http:
        return callbacks.deliver_due(
            session_factory(), now=at or utcnow(), http=http, allow_loopback=True
        )


def messages(outcome: str | None = None) -> list[OnestopMessage]:
    with session_scope() as session:
        query = select(OnestopMessage).order_by(OnestopMessage.id)
        if outcome:
            query = query.where(OnestopMessage.outcome == outcome)
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def check_confirm(body: bytes, secret: str) -> dict[str, Any]:
    confirm = json.loads(body)
    assert confirm["LoaiBanTin"] == "CONFIRM"
    assert isinstance(confirm["SoTien"], int)
    assert confirm["MaXacThuc"] == sha([str(confirm[n]) for n in CONFIRM_ORDER], secret)
    return dict(confirm)


def pdf_is_signed(data: bytes, tmp_path: Path) -> None:
    assert data.startswith(b"%PDF")
    if PDFSIG is None:
        pytest.skip("pdfsig not installed (apt-get install poppler-utils)")
    path = tmp_path / "bien-lai.pdf"
    path.write_bytes(data)
    out = subprocess.run(
        [PDFSIG, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Signature Validation: Signature is Valid." in out.stdout + out.stderr, out.stdout


def xml_is_signed(data: bytes, settings: Settings, tmp_path: Path) -> None:
    """The legal original verifies with xmlsec1 against the data folder's development CA."""
    if XMLSEC1 is None:
        pytest.skip("xmlsec1 not installed (apt-get install xmlsec1)")
    document = tmp_path / "bien-lai.xml"
    document.write_bytes(data)
    out = subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--id-attr:Id",
            "DLBLai",
            "--trusted-pem",
            str(settings.keys_dir / "dev-ca.pem"),
            str(document),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------- the flows


def test_opencps_init_pay_by_vietqr_confirm_bill_query(
    client: TestClient,
    pp: TestClient,
    opencps: OpenCps,
    partner_rx: CallbackReceiver,
    clock: Clock,
    auth: dict[str, str],
    demo: Settings,
    tmp_path: Path,
) -> None:
    fee_lines = lines(clock)
    total = sum(a for _, _, a in fee_lines)
    init = opencps.init("H01.22-000123-0001", fee_lines)
    res = pp.post(PP, content=OpenCps.body(init), headers={"Content-Type": "application/json"})
    assert res.status_code == 200, res.text
    reply = res.json()
    assert reply["MaLoi"] == "00" and reply["MaThamChieu"] == init["MaThamChieu"]
    pay_url = reply["UrlThanhToan"]
    order_id = pay_url.rsplit("/", 1)[1]
    assert pay_url == f"http://testserver/pay/{order_id}"
    assert client.get(pay_url).status_code == 200  # the citizen's page

    # An order exactly like one from our API: reference, VietQR, expiry, tariff-priced lines.
    order = client.get(f"/api/v1/payment-orders/{order_id}", headers=auth).json()
    assert order["amount"] == total and order["reference"] == reply["MaGiaoDich"]
    assert order["status"] == "pending" and order["vietqr"] and order["expires_at"]
    assert [line["fee_code"] for line in order["lines"]] == ["CT-BS", "HKD-TL"]
    assert [line["quantity"] for line in order["lines"]] == [3, 1]

    # The same INIT again (a retry): the same answer, no second order.
    again = pp.post(PP, content=OpenCps.body(init))
    assert again.status_code == 200 and again.json() == reply
    assert count(OnestopTransaction) == 1

    # Nothing is confirmed before the money is in.
    assert deliver().attempted == 0
    paid = sepay(client, total, order["reference"])
    assert paid.status_code == 200, paid.text
    report = deliver()
    assert report.delivered == 1, report
    (request,) = partner_rx.wait_for(1)
    assert request.path == "/o/pgi/ppdvcqg/dpnhankqthanhtoanhs"
    assert "motcua-signature" not in request.headers  # the checksum is in the body
    confirm = check_confirm(request.body, opencps.secret)
    assert confirm["MaLoi"] == "00" and confirm["SoTien"] == total
    assert confirm["MaThamChieu"] == init["MaThamChieu"]
    assert confirm["MaGiaoDich"] == order["reference"] and confirm["MaNganHang"] == "VIETQR"
    assert confirm["ThongTinGiaoDich"] == init["ThongTinGiaoDich"]

    bill = pp.post(
        f"{PP}/bill", content=OpenCps.body(opencps.poll("GET_BILL", init["MaThamChieu"]))
    )
    assert bill.status_code == 200, bill.text
    links = bill.json()
    assert links["MaLoi"] == "00" and links["UrlBienLai"].endswith(f"/pay/{order_id}/bien-lai.pdf")
    pdf_is_signed(client.get(links["UrlBienLai"]).content, tmp_path)
    xml_is_signed(client.get(links["UrlBienLaiXml"]).content, demo, tmp_path)

    query = pp.post(PP, content=OpenCps.body(opencps.poll("QUERY", init["MaThamChieu"])))
    assert query.status_code == 200, query.text
    state = query.json()
    assert state["TrangThaiGD"] == 1 and state["MaLoi"] == "00" and state["SoTien"] == total
    assert state["MaXacThuc"] == sha([str(state[n]) for n in CONFIRM_ORDER], opencps.secret)
    audited = [(m.message_type, m.outcome) for m in messages()]
    assert audited == [
        ("INIT", "accepted"),
        ("INIT", "replayed"),
        ("GET_BILL", "accepted"),
        ("QUERY", "accepted"),
    ]


def test_dotnet_twelve_hour_numbers_error_code_and_pdf_body(
    client: TestClient,
    dotnet: DotNet,
    partner_rx: CallbackReceiver,
    clock: Clock,
    demo: Settings,
    tmp_path: Path,
) -> None:
    fee_lines = lines(clock)
    total = sum(a for _, _, a in fee_lines)
    init = dotnet.init("000.00.12.H01-261203-0042", fee_lines)
    assert isinstance(init["SoTien"], int)
    res = client.post(f"{PP}/init", content=DotNet.body(init))
    assert res.status_code == 200, res.text
    assert res.json()["error_code"] == "0"
    inner = json.loads(res.json()["message"])
    assert inner["UrlThanhToan"].startswith("http://testserver/pay/") and inner["SoTien"] == total

    sepay(client, total, inner["MaGiaoDich"])
    assert deliver().delivered == 1
    (request,) = partner_rx.wait_for(1)
    assert request.path.endswith("/DvcPayment/Confirm")
    assert check_confirm(request.body, dotnet.secret)["MaLoi"] == "00"

    bill = client.post(PP, content=DotNet.body(dotnet.poll("GET_BILL", init["MaThamChieu"])))
    assert bill.status_code == 200 and bill.headers["content-type"] == "application/pdf"
    pdf_is_signed(bill.content, tmp_path)
    xml_link = re.fullmatch(r'<([^>]+)>; rel="alternate"', bill.headers["link"])
    assert xml_link is not None and xml_link.group(1).endswith("/bien-lai.xml")
    xml_is_signed(client.get(xml_link.group(1)).content, demo, tmp_path)

    query = client.post(
        f"{PP}/query", content=DotNet.body(dotnet.poll("QUERY", init["MaThamChieu"]))
    )
    assert query.json()["error_code"] == "0"
    assert json.loads(query.json()["message"])["TrangThaiGD"] == 1


def test_cash_at_the_counter_for_a_pp_order_is_confirmed_too(
    client: TestClient, pp: TestClient, opencps: OpenCps, partner_rx: CallbackReceiver, clock: Clock
) -> None:
    fee_lines = lines(clock)[:1]
    init = opencps.init("H01.22-000200-0001", fee_lines)
    order_id = pp.post(PP, content=OpenCps.body(init)).json()["UrlThanhToan"].rsplit("/", 1)[1]
    pending = pp.post(PP, content=OpenCps.body(opencps.poll("QUERY", init["MaThamChieu"])))
    assert pending.json()["TrangThaiGD"] == 3 and pending.json()["MaLoi"] != "00"
    early = pp.post(PP, content=OpenCps.body(opencps.poll("GET_BILL", init["MaThamChieu"])))
    assert early.status_code == 409 and early.json()["MaLoi"] == "12"

    csrf = sign_in(client, "thuquy")["X-CSRF-Token"]
    paid = client.post(
        f"/staff/counter/orders/{order_id}/cash",
        data={"csrf_token": csrf, "amount": str(fee_lines[0][2])},
        headers={"Accept": "text/html"},
        follow_redirects=False,
    )
    assert paid.status_code == 303, paid.text
    assert deliver().delivered == 1
    confirm = check_confirm(partner_rx.wait_for(1)[0].body, opencps.secret)
    assert confirm["MaLoi"] == "00" and confirm["MaNganHang"] == "CASH"
    done = pp.post(PP, content=OpenCps.body(opencps.poll("QUERY", init["MaThamChieu"])))
    assert done.json()["TrangThaiGD"] == 1
    bill = pp.post(PP, content=OpenCps.body(opencps.poll("GET_BILL", init["MaThamChieu"])))
    assert bill.json()["MaLoi"] == "00" and bill.json()["SoBienLai"] >= 1


def test_a_cancelled_order_is_reported_failed(
    client: TestClient,
    pp: TestClient,
    opencps: OpenCps,
    partner_rx: CallbackReceiver,
    clock: Clock,
    auth: dict[str, str],
) -> None:
    init = opencps.init("H01.22-000300-0001", lines(clock)[:1])
    order_id = pp.post(PP, content=OpenCps.body(init)).json()["UrlThanhToan"].rsplit("/", 1)[1]
    assert client.post(f"/api/v1/payment-orders/{order_id}/cancel", headers=auth).status_code == 200
    assert deliver().delivered == 1
    assert check_confirm(partner_rx.wait_for(1)[0].body, opencps.secret)["MaLoi"] == "99"
    query = pp.post(PP, content=OpenCps.body(opencps.poll("QUERY", init["MaThamChieu"])))
    assert query.json()["TrangThaiGD"] == 4


def test_partner_answering_500_twice_then_00_is_retried_on_the_schedule(
    client: TestClient,
    pp: TestClient,
    opencps: OpenCps,
    partner_rx: CallbackReceiver,
    clock: Clock,
) -> None:
    fee_lines = lines(clock)[:1]
    init = opencps.init("H01.22-000400-0001", fee_lines)
    reference = pp.post(PP, content=OpenCps.body(init)).json()["MaGiaoDich"]
    partner_rx.fail_next(2)
    sepay(client, fee_lines[0][2], reference)
    start = utcnow()
    first = deliver(start)
    assert (first.attempted, first.retry_scheduled) == (1, 1)
    assert deliver(start).attempted == 0  # not due again before the schedule says
    second = deliver(start + timedelta(seconds=callbacks.RETRY_SCHEDULE[0] + 1))
    assert (second.attempted, second.retry_scheduled) == (1, 1)
    third = deliver(start + timedelta(seconds=sum(callbacks.RETRY_SCHEDULE[:2]) + 2))
    assert third.delivered == 1
    bodies = [r.body for r in partner_rx.wait_for(3)]
    assert len(set(bodies)) == 1  # the same frozen CONFIRM every time
    with session_scope() as session:
        event = session.scalar(select(CallbackEvent).where(CallbackEvent.kind == "pp_confirm"))
        assert event is not None and event.state == "delivered" and event.attempt_count == 3
        outcomes = [
            (a.outcome, a.status_code)
            for a in session.scalars(
                select(CallbackAttempt)
                .where(CallbackAttempt.event_id == event.id)
                .order_by(CallbackAttempt.attempt_no)
            )
        ]
        event_id = event.id
    assert outcomes == [("http_error", 500), ("http_error", 500), ("delivered", 200)]
    admin = sign_in(client, "quantri")
    page = client.get("/staff/admin/onestop")
    assert page.status_code == 200 and f'data-delivery="{event_id}"' in page.text
    assert 'data-state="delivered"' in page.text and "OPENCPS-SONHA" in page.text
    log = client.get(f"/staff/admin/onestop/deliveries/{event_id}")
    assert log.status_code == 200 and log.text.count('data-outcome="http_error"') == 2
    assert admin


def test_an_answer_other_than_maloi_00_is_not_an_acknowledgement(
    client: TestClient,
    pp: TestClient,
    opencps: OpenCps,
    partner_rx: CallbackReceiver,
    clock: Clock,
) -> None:
    fee_lines = lines(clock)[:1]
    reference = pp.post(PP, content=OpenCps.body(opencps.init("H01.22-5", fee_lines))).json()[
        "MaGiaoDich"
    ]
    sepay(client, fee_lines[0][2], reference)
    partner_rx.response_body = json.dumps({"MaLoi": "99", "MoTaLoi": "Loi"}).encode()
    report = deliver()
    assert (report.attempted, report.delivered, report.retry_scheduled) == (1, 0, 1)
    with session_scope() as session:
        event = session.scalar(select(CallbackEvent).where(CallbackEvent.kind == "pp_confirm"))
        assert event is not None and event.state == "pending"
        assert "MaLoi" in (event.last_error or "")


# --------------------------------------------------------------------------- refusals


def _refusals(opencps: OpenCps, clock: Clock) -> dict[str, tuple[bytes, str, int]]:
    """name → (body, expected MaLoi, expected HTTP status)."""
    fee_lines = lines(clock)
    ct_bs = fee_lines[0][2]
    good = opencps.init("H01.22-900000-0001", fee_lines)

    def resigned(message: dict[str, Any]) -> bytes:
        message = {**message}
        message["MaXacThuc"] = sha([str(message[n]) for n in INIT_ORDER], opencps.secret)
        return OpenCps.body(message)

    def with_lines(entries: list[dict[str, Any]], total: Any) -> bytes:
        message = {**good, "SoTien": total}
        message["ThongTinBienLai"] = {**good["ThongTinBienLai"], "PhiLePhi": entries}
        return resigned(message)

    line = {"LoaiPhiLePhi": "1", "MaPhiLePhi": "2", "TenPhiLePhi": "Phí"}
    old_price = {**line, "SoTien": str(ct_bs + 1000), "SoLuong": "3"}  # 6,000: the old law
    flipped = good["MaXacThuc"][:-1] + ("0" if good["MaXacThuc"][-1] != "0" else "1")
    return {
        "bad_checksum": (OpenCps.body({**good, "MaXacThuc": flipped}), "02", 401),
        "stale": (
            OpenCps.body(opencps.init("H01.22-1", fee_lines, shift=timedelta(days=-5))),
            "04",
            401,
        ),
        "future": (
            OpenCps.body(opencps.init("H01.22-2", fee_lines, shift=timedelta(minutes=10))),
            "04",
            401,
        ),
        "unknown_partner": (OpenCps.body({**good, "MaDoiTac": "NOBODY"}), "03", 401),
        "malformed_json": (b'{"LoaiBanTin": "INIT", ', "01", 400),
        "not_an_object": (b"[1, 2]", "01", 400),
        "decimal_amount": (with_lines([{**line, "SoTien": ct_bs + 0.5}], str(ct_bs)), "01", 400),
        "negative_amount": (with_lines([{**line, "SoTien": f"-{ct_bs}"}], str(ct_bs)), "01", 400),
        "boolean_amount": (with_lines([{**line, "SoTien": True}], str(ct_bs)), "01", 400),
        "grouped_amount": (resigned({**good, "SoTien": f"{ct_bs:,}"}), "01", 400),
        "line_not_tariff": (with_lines([old_price], str(ct_bs + 1000)), "08", 422),
        "flat_fee_not_tariff": (
            with_lines(
                [{**line, "LoaiPhiLePhi": "2", "SoTien": str(fee_lines[1][2] - 10_000)}],
                str(fee_lines[1][2] - 10_000),
            ),
            "08",
            422,
        ),
        "total_not_sum": (resigned({**good, "SoTien": str(good_total(good) + 1)}), "08", 422),
        "unknown_fee": (
            with_lines(
                [{**line, "LoaiPhiLePhi": "9", "MaPhiLePhi": "PHI_KHONG_CO", "SoTien": "1000"}],
                "1000",
            ),
            "09",
            422,
        ),
        "fine": (
            resigned({**good, "ThongTinBienLai": {**good["ThongTinBienLai"], "MaDichVu": "1"}}),
            "10",
            422,
        ),
        "foreign_account": (
            resigned(
                {**good, "ThongTinBienLai": {**good["ThongTinBienLai"], "TKThuHuong": "999888777"}}
            ),
            "11",
            422,
        ),
        "query_sent_to_init_address": (
            OpenCps.body(opencps.poll("QUERY", good["MaThamChieu"])),
            "01",
            400,
        ),
    }


def good_total(message: dict[str, Any]) -> int:
    return int(message["SoTien"])


REFUSALS = (
    "bad_checksum",
    "stale",
    "future",
    "unknown_partner",
    "malformed_json",
    "not_an_object",
    "decimal_amount",
    "negative_amount",
    "boolean_amount",
    "grouped_amount",
    "line_not_tariff",
    "flat_fee_not_tariff",
    "total_not_sum",
    "unknown_fee",
    "fine",
    "foreign_account",
    "query_sent_to_init_address",
)


@pytest.mark.parametrize("case", REFUSALS)
def test_every_refusal_is_protocol_shaped_audited_and_creates_nothing(
    case: str, pp: TestClient, opencps: OpenCps, clock: Clock
) -> None:
    body, code, status = _refusals(opencps, clock)[case]
    orders, transactions = count(PaymentOrder), count(OnestopTransaction)
    path = f"{PP}/init" if case == "query_sent_to_init_address" else PP
    res = pp.post(path, content=body, headers={"Content-Type": "application/json"})
    assert res.status_code == status, res.text
    assert res.headers["content-type"] == "application/json"
    reply = res.json()
    assert reply["MaLoi"] == code and reply["MoTaLoi"]
    if case in ("unknown_partner", "malformed_json", "not_an_object"):
        assert reply["error_code"] == code  # whose dialect is unknown: both
    else:
        assert "error_code" not in reply  # the partner's own dialect
    (audit,) = messages()
    assert (audit.outcome, audit.code, audit.source_ip) == ("refused", code, PARTNER_IP)
    assert audit.reason
    assert (count(PaymentOrder), count(OnestopTransaction)) == (orders, transactions)


def test_wrong_ip_is_refused(client: TestClient, opencps: OpenCps, clock: Clock) -> None:
    outside = TestClient(client.app, client=("198.51.100.9", 40000))
    res = outside.post(PP, content=OpenCps.body(opencps.init("H01.22-3", lines(clock))))
    assert res.status_code == 403 and res.json()["MaLoi"] == "05"
    assert [(m.code, m.source_ip) for m in messages("refused")] == [("05", "198.51.100.9")]
    assert count(PaymentOrder) == 0


@pytest.mark.parametrize("chunked", [False, True])
def test_oversize_body_is_refused_in_the_protocol_shape(
    pp: TestClient, opencps: OpenCps, chunked: bool
) -> None:
    big = b'{"LoaiBanTin":"INIT","x":"' + b"a" * 70_000 + b'"}'
    content: Any = iter([big[:30_000], big[30_000:]]) if chunked else big
    res = pp.post(PP, content=content)
    assert res.status_code == 413 and res.json()["MaLoi"] == "13"
    assert [m.code for m in messages("refused")] == ["13"]
    assert count(PaymentOrder) == 0


def test_same_reference_with_another_body_is_refused(
    pp: TestClient, opencps: OpenCps, clock: Clock
) -> None:
    fee_lines = lines(clock)
    first = opencps.init("H01.22-000500-0001", fee_lines)
    assert pp.post(PP, content=OpenCps.body(first)).json()["MaLoi"] == "00"
    other = opencps.init(
        "H01.22-000500-0001", fee_lines[:1], reference=first["MaThamChieu"]
    )  # same MaThamChieu, one line fewer
    res = pp.post(PP, content=OpenCps.body(other))
    assert res.status_code == 409 and res.json()["MaLoi"] == "06"
    assert count(PaymentOrder) == 1 and count(OnestopTransaction) == 1
    assert [m.code for m in messages("refused")] == ["06"]


def test_query_of_an_unknown_reference_and_a_revoked_partner(
    client: TestClient, pp: TestClient, opencps: OpenCps
) -> None:
    res = pp.post(PP, content=OpenCps.body(opencps.poll("QUERY", "KHONGCO")))
    assert res.status_code == 404 and res.json()["MaLoi"] == "07"
    admin = sign_in(client, "quantri")
    page = client.get("/staff/admin/onestop")
    partner_id = re.search(r"/staff/admin/onestop/partners/(\w+)/revoke", page.text)
    assert partner_id is not None
    revoked = client.post(
        f"/staff/admin/onestop/partners/{partner_id.group(1)}/revoke",
        data={"csrf_token": admin["X-CSRF-Token"]},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    after = pp.post(PP, content=OpenCps.body(opencps.poll("QUERY", "KHONGCO")))
    assert after.status_code == 401 and after.json()["MaLoi"] == "03"


def test_messages_are_sealed_in_the_audit_chain(pp: TestClient, opencps: OpenCps) -> None:
    pp.post(PP, content=b"not json")
    with session_scope() as session:
        report = audit_chain.seal(session)
    assert report.total >= 1
    with session_scope() as session:
        assert audit_chain.verify(session).ok


# --------------------------------------------------------------------------- set-up surfaces


def test_admin_adds_a_partner_and_sees_its_key_once(client: TestClient, demo: Settings) -> None:
    csrf = sign_in(client, "quantri")["X-CSRF-Token"]
    res = client.post(
        "/staff/admin/onestop/partners",
        data={
            "csrf_token": csrf,
            "code": "OPENCPS-XA",
            "confirm_url": "https://motcua.example.gov.vn/o/pgi/ppdvcqg/dpnhankqthanhtoanhs",
            "reply_dialect": "maloi",
            "bill_dialect": "url",
            "allowed_ips": "203.0.113.10, 198.51.100.0/24",
            "clock_skew_seconds": "120",
            "fee_map": "PHI_CT=CT-BS",
        },
    )
    assert res.status_code == 200, res.text
    key = re.search(r'data-secret="partner_key">([^<]+)<', res.text)
    assert key is not None and key.group(1).startswith("ppk_")
    page = client.get("/staff/admin/onestop")
    assert 'data-partner="OPENCPS-XA"' in page.text and key.group(1) not in page.text
    assert "198.51.100.0/24" in page.text and "PHI_CT→CT-BS" in page.text
    home = client.get("/staff/admin")
    assert 'href="/staff/admin/onestop"' in home.text
    duplicate = client.post(
        "/staff/admin/onestop/partners",
        data={"csrf_token": csrf, "code": "OPENCPS-XA", "confirm_url": "https://x.example.vn/c"},
    )
    assert "OPENCPS-XA" in duplicate.text and "already used" in duplicate.text
    assert duplicate.status_code == 422 and key.group(1) not in duplicate.text


def test_cli_adds_a_partner_and_prints_the_key_last(demo: Settings, clock: Clock) -> None:
    add = ("onestop-partner", "add", "--agency", DEMO_AGENCY.code, "--code", "DVC-TINH")
    done = run_motcua(
        *add,
        "--confirm-url",
        "http://127.0.0.1:9/DvcPayment/Confirm",
        "--reply",
        "error_code",
        "--bill",
        "pdf",
    )
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("ppk_") and key not in done.stderr
    partner = DotNet("DVC-TINH", key, clock)
    with session_scope() as session:
        assert session.scalar(select(OnestopTransaction)) is None
    # the printed key is the one checksums are made with
    with TestClient(create_app(demo)) as client:
        res = client.post(PP, content=DotNet.body(partner.poll("QUERY", "CHUACO")))
    assert res.status_code == 404 and res.json()["error_code"] == "07"
    bad = run_motcua(*add, "--confirm-url", "http://127.0.0.1:9/c")  # the code is taken
    assert bad.returncode != 0 and bad.stderr.startswith("motcua:")


# --------------------------------------------------------------------------- the daily close


@pytest.fixture
def tax_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with tax_sandbox_process(tmp_path / "tax") as url:
        monkeypatch.setenv("MOTCUA_TAX_AUTHORITY_URL", url)
        yield url


def test_pp_orders_are_in_the_daily_close_and_its_01_th_bldt(
    client: TestClient,
    pp: TestClient,
    opencps: OpenCps,
    clock: Clock,
    tax_sandbox: str,
) -> None:
    fee_lines = lines(clock)
    by_transfer = pp.post(PP, content=OpenCps.body(opencps.init("H01.22-7", fee_lines))).json()
    sepay(client, sum(a for _, _, a in fee_lines), by_transfer["MaGiaoDich"])
    by_cash = pp.post(PP, content=OpenCps.body(opencps.init("H01.22-8", fee_lines[:1]))).json()
    csrf = sign_in(client, "thuquy")["X-CSRF-Token"]
    order_id = by_cash["UrlThanhToan"].rsplit("/", 1)[1]
    client.post(
        f"/staff/counter/orders/{order_id}/cash",
        data={"csrf_token": csrf, "amount": str(fee_lines[0][2])},
        follow_redirects=False,
    )
    expected = sum(a for _, _, a in fee_lines) + fee_lines[0][2]
    done = run_motcua("close", "--agency", DEMO_AGENCY.code, "--date", clock.today().isoformat())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no breaks" in done.stdout and "#0 accepted" in done.stdout
    assert "receipts      2 = " in done.stdout
    held = httpx.get(
        f"{tax_sandbox}/agencies/{DEMO_AGENCY.tax_code}/days/{clock.today().isoformat()}",
        timeout=10,
    ).json()["messages"]
    summaries = [m for m in held if m["total_amount"] is not None]
    assert summaries and summaries[0]["status"] == "accepted"
    assert summaries[0]["total_amount"] == expected


def test_rate_limit_answers_in_the_protocol_shape(demo: Settings) -> None:
    left = WINDOW_SECONDS - (time.time() % WINDOW_SECONDS)
    if left < 8:  # not across a window boundary
        time.sleep(left + 0.2)
    limited = demo.model_copy(update={"rate_limit_pp_per_minute": 3})
    with TestClient(create_app(limited), client=("192.0.2.44", 40001)) as caller:
        assert [caller.post(PP, content=b"{}").status_code for _ in range(3)] == [400] * 3
        refused = caller.post(PP, content=b"{}")
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert refused.json()["MaLoi"] == refused.json()["error_code"] == "14"


def test_an_internal_failure_is_still_protocol_shaped_and_creates_nothing(
    pp: TestClient, opencps: OpenCps, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import payments.usecases.onestop_pp as usecase

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database fell over")

    monkeypatch.setattr(usecase, "place_order", broken)
    res = pp.post(PP, content=OpenCps.body(opencps.init("H01.22-9", lines(clock))))
    assert res.status_code == 500 and res.json() == {
        "MaLoi": "99",
        "MoTaLoi": "Lỗi hệ thống / Internal error: the message could not be processed",
    }
    assert [(m.outcome, m.code) for m in messages()] == [("failed", "99")]
    assert count(PaymentOrder) == 0 and count(OnestopTransaction) == 0
