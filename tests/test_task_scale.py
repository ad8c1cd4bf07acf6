"""Scale: 10 runs at once, each mapping a task 10,000 times, all recorded exactly."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

import strikes as dn

RUNS = 10
CALLS = 10_000


@dn.task
async def sample(index: int) -> int:
    await anyio.lowlevel.checkpoint()  # let the 100 calls in flight interleave
    return index * 2


@dn.task
async def sweep(calls: int) -> int:
    outputs = await sample.map(list(range(calls)), concurrency=100)
    assert outputs == [index * 2 for index in range(calls)]
    return len(outputs)


@pytest.mark.slow
@pytest.mark.anyio
async def test_ten_runs_of_ten_thousand_tasks_are_stored_exactly(store: dn.Store) -> None:
    """100,000 task records land in the store, each under its own run and its sweep."""
    run_ids: dict[str, str] = {}

    async def one(name: str) -> None:
        async with dn.run(name) as run:
            assert await sweep(CALLS) == CALLS
        run_ids[name] = run.run_id

    async with anyio.create_task_group() as group:
        for number in range(RUNS):
            group.start_soon(one, f"scale-{number}")

    records = store.runs()
    assert sorted(record.name for record in records) == sorted(run_ids)
    total = 0
    for record in records:
        assert record.id == run_ids[record.name]
        assert record.status == "finished"
        (root,) = record.tasks
        assert (root.name, root.output, root.status) == ("sweep", CALLS, "finished")
        samples = root.tasks
        assert all(task.name == "sample" for task in samples)
        assert all(task.parent_id == root.id and task.run_id == record.id for task in samples)
        assert all(task.status == "finished" for task in samples)
        assert sorted(task.inputs["index"] for task in samples) == list(range(CALLS))
        assert all(task.output == task.inputs["index"] * 2 for task in samples)
        assert len(record.all_tasks) == CALLS + 1
        total += len(samples)
    assert total == RUNS * CALLS
