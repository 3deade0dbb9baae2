"""Pages: bank statements on the agency admin (issue 18) — column-mapping profiles made and
tested on a sample of the agency's own export, and a statement imported with one.

Why a page: the built-in bank layouts (``payments.statement_profiles.BANK_LAYOUTS``) are
reconstructed and unconfirmed, and banks change their exports, so the agency's own file is the
only confirmation. The admin uploads a sample, sees where the header and each column were found
(prefilled from automatic detection or from a built-in layout), adjusts them, sees the parsed
lines and the import report *before* saving the profile under a name.

Nothing here decides anything about money: parsing is ``payments.statement_tables``, the
report preview and the real import are ``payments.statement_import`` (the preview runs the real
import in a savepoint that is rolled back), profiles are stored by
``payments.statement_profile_store``. The sample travels between steps inside the form
(base64), so no upload is kept on the server and any worker can answer the next step.

Scoped to the signed-in admin's agency, CSRF-checked like every admin POST, audited in
``staff_admin_events``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import EngineDep, unit_of_work
from api.pages.web import page_staff, page_staff_csrf
from api.rendering import render
from api.staff.deps import ClockDep, StaffContext
from api.staff.models import Role
from api.staff.sessions import record_admin_event
from payments.errors import InvalidInput
from payments.models import Agency
from payments.statement_import import ImportReport, import_statement, preview_import
from payments.statement_profile_store import (
    agency_profiles,
    delete_profile,
    resolve_profile,
    save_profile,
    stored_profiles,
)
from payments.statement_profiles import (
    BUILT_IN_PROFILES,
    FIELDS,
    THOUSANDS,
    UNCONFIRMED,
    StatementProfile,
    profile_from_json,
)
from payments.statement_tables import TableSample, guess_format, parse_table, sample_table
from payments.statements import StatementLine
from settings.errors import ProblemError

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/staff/admin/statements", tags=["pages"], include_in_schema=False)

AdminPage = Annotated[StaffContext, Depends(page_staff(Role.ADMIN))]
AdminPost = Annotated[StaffContext, Depends(page_staff_csrf(Role.ADMIN))]

MAX_SAMPLE_BYTES = 512 * 1024
"""A sample is a day's export; it rides in the form between steps (base64, +33 %), which must
stay under the service's 1 MB request limit."""
MAX_IMPORT_BYTES = 1_000_000
"""The service's default request limit; larger statements go through ``motcua bank import``."""
PREVIEW_LINES = 200
SAMPLE_ROWS = 40

FIELD_LABELS: dict[str, tuple[str, str]] = {
    "date": ("Ngày giao dịch", "Transaction date"),
    "time": ("Giờ giao dịch (cột riêng)", "Time (own column)"),
    "value_date": ("Ngày hiệu lực", "Value date"),
    "reference": ("Số tham chiếu", "Bank reference"),
    "credit": ("Ghi có (tiền vào)", "Credit (money in)"),
    "debit": ("Ghi nợ (tiền ra)", "Debit (money out)"),
    "amount": ("Số tiền có dấu", "Signed amount"),
    "direction": ("Cột Nợ/Có", "D/C column"),
    "description": ("Nội dung / diễn giải", "Description"),
    "balance": ("Số dư", "Balance"),
    "account": ("Số tài khoản (cột)", "Account (column)"),
    "currency": ("Loại tiền (cột)", "Currency (column)"),
}
assert set(FIELD_LABELS) == set(FIELDS)


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _agency(session: Session, staff: StaffContext) -> Agency:
    agency = session.get(Agency, staff.agency_id)
    if agency is None:
        raise ProblemError(
            "Không tìm thấy / not found",
            code="not_found",
            status=404,
            title_vi="Không tìm thấy",
            title_en="Not found",
        )
    return agency


def _audit(
    session: Session,
    staff: StaffContext,
    action: str,
    target_id: str,
    detail: dict[str, Any],
    now: datetime,
) -> None:
    record_admin_event(
        session,
        agency_id=staff.agency_id,
        actor_id=staff.staff_id,
        actor_username=staff.username,
        action=action,
        target_kind="statement",
        target_id=target_id,
        detail=detail,
        now=now,
    )
    log.info(
        "admin change",
        extra={
            "event": "admin_change",
            "action": action,
            "target_kind": "statement",
            "target_id": target_id,
            "actor": staff.username,
            "agency": staff.agency_code,
        },
    )


def _too_big(what_vi: str, what_en: str, limit: int) -> InvalidInput:
    return InvalidInput(
        f"{what_vi} quá lớn (tối đa {limit // 1024} KB) / {what_en} is too large "
        f"({limit // 1024} KB max)",
        code="statement_too_large",
    )


# --- the list page ------------------------------------------------------------------------


