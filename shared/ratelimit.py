"""Per-principal rate limits: a token bucket per principal, kept in each process."""

from __future__ import annotations

import time


class RateLimiter:
    """`per_minute` sustained, `burst` at once; `retry_after` says how long a refused caller should wait.

    At most `max_keys` buckets are kept (keys may be addresses, which anyone can vary): past it, the
    buckets full again are forgotten (a new one starts full anyway), then the least recently used.
    """

    def __init__(self, per_minute: float, burst: int, clock=time.monotonic, max_keys: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # oldest use first

    def retry_after(self, key: str) -> float | None:
        """Take one token for `key`; None when allowed, else the seconds until one is free."""
        if self.rate <= 0:
            return None
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._evict(now)
        return None if allowed else (1.0 - tokens) / self.rate

    def _evict(self, now: float) -> None:
        """Down to three quarters of `max_keys`, so the work is paid once per many new keys."""
        for key, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.burst:
                del self._buckets[key]
        keep = self.max_keys * 3 // 4
        for key in list(self._buckets)[: max(0, len(self._buckets) - keep)]:
            del self._buckets[key]
