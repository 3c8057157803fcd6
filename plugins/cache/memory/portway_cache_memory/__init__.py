"""The in-process cache backend: an LRU bounded by entries and bytes.

The default backend (``cache: {backend: memory}``).  Per process: each
worker has its own, and a restart empties it.  Every operation is a
dictionary operation on the event loop's thread, with no await inside, so
there is nothing to lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from portway import hookimpl

PORTWAY_PLUGIN_KIND = "cache"


class MemoryConfig(BaseModel):
    """The ``cache:`` keys of this backend."""

    model_config = ConfigDict(extra="forbid")
    #: At most this many answers; the least recently used go first.
    max_entries: int = Field(10_000, ge=1)
    #: At most this many bytes of stored answers (None: no byte bound).
    max_bytes: int | None = Field(None, ge=1)


class MemoryBackend:
    config_model = MemoryConfig

    def __init__(self, config: MemoryConfig, clock: Any = time.monotonic) -> None:
        self.max_entries = config.max_entries
        self.max_bytes = config.max_bytes
        self._clock = clock
        #: key -> (value, expires at on ``clock``), least recently used first.
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.bytes = 0
        #: bucket -> [(key, vector)], and when the bucket's newest entry expires.
        self._vectors: dict[str, tuple[list[tuple[str, bytes]], float]] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._entries.clear()
        self._vectors.clear()
        self.bytes = 0

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[1] <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return found[0]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if self.max_bytes is not None and len(value) > self.max_bytes:
            return  # larger than the whole cache: not kept
        self._remove(key)
        self._entries[key] = (value, self._clock() + ttl)
        self.bytes += len(value)
        while len(self._entries) > self.max_entries or (self.max_bytes is not None and self.bytes > self.max_bytes):
            oldest = next(iter(self._entries))
            self._remove(oldest)

    async def delete(self, key: str) -> bool:
        return self._remove(key)

    async def clear(self, namespace: str | None = None) -> int:
        if namespace is None:
            count = len(self._entries)
            self._entries.clear()
            self._vectors.clear()
            self.bytes = 0
            return count
        prefix = namespace + ":"
        keys = [k for k in self._entries if k.startswith(prefix)]
        for key in keys:
            self._remove(key)
        for bucket in [b for b in self._vectors if b.startswith(prefix)]:
            del self._vectors[bucket]
        return len(keys)

    async def add_vector(self, bucket: str, key: str, vector: bytes, ttl: float) -> None:
        now = self._clock()
        rows, expires = self._vectors.get(bucket, ([], 0.0))
        if expires <= now:
            rows = []  # every answer it pointed to has expired
        rows.append((key, vector))
        if len(rows) > self.max_entries:
            # More vectors than answers can be kept: the bucket starts again (readers notice the
            # smaller count and re-read it).
            rows = rows[-self.max_entries // 2:]
        self._vectors[bucket] = (rows, max(expires, now + ttl))

    async def vectors(self, bucket: str, start: int) -> tuple[list[tuple[str, bytes]], int]:
        rows, expires = self._vectors.get(bucket, ([], 0.0))
        if rows and expires <= self._clock():
            del self._vectors[bucket]
            rows = []
        return rows[start:], len(rows)

    def _remove(self, key: str) -> bool:
        found = self._entries.pop(key, None)
        if found is None:
            return False
        self.bytes -= len(found[0])
        return True

    def __len__(self) -> int:
        return len(self._entries)


@hookimpl
def register_cache_backends(register: Any) -> None:
    register("memory", MemoryBackend)