def _list_context(session: Session, staff: StaffContext) -> dict[str, Any]:
    own_valid = agency_profiles(session, staff.agency_id)
    own = [
        {"row": row, "valid": row.name in own_valid, "profile": own_valid.get(row.name)}
        for row in stored_profiles(session, staff.agency_id)
    ]
    return {
        "built_in": list(BUILT_IN_PROFILES.values()),
        "own": own,
        "unconfirmed_note": UNCONFIRMED,
        "error": None,
        "report": None,
        "import_profile": "",
        "field_labels": FIELD_LABELS,
    }


@router.get("", response_class=HTMLResponse)
def statements_page(request: Request, staff: AdminPage, engine: EngineDep) -> Response:
    """Profiles (built in, marked unconfirmed, and the agency's own), the sample upload that
    starts a new profile, and a statement import with a chosen profile."""
    with unit_of_work(engine) as session:
        _agency(session, staff)
        ctx = _list_context(session, staff)
        ctx["done"] = request.query_params.get("done")
        return render(request, "admin_statement_profiles.html", ctx)


# --- building a profile from a sample -------------------------------------------------------


def _choice(form: dict[str, str], key: str) -> int | None:
    value = form.get(key, "").strip()
    return int(value) if value.isdigit() else None


def _lines_of(text: str) -> list[str]:
    return [x.strip() for x in text.replace(";", "\n").splitlines() if x.strip()]


def _profile_json(
    form: dict[str, str], sample: TableSample, header_cells: list[str]
) -> dict[str, Any]:
    """The profile the form describes: each chosen column is named by its header cell's text
    (so the profile keeps working when a bank adds or moves a column)."""
    columns: dict[str, list[str]] = {}
    for name in FIELDS:
        index = _choice(form, f"col_{name}")
        if index is None:
            continue
        text = header_cells[index] if index < len(header_cells) else ""
        if not text.strip():
            raise InvalidInput(
                f"Cột {index + 1} của dòng tiêu đề trống, không dùng cho "
                f"'{FIELD_LABELS[name][0]}' được / column {index + 1} of the header row is "
                f"empty and cannot be used for '{FIELD_LABELS[name][1]}'",
                code="statement_profile_invalid",
            )
        columns[name] = [text]
    header_row = _choice(form, "header_row")
    return {
        "name": form.get("name", "").strip().lower() or "preview",
        "description": form.get("description", "").strip(),
        "columns": columns,
        "header_row": None if form.get("header_find") else header_row,
        "thousands": form.get("thousands", "auto"),
        "date_formats": _lines_of(form.get("date_formats", "")),
        "credit_marks": _lines_of(form.get("credit_marks", "")),
        "debit_marks": _lines_of(form.get("debit_marks", "")),
    }


def _base_form(base: StatementProfile, sample: TableSample) -> dict[str, str]:
    """The form prefilled from detection under ``base`` (``auto`` or a chosen layout)."""
    form = {f"col_{name}": str(index) for name, index in sample.mapping.items()}
    form.update(
        header_row=str(sample.header_row or ""),
        header_find="1" if base.header_row is None else "",
        thousands=base.thousands,
        date_formats="\n".join(base.date_formats),
        credit_marks="\n".join(sorted(base.credit_marks)),
        debit_marks="\n".join(sorted(base.debit_marks)),
        description="",
        name="",
    )
    return form


def _line_view(line: StatementLine) -> dict[str, Any]:
    return {
        "row": line.raw.get("row"),
        "booked_at": line.booked_at.strftime("%d/%m/%Y %H:%M:%S"),
        "reference": line.bank_reference,
        "credit": line.amount if line.incoming else None,
        "debit": None if line.incoming else line.amount,
        "description": line.memo,
        "balance": line.raw.get("balance"),
    }


