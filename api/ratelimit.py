"""Per-client-IP rate limits for the public look-up and staff sign-in (issue 7).

Fixed one-minute windows: simple to reason about at a counter ("20 look-ups a minute") and
cheap. In the production profile the counters live in Redis (the broker), so every uvicorn
worker shares them; the embedded install has one process and counts in memory. The sign-in
lock-out per username (api.staff.sessions) stays the main defence against password guessing;
this limit stops one address from sweeping many usernames or dossier codes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from fastapi import Request

from settings.config import Settings
from settings.errors import ProblemError

__all__ = ["Limiter", "RateLimited", "limiter_for", "rate_limit"]

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60


class RateLimited(ProblemError):
    code = "rate_limited"
    status = 429
    title_vi = "Quá nhiều yêu cầu; vui lòng thử lại sau ít phút"
    title_en = "Too many requests; please try again in a minute"


class Limiter(Protocol):
    def hit(self, key: str, window: int) -> int:
        """Counts one hit for ``key`` in window number ``window``; returns the count so far."""
        ...


class MemoryLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def hit(self, key: str, window: int) -> int:
        with self._lock:
            if len(self._counts) > 50_000:  # bounded: old windows are dropped
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            count = self._counts.get((key, window), 0) + 1
            self._counts[(key, window)] = count
            return count


class RedisLimiter:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def hit(self, key: str, window: int) -> int:
        name = f"motcua:rl:{key}:{window}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, WINDOW_SECONDS * 2)
        count, _ = pipe.execute()
        return int(count)


_limiters: dict[str, Limiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(settings: Settings) -> Limiter:
    """One limiter per broker URL: Redis when the broker is Redis, memory otherwise."""
    url = settings.effective_broker_url
    with _limiters_lock:
        if url not in _limiters:
            redis_url = url.startswith(("redis://", "rediss://"))
            _limiters[url] = RedisLimiter(url) if redis_url else MemoryLimiter()
        return _limiters[url]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check(settings: Settings, scope: str, request: Request, per_minute: int) -> None:
    """Raises :class:`RateLimited` (429 with Retry-After) once ``per_minute`` is exceeded.

    If Redis cannot be reached the request is let through and logged: refusing every citizen
    because a cache is down would be worse than a minute without a limit.
    """
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    try:
        count = limiter_for(settings).hit(f"{scope}:{client_ip(request)}", window)
    except Exception:
        log.warning("rate limiter unavailable; request let through", exc_info=True)
        return
    if count > per_minute:
        retry_after = int(WINDOW_SECONDS - (now % WINDOW_SECONDS)) + 1
        raise RateLimited(
            f"tối đa {per_minute} yêu cầu mỗi phút / at most {per_minute} requests a minute",
            extra={"retry_after": retry_after},
        )


def rate_limit(scope: str, setting: str) -> Callable[[Request], None]:
    """Dependency: ``Depends(rate_limit("lookup", "rate_limit_lookup_per_minute"))``."""

    def dependency(request: Request) -> None:
        settings: Settings = request.app.state.settings
        check(settings, scope, request, int(getattr(settings, setting)))

    return dependency
