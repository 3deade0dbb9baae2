"""Errors raised while reading configuration."""


class SettingsError(Exception):
    """Base class for configuration problems."""


class UnsafeProductionConfig(SettingsError):
    """The production profile was asked to start with something only fit for a laptop.

    Raised at boot so that a misconfigured production host fails loudly instead of issuing
    legally void receipts or exposing sandbox endpoints.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("production profile refuses to start: " + "; ".join(problems))


class ProblemError(Exception):
    """Base of every package's user-facing errors: a stable ``code`` and bilingual text.

    ``api`` turns any of these into ``application/problem+json`` without knowing the package;
    ``status`` is the HTTP status it suggests. The CLI prints ``message_en`` on stderr.
    """

    code: str = "error"
    status: int = 400
    title_vi: str = "Yêu cầu không hợp lệ"
    title_en: str = "Invalid request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        title_vi: str | None = None,
        title_en: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if title_vi is not None:
            self.title_vi = title_vi
        if title_en is not None:
            self.title_en = title_en
        self.detail = detail or self.title_en
        self.extra = extra or {}
        super().__init__(self.detail)
