"""receipt lifecycle: replacement links, error notices 04/SS-CTĐT, audit trail, write-once triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Receipts become write-once in the database itself: a trigger refuses any UPDATE that changes a
signed column (only ``replaced_by_id`` may go once from NULL to a value) and any DELETE
(Circular 91/2026 art. 20: receipts are never cancelled). The audit trail refuses UPDATE and
DELETE. The frozen column list equals ``einvoice.models.RECEIPT_FROZEN_COLUMNS``; columns that
later migrations add to ``receipts`` stay writable unless a migration adds them here.

SQLite drops triggers when a table is rebuilt (Alembic batch "recreate"): a later migration
that rebuilds ``receipts`` or ``receipt_audit_events`` must recreate them (call
``create_triggers()`` below).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from lxml import etree

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECEIPT_FROZEN = (
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
RECEIPT_MESSAGE = (
    "receipts are signed and write-once and are never deleted (Circular 91/2026 art. 20)"
)
AUDIT_MESSAGE = "the receipt audit trail is append-only"


def _backfill_collector_tax_code() -> None:
    """Copy the MST each signed XML states (the legal original, not today's agency row)."""
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, xml FROM receipts WHERE collector_tax_code IS NULL"))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    for receipt_id, xml in rows.fetchall():
        root = etree.fromstring(bytes(xml), parser)
        tax_code = root.findtext("DLBLai/NDBLai/NThu/MST")
        if tax_code:
            conn.execute(
                sa.text("UPDATE receipts SET collector_tax_code = :mst WHERE id = :id"),
                {"mst": tax_code, "id": receipt_id},
            )


def create_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        changed = " OR ".join(
            f"NEW.{c}::text IS DISTINCT FROM OLD.{c}::text"
            if c == "lines"
            else f"NEW.{c} IS DISTINCT FROM OLD.{c}"
            for c in RECEIPT_FROZEN
        )
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
        op.execute(
            "CREATE TRIGGER receipts_write_once BEFORE UPDATE OR DELETE ON receipts "
            "FOR EACH ROW EXECUTE FUNCTION einvoice_receipts_write_once()"
        )
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION einvoice_audit_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{AUDIT_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER receipt_audit_events_append_only BEFORE UPDATE OR DELETE "
            "ON receipt_audit_events FOR EACH ROW EXECUTE FUNCTION einvoice_audit_append_only()"
        )
        return
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in RECEIPT_FROZEN)
    op.execute(
        f"""
        CREATE TRIGGER receipts_write_once BEFORE UPDATE ON receipts
        WHEN {changed}
             OR (OLD.replaced_by_id IS NOT NULL AND NEW.replaced_by_id IS NOT OLD.replaced_by_id)
        BEGIN SELECT RAISE(ABORT, '{RECEIPT_MESSAGE}'); END
        """
    )
    op.execute(
        "CREATE TRIGGER receipts_never_deleted BEFORE DELETE ON receipts "
        f"BEGIN SELECT RAISE(ABORT, '{RECEIPT_MESSAGE}'); END"
    )
    op.execute(
        "CREATE TRIGGER receipt_audit_events_no_update BEFORE UPDATE ON receipt_audit_events "
        f"BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}'); END"
    )
    op.execute(
        "CREATE TRIGGER receipt_audit_events_no_delete BEFORE DELETE ON receipt_audit_events "
        f"BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}'); END"
    )


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS receipts_write_once ON receipts")
        op.execute("DROP FUNCTION IF EXISTS einvoice_receipts_write_once()")
        op.execute(
            "DROP TRIGGER IF EXISTS receipt_audit_events_append_only ON receipt_audit_events"
        )
        op.execute("DROP FUNCTION IF EXISTS einvoice_audit_append_only()")
        return
    for name in (
        "receipts_write_once",
        "receipts_never_deleted",
        "receipt_audit_events_no_update",
        "receipt_audit_events_no_delete",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    # Plain ADD COLUMN / CREATE INDEX: no table rebuild on SQLite, so nothing else is disturbed.
    op.add_column("receipts", sa.Column("replaces_id", sa.String(length=32), nullable=True))
    op.add_column("receipts", sa.Column("collector_tax_code", sa.String(length=14), nullable=True))
    op.create_index("ix_receipts_replaced_by_id", "receipts", ["replaced_by_id"], unique=True)
    op.create_index("ix_receipts_replaces_id", "receipts", ["replaces_id"], unique=True)
    op.create_index(
        "ix_receipts_lookup", "receipts", ["collector_tax_code", "template", "series", "number"]
    )
    _backfill_collector_tax_code()

    op.create_table(
        "receipt_audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agency_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("receipt_id", sa.String(length=32), nullable=True),
        sa.Column("related_receipt_id", sa.String(length=32), nullable=True),
        sa.Column("notice_id", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_receipt_audit_events_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipt_audit_events")),
    )
    op.create_index(
        op.f("ix_receipt_audit_events_agency_id"), "receipt_audit_events", ["agency_id"]
    )
    op.create_index(
        op.f("ix_receipt_audit_events_receipt_id"), "receipt_audit_events", ["receipt_id"]
    )
    op.create_index(
        op.f("ix_receipt_audit_events_notice_id"), "receipt_audit_events", ["notice_id"]
    )

    op.create_table(
        "receipt_error_notices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.String(length=32), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=True),
        sa.Column("collector_tax_code", sa.String(length=14), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("xml", sa.LargeBinary(), nullable=False),
        sa.Column("signer_subject", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("status_detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_receipt_error_notices_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipt_error_notices")),
        sa.UniqueConstraint("source_key", name=op.f("uq_receipt_error_notices_source_key")),
    )
    op.create_index(
        op.f("ix_receipt_error_notices_agency_id"), "receipt_error_notices", ["agency_id"]
    )
    op.create_index(op.f("ix_receipt_error_notices_status"), "receipt_error_notices", ["status"])

    op.create_table(
        "receipt_error_notice_items",
        sa.Column("notice_id", sa.String(length=32), nullable=False),
        sa.Column("receipt_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notice_id"],
            ["receipt_error_notices.id"],
            name=op.f("fk_receipt_error_notice_items_notice_id_receipt_error_notices"),
        ),
        sa.ForeignKeyConstraint(
            ["receipt_id"],
            ["receipts.id"],
            name=op.f("fk_receipt_error_notice_items_receipt_id_receipts"),
        ),
        sa.PrimaryKeyConstraint(
            "notice_id", "receipt_id", name=op.f("pk_receipt_error_notice_items")
        ),
    )
    op.create_index(
        op.f("ix_receipt_error_notice_items_receipt_id"),
        "receipt_error_notice_items",
        ["receipt_id"],
    )

    create_triggers()


def downgrade() -> None:
    drop_triggers()
    op.drop_index(
        op.f("ix_receipt_error_notice_items_receipt_id"), table_name="receipt_error_notice_items"
    )
    op.drop_table("receipt_error_notice_items")
    op.drop_index(op.f("ix_receipt_error_notices_status"), table_name="receipt_error_notices")
    op.drop_index(op.f("ix_receipt_error_notices_agency_id"), table_name="receipt_error_notices")
    op.drop_table("receipt_error_notices")
    op.drop_index(op.f("ix_receipt_audit_events_notice_id"), table_name="receipt_audit_events")
    op.drop_index(op.f("ix_receipt_audit_events_receipt_id"), table_name="receipt_audit_events")
    op.drop_index(op.f("ix_receipt_audit_events_agency_id"), table_name="receipt_audit_events")
    op.drop_table("receipt_audit_events")
    op.drop_index("ix_receipts_lookup", table_name="receipts")
    op.drop_index("ix_receipts_replaces_id", table_name="receipts")
    op.drop_index("ix_receipts_replaced_by_id", table_name="receipts")
    with op.batch_alter_table("receipts") as batch_op:
        batch_op.drop_column("collector_tax_code")
        batch_op.drop_column("replaces_id")
