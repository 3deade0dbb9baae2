"""The agency's signer: everything a receipt, a replacement or a notice is signed with.

Key, collector, series, verification URL and certificate policy used to be gathered by each
caller (the API route, the counter page, the issuer) with its own copy of "no key → 503"; they
are gathered here once, so every signature of an agency follows the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from einvoice.document import Collector
from payments.errors import NotFound, PaymentsError
from payments.models import Agency
from settings.config import Settings
from signing.keys import KeySource, load_key_source

__all__ = ["AgencySigner", "NoSigningKey", "collector_of", "signer_for", "signer_of"]


class NoSigningKey(PaymentsError):
    code = "no_signing_key"
    status = 503
    title_vi = "Đơn vị thu chưa có chứng thư số để ký biên lai"
    title_en = "The agency has no signing certificate configured"


@dataclass(frozen=True)
class AgencySigner:
    agency: Agency
    collector: Collector
    key: KeySource
    series: str
    template: str
    verify_url_base: str
    allow_development_certificate: bool

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.agency.time_zone)


def collector_of(agency: Agency) -> Collector:
    """The collecting organisation as printed on its receipts today."""
    return Collector(
        name=agency.name,
        tax_code=agency.tax_code,
        address=agency.address,
        time_zone=agency.time_zone,
    )


def signer_of(agency: Agency, settings: Settings) -> AgencySigner:
    if not agency.signing_key_ref:
        raise NoSigningKey(f"agency {agency.code} has no signing key; run keys dev-init")
    return AgencySigner(
        agency=agency,
        collector=collector_of(agency),
        key=load_key_source(agency.signing_key_ref),
        series=agency.receipt_series,
        template=agency.receipt_template,
        verify_url_base=settings.public_base_url,
        allow_development_certificate=settings.dev_certificates_allowed,
    )


def signer_for(session: Session, agency_id: str, settings: Settings) -> AgencySigner:
    agency = session.get(Agency, agency_id)
    if agency is None:  # pragma: no cover - callers pass their own agency
        raise NotFound(f"no agency {agency_id!r}", code="not_found")
    return signer_of(agency, settings)
