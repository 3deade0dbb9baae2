"""Pages: the accountant desk (issue 6, item 4) at ``/staff/desk``.

The desk is how an accountant closes a business day and gets it to **green**: closed, no open
breaks, the day's 01/TH-BLĐT acknowledged. Every action calls the same service as the API
(``close_day``, ``request_correction``/``approve_correction``, the exceptions queue), records the
signed-in username as the person, and refuses another agency's items with 404. Charts are
inline SVG drawn here (no script, no external library) with a data table beside each one, so
they print, work without JavaScript and can be read by a screen reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape
from pydantic import BaseModel, ValidationError
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from api.deps import EngineDep, SettingsDep, unit_of_work
from api.downloads import attachment, revenue_export
from api.pages.web import page_staff, page_staff_csrf
from api.rendering import render, vnd
from api.staff.deps import StaffContext
from api.staff.models import Role
from einvoice.models import Receipt
from payments.claims import live_claims
from payments.exceptions import actions_of, list_exceptions
from payments.models import Agency, BankCredit, PaymentException, PaymentOrder
from payments.usecases.claims import approve_claim, refuse_claim
from payments.usecases.exceptions import (
    ManualMatchIn,
    RefundIn,
    ResolutionIn,
    resolve_match,
    resolve_refund,
    resolve_topup,
)
from payments.usecases.follow_ups import run_after_commit
from reconciliation.close import has_later_records, latest_close
from reconciliation.corrections import ACTIONS
from reconciliation.day import BusinessDay
from reconciliation.errors import BreakNotFound
from reconciliation.evidence import EvidenceBundle, day_evidence, receipt_evidence
from reconciliation.models import Correction, DailyClose, ReconBreak, TaxSubmission
from reconciliation.presenters import breaks_of
from reconciliation.quiet import active_days
from reconciliation.revenue import revenue_for
from reconciliation.tax_summary import COVERED
from reconciliation.usecases import EXPORT_TYPES, run_close
from reconciliation.usecases import approve as approve_correction
from reconciliation.usecases import request as request_correction
from settings.db import utcnow
from settings.errors import ProblemError

__all__ = ["bar_chart", "router"]

router = APIRouter(tags=["pages"], include_in_schema=False)

DeskStaff = Annotated[StaffContext, Depends(page_staff(Role.ACCOUNTANT))]
DeskPost = Annotated[StaffContext, Depends(page_staff_csrf(Role.ACCOUNTANT))]

HOME_DAYS = 14
CHART_DAYS = 30
DAY_RECEIPTS = 500
"""Receipts listed on a day's page (each with its evidence button); the day's bundle has all."""

BREAK_KINDS: dict[str, tuple[str, str]] = {
    "credit_without_payment": ("Tiền về chưa khớp khoản thu", "Credit without a payment"),
    "duplicate": ("Chuyển khoản trùng", "Duplicate transfer"),
    "payment_without_receipt": ("Đã thu nhưng chưa có biên lai", "Payment without a receipt"),
    "receipt_without_payment": ("Biên lai không có khoản thu", "Receipt without a payment"),
    "amount_mismatch": ("Lệch số tiền", "Amount mismatch"),
    "receipt_missing_from_summary": (
        "Biên lai chưa có trong bảng tổng hợp đã tiếp nhận",
        "Receipt missing from an acknowledged summary",
    ),
    "summary_late": ("Bảng tổng hợp chờ CQT tiếp nhận", "Summary awaiting the tax authority"),
    "receipt_differs_in_summary": (
        "Bảng tổng hợp ghi khác biên lai",
        "Summary differs from the receipt",
    ),
    "summary_row_without_receipt": (
        "Dòng tổng hợp không có biên lai",
        "Summary row without a receipt",
    ),
}
BREAK_STATES: dict[str, tuple[str, str]] = {
    "open": ("Chưa xử lý", "Open"),
    "resolved": ("Đã xử lý", "Resolved"),
    "cleared": ("Đã khớp ở lần đối soát sau", "Cleared by a later run"),
}
CORRECTION_ACTIONS: dict[str, tuple[str, str]] = {
    "explain": ("Giải trình (không sai sót)", "Explain (not an error)"),
    "issue_receipt": ("Cấp biên lai cho khoản đã thu", "Issue the missing receipt"),
    "match_to_order": ("Khớp tiền về với đơn thu", "Match the credit to an order"),
    "refund_instruction": ("Lập lệnh hoàn trả người nộp", "Instruct a refund to the payer"),
}
EXCEPTION_KINDS: dict[str, tuple[str, str]] = {
    "unknown_reference": ("Không có mã thanh toán", "Unknown reference"),
    "underpayment": ("Chuyển thiếu", "Under-payment"),
    "overpayment": ("Chuyển thừa", "Over-payment"),
    "order_closed": ("Đơn đã hết hạn / đã hủy", "Order expired or cancelled"),
    "duplicate_transfer": ("Chuyển trùng", "Duplicate transfer"),
    "wrong_account": ("Sai tài khoản nhận", "Wrong receiving account"),
}
EXCEPTION_STATES: dict[str, tuple[str, str]] = {
    "open": ("Chưa xử lý", "Open"),
    "awaiting_topup": ("Chờ chuyển bổ sung", "Awaiting top-up"),
    "resolved": ("Đã xử lý", "Resolved"),
}
TAX_STATES: dict[str, tuple[str, str, str]] = {
    "accepted": ("Đã tiếp nhận", "Accepted", "ok"),
    "duplicate_accepted": ("Đã tiếp nhận (gửi trùng)", "Accepted (duplicate)", "ok"),
    "rejected": ("Bị từ chối", "Rejected", "bad"),
    "queued": ("Chờ gửi lại", "Queued to resend", "warn"),
    "sent": ("Đã gửi, chờ phản hồi", "Sent, awaiting reply", "warn"),
    "unknown": ("Chưa rõ kết quả", "Outcome unknown", "warn"),
}
CHANNELS: dict[str, tuple[str, str]] = {
    "cash": ("Tiền mặt", "Cash"),
    "transfer": ("Chuyển khoản", "Transfer"),
    "card": ("Thẻ", "Card"),
    "exempt": ("Miễn", "Exempt"),
}
NOTICES: dict[str, tuple[str, str]] = {
    "closed": ("Đã chạy đối soát.", "The close has run."),
    "proposed": (
        "Đã ghi đề xuất điều chỉnh; cần một kế toán khác phê duyệt.",
        "Correction proposed; another accountant must approve it.",
    ),
    "applied": ("Đã áp dụng điều chỉnh.", "Correction applied."),
    "approved": ("Đã phê duyệt và áp dụng điều chỉnh.", "Correction approved and applied."),
    "matched": ("Đã khớp tiền về với đơn thu.", "Credit matched to the order."),
    "topup": ("Đã đề nghị người nộp chuyển bổ sung.", "Top-up requested from the payer."),
    "refund": ("Đã ghi lệnh hoàn trả.", "Refund instruction recorded."),
    "claim_approved": (
        "Đã duyệt khai báo của người nộp; đơn đã được thanh toán.",
        "Claim approved; the order is paid.",
    ),
    "claim_first": (
        "Đã duyệt lần 1; số tiền khác đơn nên cần một kế toán khác duyệt.",
        "First approval recorded; the amounts differ, so another accountant must approve.",
    ),
    "claim_refused": ("Đã từ chối khai báo của người nộp.", "Claim refused."),
}


DAY_STATES: dict[str, tuple[str, str]] = {
    "green": ("Xanh", "Green"),
    "grey": ("Không phát sinh", "Nothing happened"),
    "waiting": ("Đang trong ngày", "In progress"),
    "red": ("Đỏ", "Red"),
}


LABELS: dict[str, Any] = {
    "day_states": DAY_STATES,
    "break_kinds": BREAK_KINDS,
    "break_states": BREAK_STATES,
    "actions": CORRECTION_ACTIONS,
    "exc_kinds": EXCEPTION_KINDS,
    "exc_states": EXCEPTION_STATES,
    "tax_states": TAX_STATES,
    "channels": CHANNELS,
}
"""Every code shown on a desk page has its Vietnamese and English wording here (``L`` in the
templates); a code missing from these tables is shown as the raw code, never hidden."""


def _page(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
    return render(
        request,
        name,
        {
            "L": LABELS,
            "notice": NOTICES.get(request.query_params.get("ok", "")),
            **context,
        },
    )


class DeskInputInvalid(ProblemError):
    code = "invalid_input"
    status = 422
    title_vi = "Dữ liệu nhập chưa hợp lệ"
    title_en = "Invalid input"


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], **data: Any) -> M:
    """Form fields through the API's own body model, refused as a page (not JSON) if wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise DeskInputInvalid(fields) from exc


