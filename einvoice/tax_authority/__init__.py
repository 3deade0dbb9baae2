"""Data to the tax authority: the daily summary 01/TH-BLĐT and the other messages, their client.

Why a subpackage: the authority is an external party behind a small interface with one adapter
(architecture.md). :mod:`.messages` is the *only* place that knows element names and message
type codes; :mod:`.client` sends and resolves outcomes; :mod:`.sandbox` stands in for the
authority in development and tests (a separate process, refused in production).

**Formats as data** (:mod:`.formats`): messages are built in mapping 0.2 — the e-document
family's confirmed codes (109/110/111, 304/301, 999) and ``PBan`` 2.1.0 (or 2.1.1) of Decision
1271/QĐ-CT — and those queued in our old mapping 0.1 are still sent and read. The code of
01/TH-BLĐT is still unconfirmed and configurable (``400`` by default). See :mod:`.messages`.

The sandbox is not imported here: it pulls in uvicorn and must stay out of production imports.
"""

from __future__ import annotations

from einvoice.tax_authority.client import Ack, HttpTaxAuthorityClient, Outcome, TaxAuthorityClient
from einvoice.tax_authority.errors import (
    MessageInvalid,
    SandboxRefused,
    TaxAuthorityBadAnswer,
    TaxAuthorityError,
    TaxAuthorityRequestRefused,
    TaxAuthorityUnavailable,
    UnsafeMessage,
)
from einvoice.tax_authority.messages import (
    MAPPING_VERSION,
    MessageFormat,
    MessageType,
    RegisteredCertificate,
    RowStatus,
    SummaryRow,
    build_daily_summary,
    build_registration,
    wrap_document,
)

__all__ = [
    "MAPPING_VERSION",
    "Ack",
    "HttpTaxAuthorityClient",
    "MessageFormat",
    "MessageInvalid",
    "MessageType",
    "Outcome",
    "RegisteredCertificate",
    "RowStatus",
    "SandboxRefused",
    "SummaryRow",
    "TaxAuthorityBadAnswer",
    "TaxAuthorityClient",
    "TaxAuthorityError",
    "TaxAuthorityRequestRefused",
    "TaxAuthorityUnavailable",
    "UnsafeMessage",
    "build_daily_summary",
    "build_registration",
    "wrap_document",
]
