"""The errors ``einvoice`` raises: stable ``code``, Vietnamese and English titles, HTTP status.

``api`` turns each into ``application/problem+json`` without knowing this package; the codes are
part of the public contract once published, so they are never renamed.
"""

from __future__ import annotations

from settings.errors import ProblemError

__all__ = [
    "ErrorNoticeConflict",
    "ErrorNoticeNotFound",
    "FileTooLarge",
    "InvalidLifecycleInput",
    "InvalidNoticeTransition",
    "IssuanceFailed",
    "NothingToCorrect",
    "ReceiptAlreadyReplaced",
    "ReceiptCannotBeCancelled",
    "ReceiptError",
    "ReceiptImmutable",
    "ReceiptNotFound",
    "ReceiptReplaced",
    "SeriesExhausted",
    "UnsafeXml",
    "UseErrorNotice",
]

CIRCULAR_91_ART_20_VI = "Điều 20 Thông tư 91/2026/TT-BTC"
"""Cited by every lifecycle refusal, so that staff learn the rule where they meet it."""


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


class ReceiptCannotBeCancelled(ReceiptError):
    """Circular 91/2026 art. 20 has no cancellation for receipts: only replacement or 04/SS-CTĐT.

    Raised for every attempt to cancel or delete a receipt, so the caller is told what to do
    instead of meeting a bare 405.
    """

    code = "receipt_cannot_be_cancelled"
    status = 409
    title_vi = (
        f"Không được hủy biên lai điện tử ({CIRCULAR_91_ART_20_VI}): sai số tiền hoặc mã số thuế "
        "thì lập biên lai thay thế; sai tên, địa chỉ, số tiền bằng chữ thì gửi thông báo "
        "mẫu 04/SS-CTĐT"
    )
    title_en = (
        "E-receipts cannot be cancelled (Circular 91/2026/TT-BTC art. 20): issue a replacement "
        "receipt for a wrong amount or tax code, or send an error notice (form 04/SS-CTĐT) for a "
        "wrong name, address or amount in words"
    )


class ReceiptAlreadyReplaced(ReceiptError):
    """A receipt is replaced at most once; a further error is corrected on its replacement."""

    code = "receipt_already_replaced"
    status = 409
    title_vi = "Biên lai đã bị thay thế; nếu còn sai sót thì thay thế biên lai thay thế"
    title_en = "The receipt was already replaced; replace its replacement instead"


class ReceiptReplaced(ReceiptError):
    """An error notice is about a receipt in force; a replaced one is no longer in force."""

    code = "receipt_replaced"
    status = 409
    title_vi = "Biên lai đã bị thay thế, không còn hiệu lực; hãy xử lý trên biên lai thay thế"
    title_en = "The receipt was replaced and is no longer in force; act on its replacement"


class NothingToCorrect(ReceiptError):
    code = "nothing_to_correct"
    status = 422
    title_vi = "Nội dung sửa đổi giống hệt biên lai gốc"
    title_en = "The corrected content is identical to the original receipt"


class UseErrorNotice(ReceiptError):
    """Art. 20: name/address errors are not reissued; the tax office gets form 04/SS-CTĐT."""

    code = "use_error_notice"
    status = 422
    title_vi = (
        f"Sai sót chỉ về tên, địa chỉ người nộp không được lập biên lai thay thế "
        f"({CIRCULAR_91_ART_20_VI}); hãy thông báo cho người nộp và gửi mẫu 04/SS-CTĐT"
    )
    title_en = (
        "An error only in the payer's name or address is not corrected by a replacement "
        "(Circular 91/2026 art. 20): tell the payer and send an error notice (04/SS-CTĐT)"
    )


class InvalidLifecycleInput(ReceiptError):
    """A reason, actor or receipt list that cannot be recorded as given."""

    code = "invalid_lifecycle_input"
    status = 422
    title_vi = "Thông tin điều chỉnh biên lai không hợp lệ"
    title_en = "Invalid receipt correction input"


class ReceiptImmutable(ReceiptError):
    """Something tried to change a signed receipt or an audit entry: a bug, never a user error."""

    code = "receipt_immutable"
    status = 409
    title_vi = "Biên lai đã ký và nhật ký không được sửa hoặc xóa"
    title_en = "Signed receipts and their audit trail cannot be changed or deleted"


class ErrorNoticeNotFound(ReceiptError):
    code = "error_notice_not_found"
    status = 404
    title_vi = "Không tìm thấy thông báo sai sót"
    title_en = "Error notice not found"


class ErrorNoticeConflict(ReceiptError):
    """The same idempotency key was used for a different error notice."""

    code = "idempotency_conflict"
    status = 409
    title_vi = "Khóa idempotency đã được dùng cho một thông báo sai sót khác"
    title_en = "The idempotency key was already used for a different error notice"


class InvalidNoticeTransition(ReceiptError):
    code = "invalid_state_transition"
    status = 409
    title_vi = "Không thể chuyển trạng thái của thông báo sai sót như yêu cầu"
    title_en = "The error notice cannot move to that state"


class UnsafeXml(ReceiptError):
    """Refused before reading: a DOCTYPE or entity declarations (XXE, billion laughs)."""

    code = "unsafe_xml"
    status = 400
    title_vi = "Tệp XML chứa khai báo DOCTYPE/ENTITY không được phép; tệp đã bị từ chối"
    title_en = "The XML declares a DOCTYPE or entities, which are not allowed; file refused"


class FileTooLarge(ReceiptError):
    code = "file_too_large"
    status = 413
    title_vi = "Tệp quá lớn để kiểm tra"
    title_en = "The file is too large to verify"
