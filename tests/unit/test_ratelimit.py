"""The per-principal token bucket."""

import pytest

from shared.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestRateLimiter:
    def test_a_burst_is_allowed_then_the_rate_applies_with_the_wait_named(self):
        clock = Clock()
        limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
        assert [limiter.retry_after("a") for _ in range(3)] == [None, None, None]
        assert limiter.retry_after("a") == pytest.approx(1.0)
        clock.now = 1.0
        assert limiter.retry_after("a") is None

    def test_principals_have_their_own_buckets(self):
        limiter = RateLimiter(per_minute=60, burst=1, clock=Clock())
        assert limiter.retry_after("a") is None and limiter.retry_after("b") is None
        assert limiter.retry_after("a") is not None

    def test_zero_means_no_limit(self):
        limiter = RateLimiter(per_minute=0, burst=1, clock=Clock())
        assert all(limiter.retry_after("a") is None for _ in range(1000))

    def test_the_buckets_kept_are_bounded_and_a_caller_just_refused_stays_refused(self):
        clock = Clock()
        limiter = RateLimiter(per_minute=1, burst=1, clock=clock, max_keys=100)
        limiter.retry_after("guesser")
        for n in range(10_000):  # a flood of addresses, each seen once
            clock.now += 0.001
            limiter.retry_after(f"198.51.{n // 256}.{n % 256}")
            if n % 50 == 0:
                assert limiter.retry_after("guesser") is not None  # its empty bucket is never forgotten while in use
        assert len(limiter._buckets) <= 100
