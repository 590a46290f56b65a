"""The executor's gate: paper batches together, everything else alone, a waiting exclusive first."""

from __future__ import annotations

import asyncio

import pytest

from kubetrade.executor.gate import Gate


async def test_batches_share_the_gate_and_everything_else_waits_for_them() -> None:
    gate, log = Gate(), []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def batch(name: str) -> None:
        async with gate.shared():
            log.append(f"{name} in")
            if log.count("a in") + log.count("b in") == 2:
                inside.set()
            await release.wait()
            log.append(f"{name} out")

    async def alone(name: str) -> None:
        async with gate.exclusive():
            log.append(f"{name} in")
            await asyncio.sleep(0.01)
            log.append(f"{name} out")

    a, b = asyncio.create_task(batch("a")), asyncio.create_task(batch("b"))
    await asyncio.wait_for(inside.wait(), 1)  # both batches hold the gate at once
    assert not gate.idle
    cancel = asyncio.create_task(alone("cancel"))
    await asyncio.sleep(0.01)
    late = asyncio.create_task(batch("late"))  # behind the waiting exclusive holder
    await asyncio.sleep(0.01)
    assert "cancel in" not in log and "late in" not in log
    release.set()
    await asyncio.gather(a, b, cancel, late)
    assert log.index("cancel in") > max(log.index("a out"), log.index("b out"))
    assert log.index("late in") > log.index("cancel out")
    assert gate.idle


async def test_a_waiter_that_gives_up_lets_the_batches_it_held_back_go() -> None:
    gate = Gate()
    release = asyncio.Event()

    async def holding() -> None:
        async with gate.shared():
            await release.wait()

    first = asyncio.create_task(holding())
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(gate.exclusive().__aenter__())
    await asyncio.sleep(0.01)
    behind = asyncio.create_task(holding())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await asyncio.wait_for(asyncio.gather(first, behind), 1)  # not stuck behind a waiter that left
    assert gate.idle
