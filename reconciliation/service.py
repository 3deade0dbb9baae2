"""The close as operators run it (CLI, scheduler, the accountant's button): find the agency and
its key, send what the tax authority still lacks, reconcile, and describe the result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import httpx
from sqlalchemy.orm import Session

from einvoice.tax_authority import HttpTaxAuthorityClient, TaxAuthorityClient
from payments.agencies import agency_by_code
from payments.models import Agency
from reconciliation.close import CloseResult, run_close
from reconciliation.tax_summary import send_day_summary
from settings.config import Settings
from signing.keys import KeySource, load_key_source

__all__ = ["CloseReport", "close_day"]


def _vnd(amount: int) -> str:
    return f"{amount:,}".replace(",", ".") + " đ"


@dataclass(frozen=True)
class CloseReport:
    agency: Agency
    result: CloseResult

    @property
    def breaks(self) -> list[object]:
        return list(self.result.breaks)

    def summary_text(self) -> str:
        close = self.result.close
        t = close.totals
        lines = [
            f"Đối soát ngày {close.business_day} / daily close — {self.agency.name} "
            f"(MST {self.agency.tax_code})",
            f"  business day  {self.result.window.describe()}",
            f"  version {close.version}, watermark {close.watermark.isoformat()}, "
            f"status {close.status}",
            f"  bank credits  {t['bank_credits']['count']} = {_vnd(t['bank_credits']['amount'])}",
            f"  payments      {_vnd(t['payments_total'])} "
            + ", ".join(
                f"{k}: {v['count']} = {_vnd(v['amount'])}" for k, v in sorted(t["payments"].items())
            ),
            f"  receipts      {t['receipts']['count']} = {_vnd(t['receipts']['amount'])}",
            "  tax summaries "
            + (
                ", ".join(
                    f"#{s['supplement_no']} {s['status']}{' (late)' if s['late'] else ''}"
                    for s in t["tax_summaries"]
                )
                or "none"
            ),
            f"  State Treasury: {_vnd(t['treasury']['to_state_treasury'])} "
            f"(lệ phí {_vnd(t['treasury']['le_phi'])}, "
            f"phí nộp {_vnd(t['treasury']['phi_to_remit'])}, "
            f"phí để lại {_vnd(t['treasury']['phi_retained'])})",
        ]
        if self.result.breaks:
            lines.append(f"  BREAKS ({len(self.result.breaks)}):")
            lines += [
                f"    - {b.kind} {b.ref} {_vnd(b.amount)}: {b.detail}" for b in self.result.breaks
            ]
        else:
            lines.append(
                "  no breaks: every đồng is a payment with one receipt, reported to the tax office"
            )
        return "\n".join(lines)


def _key(agency: Agency) -> KeySource | None:
    return load_key_source(agency.signing_key_ref) if agency.signing_key_ref else None


def tax_client(settings: Settings) -> TaxAuthorityClient | None:
    url = settings.effective_tax_authority_url
    if not url:
        return None
    return HttpTaxAuthorityClient(url, httpx.Client(timeout=30), timeout=30)


def close_day(
    session: Session,
    settings: Settings,
    agency_code: str,
    day: date,
    *,
    actor: str,
    client: TaxAuthorityClient | None = None,
) -> CloseReport:
    """Sends what the tax authority still lacks for the day, then reconciles and signs."""
    agency = agency_by_code(session, agency_code)
    key = _key(agency)
    client = client or tax_client(settings)
    if client is not None and key is not None:
        send_day_summary(
            session,
            agency,
            day,
            client,
            key,
            sender_code=settings.tax_sender_code,
            receiver_code=settings.tax_receiver_code,
            allow_development_certificate=settings.dev_certificates_allowed,
        )
    result = run_close(session, agency, day, actor=actor, key=key)
    return CloseReport(agency, result)