def _agency(session: Session, staff: StaffContext) -> Agency:
    agency = session.get(Agency, staff.agency_id)
    assert agency is not None  # an account always belongs to an agency
    return agency


_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def parse_day(text: str) -> date:
    """A date field as typed: ``dd/mm/yyyy`` whatever the browser's language (the desk's date
    fields are text, not ``type=date`` whose display follows the browser), ISO still accepted."""
    value = text.strip()
    match = _DMY.match(value)
    try:
        if match:
            return date(int(match[3]), int(match[2]), int(match[1]))
        return date.fromisoformat(value)
    except ValueError:
        raise DeskInputInvalid(
            f"day: ngày dạng dd/mm/yyyy / a date as dd/mm/yyyy, got {text.strip()[:20]!r}"
        ) from None


def _today(agency: Agency) -> date:
    return utcnow().astimezone(ZoneInfo(agency.time_zone)).date()


def _age(since: datetime, until: datetime | None) -> str:
    hours = max(0.0, ((until or utcnow()) - since).total_seconds() / 3600)
    if hours < 1:
        return f"{int(hours * 60)} ph"
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.0f} d"


# --- what makes a day green or red -------------------------------------------------------


@dataclass
class DayStatus:
    day: date
    close: DailyClose | None = None
    collected: int = 0
    payments: int = 0
    open_breaks: int = 0
    submissions: list[TaxSubmission] = field(default_factory=list)
    reasons: list[tuple[str, str]] = field(default_factory=list)
    quiet: bool = False
    """Nothing to reconcile (``reconciliation.quiet``): grey "Không phát sinh", counts as closed
    (the scheduler closes it, signed)."""
    waiting: bool = False
    """Today, with activity, before the scheduled close: nobody has to act yet."""

    @property
    def state(self) -> str:
        """``red`` means one thing: a person has to act (the reasons say what)."""
        if self.reasons:
            return "red"
        if self.quiet:
            return "grey"
        if self.waiting:
            return "waiting"
        return "green"

    @property
    def green(self) -> bool:
        return self.state == "green"

    @property
    def closed(self) -> bool:
        """Counts as closed: a close exists, or there is nothing to close."""
        return self.close is not None or self.quiet


