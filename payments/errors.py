"""The errors ``payments`` raises; each carries a stable code the API and CLI pass on."""

from __future__ import annotations

from settings.errors import ProblemError


class PaymentsError(ProblemError):
    code = "payments_error"


class NotFound(PaymentsError):
    code = "not_found"
    status = 404
    title_vi = "Không tìm thấy"
    title_en = "Not found"


class UnknownAgency(NotFound):
    code = "unknown_agency"
    title_vi = "Không tìm thấy đơn vị thu"
    title_en = "Unknown agency"


class UnknownProcedure(PaymentsError):
    code = "unknown_procedure"
    status = 422
    title_vi = "Thủ tục hành chính không có trong danh mục phí, lệ phí"
    title_en = "Procedure not in the fee catalogue"


class UnknownFee(PaymentsError):
    code = "unknown_fee"
    status = 422
    title_vi = "Khoản phí, lệ phí không có trong danh mục của thủ tục"
    title_en = "Fee item not in the procedure's catalogue"


class InvalidInput(PaymentsError):
    code = "invalid_input"
    status = 422
    title_vi = "Dữ liệu không hợp lệ"
    title_en = "Invalid input"


class AmountTooLarge(PaymentsError):
    code = "amount_too_large"
    status = 422
    title_vi = "Số tiền vượt mức tối đa cho phép của một yêu cầu thanh toán"
    title_en = "Order amount above the configured maximum"


class Unauthorized(PaymentsError):
    code = "unauthorized"
    status = 401
    title_vi = "Thiếu hoặc sai khóa truy cập"
    title_en = "Missing or invalid credentials"


class IdempotencyConflict(PaymentsError):
    code = "idempotency_conflict"
    status = 409
    title_vi = "Idempotency-Key đã được dùng cho một yêu cầu khác"
    title_en = "Idempotency-Key already used with a different body"


class InvalidTransition(PaymentsError):
    """An order was asked to move along an edge the state table does not have."""

    code = "invalid_state_transition"
    status = 409
    title_vi = "Trạng thái yêu cầu thanh toán không cho phép thao tác này"
    title_en = "The order's state does not allow this"


class CatalogImportError(PaymentsError):
    """A catalogue file is rejected whole; ``errors`` names every bad line."""

    code = "catalog_invalid"
    status = 422
    title_vi = "Tệp danh mục phí, lệ phí không hợp lệ"
    title_en = "Invalid fee catalogue file"

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors), extra={"errors": errors})


class TariffInvalid(PaymentsError):
    """A tariff as written (catalogue text, JSON column, admin form) does not describe a fee.

    Raised before anything is stored, so a catalogue never holds a tariff that cannot price.
    """

    code = "tariff_invalid"
    status = 422
    title_vi = "Biểu mức thu không hợp lệ"
    title_en = "Invalid tariff"


class TariffInputInvalid(PaymentsError):
    """A fee line lacks what its tariff prices by (pages, copies, declared value, reduction).

    The message says what the tariff needs, so the one-stop system or the clerk can fix the
    line; nothing is created.
    """

    code = "tariff_input_invalid"
    status = 422
    title_vi = "Thông tin của khoản thu không đủ hoặc không hợp lệ để tính theo biểu mức thu"
    title_en = "The fee line does not give what its tariff needs"
