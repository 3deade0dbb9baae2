"""One Alembic history, the same on SQLite and PostgreSQL, in step with every package's models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from settings.db import engine_for, load_all_models
from settings.migrate import alembic_config, upgrade


def test_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"merge the migration branches: {heads}"


def test_models_match_migrations(database_url: str) -> None:
    """``database_url`` is already migrated (both backends); autogenerate must find nothing."""
    upgrade(database_url)  # idempotent
    metadata = load_all_models()
    with engine_for(database_url).connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), metadata
        )
    assert diff == [], diff
