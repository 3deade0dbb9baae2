"""receipt mapping version (issue 17): which receipt mapping each receipt's XML is written in

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 12:00:00

Hand-written. ``receipts.mapping_version`` says whether a receipt is in our mapping 0.1 or in
0.2 (the tax authority's confirmed names); ``einvoice.mapping_policy`` reads it to decide what an
agency issues next. Every existing row is 0.1: no other mapping existed before this revision, so
the server default fills it without reading the XML (``PBan`` 0.1 in each of them).

The column is a copy of what the signed XML states, so it is frozen like the others: the
write-once triggers of 0002 are recreated with it in their list (``RECEIPT_FROZEN`` below equals
``einvoice.models.RECEIPT_FROZEN_COLUMNS``). The index serves the policy's ``EXISTS`` per agency.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECEIPT_FROZEN_0002 = (
    "id",
    "agency_id",
    "source_key",
    "template",
    "series",
    "year",
    "number",
    "issued_at",
    "total",
    "payer_name",
    "payment_method",
    "payment_reference",
    "verify_code",
    "lines",
    "xml",
    "signer_subject",
    "created_at",
    "replaces_id",
    "collector_tax_code",
)
RECEIPT_FROZEN = (*RECEIPT_FROZEN_0002, "mapping_version")
RECEIPT_MESSAGE = (
    "receipts are signed and write-once and are never deleted (Circular 91/2026 art. 20)"
)


def _receipt_triggers(frozen: Sequence[str]) -> None:
    """(Re)create the receipts' write-once trigger for ``frozen`` (as 0002 made it)."""
    if op.get_bind().dialect.name == "postgresql":
        changed = " OR ".join(
            f"NEW.{c}::text IS DISTINCT FROM OLD.{c}::text"
            if c == "lines"
            else f"NEW.{c} IS DISTINCT FROM OLD.{c}"
            for c in frozen
        )
        # The trigger calls the function by name: replacing the function is enough.
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION einvoice_receipts_write_once() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    RAISE EXCEPTION '{RECEIPT_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                IF {changed}
                   OR (OLD.replaced_by_id IS NOT NULL
                       AND NEW.replaced_by_id IS DISTINCT FROM OLD.replaced_by_id) THEN
                    RAISE EXCEPTION '{RECEIPT_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                RETURN NEW;
            END $$
            """
        )
        return
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in frozen)
    op.execute("DROP TRIGGER IF EXISTS receipts_write_once")
    op.execute(
        f"""
        CREATE TRIGGER receipts_write_once BEFORE UPDATE ON receipts
        WHEN {changed}
             OR (OLD.replaced_by_id IS NOT NULL AND NEW.replaced_by_id IS NOT OLD.replaced_by_id)
        BEGIN SELECT RAISE(ABORT, '{RECEIPT_MESSAGE}'); END
        """
    )


def upgrade() -> None:
    # Plain ADD COLUMN / CREATE INDEX: no table rebuild on SQLite, so the other triggers stay.
    op.add_column(
        "receipts",
        sa.Column("mapping_version", sa.String(length=8), server_default="0.1", nullable=False),
    )
    op.create_index(
        "ix_receipts_agency_mapping", "receipts", ["agency_id", "mapping_version"], unique=False
    )
    _receipt_triggers(RECEIPT_FROZEN)


def downgrade() -> None:
    # The trigger names the column: give it its 0002 list before the column goes.
    _receipt_triggers(RECEIPT_FROZEN_0002)
    op.drop_index("ix_receipts_agency_mapping", table_name="receipts")
    op.drop_column("receipts", "mapping_version")
