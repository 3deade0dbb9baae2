"""Errors of the daily close."""

from __future__ import annotations

from settings.errors import ProblemError


class ReconciliationError(ProblemError):
    code = "reconciliation_error"


class DayInFuture(ReconciliationError):
    code = "day_in_future"
    status = 422
    title_vi = "Ngày đối soát chưa bắt đầu"
    title_en = "That business day has not begun"


class BreakNotFound(ReconciliationError):
    code = "break_not_found"
    status = 404
    title_vi = "Không tìm thấy sai lệch"
    title_en = "Break not found"


class CorrectionRefused(ReconciliationError):
    code = "correction_refused"
    status = 409
    title_vi = "Không thể thực hiện điều chỉnh"
    title_en = "Correction refused"


class SecondPersonRequired(CorrectionRefused):
    """Four-eyes rule: a correction that moves money is approved by someone else."""

    code = "second_person_required"
    title_vi = "Điều chỉnh liên quan đến tiền phải do người thứ hai phê duyệt"
    title_en = "A correction that moves money must be approved by a second person"
