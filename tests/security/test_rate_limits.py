"""Per-IP rate limit on staff sign-in (issue 7): 429 with Retry-After, nothing recorded.

The limit sits in front of the per-username lock-out: it stops one address from sweeping many
usernames, which the lock-out (counted per username) cannot see. With a Redis broker the
counters live in Redis, so every uvicorn worker shares them: two app instances here stand for
two workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from infra import RedisServer
from sqlalchemy import func, select

from api.app import create_app
from api.demo import DEMO_STAFF_PASSWORD
from api.ratelimit import WINDOW_SECONDS
from api.staff.models import StaffSignIn
from settings.config import Settings
from settings.db import engine_for, session_scope

LIMIT = 3


def _fresh_window() -> None:
    """Avoid straddling a window boundary (a reset mid-test would hide the 429)."""
    left = WINDOW_SECONDS - (time.time() % WINDOW_SECONDS)
    if left < 8:
        time.sleep(left + 0.2)


def _sign_ins(settings: Settings) -> int:
    with session_scope(engine_for(settings.effective_database_url)) as session:
        return int(session.scalar(select(func.count()).select_from(StaffSignIn)) or 0)


def _attempt(client: TestClient, username: str, password: str = "sai-mat-khau") -> int:
    response = client.post(
        "/staff/login",
        data={"username": username, "password": password},
        follow_redirects=False,
    )
    return response.status_code


def _assert_limited(client: TestClient) -> None:
    response = client.post(
        "/staff/login",
        data={"username": "thuquy", "password": DEMO_STAFF_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW_SECONDS + 1


@pytest.fixture
def limited(demo: Settings) -> Settings:
    return demo.model_copy(update={"rate_limit_sign_in_per_minute": LIMIT})


def test_sign_in_sweep_from_one_address_gets_429(limited: Settings) -> None:
    _fresh_window()
    with TestClient(create_app(limited)) as client:
        # different usernames: the per-username lock-out never triggers, the per-IP limit does
        assert [_attempt(client, f"nguoi{i}") for i in range(LIMIT)] == [401] * LIMIT
        before = _sign_ins(limited)
        _assert_limited(client)  # even the right password is refused until the window ends
        assert _sign_ins(limited) == before  # refused before the form was read: no audit row
        assert client.get("/staff/login").status_code == 200  # the form itself is not limited


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    redis_server.client(3).flushdb()
    yield redis_server.url_for(3)
    redis_server.client(3).flushdb()


def test_redis_counters_are_shared_by_workers(
    limited: Settings, redis_url: str, redis_server: RedisServer
) -> None:
    shared = limited.model_copy(update={"broker_url": redis_url})
    _fresh_window()
    with TestClient(create_app(shared)) as one, TestClient(create_app(shared)) as two:
        assert _attempt(one, "a") == 401
        assert _attempt(two, "b") == 401
        assert _attempt(one, "c") == 401
        _assert_limited(two)
    redis = redis_server.client(3)
    keys = [k.decode() for k in redis.keys("motcua:rl:sign_in:*")]
    assert len(keys) == 1, keys
    assert int(redis.get(keys[0]) or 0) == LIMIT + 1
    assert 0 < int(redis.ttl(keys[0])) <= 2 * WINDOW_SECONDS  # counters expire by themselves