def _latest_submissions(subs: list[TaxSubmission]) -> list[TaxSubmission]:
    """The current word on each summary of a day: a rejected one re-sent under the same number
    is superseded by the newer row."""
    latest: dict[int, TaxSubmission] = {}
    for sub in sorted(subs, key=lambda s: s.created_at):
        latest[sub.supplement_no] = sub
    return [latest[k] for k in sorted(latest)]


def _is_stale(session: Session, close: DailyClose) -> bool:
    """Re-opened, or records made after the close's watermark inside its window."""
    return close.reopened_at is not None or has_later_records(session, close)


def daily_collected(
    session: Session, agency: Agency, first: date, last: date
) -> dict[date, tuple[int, int]]:
    """Payments (count, đồng) per agency-local day in one grouped query: each payment's instant
    is placed in its day by a CASE over the days' UTC boundaries, which both SQLite and
    PostgreSQL evaluate alike (no time-zone functions in SQL)."""
    zone = ZoneInfo(agency.time_zone)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    ends = [BusinessDay(d, zone).end_utc for d in days]
    bucket = case(
        *[(PaymentOrder.paid_at < end, i) for i, end in enumerate(ends)], else_=len(days)
    ).label("bucket")
    inner = (
        select(bucket, PaymentOrder.amount.label("amount"))
        .where(
            PaymentOrder.agency_id == agency.id,
            PaymentOrder.status == "succeeded",
            PaymentOrder.paid_at >= BusinessDay(first, zone).start_utc,
            PaymentOrder.paid_at < ends[-1],
        )
        .subquery()
    )
    rows = session.execute(
        select(inner.c.bucket, func.count(), func.coalesce(func.sum(inner.c.amount), 0)).group_by(
            inner.c.bucket
        )
    )
    out = {d: (0, 0) for d in days}
    for i, n, amount in rows:
        if 0 <= int(i) < len(days):
            out[days[int(i)]] = (int(n), int(amount))
    return out


def day_statuses(
    session: Session, agency: Agency, days: list[date], *, close_time: str | None = None
) -> list[DayStatus]:
    """Each day's colour and the reasons for red. ``close_time`` (``HH:MM``, the scheduled
    close) lets today wait for it instead of being red while nobody has anything to do."""
    if not days:
        return []
    first, last = min(days), max(days)
    busy = active_days(session, agency, first, last)
    now_local = utcnow().astimezone(ZoneInfo(agency.time_zone))
    waits_for_close = close_time is not None and now_local.strftime("%H:%M") < close_time
    closes: dict[date, DailyClose] = {}
    for c in session.scalars(
        select(DailyClose).where(
            DailyClose.agency_id == agency.id,
            DailyClose.business_day >= first,
            DailyClose.business_day <= last,
        )
    ):
        if c.business_day not in closes or c.version > closes[c.business_day].version:
            closes[c.business_day] = c
    subs: dict[date, list[TaxSubmission]] = {}
    for s in session.scalars(
        select(TaxSubmission).where(
            TaxSubmission.agency_id == agency.id,
            TaxSubmission.business_day >= first,
            TaxSubmission.business_day <= last,
        )
    ):
        subs.setdefault(s.business_day, []).append(s)
    open_breaks = dict(
        session.execute(
            select(ReconBreak.business_day, func.count())
            .where(
                ReconBreak.agency_id == agency.id,
                ReconBreak.business_day >= first,
                ReconBreak.business_day <= last,
                ReconBreak.state == "open",
            )
            .group_by(ReconBreak.business_day)
        ).all()
    )
    collected = daily_collected(session, agency, first, last)
    out: list[DayStatus] = []
    for d in sorted(days, reverse=True):
        st = DayStatus(
            d,
            close=closes.get(d),
            payments=collected[d][0],
            collected=collected[d][1],
            open_breaks=int(open_breaks.get(d, 0)),
            submissions=_latest_submissions(subs.get(d, [])),
        )
        last_close = st.close
        quiet = d not in busy
        if last_close is None:
            if quiet:
                st.quiet = True
            elif d == now_local.date() and waits_for_close:
                st.waiting = True
            else:
                st.reasons.append(("Chưa đối soát", "Not closed"))
        else:
            st.quiet = quiet and last_close.status == "clean"
            if last_close.status != "clean":
                st.reasons.append(
                    (
                        f"{last_close.breaks_open} sai lệch ở lần đối soát {last_close.version}",
                        f"{last_close.breaks_open} break(s) in run {last_close.version}",
                    )
                )
                if st.open_breaks < last_close.breaks_open:
                    st.reasons.append(
                        ("Đã xử lý một phần: chạy lại đối soát", "Some resolved: re-run the close")
                    )
            if _is_stale(session, last_close):
                st.reasons.append(
                    ("Có giao dịch mới sau lần đối soát", "New records since the close: re-run")
                )
        for sub in st.submissions:
            if sub.status == "rejected":
                st.reasons.append(
                    (
                        f"Bảng tổng hợp lần {sub.supplement_no} bị từ chối",
                        f"Summary #{sub.supplement_no} rejected",
                    )
                )
            elif sub.status not in COVERED:
                st.reasons.append(
                    (
                        f"Bảng tổng hợp lần {sub.supplement_no} chưa được CQT tiếp nhận",
                        f"Summary #{sub.supplement_no} not acknowledged yet",
                    )
                )
            if sub.late:
                st.reasons.append(
                    (
                        f"Bảng tổng hợp lần {sub.supplement_no} gửi muộn",
                        f"Summary #{sub.supplement_no} sent late",
                    )
                )
        out.append(st)
    return out


