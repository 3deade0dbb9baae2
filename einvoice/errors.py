"""The errors ``einvoice`` raises."""

from __future__ import annotations

from settings.errors import ProblemError


class ReceiptError(ProblemError):
    code = "receipt_error"


class SeriesExhausted(ReceiptError):
    """The series reached 99,999,999 this year (art. 23: at most 8 digits): a new one is needed."""

    code = "series_exhausted"
    status = 409
    title_vi = "Ký hiệu biên lai đã dùng hết số (tối đa 8 chữ số); cần đăng ký ký hiệu mới"
    title_en = "Receipt series exhausted for this year; register a new series"


class ReceiptNotFound(ReceiptError):
    code = "receipt_not_found"
    status = 404
    title_vi = "Không tìm thấy biên lai"
    title_en = "Receipt not found"


class IssuanceFailed(ReceiptError):
    """Issuance stopped before a number was taken; the payment stays recorded for a retry."""

    code = "receipt_issuance_failed"
    status = 503
    title_vi = "Chưa phát hành được biên lai; khoản thu đã được ghi nhận và sẽ phát hành lại"
    title_en = "Receipt not issued yet; the payment is recorded and issuance will be retried"
