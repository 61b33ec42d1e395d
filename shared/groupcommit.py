"""Group commit for consumers: events delivered while one transaction runs are folded together in the next.

aiormq hands each delivery to its own task, so up to `prefetch_count` handlers run at once. Each
submits its event here and waits; one drainer takes everything waiting, runs it in a single
transaction and wakes every handler with the outcome, so each message is still acked only after
its commit. A batch that fails is retried one event at a time: a poison event fails alone and goes
its own way to the dead letters, the others are committed. Nothing waits for a batch to fill: the
first event of a quiet moment goes alone, so latency does not grow.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("baove.groupcommit")

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """`run_batch` gives one result per item, an exception instance for an item refused on its own merits
    (raised in that item's caller only). An exception raised by `run_batch` is every item's answer when
    `shared_failure(exc)` says so (the database away: no item would fare better alone, and running them
    again could store a report twice if a commit's outcome is unknown); any other sends each item to `run_one`."""

    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[Item]], Awaitable[list[Result | BaseException] | None]],
        run_one: Callable[[Item], Awaitable[Result]],
        *,
        max_batch: int = 100,
        shared_failure: Callable[[Exception], bool] = lambda exc: False,
    ) -> None:
        self.name = name
        self._run_batch = run_batch
        self._run_one = run_one
        self._max = max_batch
        self._shared_failure = shared_failure
        self._waiting: list[tuple[Item, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None

    async def submit(self, item: Item) -> Result:
        """Returns once the item is committed, with its result; raises what processing it raised."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._drainer is None or self._drainer.done():
            # A context of its own: the drainer serves every caller, it must not carry the first one's log context.
            self._drainer = asyncio.create_task(self._drain(), name=f"group-commit-{self.name}", context=contextvars.Context())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            await asyncio.sleep(0)  # deliveries already read join this batch
            batch = [(item, f) for item, f in self._waiting[: self._max] if not f.done()]
            del self._waiting[: self._max]
            if not batch:
                continue
            if len(batch) == 1:
                await self._alone(*batch[0])
                continue
            try:
                results = await self._run_batch([item for item, _ in batch])
            except Exception as exc:
                if self._shared_failure(exc):
                    log.warning("batch failed", extra={"consumer": self.name, "size": len(batch), "error": type(exc).__name__})
                    for _, future in batch:
                        _settle(future, exc)
                    continue
                # One bad item, most likely: each on its own, so that only that one fails.
                log.warning(
                    "batch failed, processing its items one by one",
                    extra={"consumer": self.name, "size": len(batch), "error": type(exc).__name__},
                )
                for item, future in batch:
                    await self._alone(item, future)
                continue
            for (_, future), result in zip(batch, results if results is not None else [None] * len(batch)):
                _settle(future, result)

    async def _alone(self, item: Item, future: asyncio.Future) -> None:
        if future.done():  # its caller is gone: nothing waits for the answer
            return
        try:
            result = await self._run_one(item)
        except Exception as exc:
            _settle(future, exc)
            return
        _settle(future, result)


def _settle(future: asyncio.Future, result) -> None:
    if future.done():  # its caller is gone (cancelled): an event is redelivered, a request retried
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