def _recent_days(today: date, count: int, extra: set[date]) -> list[date]:
    """The last ``count`` working days (Mon–Fri), plus today and any day that has a close."""
    days: list[date] = []
    d = today
    for _ in range(count * 3):  # bounded: enough calendar days for ``count`` working days
        if d == today or d.weekday() < 5 or d in extra:
            days.append(d)
        if len(days) >= count:
            break
        d -= timedelta(days=1)
    return days


# --- charts ------------------------------------------------------------------------------


def _short(amount: int) -> str:
    if amount >= 1_000_000:
        return f"{amount / 1_000_000:.1f}".replace(".", ",") + " tr"
    if amount >= 1_000:
        return f"{amount // 1_000} k"
    return str(amount)


def bar_chart(
    chart_id: str,
    title: str,
    rows: list[tuple[str, int]],
    *,
    horizontal: bool = False,
    every: int = 1,
) -> Markup:
    """An accessible SVG bar chart: ``role="img"`` with a ``<title>``, one ``<title>`` per bar
    (hover and screen readers), values in đồng. Scales to its container through ``viewBox``."""
    top = max([v for _, v in rows] + [1])
    parts: list[str] = []
    if horizontal:
        w, bar_h, gap, label_w = 640, 28, 12, 150
        h = max(1, len(rows)) * (bar_h + gap) + gap
        for i, (label, value) in enumerate(rows):
            y = gap + i * (bar_h + gap)
            width = int((w - label_w - 120) * value / top)
            parts.append(
                f"<g><title>{escape(label)}: {escape(vnd(value))}</title>"
                f'<text x="{label_w - 8}" y="{y + bar_h * 0.68:.0f}" text-anchor="end" '
                f'class="lbl">{escape(label)}</text>'
                f'<rect x="{label_w}" y="{y}" width="{max(width, 1)}" height="{bar_h}" rx="3" '
                f'class="bar"/>'
                f'<text x="{label_w + max(width, 1) + 6}" y="{y + bar_h * 0.68:.0f}" '
                f'class="val">{escape(vnd(value))}</text></g>'
            )
    else:
        w, h, left, bottom, top_pad = 760, 260, 64, 40, 16
        n = max(1, len(rows))
        slot = (w - left - 8) / n
        plot_h = h - bottom - top_pad
        for frac in (0.0, 0.5, 1.0):
            gy = top_pad + plot_h * (1 - frac)
            parts.append(
                f'<line x1="{left}" x2="{w - 4}" y1="{gy:.1f}" y2="{gy:.1f}" class="grid"/>'
                f'<text x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end" class="axis">'
                f"{escape(_short(int(top * frac)))}</text>"
            )
        for i, (label, value) in enumerate(rows):
            bh = plot_h * value / top
            x = left + i * slot + slot * 0.15
            parts.append(
                f"<g><title>{escape(label)}: {escape(vnd(value))}</title>"
                f'<rect x="{x:.1f}" y="{top_pad + plot_h - bh:.1f}" width="{slot * 0.7:.1f}" '
                f'height="{max(bh, 0.5):.1f}" class="bar"/></g>'
            )
            if i % every == 0 or i == len(rows) - 1:
                parts.append(
                    f'<text x="{x + slot * 0.35:.1f}" y="{h - bottom + 16}" text-anchor="middle" '
                    f'class="axis">{escape(label)}</text>'
                )
    # Every interpolated value above and below is escaped or a number we computed.
    return Markup(  # noqa: S704
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-t" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>{"".join(parts)}</svg>'
    )