def _preview(
    session: Session,
    staff: StaffContext,
    now: datetime,
    data: bytes,
    fmt: str,
    filename: str,
    form: dict[str, str],
    *,
    first: bool,
) -> dict[str, Any]:
    """Everything the preview page shows. Errors of each step are kept apart: a file that
    cannot be read at all, a profile that cannot be built, lines that do not parse, an import
    that would be refused (another account, the future, balances that disagree)."""
    agency = _agency(session, staff)
    own = agency_profiles(session, staff.agency_id)
    base_name = form.get("base") or "auto"
    base = resolve_profile(session, staff.agency_id, base_name)
    sample = sample_table(data, fmt, base, max_rows=SAMPLE_ROWS)
    if first:
        form = {**_base_form(base, sample), "base": base.name}
    chosen_row = _choice(form, "header_row")
    header_cells = sample.header
    if chosen_row is not None and chosen_row != sample.header_row:
        header_cells = next((cells for n, cells in sample.rows if n == chosen_row), [])
    ctx: dict[str, Any] = {
        "sample": sample,
        "header_cells": header_cells,
        "form": form,
        "data_b64": base64.b64encode(data).decode("ascii"),
        "filename": filename,
        "fmt": fmt,
        "fields": FIELDS,
        "field_labels": FIELD_LABELS,
        "thousands_choices": THOUSANDS,
        "bases": [*BUILT_IN_PROFILES.values(), *own.values()],
        "base": base,
        "profile_error": None,
        "parse_error": None,
        "parse_errors": [],
        "lines": [],
        "more_lines": 0,
        "warnings": [],
        "columns_used": [],
        "report": None,
        "report_error": None,
        "profile_json": None,
        "error": None,
    }
    try:
        profile = profile_from_json(_profile_json(form, sample, header_cells))
    except ProblemError as exc:
        ctx["profile_error"] = exc.detail
        return ctx
    ctx["profile_json"] = profile.to_json()
    zone = ZoneInfo(agency.time_zone)
    try:
        table = parse_table(data, fmt, zone, profile)
    except ProblemError as exc:
        ctx["parse_error"] = exc.detail
        ctx["parse_errors"] = _errors_of(exc)
        return ctx
    lines = [line for st in table.statements for line in st.lines]
    ctx["lines"] = [_line_view(x) for x in lines[:PREVIEW_LINES]]
    ctx["more_lines"] = max(0, len(lines) - PREVIEW_LINES)
    ctx["warnings"] = [w for st in table.statements for w in st.warnings]
    ctx["columns_used"] = list(table.columns)
    try:
        ctx["report"] = preview_import(session, agency, data, fmt, now=now, profile=profile)
    except ProblemError as exc:
        ctx["report_error"] = exc.detail
    return ctx


def _errors_of(exc: ProblemError) -> list[str]:
    """Every bad row a refused file named (``extra["errors"]``), for the list on the page."""
    found = (exc.extra or {}).get("errors")
    return [str(e) for e in found] if isinstance(found, list) else []


