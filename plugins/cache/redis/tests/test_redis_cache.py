"""Two real ``portway serve`` processes share one cache in the real Redis:
what one stored the other serves, exact and semantic, and clearing through
either empties it for both."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
import yaml
from portway_cache.testing import CacheUpstream, gateway_config

from portway.testing import FakeUpstream, free_port
from portway.testing.process import portway_serve

REDIS_URL = "redis://127.0.0.1:6379/0"
MASTER = "pw-master-redis-cache-0123"


@pytest.fixture
def upstream() -> Iterator[CacheUpstream]:
    with FakeUpstream() as fake:
        yield CacheUpstream(fake)


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix  # portway.testing's fixture: this test's own keys, deleted afterwards


@contextlib.contextmanager
def serving(config: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    """``portway serve`` with ``config`` in a process of its own."""
    path = tmp_path / f"portway-{uuid.uuid4().hex}.yaml"
    path.write_text(yaml.safe_dump(config))
    with portway_serve("--config", str(path), cwd=tmp_path) as url:
        yield url


def ask(url: str, text: str) -> Any:
    client = openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0, timeout=10)
    return client.chat.completions.with_raw_response.create(model="fast", messages=[{"role": "user", "content": text}])


def test_two_gateway_processes_share_the_redis_cache(upstream: CacheUpstream, prefix: str, tmp_path: Path) -> None:
    cache = {"backend": "redis", "redis_url": REDIS_URL, "prefix": prefix, "mode": "semantic",
             "semantic": {"embedding_model": "embed", "threshold": 0.85}}
    config = gateway_config(upstream.upstream, cache, master_key=MASTER)
    with serving(config, tmp_path) as one, serving(config, tmp_path) as two:
        first = ask(one, "which river runs through the city of Paris")
        exact = ask(two, "which river runs through the city of Paris")
        near = ask(two, "Which river runs through the city of Paris?")
        admin = {"authorization": f"Bearer {MASTER}"}
        cleared = httpx.delete(two + "/admin/cache", headers=admin, timeout=10).json()
        after = ask(one, "which river runs through the city of Paris")
    assert first.headers["x-portway-cache"] == "miss"
    assert exact.headers["x-portway-cache"] == "hit"
    assert near.headers["x-portway-cache"] == "semantic-hit"
    assert near.parse().choices[0].message.content == upstream.answer("which river runs through the city of Paris")
    assert cleared == {"deleted": 1}
    assert after.headers["x-portway-cache"] == "miss"
    assert upstream.chat_calls() == 2


def test_a_redis_that_is_down_costs_the_cache_not_the_request(upstream: CacheUpstream, prefix: str,
                                                             tmp_path: Path) -> None:
    """Redis going away after start-up: answers still come, uncached."""
    from portway.testing.gateway import GatewayServer

    cache = {"backend": "redis", "redis_url": REDIS_URL, "prefix": prefix}
    with GatewayServer(gateway_config(upstream.upstream, cache)) as server:
        from portway_cache import cache_of

        backend = cache_of(server.gateway).backend  # type: ignore[union-attr]
        backend.prefix = prefix  # the same cache...
        real = backend._client
        backend._client = redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # ...now unreachable
        try:
            client = server.openai_client()
            answers = [client.chat.completions.with_raw_response.create(
                model="fast", messages=[{"role": "user", "content": "still there?"}]) for _ in range(2)]
        finally:
            backend._client = real
    assert [a.parse().choices[0].message.content for a in answers] == [upstream.answer("still there?")] * 2
    assert [a.headers["x-portway-cache"] for a in answers] == ["miss", "miss"]
    assert upstream.chat_calls() == 2
