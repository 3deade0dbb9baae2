"""Errors raised by ``signing``.

Each error carries a stable ``code`` (for logs, API payloads and tests) and the same message in
Vietnamese and English, because the people who must act on a rejected certificate read
Vietnamese while the logs and the on-call engineers read English.
"""

from __future__ import annotations

from enum import StrEnum

from settings.errors import ProblemError

__all__ = [
    "CertificateProblem",
    "CertificateRejected",
    "KeyLoadError",
    "SignatureInvalid",
    "SigningError",
]


class SigningError(ProblemError):
    """Base of every error raised by ``signing``; catch this to handle them all alike."""

    code: str
    """Stable, machine-readable reason; never reworded once published."""
    message_vi: str
    """Human explanation in Vietnamese, fit to show to an operator."""
    message_en: str
    """The same explanation in English."""

    def __init__(self, code: str, message_en: str, message_vi: str) -> None:
        self.message_en = message_en
        self.message_vi = message_vi
        super().__init__(
            message_en, code=code, status=422, title_vi=message_vi, title_en=message_en
        )

    def __str__(self) -> str:
        return f"{self.code}: {self.message_en}"


class KeyLoadError(SigningError):
    """The signing key could not be obtained (missing file, wrong password, unsupported source).

    Raised at load time so that a misconfigured key fails before any document is signed.
    """


class CertificateProblem(StrEnum):
    """Why a certificate may not sign documents for an organisation; the values are error codes."""

    NOT_YET_VALID = "certificate_not_yet_valid"
    """The signing moment is before the certificate's notBefore."""
    EXPIRED = "certificate_expired"
    """The signing moment is after the certificate's notAfter."""
    KEY_USAGE = "certificate_key_usage"
    """Key usage does not allow both digitalSignature and nonRepudiation."""
    NO_MST = "certificate_no_mst"
    """The subject carries no ``UID=MST:<tax code>``, so it cannot be tied to an organisation."""
    MST_MISMATCH = "certificate_mst_mismatch"
    """The subject's tax code is not the tax code of the issuing organisation."""
    DEVELOPMENT = "certificate_development"
    """A development certificate (not legally valid) where only real ones are allowed."""


class CertificateRejected(SigningError):
    """A certificate is unfit to sign for the organisation at the given moment."""

    problem: CertificateProblem
    """The precise cause; ``code`` is its value."""

    def __init__(self, problem: CertificateProblem, message_en: str, message_vi: str) -> None:
        self.problem = problem
        super().__init__(problem.value, message_en, message_vi)


class SignatureInvalid(SigningError):
    """A signature that was required to be valid is not.

    :func:`signing.xmldsig.verify_enveloped` never raises it (it reports problems instead);
    callers that need a hard stop raise it from the returned status.
    """
