"""Runs the single Alembic history programmatically, so no ``alembic.ini`` has to be found.

The history lives here, on the ground floor, but the models it is compared with belong to every
package above: the caller hands their metadata over (``target_metadata``, put in the Alembic
config's ``attributes``) rather than ``settings`` importing them. Applying migrations needs no
metadata at all, so ``upgrade`` works in any process.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str, target_metadata: MetaData | None = None) -> Config:
    """``target_metadata`` is what autogenerate compares with (the complete metadata).

    Without it, ``env.py`` falls back to the composition module named in the config (option
    ``composition`` or ``-x composition=...``), then to the shared metadata if this process's
    composition root has already declared it complete.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if target_metadata is not None:
        cfg.attributes["target_metadata"] = target_metadata
    return cfg


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Idempotent: a database already at every head is left untouched.

    ``heads`` (not ``head``) so that branches added by parallel work apply before they are merged.
    """
    command.upgrade(alembic_config(database_url), revision)
