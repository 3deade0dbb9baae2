"""fee tariffs (issue 14): fees as the law writes them, and what each order line was priced with

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10 09:00:00

Hand-written. ``fee_items.tariff`` holds a ``payments.tariffs`` tariff as JSON (per page with
tiers, per copy caps, value bands, reductions); NULL is the legacy tariff, ``amount`` per unit x
quantity capped per line at ``max_amount``, so every existing row keeps exactly the arithmetic it
had. ``order_lines.pricing`` keeps what a line was priced with (the line input, the tariff and the
breakdown) so a receipt can say how its amount was reached even after the catalogue changes;
NULL for the lines written before this revision, which read unchanged.

Both are plain nullable ADD COLUMNs: in batch mode SQLite still adds them in place (no table
rebuild), and neither table carries a trigger.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fee_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tariff", sa.JSON(), nullable=True))
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pricing", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_column("pricing")
    with op.batch_alter_table("fee_items", schema=None) as batch_op:
        batch_op.drop_column("tariff")
