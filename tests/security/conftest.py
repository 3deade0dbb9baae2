"""Fixtures for the security tests: the demo app (SQLite unless a test asks for PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.demo import DEMO_API_KEY, seed
from settings.config import Settings


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite only: these tests are about the HTTP surface, not the database dialect."""
    return str(request.param)


@pytest.fixture
def demo(settings: Settings) -> Settings:
    seed(settings)
    return settings


@pytest.fixture
def client(demo: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(demo)) as test_client:
        yield test_client


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {DEMO_API_KEY}"}
