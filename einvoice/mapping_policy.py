"""Which receipt mapping an agency issues today: 0.1 until its switch date, or 0.2.

Issue 17's rule: a new install issues mapping 0.2 (the tax authority's confirmed names) from its
first receipt; an agency that was already issuing receipts in 0.1 goes on with 0.1 until a
configurable date (``MOTCUA_RECEIPT_MAPPING_SWITCH_DATE``, agency-local, default 2027-01-01: the
day paper receipts end and the numbers and series restart, so a series-year is not split across
two mappings), then issues 0.2. Receipts already issued never change: they keep the mapping they
were signed in (``receipts.mapping_version``).

"Already running" is a fact in the database, not a setting: the agency has a receipt in 0.1.
So a new agency started on an old install begins with 0.2 too, and an agency can never go back
to 0.1 once it issued 0.2 (it has no 0.1 receipt, or the date has passed). Before the switch date
this costs one indexed ``EXISTS`` per receipt (``ix_receipts_agency_mapping``); after it, none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final, Protocol

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from einvoice.models import Receipt
from einvoice.official import DEFAULT_DOCUMENT_VERSION, FormatChoices, configured

__all__ = ["LEGACY_MAPPING", "MappingPolicy", "ReceiptMappingPolicy"]

LEGACY_MAPPING: Final = "0.1"
CONFIRMED_MAPPING: Final = "0.2"


class MappingPolicy(Protocol):
    """What issuing asks: the mapping (and ``PBan``) of an agency's next receipt."""

    @property
    def document_version(self) -> str:
        """``PBan`` of a 0.2 receipt."""
        ...

    def mapping_for(self, session: Session, agency_id: str, local_day: date) -> str:
        """The mapping of a receipt the agency issues on its local ``local_day``."""
        ...


@dataclass(frozen=True, slots=True)
class ReceiptMappingPolicy:
    """The rule above, with the switch date and the ``PBan`` from the settings."""

    switch_on: date | None
    """Agency-local date from which agencies still on 0.1 issue 0.2; ``None``: they stay on 0.1."""
    document_version: str = DEFAULT_DOCUMENT_VERSION

    @classmethod
    def from_choices(cls, choices: FormatChoices) -> ReceiptMappingPolicy:
        return cls(switch_on=choices.receipt_switch_on, document_version=choices.document_version)

    @classmethod
    def configured(cls) -> ReceiptMappingPolicy:
        """From the process's settings (what issuing uses when no policy is passed)."""
        return cls.from_choices(configured())

    def mapping_for(self, session: Session, agency_id: str, local_day: date) -> str:
        if self.switch_on is not None and local_day >= self.switch_on:
            return CONFIRMED_MAPPING
        running_on_legacy = session.scalar(
            select(
                exists().where(
                    Receipt.agency_id == agency_id, Receipt.mapping_version == LEGACY_MAPPING
                )
            )
        )
        return LEGACY_MAPPING if running_on_legacy else CONFIRMED_MAPPING
