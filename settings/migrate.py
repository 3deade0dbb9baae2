"""Runs the single Alembic history programmatically, so no ``alembic.ini`` has to be found."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Idempotent: a database already at every head is left untouched.

    ``heads`` (not ``head``) so that branches added by parallel work apply before they are merged.
    """
    command.upgrade(alembic_config(database_url), revision)