# --- pages -------------------------------------------------------------------------------


def _t(request: Request) -> Any:
    from api.rendering import lang_of

    lang = lang_of(request)
    return lambda vi, en: en if lang == "en" else vi


@router.get("/staff/desk", response_class=HTMLResponse)
def desk_home(
    request: Request, staff: DeskStaff, engine: EngineDep, settings: SettingsDep
) -> Response:
    with unit_of_work(engine) as session:
        agency = _agency(session, staff)
        today = _today(agency)
        closed_days = set(
            session.scalars(
                select(DailyClose.business_day).where(
                    DailyClose.agency_id == agency.id,
                    DailyClose.business_day >= today - timedelta(days=HOME_DAYS * 3),
                )
            )
        )
        days = day_statuses(
            session,
            agency,
            _recent_days(today, HOME_DAYS, closed_days),
            close_time=settings.close_time,
        )
        pending = session.scalar(
            select(func.count())
            .select_from(Correction)
            .join(ReconBreak, ReconBreak.id == Correction.break_id)
            .where(ReconBreak.agency_id == agency.id, Correction.state == "requested")
        )
        exceptions_open = session.scalar(
            select(func.count())
            .select_from(PaymentException)
            .where(PaymentException.agency_id == agency.id, PaymentException.state != "resolved")
        )
        return _page(
            request,
            "desk_home.html",
            {
                "agency": agency,
                "today": days[0],
                "days": days,
                "today_iso": today.isoformat(),
                "today_dmy": today.strftime("%d/%m/%Y"),
                "close_time": settings.close_time,
                "pending": int(pending or 0),
                "exceptions_open": int(exceptions_open or 0),
            },
        )


@router.post("/staff/desk/close")
def desk_close(
    staff: DeskPost,
    engine: EngineDep,
    settings: SettingsDep,
    day_text: Annotated[str, Form(alias="day")],
) -> Response:
    """Runs ``close_day`` exactly as ``POST /api/v1/closes`` does, in the member's name."""
    day = parse_day(day_text)
    with unit_of_work(engine) as session:
        run_close(session, settings, staff.agency_code, day, staff.username)
    return RedirectResponse(f"/staff/desk/days/{day.isoformat()}?ok=closed", status_code=303)


@router.get("/staff/desk/days/{day}", response_class=HTMLResponse)
def desk_day(
    day: date, request: Request, staff: DeskStaff, engine: EngineDep, settings: SettingsDep
) -> Response:
    with unit_of_work(engine) as session:
        agency = _agency(session, staff)
        [status] = day_statuses(session, agency, [day], close_time=settings.close_time)
        versions = list(
            session.scalars(
                select(DailyClose)
                .where(DailyClose.agency_id == agency.id, DailyClose.business_day == day)
                .order_by(DailyClose.version.desc())
            )
        )
        breaks = breaks_of(session, agency.id, day)
        breaks.sort(key=lambda b: (b.state != "open", b.kind, b.ref))
        subs = list(
            session.scalars(
                select(TaxSubmission)
                .where(TaxSubmission.agency_id == agency.id, TaxSubmission.business_day == day)
                .order_by(TaxSubmission.supplement_no, TaxSubmission.created_at)
            )
        )
        bday = BusinessDay(day, ZoneInfo(agency.time_zone))
        receipts = list(
            session.scalars(
                select(Receipt)
                .where(
                    Receipt.agency_id == agency.id,
                    Receipt.issued_at >= bday.start_utc,
                    Receipt.issued_at < bday.end_utc,
                )
                .order_by(Receipt.series, Receipt.number)
                .limit(DAY_RECEIPTS)
            )
        )
        return _page(
            request,
            "desk_day.html",
            {
                "agency": agency,
                "day": day,
                "window": bday.describe(),
                "status": status,
                "versions": versions,
                "latest": versions[0] if versions else None,
                "breaks": breaks,
                "ages": {b.id: _age(b.first_seen_at, b.resolved_at) for b in breaks},
                "subs": subs,
                "is_today": day == _today(agency),
                "in_future": day > _today(agency),
                "receipts": receipts,
                "day_receipts": DAY_RECEIPTS,
                "close_time": settings.close_time,
            },
        )


def _zip(bundle: EvidenceBundle) -> Response:
    return Response(
        bundle.body,
        media_type="application/zip",
        headers={"Content-Disposition": attachment(bundle.name, bundle.name)},
    )


@router.get("/staff/desk/days/{day}/evidence")
def desk_day_evidence(
    day: date, staff: DeskStaff, engine: EngineDep, settings: SettingsDep
) -> Response:
    """The signed evidence bundle of the day, for inspectors (reconciliation/evidence.py)."""
    with unit_of_work(engine) as session:
        bundle = day_evidence(session, settings, staff.agency_code, day)
    return _zip(bundle)


@router.get("/staff/desk/receipts/{receipt_id}/evidence")
def desk_receipt_evidence(
    receipt_id: str, staff: DeskStaff, engine: EngineDep, settings: SettingsDep
) -> Response:
    """The signed evidence bundle of one receipt of the member's agency (404 otherwise)."""
    with unit_of_work(engine) as session:
        bundle = receipt_evidence(session, settings, receipt_id, agency_id=staff.agency_id)
    return _zip(bundle)


