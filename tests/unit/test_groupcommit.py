"""Group commit: items waiting together run as one batch; how a failed batch answers each caller."""

import asyncio
import contextvars

from shared.groupcommit import GroupCommit

who = contextvars.ContextVar("who", default=None)


class Store:
    def __init__(self, fail_batch: Exception | None = None, bad: set[int] = frozenset()):
        self.batches: list[list[int]] = []
        self.alone: list[int] = []
        self.fail_batch = fail_batch
        self.bad = bad
        self.seen_context: list[object] = []

    async def run_batch(self, items):
        self.seen_context.append(who.get())
        await asyncio.sleep(0.01)  # a transaction's time: later callers pile up meanwhile
        self.batches.append(list(items))
        if self.fail_batch is not None:
            raise self.fail_batch
        if self.bad & set(items):
            raise ValueError("a bad item")
        return [item * 10 for item in items]

    async def run_one(self, item):
        self.alone.append(item)
        if item in self.bad:
            raise ValueError(f"bad item {item}")
        return item * 10


async def submit_all(group: GroupCommit, n: int):
    async def one(i):
        who.set(f"caller-{i}")
        return await group.submit(i)

    return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)


async def test_items_waiting_together_share_batches_and_each_gets_its_own_result():
    store = Store()
    results = await submit_all(GroupCommit("t", store.run_batch, store.run_one), 50)
    assert results == [i * 10 for i in range(50)]
    assert len(store.batches) + len(store.alone) < 10
    assert sorted([i for b in store.batches for i in b] + store.alone) == list(range(50))  # each run exactly once


async def test_a_bad_item_fails_alone_and_the_others_are_stored():
    store = Store(bad={7})
    results = await submit_all(GroupCommit("t", store.run_batch, store.run_one), 20)
    assert isinstance(results[7], ValueError)
    assert [r for i, r in enumerate(results) if i != 7] == [i * 10 for i in range(20) if i != 7]


async def test_a_shared_failure_is_every_items_answer_and_nothing_runs_again():
    class Away(Exception):
        pass

    store = Store(fail_batch=Away("database away"))
    group = GroupCommit("t", store.run_batch, store.run_one, shared_failure=lambda exc: isinstance(exc, Away))
    results = await submit_all(group, 20)
    batched = {i for b in store.batches for i in b}
    assert all(isinstance(results[i], Away) for i in batched) and len(batched) > 1
    assert set(store.alone).isdisjoint(batched)  # never run a second time


async def test_the_batch_does_not_run_in_its_first_callers_log_context():
    store = Store()
    await submit_all(GroupCommit("t", store.run_batch, store.run_one), 10)
    assert store.seen_context and set(store.seen_context) == {None}
