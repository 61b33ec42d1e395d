"""Per-principal rate limits: a token bucket per principal, kept in each process."""

from __future__ import annotations

import time


class RateLimiter:
    """`per_minute` sustained, `burst` at once; `retry_after` says how long a refused caller should wait."""

    def __init__(self, per_minute: float, burst: int, clock=time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def retry_after(self, key: str) -> float | None:
        """Take one token for `key`; None when allowed, else the seconds until one is free."""
        if self.rate <= 0:
            return None
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate
