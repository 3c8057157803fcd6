"""The Redis cache backend: one cache for every worker and replica.

``cache: {backend: redis, redis_url: redis://127.0.0.1:6379/0, prefix: "portway:cache:"}``.
An answer is a string key with a millisecond TTL (``SET ... PX``); a semantic
bucket's vectors are a list (``RPUSH``) read from where this process last
stopped (``LRANGE``), searched in process (see docs/caching.md: the Redis
here has no search module, and plain Redis is what most deployments have).

Layout, under ``prefix``: ``<namespace>:e:<hash>`` answers,
``<namespace>:v:<hash>`` vector lists (entries ``<key>|<float32 bytes>``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portway import hookimpl

if TYPE_CHECKING:  # imported when a cache uses this backend, not at every start-up (~90 ms)
    import redis.asyncio as aioredis

PORTWAY_PLUGIN_KIND = "cache"

#: Keys deleted per UNLINK when clearing.
BATCH = 500


class RedisConfig(BaseModel):
    """The ``cache:`` keys of this backend."""

    model_config = ConfigDict(extra="forbid")
    #: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS); a secret, never logged.
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    #: Every key this cache writes starts with it (several gateways or tests can share one Redis).
    prefix: str = Field("portway:cache:", min_length=1)
    #: Connections in the pool.
    max_connections: int = Field(64, ge=1)


def _glob(text: str) -> str:
    """``text`` matched literally in a SCAN pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisBackend:
    config_model = RedisConfig

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self.prefix = config.prefix
        self._client: aioredis.Redis | None = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("the Redis cache is not open")
        return self._client

    def _entry(self, key: str) -> str:
        namespace, _, digest = key.partition(":")
        return f"{self.prefix}{namespace}:e:{digest}"

    def _bucket(self, bucket: str) -> str:
        namespace, _, digest = bucket.partition(":")
        return f"{self.prefix}{namespace}:v:{digest}"

    async def start(self) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.Redis.from_url(self.config.redis_url.get_secret_value(),
                                               max_connections=self.config.max_connections)
        await self._client.ping()  # a wrong URL stops the start-up, not the first request

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get(self, key: str) -> bytes | None:
        return await self.client.get(self._entry(key))

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self.client.set(self._entry(key), value, px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> bool:
        if ":" not in key:
            return False
        return bool(await self.client.delete(self._entry(key)))

    async def clear(self, namespace: str | None = None) -> int:
        pattern = _glob(self.prefix) + ("*" if namespace is None else _glob(namespace) + ":*")
        entries = 0
        batch: list[bytes] = []
        async for name in self.client.scan_iter(match=pattern, count=1000):
            batch.append(name)
            entries += b":e:" in name[len(self.prefix):]
            if len(batch) >= BATCH:
                await self.client.unlink(*batch)
                batch = []
        if batch:
            await self.client.unlink(*batch)
        return entries

    async def add_vector(self, bucket: str, key: str, vector: bytes, ttl: float) -> None:
        name = self._bucket(bucket)
        ms = max(1, int(ttl * 1000))
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(name, key.encode() + b"|" + vector)
            pipe.pexpire(name, ms, nx=True)   # a new list: expires with its answer
            pipe.pexpire(name, ms, gt=True)   # an old one: lives as long as its newest answer
            await pipe.execute()

    async def vectors(self, bucket: str, start: int) -> tuple[list[tuple[str, bytes]], int]:
        name = self._bucket(bucket)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.lrange(name, start, -1)
            pipe.llen(name)
            items, total = await pipe.execute()
        rows = []
        for item in items:
            key, _, vector = item.partition(b"|")
            rows.append((key.decode(), vector))
        return rows, total


@hookimpl
def register_cache_backends(register: Any) -> None:
    register("redis", RedisBackend)
