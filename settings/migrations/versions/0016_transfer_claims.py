"""transfer claims (issue 19, part 1): a citizen claims a transfer that did not match

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 16:00:00

Hand-written. ``transfer_claims`` holds every attempt a citizen makes (what they stated, the
result, who decided); ``transfer_claim_events`` is its append-only audit trail (an audit source
of the hash chain). ``agencies.claim_auto_approve_days`` (nullable: off) is the agency's
automatic-approval setting; adding a nullable column needs no table rebuild on SQLite.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_auto_approve_days", sa.Integer(), nullable=True))

    op.create_table(
        "transfer_claims",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("exception_id", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("stated", sa.JSON(), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("amounts_differ", sa.Boolean(), nullable=False),
        sa.Column("first_approver", sa.String(length=255), nullable=True),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_transfer_claims_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["payment_orders.id"],
            name=op.f("fk_transfer_claims_order_id_payment_orders"),
        ),
        sa.ForeignKeyConstraint(
            ["exception_id"],
            ["payment_exceptions.id"],
            name=op.f("fk_transfer_claims_exception_id_payment_exceptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_claims")),
    )
    with op.batch_alter_table("transfer_claims", schema=None) as batch_op:
        for column in ("agency_id", "order_id", "exception_id", "state", "client_ip", "created_at"):
            batch_op.create_index(
                batch_op.f(f"ix_transfer_claims_{column}"), [column], unique=False
            )

    op.create_table(
        "transfer_claim_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"],
            ["transfer_claims.id"],
            name=op.f("fk_transfer_claim_events_claim_id_transfer_claims"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_claim_events")),
    )
    with op.batch_alter_table("transfer_claim_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transfer_claim_events_claim_id"), ["claim_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("transfer_claim_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfer_claim_events_claim_id"))
    op.drop_table("transfer_claim_events")
    with op.batch_alter_table("transfer_claims", schema=None) as batch_op:
        for column in ("agency_id", "order_id", "exception_id", "state", "client_ip", "created_at"):
            batch_op.drop_index(batch_op.f(f"ix_transfer_claims_{column}"))
    op.drop_table("transfer_claims")
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.drop_column("claim_auto_approve_days")
