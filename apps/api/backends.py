"""Rate limiting and caching, backed by Redis when configured and in-process otherwise.

Rate limits use the `limits` library (moving window). When Redis stops answering, requests
fall back to the in-process limiter and cache instead of failing, and `redis_ok` turns false
so /readyz reports the degradation.

A circuit breaker (pybreaker) stands in front of Redis: after `BREAKER_FAILURES` failures in a
row it opens, and for `breaker_seconds` every request takes the in-process path at once
instead of waiting out a socket timeout each (a frozen Redis, which accepts connections and
never answers, otherwise costs every request its timeout). Then one request tries Redis again
(half-open) and a success closes the breaker. The outage is logged once when the breaker opens
and once when it closes, not once per request.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any

import pybreaker
from limits import parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("dex.api.backends")

BREAKER_FAILURES = 3
"""Redis failures in a row that open the breaker."""


class _Announcer(pybreaker.CircuitBreakerListener):
    """One log line per change of the breaker's state."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        if new_state.name == pybreaker.STATE_OPEN:
            log.warning(
                "redis failing: rate limits and the cache are in-process for %.0f s", self.seconds
            )
        elif new_state.name == pybreaker.STATE_CLOSED and old_state.name != pybreaker.STATE_CLOSED:
            log.info("redis answers again: rate limits and the cache are shared once more")


class Backends:
    def __init__(
        self,
        redis_url: str | None,
        rate_limit: str,
        ca_file: str | None = None,
        breaker_seconds: float = 10.0,
    ) -> None:
        self.redis_url = redis_url
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=BREAKER_FAILURES,
            reset_timeout=breaker_seconds,
            listeners=[_Announcer(breaker_seconds)],
            name="redis",
        )
        self.limit = parse(rate_limit)
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.redis_ok = redis_url is None
        self.remote: MovingWindowRateLimiter | None = None
        self.redis: Any = None
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        if redis_url:
            import redis

            options: dict[str, Any] = {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}
            if ca_file:
                # A private, per-instance CA (Memorystore's): the chain is verified against
                # it, but not the host name, since Memorystore names its IP in the
                # certificate's CN and in no subject alternative name, which a host-name
                # check never accepts for an IP; the CA signs only this instance's certs
                options["ssl_ca_certs"] = ca_file
                options["ssl_cert_reqs"] = "required"
                options["ssl_check_hostname"] = False
            self.redis = redis.Redis.from_url(redis_url, **options)
            self.remote = MovingWindowRateLimiter(storage_from_string(redis_url, **options))
            self.ping()

    def ping(self) -> bool:
        if self.redis is None:
            return True
        try:
            self.breaker.call(self.redis.ping)
            self.redis_ok = True
        except Exception:
            self.redis_ok = False
        return self.redis_ok

    def hit(self, client: str) -> int | None:
        """Count a request; None when allowed, else the seconds to wait (Retry-After)."""
        limiter = self.local
        if self.remote is not None:
            try:
                if self.breaker.call(self.remote.hit, self.limit, client):
                    self.redis_ok = True
                    return None
                stats = self.breaker.call(self.remote.get_window_stats, self.limit, client)
                return max(1, math.ceil(stats.reset_time - time.time()))
            except Exception:
                self.redis_ok = False  # the breaker logged it; the in-process limiter serves
        if limiter.hit(self.limit, client):
            return None
        reset = limiter.get_window_stats(self.limit, client).reset_time
        return max(1, math.ceil(reset - time.time()))

    def cache_get(self, key: str) -> Any:
        if self.redis is not None:
            try:
                raw = self.breaker.call(self.redis.get, key)
                self.redis_ok = True
                return None if raw is None else json.loads(raw)
            except Exception:
                self.redis_ok = False
        with self._lock:
            hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return json.loads(hit[1])
        return None

    def cache_set(self, key: str, value: Any, ttl: int) -> None:
        text = json.dumps(value)
        if self.redis is not None:
            try:
                self.breaker.call(self.redis.set, key, text, ex=ttl)
                self.redis_ok = True
                return
            except Exception:
                self.redis_ok = False
        with self._lock:
            self._cache[key] = (time.monotonic() + ttl, text)
