"""Data to the tax authority: the daily summary 01/TH-BLĐT and the other messages, their client.

Why a subpackage: the authority is an external party behind a small interface with one adapter
(architecture.md). :mod:`.messages` is the *only* place that knows element names and message
type codes; :mod:`.client` sends and resolves outcomes; :mod:`.sandbox` stands in for the
authority in development and tests (a separate process, refused in production).

**Not the official formats.** Decision 1306/QĐ-CT (envelope PBan 2.1.0) could not be obtained:
our mapping is version :data:`~.messages.MAPPING_VERSION` ``0.1``, modelled on the e-invoice
family, and the message type code of 01/TH-BLĐT is unconfirmed (``400``, "the 400 family", by
analogy with the invoice summary). See :mod:`.messages`.

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
