"""audit seals: the hash chain over the audit records (issue 7)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-21 08:10:00

Hand-written; the table of ``settings.audit_chain`` and triggers that make it append-only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "audit seals are append-only"


def upgrade() -> None:
    op.create_table(
        "audit_seals",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("row_key", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("chain_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_seals")),
        sa.UniqueConstraint("source", "row_key", name=op.f("uq_audit_seals_source_row_key")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION audit_seals_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON audit_seals "
            "FOR EACH ROW EXECUTE FUNCTION audit_seals_append_only()"
        )
        return
    op.execute(
        "CREATE TRIGGER audit_seals_no_update BEFORE UPDATE ON audit_seals "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_seals_append_only ON audit_seals")
        op.execute("DROP FUNCTION IF EXISTS audit_seals_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_seals_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_seals_no_delete")
    op.drop_table("audit_seals")
