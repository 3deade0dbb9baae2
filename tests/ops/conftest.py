"""Fixtures for the operations tests: the demo agency seeded (on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from api.demo import seed
from settings.config import Settings


@pytest.fixture
def demo(settings: Settings) -> Settings:
    seed(settings)
    return settings