@router.get("/staff/desk/days/{day}/document")
def desk_day_document(day: date, staff: DeskStaff, engine: EngineDep) -> Response:
    """The signed close report (XML) of the day's latest version, to file or verify."""
    with unit_of_work(engine) as session:
        close = latest_close(session, staff.agency_id, day)
        if close is None or close.document is None:
            raise BreakNotFound(f"no signed close for {day}", code="close_not_found")
        name = f"Biên bản đối soát {staff.agency_code} {day} lần {close.version}.xml"
        return Response(
            close.document,
            media_type=EXPORT_TYPES["xml"],
            headers={
                "Content-Disposition": attachment(
                    name, f"doi-soat-{staff.agency_code}-{day}-v{close.version}.xml"
                )
            },
        )


def _break_page_context(session: Session, staff: StaffContext, break_id: str) -> dict[str, Any]:
    row = session.get(ReconBreak, break_id)
    if row is None or row.agency_id != staff.agency_id:
        raise BreakNotFound(f"no break {break_id!r}")
    corrections = list(
        session.scalars(
            select(Correction)
            .where(Correction.break_id == row.id)
            .order_by(Correction.requested_at.desc())
        )
    )
    exc = session.scalar(
        select(PaymentException).where(
            PaymentException.credit_id == row.ref, PaymentException.agency_id == row.agency_id
        )
    )
    credit = (
        session.get(BankCredit, row.ref)
        if row.kind in ("credit_without_payment", "duplicate")
        else None
    )
    suggestions: list[PaymentOrder] = []
    if credit is not None:
        suggestions = _candidates(session, row.agency_id, credit.amount)
    return {
        "brk": row,
        "age": _age(row.first_seen_at, row.resolved_at),
        "corrections": corrections,
        "exc": exc,
        "exc_actions": actions_of(session, exc.id) if exc is not None else [],
        "credit": credit,
        "suggestions": suggestions,
        "me": staff.username.casefold(),
    }


def _candidates(session: Session, agency_id: str, amount: int) -> list[PaymentOrder]:
    """Pending orders asking exactly this amount: the likely payers of an unmatched credit."""
    return list(
        session.scalars(
            select(PaymentOrder)
            .where(
                PaymentOrder.agency_id == agency_id,
                PaymentOrder.status == "pending",
                PaymentOrder.amount == amount,
            )
            .order_by(PaymentOrder.created_at.desc())
            .limit(5)
        )
    )


@router.get("/staff/desk/breaks/{break_id}", response_class=HTMLResponse)
def desk_break(break_id: str, request: Request, staff: DeskStaff, engine: EngineDep) -> Response:
    with unit_of_work(engine) as session:
        ctx = _break_page_context(session, staff, break_id)
        return _page(
            request,
            "desk_break.html",
            ctx,
        )


def _order_id(session: Session, agency_id: str, given: str) -> str:
    """Staff may type an order's id or its transfer reference (what the payer sees)."""
    value = given.strip()
    if not value:
        raise DeskInputInvalid(
            "order: nhập mã đơn hoặc mã thanh toán / enter an order or reference"
        )
    found = session.scalar(
        select(PaymentOrder.id).where(
            PaymentOrder.agency_id == agency_id,
            or_(PaymentOrder.id == value, PaymentOrder.reference == value.upper()),
        )
    )
    if found is None:
        raise ProblemError(
            f"no payment order {value!r}",
            code="order_not_found",
            status=404,
            title_vi="Không tìm thấy đơn thu",
            title_en="Payment order not found",
        )
    return str(found)


@router.post("/staff/desk/breaks/{break_id}/corrections")
def desk_correct(
    break_id: str,
    staff: DeskPost,
    engine: EngineDep,
    action: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
    order: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "",
) -> Response:
    if action not in ACTIONS:
        raise DeskInputInvalid(f"action: one of {', '.join(ACTIONS)}")
    with unit_of_work(engine) as session:
        params: dict[str, Any] = {}
        if action == "match_to_order":
            params["order_id"] = _order_id(session, staff.agency_id, order)
        elif action == "refund_instruction" and amount.strip():
            digits = amount.replace(".", "").replace(" ", "").replace("đ", "")
            if not digits.isdigit():
                raise DeskInputInvalid("amount: số nguyên đồng / a whole number of đồng")
            params["amount"] = int(digits)
        c, follow_ups = request_correction(
            session,
            break_id,
            agency_id=staff.agency_id,
            action=action,
            reason=reason,
            actor=staff.username,
            params=params,
        )
        state = c.state
    run_after_commit(follow_ups)
    ok = "applied" if state == "applied" else "proposed"
    return RedirectResponse(f"/staff/desk/breaks/{break_id}?ok={ok}", status_code=303)


