"""The national payment platform protocol (PP-DVCQG) as one-stop systems speak it: pure functions.

Messages, checksums, timestamps, amounts and the two reply dialects
(``docs/onestop-pp.md``). Nothing here touches the database or the network: the use cases in
:mod:`payments.usecases.onestop_pp` decide, the HTTP adapter in ``api/routes/pp.py`` carries.
"""

from __future__ import annotations

from payments.onestop_pp.messages import (
    BILL_DIALECTS,
    CONFIRM_FIELDS,
    INIT_FIELDS,
    MESSAGE_TYPES,
    POLL_FIELDS,
    REPLY_DIALECTS,
    FeeLine,
    InitMessage,
    PollMessage,
    ProtocolError,
    Refusal,
    checksum,
    checksum_ok,
    confirm_message,
    error_reply,
    fresh_enough,
    local_timestamp,
    parse_init,
    parse_json,
    parse_poll,
    readings,
    success_reply,
    whole_dong,
)

__all__ = [
    "BILL_DIALECTS",
    "CONFIRM_FIELDS",
    "INIT_FIELDS",
    "MESSAGE_TYPES",
    "POLL_FIELDS",
    "REPLY_DIALECTS",
    "FeeLine",
    "InitMessage",
    "PollMessage",
    "ProtocolError",
    "Refusal",
    "checksum",
    "checksum_ok",
    "confirm_message",
    "error_reply",
    "fresh_enough",
    "local_timestamp",
    "parse_init",
    "parse_json",
    "parse_poll",
    "readings",
    "success_reply",
    "whole_dong",
]
