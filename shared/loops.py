"""Work repeated in the background until cancelled or stopped, and the backoff between failed attempts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Backoff:
    """Delays that double after each failure up to `cap`, and start over after a success."""

    def __init__(self, first: float = 0.5, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def delay(self) -> float:
        """The delay to wait now; the next one is twice as long."""
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay

    def nth(self, failures: int) -> float:
        """The delay after `failures` failures in a row (0: the first delay), without changing this backoff."""
        return min(self.first * 2 ** min(failures, 62), self.cap)

    def reset(self) -> None:
        self._next = self.first


async def repeat(
    tick: Callable[[], Awaitable[object]],
    *,
    pause: float | Callable[[], Awaitable[object]],
    failed: Callable[[Exception], None],
    backoff: Backoff | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    """Run `tick`, then `pause` (seconds, or a coroutine to await), until cancelled or `stopped()`.

    A failing tick never ends the loop (the database or the broker may be away): `failed` says so, and the
    next try comes after the backoff's delay when one is given, after the pause otherwise."""
    while not stopped():
        try:
            await tick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failed(exc)
            if backoff is not None:
                await asyncio.sleep(backoff.delay())
                continue
        else:
            if backoff is not None:
                backoff.reset()
        await (asyncio.sleep(pause) if isinstance(pause, (int, float)) else pause())
