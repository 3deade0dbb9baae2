"""Alembic environment: one history for every package's tables, on SQLite and PostgreSQL.

This file lives on the ground floor (``settings``) and so imports no package's models. The
metadata autogenerate compares with comes, in this order, from:

1. ``config.attributes["target_metadata"]``: the programmatic caller passes it
   (``settings.migrate.alembic_config(url, target_metadata=...)``);
2. a composition module named by the config (``-x composition=<module>`` on the ``alembic``
   command line, or ``composition = <module>`` in an ``alembic.ini``): imported by name at
   run time, so the arrow still points down in the source;
3. the shared metadata, if a composition root imported earlier in this process declared it
   complete (tests, the ``motcua`` CLI);
4. none: ``upgrade``/``downgrade`` need no metadata; autogenerate then refuses to run.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from alembic import context
from sqlalchemy import MetaData

from settings.db import UTCDateTime, complete_metadata, make_engine, metadata_is_complete

config = context.config


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Renders our UTC column type as a plain timezone-aware DateTime in migration files."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _target_metadata() -> MetaData | None:
    given = config.attributes.get("target_metadata")
    if given is not None:
        assert isinstance(given, MetaData)
        return given
    module = context.get_x_argument(as_dictionary=True).get("composition") or (
        config.get_main_option("composition")
    )
    if module:
        importlib.import_module(module)
        return complete_metadata()
    return complete_metadata() if metadata_is_complete() else None


target_metadata = _target_metadata()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