def _decode_sample(data_b64: str) -> bytes:
    try:
        data = base64.b64decode(data_b64.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidInput(
            "Tệp mẫu gửi kèm biểu mẫu bị hỏng: hãy tải lên lại / the sample carried by the "
            "form is damaged: upload it again",
            code="statement_malformed",
        ) from exc
    return data


async def _form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {
        k: v[:4000]
        for k, v in form.items()
        if isinstance(v, str) and k not in ("csrf_token", "data")
    }


def _render_preview(request: Request, ctx: dict[str, Any], *, status_code: int = 200) -> Response:
    return render(request, "admin_statement_preview.html", ctx, status_code=status_code)


def _refused(
    request: Request,
    engine: EngineDep,
    staff: StaffContext,
    exc: ProblemError,
    *,
    report: ImportReport | None = None,
) -> Response:
    """The list page again with the refusal on top; nothing was changed."""
    with unit_of_work(engine) as session:
        ctx = _list_context(session, staff)
    ctx["error"] = exc.detail
    ctx["errors"] = _errors_of(exc)
    ctx["report"] = report
    return render(request, "admin_statement_profiles.html", ctx, status_code=exc.status)


@router.post("/preview", response_class=HTMLResponse)
async def preview(
    request: Request,
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    file: Annotated[UploadFile | None, File()] = None,
    data: Annotated[str, Form(max_length=1_000_000)] = "",
) -> Response:
    """Step 1 (a new upload: columns prefilled by detection under the chosen base profile)
    and step 2 (the same sample, columns as adjusted): the parsed lines and the report
    preview. Saves nothing."""
    form = await _form_fields(request)
    upload = await file.read(MAX_SAMPLE_BYTES + 1) if file is not None and file.filename else b""
    filename = file.filename if file is not None and file.filename else form.get("filename", "")
    now = clock()

    def work() -> Response:
        try:
            sample_bytes = upload or (_decode_sample(data) if data else b"")
            if not sample_bytes:
                raise InvalidInput(
                    "Hãy chọn một tệp sao kê mẫu (CSV hoặc XLSX) / choose a sample statement "
                    "file (CSV or XLSX)",
                    code="statement_malformed",
                )
            if len(sample_bytes) > MAX_SAMPLE_BYTES:
                raise _too_big("Tệp mẫu", "the sample", MAX_SAMPLE_BYTES)
            fmt = guess_format(sample_bytes, filename)
            with unit_of_work(engine) as session:
                ctx = _preview(
                    session, staff, now, sample_bytes, fmt, filename[:200], form, first=bool(upload)
                )
            return _render_preview(request, ctx)
        except ProblemError as exc:
            if exc.status == 404:
                raise
            return _refused(request, engine, staff, exc)

    return await run_in_threadpool(work)


@router.post("/profiles", response_class=HTMLResponse)
async def save(
    request: Request,
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    data: Annotated[str, Form(max_length=1_000_000)] = "",
) -> Response:
    """Step 3: the profile is checked again against the sample (it must read it) and saved
    under its name; a refusal shows the preview again with the reason, and saves nothing."""
    form = await _form_fields(request)
    now = clock()

    def work() -> Response:
        try:
            sample_bytes = _decode_sample(data)
            if not sample_bytes or len(sample_bytes) > MAX_SAMPLE_BYTES:
                raise _too_big("Tệp mẫu", "the sample", MAX_SAMPLE_BYTES)
            fmt = guess_format(sample_bytes, form.get("filename", ""))
        except ProblemError as exc:
            return _refused(request, engine, staff, exc)
        try:
            with unit_of_work(engine) as session:
                agency = _agency(session, staff)
                sample = sample_table(
                    sample_bytes, fmt, resolve_profile(session, agency.id, form.get("base"))
                )
                chosen = _choice(form, "header_row")
                header_cells = sample.header
                if chosen is not None and chosen != sample.header_row:
                    header_cells = next((c for n, c in sample.rows if n == chosen), [])
                spec = _profile_json(form, sample, header_cells)
                if not form.get("name", "").strip():
                    raise InvalidInput(
                        "Hãy đặt tên cho mẫu cột / give the profile a name",
                        code="statement_profile_invalid",
                    )
                profile = profile_from_json(spec)
                table = parse_table(sample_bytes, fmt, ZoneInfo(agency.time_zone), profile)
                lines = sum(len(st.lines) for st in table.statements)
                row = save_profile(
                    session, agency.id, profile.to_json(), created_by=staff.username, now=now
                )
                _audit(
                    session,
                    staff,
                    "statement_profile_saved",
                    row.id,
                    {"name": row.name, "sample": form.get("filename", "")[:200], "lines": lines},
                    now,
                )
        except ProblemError as exc:
            if exc.status == 404:
                raise
            with unit_of_work(engine) as session:
                ctx = _preview(
                    session,
                    staff,
                    now,
                    sample_bytes,
                    fmt,
                    form.get("filename", ""),
                    form,
                    first=False,
                )
            ctx["error"] = exc.detail
            return _render_preview(request, ctx, status_code=exc.status)
        return _redirect("/staff/admin/statements?done=saved")

    return await run_in_threadpool(work)


@router.post("/profiles/{profile_id}/delete", response_class=HTMLResponse)
def delete(profile_id: str, staff: AdminPost, engine: EngineDep, clock: ClockDep) -> Response:
    """Another agency's profile is not found, as a missing one; imports made with it stay."""
    now = clock()
    with unit_of_work(engine) as session:
        row = delete_profile(session, staff.agency_id, profile_id)
        _audit(session, staff, "statement_profile_deleted", row.id, {"name": row.name}, now)
    return _redirect("/staff/admin/statements?done=deleted")


# --- a real import --------------------------------------------------------------------------


@router.post("/import", response_class=HTMLResponse)
async def import_file(
    request: Request,
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    file: Annotated[UploadFile, File()],
    profile: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """``import_statement``, as ``motcua bank import``: the whole file or nothing, idempotent;
    the report says what was read, new, known, matched, queued, ignored and checked."""
    data = await file.read(MAX_IMPORT_BYTES + 1)
    filename = file.filename or ""
    now = clock()

    def work() -> Response:
        from payments.usecases.follow_ups import IssueReceipt, run_after_commit

        try:
            if len(data) > MAX_IMPORT_BYTES:
                raise _too_big("Tệp sao kê", "the statement", MAX_IMPORT_BYTES)
            if not data:
                raise InvalidInput(
                    "Hãy chọn tệp sao kê / choose a statement file", code="statement_malformed"
                )
            fmt = guess_format(data, filename)
            with unit_of_work(engine) as session:
                agency = _agency(session, staff)
                report = import_statement(
                    session, agency, data, fmt, now=now, profile=profile.strip() or None
                )
                if not report.already_imported:
                    _audit(
                        session,
                        staff,
                        "statement_imported",
                        agency.id,
                        {
                            "file": filename[:200],
                            "profile": profile.strip() or "auto",
                            "lines": report.lines,
                            "credits_new": report.credits_new,
                            "credits_known": report.credits_known,
                            "matched": report.credits_matched,
                            "exceptions": report.exceptions,
                        },
                        now,
                    )
        except ProblemError as exc:
            if exc.status == 404:
                raise
            return _refused(request, engine, staff, exc)
        run_after_commit(IssueReceipt(order_id) for order_id in report.orders_to_issue)
        with unit_of_work(engine) as session:
            ctx = _list_context(session, staff)
        ctx["report"] = report
        ctx["import_file"] = filename
        ctx["import_profile"] = profile.strip()
        return render(request, "admin_statement_profiles.html", ctx)

    return await run_in_threadpool(work)
