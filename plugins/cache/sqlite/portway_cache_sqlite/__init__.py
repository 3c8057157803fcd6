"""The SQLite cache backend: answers on disk, surviving restarts.

``cache: {backend: sqlite, path: portway-cache.db}``.  The database is the
core's SQLite store (:mod:`portway.stores.sql`): ``sqlite3`` on a thread of
its own, so the event loop never waits on the disk, and each call here is
one trip to that thread (a lookup through aiosqlite was three: the
statement, the row, the cursor's close; each costs the waiting request a
turn of a busy event loop).  The journal is WAL, so several worker processes
can share one file (one writer at a time, readers never blocked).  Expired
entries are skipped when read and purged now and then when written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from portway import hookimpl
from portway.stores.sql import SQLiteDatabase

PORTWAY_PLUGIN_KIND = "cache"

#: Writes between two purges of expired rows.
PURGE_EVERY = 1000

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires)",
    "CREATE TABLE IF NOT EXISTS vectors (id INTEGER PRIMARY KEY AUTOINCREMENT, bucket TEXT NOT NULL,"
    " key TEXT NOT NULL, vector BLOB NOT NULL, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS vectors_bucket ON vectors (bucket, id)",
)


class SQLiteConfig(BaseModel):
    """The ``cache:`` keys of this backend."""

    model_config = ConfigDict(extra="forbid")
    #: The database file (made if missing), relative to the directory Portway runs in.
    path: str = Field("portway-cache.db", min_length=1)


class SQLiteBackend:
    config_model = SQLiteConfig

    def __init__(self, config: SQLiteConfig) -> None:
        self.path = Path(config.path)
        self._db: SQLiteDatabase | None = None
        self._writes = 0

    @property
    def db(self) -> SQLiteDatabase:
        if self._db is None:
            raise RuntimeError("the SQLite cache is not open")
        return self._db

    async def start(self) -> None:
        # sqlite:/// + a relative path stays relative; an absolute one gives sqlite:////abs/path.
        self._db = await SQLiteDatabase.open(f"sqlite:///{self.path}")
        for statement in SCHEMA:
            await self._db.execute(statement)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def get(self, key: str) -> bytes | None:
        rows = await self.db.fetch("SELECT value FROM entries WHERE key = ? AND expires > ?", key, time.time())
        return bytes(rows[0]["value"]) if rows else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        now = time.time()
        await self.db.execute("INSERT OR REPLACE INTO entries (key, value, expires) VALUES (?, ?, ?)",
                              key, value, now + ttl)
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            await self.db.execute("DELETE FROM entries WHERE expires <= ?", now)
            # A reader further on than a bucket's new length re-reads it whole; one that is not may skip
            # a few new vectors until then: missed semantic hits, never a wrong answer.
            await self.db.execute("DELETE FROM vectors WHERE expires <= ?", now)

    async def delete(self, key: str) -> bool:
        return await self.db.execute("DELETE FROM entries WHERE key = ?", key) > 0

    async def clear(self, namespace: str | None = None) -> int:
        if namespace is None:
            count = await self.db.execute("DELETE FROM entries")
            await self.db.execute("DELETE FROM vectors")
            return count
        # Keys and buckets start with "<namespace>:"; a range scan rather than LIKE (no escaping of _ or %).
        low, high = namespace + ":", namespace + ";"
        count = await self.db.execute("DELETE FROM entries WHERE key >= ? AND key < ?", low, high)
        await self.db.execute("DELETE FROM vectors WHERE bucket >= ? AND bucket < ?", low, high)
        return count

    async def add_vector(self, bucket: str, key: str, vector: bytes, ttl: float) -> None:
        await self.db.execute("INSERT INTO vectors (bucket, key, vector, expires) VALUES (?, ?, ?, ?)",
                              bucket, key, vector, time.time() + ttl)

    async def vectors(self, bucket: str, start: int) -> tuple[list[tuple[str, bytes]], int]:
        rows = await self.db.fetch("SELECT key, vector FROM vectors WHERE bucket = ? ORDER BY id LIMIT -1 OFFSET ?",
                                   bucket, start)
        total = (await self.db.fetch("SELECT count(*) AS n FROM vectors WHERE bucket = ?", bucket))[0]["n"]
        return [(row["key"], bytes(row["vector"])) for row in rows], total


@hookimpl
def register_cache_backends(register: Any) -> None:
    register("sqlite", SQLiteBackend)
