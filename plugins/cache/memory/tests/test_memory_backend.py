"""The memory backend's bounds and expiry, with a clock the test advances."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from portway_cache_memory import MemoryBackend, MemoryConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(work: Any) -> Any:
    return asyncio.run(work)


def backend(clock: Clock, **config: Any) -> MemoryBackend:
    return MemoryBackend(MemoryConfig(**config), clock=clock)


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = backend(Clock(), max_entries=2)

    async def steps() -> list[Any]:
        await cache.set("n:a", b"A", 60)
        await cache.set("n:b", b"B", 60)
        await cache.get("n:a")           # a is now the most recently used
        await cache.set("n:c", b"C", 60)  # so b goes
        return [await cache.get(k) for k in ("n:a", "n:b", "n:c")]

    assert run(steps()) == [b"A", None, b"C"] and len(cache) == 2


@pytest.mark.parametrize(("sizes", "kept"), [
    ([4, 4], ["n:0", "n:1"]),
    ([4, 4, 4], ["n:1", "n:2"]),         # 12 bytes > 10: the oldest goes
    ([4, 11], ["n:0"]),                  # larger than the whole cache: not kept
    ([9, 2], ["n:1"]),
])
def test_the_byte_bound(sizes: list[int], kept: list[str]) -> None:
    cache = backend(Clock(), max_bytes=10)

    async def steps() -> list[str]:
        for i, size in enumerate(sizes):
            await cache.set(f"n:{i}", b"x" * size, 60)
        return [f"n:{i}" for i in range(len(sizes)) if await cache.get(f"n:{i}") is not None]

    assert run(steps()) == kept
    assert cache.bytes == sum(sizes[int(k[2:])] for k in kept)


def test_entries_and_vectors_expire() -> None:
    clock = Clock()
    cache = backend(clock)

    async def steps() -> list[Any]:
        await cache.set("n:a", b"A", 10)
        await cache.add_vector("n:bucket", "n:a", b"v", 10)
        seen = [await cache.get("n:a"), await cache.vectors("n:bucket", 0)]
        clock.now += 10
        return [*seen, await cache.get("n:a"), await cache.vectors("n:bucket", 0)]

    assert run(steps()) == [b"A", ([("n:a", b"v")], 1), None, ([], 0)]
    assert cache.bytes == 0


def test_clear_by_namespace_and_all() -> None:
    cache = backend(Clock())

    async def steps() -> list[Any]:
        for key in ("a:1", "a:2", "ab:1", "b:1"):
            await cache.set(key, b"x", 60)
        await cache.add_vector("a:bucket", "a:1", b"v", 60)
        cleared = await cache.clear("a")
        left = [k for k in ("a:1", "a:2", "ab:1", "b:1") if await cache.get(k) is not None]
        return [cleared, left, await cache.vectors("a:bucket", 0), await cache.clear(), len(cache)]

    assert run(steps()) == [2, ["ab:1", "b:1"], ([], 0), 2, 0]
