"""A database that is restarting answers 503 with Retry-After, not 500 (found by the fault
suite: banks retry on 5xx, but a 503 tells them when)."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError, ProgrammingError

from api import problems


def _app(exc: Exception) -> TestClient:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")),
    ],
    ids=["psycopg", "admin-shutdown", "sqlalchemy-wrapped"],
)
def test_connection_loss_is_503_with_retry_after(exc: Exception) -> None:
    response = _app(exc).get("/boom")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["code"] == "database_unavailable"


def test_a_query_bug_stays_a_500() -> None:
    exc = ProgrammingError("SELECT nope", {}, psycopg.errors.UndefinedColumn("no column"))
    response = _app(exc).get("/boom")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
