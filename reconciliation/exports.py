"""Revenue report exports: CSV and XLSX for accountants' spreadsheets, a signed PDF to file.

The PDF is signed by the agency (PAdES) because it is the document an accountant hands to the
treasury or an auditor; CSV/XLSX are working copies.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Font
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

from einvoice.pdf_render import FONT_BOLD, FONT_LOCK, FONT_REGULAR, register_fonts
from reconciliation.revenue import RevenueReport, RevenueRow
from settings.db import utcnow
from signing.keys import KeySource
from signing.pades import sign_pdf

__all__ = ["revenue_csv", "revenue_pdf", "revenue_xlsx"]

_SECTIONS = (
    ("by_fee", "Theo khoản phí, lệ phí / By fee item"),
    ("by_kind", "Theo loại / By kind"),
    ("by_channel", "Theo kênh thu / By channel"),
    ("by_clerk", "Theo người thu / By clerk"),
)
_HEADER = (
    "Mã / Code",
    "Tên / Name",
    "Loại / Kind",
    "Số lượt / Count",
    "Số tiền / Amount (VND)",
    "Để lại / Retained",
    "Nộp NSNN / To budget",
)


def _rows(report: RevenueReport, section: str) -> list[RevenueRow]:
    rows: list[RevenueRow] = getattr(report, section)
    return rows


def revenue_csv(report: RevenueReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "key", "label", "kind", "count", "amount", "retained", "to_budget"])
    for section, _ in _SECTIONS:
        for r in _rows(report, section):
            writer.writerow(
                [section, r.key, r.label, r.kind, r.count, r.amount, r.retained, r.to_budget]
            )
    for name, value in report.treasury_totals().items():
        writer.writerow(["treasury", name, "", "", "", value, "", ""])
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # BOM: Excel opens UTF-8 correctly


def revenue_xlsx(report: RevenueReport, *, agency_name: str) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Doanh thu"
    bold = Font(bold=True)
    sheet.append([f"Báo cáo thu phí, lệ phí — {agency_name}"])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append([f"Từ / From {report.start.isoformat()} đến / to {report.end.isoformat()} (UTC)"])
    for section, title in _SECTIONS:
        sheet.append([])
        sheet.append([title])
        sheet.cell(row=sheet.max_row, column=1).font = bold
        sheet.append(list(_HEADER))
        for cell in sheet[sheet.max_row]:
            cell.font = bold
        for r in _rows(report, section):
            sheet.append([r.key, r.label, r.kind, r.count, r.amount, r.retained, r.to_budget])
            for col in (5, 6, 7):
                sheet.cell(row=sheet.max_row, column=col).number_format = "#,##0"
    sheet.append([])
    sheet.append(["Kho bạc Nhà nước / State Treasury"])
    sheet.cell(row=sheet.max_row, column=1).font = bold
    for name, value in report.treasury_totals().items():
        sheet.append([name, value])
        sheet.cell(row=sheet.max_row, column=2).number_format = "#,##0"
    for letter, chars in zip("ABCDEFG", (14.0, 44.0, 10.0, 12.0, 18.0, 14.0, 16.0), strict=True):
        sheet.column_dimensions[letter].width = chars
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _vnd(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")


def revenue_pdf(
    report: RevenueReport,
    *,
    agency_name: str,
    tax_code: str,
    key: KeySource,
    zone: ZoneInfo,
    now: datetime | None = None,
) -> bytes:
    with FONT_LOCK:  # reportlab's font objects are shared by the whole process
        register_fonts()
        buf = io.BytesIO()
        c = Canvas(buf, pagesize=A4, invariant=1)
        _, height = A4
        y = height - 50

        def line(text: str, *, size: float = 9, bold: bool = False, x: float = 40) -> None:
            nonlocal y
            if y < 60:
                c.showPage()
                y = height - 50
            c.setFont(FONT_BOLD if bold else FONT_REGULAR, size)
            c.drawString(x, y, text)
            y -= size + 5

        start = report.start.astimezone(zone).strftime("%d/%m/%Y %H:%M")
        end = report.end.astimezone(zone).strftime("%d/%m/%Y %H:%M")
        line("BÁO CÁO THU PHÍ, LỆ PHÍ / REVENUE FROM FEES AND CHARGES", size=13, bold=True)
        line(f"{agency_name} — MST {tax_code}", size=10)
        line(f"Kỳ báo cáo / Period: {start} – {end} ({zone.key})")
        for section, title in _SECTIONS:
            y -= 6
            line(title, size=10, bold=True)
            for r in _rows(report, section):
                line(
                    f"{r.label[:60]}  ×{r.count}   {_vnd(r.amount)} đ   "
                    f"để lại {_vnd(r.retained)}   nộp NSNN {_vnd(r.to_budget)}",
                    size=8.5,
                    x=50,
                )
        y -= 6
        line("Nộp Kho bạc Nhà nước / Due to the State Treasury", size=10, bold=True)
        for name, value in report.treasury_totals().items():
            line(f"{name}: {_vnd(value)} đ", size=9, x=50)
        c.showPage()
        c.save()
    return sign_pdf(
        buf.getvalue(),
        key,
        signing_time=now or utcnow(),
        tz=zone,
        reason="Báo cáo thu phí, lệ phí / revenue report",
    )
