"""exceptions queue and its audit; who collected cash; imported bank statements

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_exceptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.String(length=32), nullable=False),
        sa.Column("credit_id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("resolution", sa.String(length=24), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_payment_exceptions_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["credit_id"],
            ["bank_credits.id"],
            name=op.f("fk_payment_exceptions_credit_id_bank_credits"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["payment_orders.id"],
            name=op.f("fk_payment_exceptions_order_id_payment_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_exceptions")),
        sa.UniqueConstraint("credit_id", name=op.f("uq_payment_exceptions_credit_id")),
    )
    op.create_index(op.f("ix_payment_exceptions_agency_id"), "payment_exceptions", ["agency_id"])
    op.create_index(op.f("ix_payment_exceptions_state"), "payment_exceptions", ["state"])
    op.create_table(
        "payment_exception_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("exception_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["exception_id"],
            ["payment_exceptions.id"],
            name=op.f("fk_payment_exception_actions_exception_id_payment_exceptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_exception_actions")),
    )
    op.create_index(
        op.f("ix_payment_exception_actions_exception_id"),
        "payment_exception_actions",
        ["exception_id"],
    )
    with op.batch_alter_table("payment_orders") as batch:
        batch.add_column(sa.Column("collected_by", sa.String(length=255), nullable=True))
    op.create_table(
        "bank_statements",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("file_format", sa.String(length=16), nullable=False),
        sa.Column("account_number", sa.String(length=34), nullable=False),
        sa.Column("opening_date", sa.Date(), nullable=False),
        sa.Column("closing_date", sa.Date(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("new_lines", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_bank_statements_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_statements")),
        sa.UniqueConstraint(
            "agency_id", "fingerprint", name=op.f("uq_bank_statements_agency_id_fingerprint")
        ),
    )
    op.create_index(op.f("ix_bank_statements_agency_id"), "bank_statements", ["agency_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_bank_statements_agency_id"), table_name="bank_statements")
    op.drop_table("bank_statements")
    with op.batch_alter_table("payment_orders") as batch:
        batch.drop_column("collected_by")
    op.drop_index(
        op.f("ix_payment_exception_actions_exception_id"), table_name="payment_exception_actions"
    )
    op.drop_table("payment_exception_actions")
    op.drop_index(op.f("ix_payment_exceptions_state"), table_name="payment_exceptions")
    op.drop_index(op.f("ix_payment_exceptions_agency_id"), table_name="payment_exceptions")
    op.drop_table("payment_exceptions")