@router.post("/staff/desk/corrections/{correction_id}/approve")
def desk_approve(correction_id: str, staff: DeskPost, engine: EngineDep) -> Response:
    """Four eyes: ``approve_correction`` refuses the proposer (compared by username)."""
    with unit_of_work(engine) as session:
        c, follow_ups = approve_correction(
            session, correction_id, agency_id=staff.agency_id, approver=staff.username
        )
        break_id = c.break_id
    run_after_commit(follow_ups)
    return RedirectResponse(f"/staff/desk/breaks/{break_id}?ok=approved", status_code=303)


@router.get("/staff/desk/charts", response_class=HTMLResponse)
def desk_charts(
    request: Request,
    staff: DeskStaff,
    engine: EngineDep,
    days: Annotated[int, Query(ge=7, le=92)] = CHART_DAYS,
) -> Response:
    t = _t(request)
    with unit_of_work(engine) as session:
        agency = _agency(session, staff)
        zone = ZoneInfo(agency.time_zone)
        last = _today(agency)
        first = last - timedelta(days=days - 1)
        per_day = daily_collected(session, agency, first, last)
        report = revenue_for(
            session,
            agency.id,
            datetime.combine(first, time(0), tzinfo=zone),
            datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone),
        )
    day_rows = [(d.strftime("%d/%m"), amount) for d, (_, amount) in sorted(per_day.items())]
    by_kind = {r.key: r.amount for r in report.by_kind}
    kind_rows = [
        (t("Phí", "Fees (phí)"), by_kind.get("phi", 0)),
        (t("Lệ phí", "Charges (lệ phí)"), by_kind.get("le_phi", 0)),
    ]
    by_channel = {r.key: r.amount for r in report.by_channel}
    # The three ways to pay are always drawn (a zero bar says "none"), others if they occur.
    main = ("cash", "transfer", "card")
    shown = [*main, *sorted(set(by_channel) - set(main))]
    channel_rows = [(t(*CHANNELS.get(k, (k, k))), by_channel.get(k, 0)) for k in shown]
    period = f"{first.strftime('%d/%m/%Y')} – {last.strftime('%d/%m/%Y')}"
    return _page(
        request,
        "desk_charts.html",
        {
            "first": first,
            "last": last,
            "days": days,
            "period": period,
            "per_day": sorted(per_day.items(), reverse=True),
            "report": report,
            "treasury": report.treasury_totals(),
            "channel_labels": CHANNELS,
            "chart_days": bar_chart(
                "chart-days",
                t(f"Số tiền thu theo ngày, {period}", f"Collected per day, {period}"),
                day_rows,
                every=max(1, len(day_rows) // 10),
            ),
            "chart_kind": bar_chart(
                "chart-kind",
                t(f"Phí và lệ phí, {period}", f"Fees and charges, {period}"),
                kind_rows,
                horizontal=True,
            ),
            "chart_channel": bar_chart(
                "chart-channel",
                t(f"Theo kênh thu, {period}", f"By channel, {period}"),
                channel_rows,
                horizontal=True,
            ),
        },
    )


@router.get("/staff/desk/exports/revenue")
def desk_export(
    staff: DeskStaff,
    engine: EngineDep,
    date_from: Annotated[date, Query(alias="from")],
    date_to: Annotated[date | None, Query(alias="to")] = None,
    fmt: Annotated[str, Query(alias="format", pattern="^(csv|xlsx|pdf)$")] = "csv",
) -> Response:
    """CSV/XLSX working copies and the agency-signed PDF, with Vietnamese file names."""
    with unit_of_work(engine) as session:
        out = revenue_export(session, _agency(session, staff), date_from, date_to or date_from, fmt)
    assert isinstance(out, Response)  # fmt is never json here
    return out


@router.get("/staff/desk/tax", response_class=HTMLResponse)
def desk_tax(
    request: Request,
    staff: DeskStaff,
    engine: EngineDep,
    days: Annotated[int, Query(ge=1, le=366)] = CHART_DAYS,
) -> Response:
    with unit_of_work(engine) as session:
        agency = _agency(session, staff)
        since = _today(agency) - timedelta(days=days - 1)
        subs = list(
            session.scalars(
                select(TaxSubmission)
                .where(TaxSubmission.agency_id == agency.id, TaxSubmission.business_day >= since)
                .order_by(
                    TaxSubmission.business_day.desc(),
                    TaxSubmission.supplement_no,
                    TaxSubmission.created_at,
                )
                .limit(500)
            )
        )
        counts = dict(
            session.execute(
                select(TaxSubmission.status, func.count())
                .where(TaxSubmission.agency_id == agency.id, TaxSubmission.business_day >= since)
                .group_by(TaxSubmission.status)
            ).all()
        )
        late = sum(1 for s in subs if s.late)
        return _page(
            request,
            "desk_tax.html",
            {
                "subs": subs,
                "days": days,
                "since": since,
                "counts": counts,
                "late": late,
                "states": TAX_STATES,
            },
        )


@router.get("/staff/desk/exceptions", response_class=HTMLResponse)
def desk_exceptions(
    request: Request,
    staff: DeskStaff,
    engine: EngineDep,
    state: Annotated[str, Query(pattern="^(unresolved|open|awaiting_topup|resolved|all)$")] = (
        "unresolved"
    ),
) -> Response:
    with unit_of_work(engine) as session:
        wanted = None if state in ("unresolved", "all") else state
        items = list_exceptions(session, staff.agency_id, state=wanted)
        if state == "unresolved":
            items = [e for e in items if e.state != "resolved"]
        credits = {
            c.id: c
            for c in session.scalars(
                select(BankCredit).where(BankCredit.id.in_([e.credit_id for e in items]))
            )
        }
        orders = {
            o.id: o
            for o in session.scalars(
                select(PaymentOrder).where(
                    PaymentOrder.id.in_([e.order_id for e in items if e.order_id])
                )
            )
        }
        claims = live_claims(session, [e.id for e in items[:100]])
        claim_orders = {
            o.id: o
            for o in session.scalars(
                select(PaymentOrder).where(
                    PaymentOrder.id.in_([c.order_id for c in claims.values()])
                )
            )
        }
        rows = [
            {
                "exc": e,
                "claim": claims.get(e.id),
                "claim_order": claim_orders.get(claims[e.id].order_id) if e.id in claims else None,
                "credit": credits.get(e.credit_id),
                "order": orders.get(e.order_id or ""),
                "actions": actions_of(session, e.id),
                "suggestions": (
                    _candidates(session, staff.agency_id, e.amount)
                    if e.state == "open" and e.kind in ("unknown_reference", "order_closed")
                    else []
                ),
            }
            for e in items[:100]
        ]
        return _page(
            request,
            "desk_exceptions.html",
            {
                "rows": rows,
                "state": state,
                "kinds": EXCEPTION_KINDS,
                "states": EXCEPTION_STATES,
            },
        )


def _back_to_queue(exception_id: str, ok: str) -> Response:
    return RedirectResponse(f"/staff/desk/exceptions?ok={ok}#exc-{exception_id}", status_code=303)


@router.post("/staff/desk/exceptions/{exception_id}/match")
def desk_match(
    exception_id: str,
    staff: DeskPost,
    engine: EngineDep,
    order: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    refund_excess: Annotated[bool, Form()] = False,
) -> Response:
    with unit_of_work(engine) as session:
        order_id = _order_id(session, staff.agency_id, order)
    body = _parse(ManualMatchIn, order_id=order_id, reason=reason, refund_excess=refund_excess)
    with unit_of_work(engine) as session:
        _, follow_ups = resolve_match(session, staff.agency_id, exception_id, body, staff.username)
    run_after_commit(follow_ups)
    return _back_to_queue(exception_id, "matched")


@router.post("/staff/desk/exceptions/{exception_id}/request-topup")
def desk_topup(
    exception_id: str,
    staff: DeskPost,
    engine: EngineDep,
    reason: Annotated[str, Form()] = "",
) -> Response:
    body = _parse(ResolutionIn, reason=reason)
    with unit_of_work(engine) as session:
        resolve_topup(session, staff.agency_id, exception_id, body, staff.username)
    return _back_to_queue(exception_id, "topup")


@router.post("/staff/desk/exceptions/{exception_id}/refund")
def desk_refund(
    exception_id: str,
    staff: DeskPost,
    engine: EngineDep,
    amount: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    payer_account: Annotated[str, Form()] = "",
    payer_bank: Annotated[str, Form()] = "",
) -> Response:
    digits = amount.replace(".", "").replace(" ", "").replace("đ", "")
    if not digits.isdigit():
        raise DeskInputInvalid("amount: số nguyên đồng / a whole number of đồng")
    body = _parse(
        RefundIn,
        amount=int(digits),
        reason=reason,
        payer_account=payer_account.strip() or None,
        payer_bank=payer_bank.strip() or None,
    )
    with unit_of_work(engine) as session:
        resolve_refund(session, staff.agency_id, exception_id, body, staff.username)
    return _back_to_queue(exception_id, "refund")


@router.post("/staff/desk/exceptions/{exception_id}/claim/approve")
def desk_claim_approve(exception_id: str, staff: DeskPost, engine: EngineDep) -> Response:
    """One click; when the amounts differ a second, different accountant must click too."""
    with unit_of_work(engine) as session:
        claim, follow_ups = approve_claim(session, staff.agency_id, exception_id, staff.username)
        state = claim.state
    run_after_commit(follow_ups)
    ok = "claim_first" if state == "first_approved" else "claim_approved"
    return _back_to_queue(exception_id, ok)


@router.post("/staff/desk/exceptions/{exception_id}/claim/refuse")
def desk_claim_refuse(
    exception_id: str,
    staff: DeskPost,
    engine: EngineDep,
    reason: Annotated[str, Form()] = "",
) -> Response:
    body = _parse(ResolutionIn, reason=reason)
    with unit_of_work(engine) as session:
        refuse_claim(session, staff.agency_id, exception_id, staff.username, body.reason)
    return _back_to_queue(exception_id, "claim_refused")
