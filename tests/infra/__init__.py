"""Throw-away servers for the test suite (PostgreSQL, Redis), bound to 127.0.0.1 only.

Each server runs from the Debian binaries in its own temporary directory on a free port, or,
when the matching environment variable is set, is an existing server used as is:

- ``MOTCUA_TEST_POSTGRES_URL``: e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``
- ``MOTCUA_TEST_REDIS_URL``: e.g. ``redis://127.0.0.1:6379/0``
"""

from .ports import (
    LOOPBACK,
    ServerError,
    ServerNotManagedError,
    free_port,
    port_is_open,
    wait_for_port,
)
from .postgres import PostgresServer, find_postgres_bindir
from .redis import RedisServer

__all__ = [
    "LOOPBACK",
    "PostgresServer",
    "RedisServer",
    "ServerError",
    "ServerNotManagedError",
    "find_postgres_bindir",
    "free_port",
    "port_is_open",
    "wait_for_port",
]
