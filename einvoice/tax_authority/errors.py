"""The errors of the tax-authority subpackage: stable ``code``, Vietnamese and English titles.

Each is a :class:`~settings.errors.ProblemError`, so ``api`` and the CLI show them without
knowing this package. The codes are part of the contract once published: never renamed.

A *rejection* by the tax authority is not an error: it is an answer, returned as an
:class:`~einvoice.tax_authority.client.Ack` with ``outcome`` ``rejected``. Errors here mean we
could not build a message, could not reach the authority, or could not understand its answer.
Transport errors carry their context (``http_status``, ``request_id``, ``attempts``) the way
stripe-python's errors do, so that an operator can find the exchange in the authority's logs.
"""

from __future__ import annotations

from settings.errors import ProblemError

__all__ = [
    "MessageInvalid",
    "SandboxRefused",
    "TaxAuthorityBadAnswer",
    "TaxAuthorityError",
    "TaxAuthorityRequestRefused",
    "TaxAuthorityUnavailable",
    "UnsafeMessage",
]


class TaxAuthorityError(ProblemError):
    """Base of this subpackage's errors; catch it to handle them all alike."""

    code = "tax_authority_error"
    status = 502
    title_vi = "Lỗi trao đổi dữ liệu với cơ quan thuế"
    title_en = "Error exchanging data with the tax authority"


class MessageInvalid(TaxAuthorityError):
    """A message or document we built (or were asked to send) breaks its schema or a rule.

    Raised before anything is sent: an invalid document would only be rejected, and a summary
    that is rejected late may miss the same-day deadline. ``errors`` are the validator's lines.
    """

    code = "tax_message_invalid"
    status = 422
    title_vi = "Thông điệp gửi cơ quan thuế không hợp lệ"
    title_en = "The message for the tax authority is not valid"

    def __init__(self, errors: list[str], *, document: str = "message") -> None:
        self.errors = errors
        super().__init__(
            f"{document} is not valid: " + "; ".join(errors),
            extra={"errors": errors, "document": document},
        )


class UnsafeMessage(TaxAuthorityError):
    """Bytes refused before being read: a DOCTYPE (entities, XXE), too large, or not XML.

    Messages and answers never need a DTD, so any DOCTYPE is refused outright.
    """

    code = "tax_message_unsafe"
    status = 400
    title_vi = "Dữ liệu XML không an toàn hoặc không đọc được"
    title_en = "Unsafe or unreadable XML"


class _TransportError(TaxAuthorityError):
    """An exchange that went wrong on the wire; carries what an operator needs to trace it."""

    def __init__(
        self,
        detail: str,
        *,
        message_id: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        attempts: int = 0,
    ) -> None:
        self.message_id = message_id
        self.http_status = http_status
        self.request_id = request_id
        self.attempts = attempts
        super().__init__(
            detail,
            extra={
                "message_id": message_id,
                "http_status": http_status,
                "request_id": request_id,
                "attempts": attempts,
            },
        )


class TaxAuthorityUnavailable(_TransportError):
    """The authority could not be reached, and it does NOT hold the message: send it again later.

    Only raised when the outcome is known: every attempt failed before the request was
    processed (connection refused, 5xx), or a query confirmed the message is not there. A
    message that may have arrived is reported as an ``unknown`` outcome, never as this error.
    """

    code = "tax_authority_unavailable"
    status = 503
    title_vi = "Chưa gửi được dữ liệu đến cơ quan thuế; sẽ gửi lại"
    title_en = "The tax authority could not be reached; the message was not delivered"


class TaxAuthorityRequestRefused(_TransportError):
    """An HTTP error without an acknowledgement (e.g. 401, 403, 404 on the endpoint).

    A configuration problem on our side, not a verdict on the message: retrying will not help.
    """

    code = "tax_authority_request_refused"
    status = 502
    title_vi = "Cơ quan thuế từ chối yêu cầu (không phải kết quả kiểm tra dữ liệu)"
    title_en = "The tax authority refused the request (not a verdict on the data)"


class TaxAuthorityBadAnswer(_TransportError):
    """The answer could not be read: not XML, unsafe, or not our acknowledgement format."""

    code = "tax_authority_bad_answer"
    status = 502
    title_vi = "Không đọc được phản hồi của cơ quan thuế"
    title_en = "The tax authority's answer could not be read"


class SandboxRefused(TaxAuthorityError):
    """The sandbox was asked to start in the production profile.

    A sandbox that accepts anything must never stand where the real authority is expected
    (architecture.md: sandboxes are never reachable in production).
    """

    code = "tax_sandbox_in_production"
    status = 403
    title_vi = "Không được chạy hộp cát cơ quan thuế ở chế độ production"
    title_en = "The tax-authority sandbox does not run in the production profile"
