"""Signing staff in through the real form for API tests (issue 6): cookie plus CSRF header."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.demo import DEMO_STAFF_PASSWORD


def sign_in(
    client: TestClient, username: str, password: str = DEMO_STAFF_PASSWORD
) -> dict[str, str]:
    """Signs ``username`` in on ``client`` (replacing whoever was signed in) and returns the
    header that carries the session's CSRF token for state-changing requests."""
    client.cookies.clear()
    res = client.post(
        "/staff/login",
        data={"username": username, "password": password},
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text
    me = client.get("/staff/me")
    assert me.status_code == 200 and me.json()["username"] == username, me.text
    return {"X-CSRF-Token": me.json()["csrf_token"]}
