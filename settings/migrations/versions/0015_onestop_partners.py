"""one-stop partners (issue 15): the national payment platform protocol (PP-DVCQG)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 16:00:00

Hand-written. ``onestop_partners`` are the one-stop systems that speak PP-DVCQG to an agency
(partner code, the secret key their checksums use, CONFIRM endpoint, dialects, IP allow-list,
accepted clock skew, fee and procedure code maps); ``onestop_pp_transactions`` ties a partner's
``MaThamChieu`` to the order it created; ``onestop_pp_messages`` audits every message received.

``callback_events`` learns a second delivery kind: a CONFIRM to a partner goes through the same
outbox and retry schedule as our own callbacks. ``kind`` is added with a server default (every
existing row is ``motcua``), ``partner_id`` is added nullable, and ``client_id`` becomes
nullable (a CONFIRM has a partner, not an API client). On SQLite the last change rebuilds the
table in batch mode; ``callback_events`` carries no trigger, so nothing is lost in the rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "onestop_partners",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("confirm_url", sa.String(length=1000), nullable=False),
        sa.Column("reply_dialect", sa.String(length=16), nullable=False),
        sa.Column("bill_dialect", sa.String(length=16), nullable=False),
        sa.Column("allowed_ips", sa.JSON(), nullable=False),
        sa.Column("clock_skew_seconds", sa.Integer(), nullable=False),
        sa.Column("fee_map", sa.JSON(), nullable=False),
        sa.Column("procedure_map", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_onestop_partners_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onestop_partners")),
        sa.UniqueConstraint("code", name=op.f("uq_onestop_partners_code")),
    )
    with op.batch_alter_table("onestop_partners", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_onestop_partners_agency_id"), ["agency_id"], unique=False
        )

    op.create_table(
        "onestop_pp_transactions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["payment_orders.id"],
            name=op.f("fk_onestop_pp_transactions_order_id_payment_orders"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["onestop_partners.id"],
            name=op.f("fk_onestop_pp_transactions_partner_id_onestop_partners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onestop_pp_transactions")),
        sa.UniqueConstraint("order_id", name=op.f("uq_onestop_pp_transactions_order_id")),
        sa.UniqueConstraint(
            "partner_id", "reference", name=op.f("uq_onestop_pp_transactions_partner_id_reference")
        ),
    )

    op.create_table(
        "onestop_pp_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_type", sa.String(length=16), nullable=False),
        sa.Column("partner_code", sa.String(length=64), nullable=True),
        sa.Column("partner_id", sa.String(length=32), nullable=True),
        sa.Column("agency_id", sa.String(length=32), nullable=True),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=4), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("order_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onestop_pp_messages")),
    )
    with op.batch_alter_table("onestop_pp_messages", schema=None) as batch_op:
        batch_op.create_index("ix_onestop_pp_messages_agency_at", ["agency_id", "at"], unique=False)

    with op.batch_alter_table("callback_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="motcua", nullable=False)
        )
        batch_op.add_column(sa.Column("partner_id", sa.String(length=32), nullable=True))
        batch_op.alter_column("client_id", existing_type=sa.String(length=32), nullable=True)
        batch_op.create_index(
            batch_op.f("ix_callback_events_partner_id"), ["partner_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_callback_events_partner_id_onestop_partners"),
            "onestop_partners",
            ["partner_id"],
            ["id"],
        )


def downgrade() -> None:
    op.execute(
        "DELETE FROM callback_attempts WHERE event_id IN "
        "(SELECT id FROM callback_events WHERE client_id IS NULL)"
    )
    op.execute("DELETE FROM callback_events WHERE client_id IS NULL")
    with op.batch_alter_table("callback_events", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_callback_events_partner_id_onestop_partners"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_callback_events_partner_id"))
        batch_op.alter_column("client_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column("partner_id")
        batch_op.drop_column("kind")
    with op.batch_alter_table("onestop_pp_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_onestop_pp_messages_agency_at")
    op.drop_table("onestop_pp_messages")
    op.drop_table("onestop_pp_transactions")
    with op.batch_alter_table("onestop_partners", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_onestop_partners_agency_id"))
    op.drop_table("onestop_partners")
