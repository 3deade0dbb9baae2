"""agency admin audit trail and bank-feed key prefixes (issue 6, admin pages)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21 08:10:00

Hand-written. ``staff_admin_events`` records every change made on the admin pages;
``bank_feed_credentials.key_prefix`` lets the admin tell keys apart without the key itself
(existing rows keep NULL: their keys were never stored in clear, so no prefix can be derived).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_admin_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agency_id", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.String(length=32), nullable=True),
        sa.Column("actor_username", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target_kind", sa.String(length=24), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_staff_admin_events_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_admin_events")),
    )
    with op.batch_alter_table("staff_admin_events", schema=None) as batch_op:
        batch_op.create_index("ix_staff_admin_events_agency_at", ["agency_id", "at"], unique=False)
    with op.batch_alter_table("bank_feed_credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_prefix", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bank_feed_credentials", schema=None) as batch_op:
        batch_op.drop_column("key_prefix")
    with op.batch_alter_table("staff_admin_events", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_admin_events_agency_at")
    op.drop_table("staff_admin_events")
