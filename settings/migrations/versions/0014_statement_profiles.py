"""statement profiles (issue 18): an agency's own column mappings for bank spreadsheet exports

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-10 10:00:00

Hand-written. ``statement_profiles`` holds the profiles an agency admin saves on the admin page
(``/staff/admin/statements``) after trying them on a sample export: the profile itself as JSON
(``payments.statement_profiles.profile_from_json``), unique by name within the agency, with who
saved it and when. A new table only: nothing existing changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "statement_profiles",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_statement_profiles_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_profiles")),
        sa.UniqueConstraint("agency_id", "name", name=op.f("uq_statement_profiles_agency_id_name")),
    )


def downgrade() -> None:
    op.drop_table("statement_profiles")
