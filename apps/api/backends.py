"""Rate limiting and caching, backed by Redis when configured and in-process otherwise.

Rate limits use the `limits` library (moving window). When Redis stops answering, requests
fall back to the in-process limiter and cache instead of failing, and `redis_ok` turns false
so /readyz reports the degradation.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any

from limits import parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("dex.api.backends")


class Backends:
    def __init__(self, redis_url: str | None, rate_limit: str, ca_file: str | None = None) -> None:
        self.redis_url = redis_url
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
            self.redis.ping()
            self.redis_ok = True
        except Exception:
            self.redis_ok = False
        return self.redis_ok

    def hit(self, client: str) -> int | None:
        """Count a request; None when allowed, else the seconds to wait (Retry-After)."""
        limiter = self.local
        if self.remote is not None:
            try:
                if self.remote.hit(self.limit, client):
                    self.redis_ok = True
                    return None
                reset = self.remote.get_window_stats(self.limit, client).reset_time
                return max(1, math.ceil(reset - time.time()))
            except Exception:
                self.redis_ok = False
                log.warning("redis unavailable for rate limiting; using the in-process limiter")
        if limiter.hit(self.limit, client):
            return None
        reset = limiter.get_window_stats(self.limit, client).reset_time
        return max(1, math.ceil(reset - time.time()))

    def cache_get(self, key: str) -> Any:
        if self.redis is not None:
            try:
                raw = self.redis.get(key)
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
                self.redis.set(key, text, ex=ttl)
                self.redis_ok = True
                return
            except Exception:
                self.redis_ok = False
        with self._lock:
            self._cache[key] = (time.monotonic() + ttl, text)
