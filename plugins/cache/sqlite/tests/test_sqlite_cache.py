"""The SQLite backend: answers survive a restart of the gateway; expired
ones are not served; a namespace is cleared without touching another."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from portway_cache.testing import CacheUpstream, gateway_config
from portway_cache_sqlite import SQLiteBackend, SQLiteConfig

from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer


@pytest.fixture
def upstream():
    with FakeUpstream() as fake:
        yield CacheUpstream(fake)


def test_the_cache_survives_a_restart(upstream: CacheUpstream, tmp_path: Path) -> None:
    cache = {"backend": "sqlite", "path": str(tmp_path / "cache.db")}
    messages = [{"role": "user", "content": "remember me"}]
    with GatewayServer(gateway_config(upstream.upstream, cache)) as server:
        first = server.openai_client().chat.completions.with_raw_response.create(model="fast", messages=messages)
    with GatewayServer(gateway_config(upstream.upstream, cache)) as server:
        again = server.openai_client().chat.completions.with_raw_response.create(model="fast", messages=messages)
    assert first.headers["x-portway-cache"] == "miss" and again.headers["x-portway-cache"] == "hit"
    assert again.parse().choices[0].message.content == upstream.answer("remember me")
    assert upstream.chat_calls() == 1


def test_the_backend_keeps_expires_and_clears(tmp_path: Path) -> None:
    async def run() -> None:
        backend = SQLiteBackend(SQLiteConfig(path=str(tmp_path / "b.db")))
        await backend.start()
        try:
            await backend.set("a:1", b"one", 60)
            await backend.set("b:1", b"other", 60)
            await backend.set("a:2", b"brief", 0.05)
            await backend.add_vector("a:bucket", "a:1", b"\x00" * 8, 60)
            assert await backend.get("a:1") == b"one"
            time.sleep(0.1)
            assert await backend.get("a:2") is None
            assert await backend.vectors("a:bucket", 0) == ([("a:1", b"\x00" * 8)], 1)
            assert await backend.clear("a") == 2
            assert await backend.get("a:1") is None and await backend.get("b:1") == b"other"
            assert await backend.vectors("a:bucket", 0) == ([], 0)
            assert await backend.delete("b:1") is True and await backend.delete("b:1") is False
        finally:
            await backend.close()

    asyncio.run(run())


def test_a_lookup_and_a_store_are_one_trip_each_to_the_database_thread(tmp_path: Path) -> None:
    """A cached request waits for its lookup, and every trip to the SQLite
    thread costs it a turn of a busy event loop (through aiosqlite a lookup
    was three: the statement, the row, the cursor's close)."""

    async def run() -> None:
        backend = SQLiteBackend(SQLiteConfig(path=str(tmp_path / "trips.db")))
        await backend.start()
        thread = backend.db._thread
        real_run, trips = thread.run, []

        async def counted(fn, *args):
            trips.append(fn)
            return await real_run(fn, *args)

        thread.run = counted
        try:
            await backend.set("n:1", b"value", 60)
            assert len(trips) == 1
            assert await backend.get("n:1") == b"value"
            assert await backend.get("n:2") is None
            assert len(trips) == 3
        finally:
            thread.run = real_run
            await backend.close()

    asyncio.run(run())
