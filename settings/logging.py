"""Process-wide logging: one JSON object per line, with the request id, personal data masked.

Masking happens in a filter on the handler, so no code path can log an ID number, a phone
number or a credential in clear by accident: long digit runs keep only their last 4 digits,
e-mail local parts are hidden, and Bearer/Apikey/secret-looking tokens are replaced.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

__all__ = ["MaskingFilter", "configure_logging", "mask_text", "request_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_DIGITS = re.compile(r"(?<![\w.])\+?\d[\d .-]{7,}\d(?![\w.])")
_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
_TOKEN = re.compile(
    r"(?i)\b(bearer|apikey|authorization|password|secret|api[_-]?key|token)(\s*[:=]?\s*)"
    r"([A-Za-z0-9_\-./+=]{6,})"
)
_KEYLIKE = re.compile(r"\b(mcp_[a-z]+_|whsec_|sk_(?:test|live)_|sepay_)[A-Za-z0-9_\-]{6,}")


def mask_text(text: str) -> str:
    def digits(m: re.Match[str]) -> str:
        raw = re.sub(r"\D", "", m.group(0))
        return "*" * max(len(raw) - 4, 0) + raw[-4:] if len(raw) >= 9 else m.group(0)

    text = _TOKEN.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    text = _KEYLIKE.sub(lambda m: f"{m.group(1)}[redacted]", text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _DIGITS.sub(digits, text)


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    _SKIP = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in self._SKIP and not key.startswith("_"):
                entry[key] = mask_text(str(value))
        if record.exc_info:
            entry["exception"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(getattr(h, "_motcua", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter())
    handler.addFilter(MaskingFilter())
    handler._motcua = True  # type: ignore[attr-defined]
    root.addHandler(handler)
