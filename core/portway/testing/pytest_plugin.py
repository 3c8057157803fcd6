"""pytest fixtures for Portway and its plugins (registered through the
``pytest11`` entry point, so installing ``portway`` makes them available)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from portway.testing.upstream import FakeUpstream


@pytest.fixture(autouse=True)
def portway_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every test gets its own ``$PORTWAY_DATA_DIR``: a gateway started with
    no ``store:`` key writes its request log there, never to the user's
    data directory."""
    path = tmp_path_factory.mktemp("portway-data")
    monkeypatch.setenv("PORTWAY_DATA_DIR", str(path))
    return path


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A fresh fake provider upstream on a real socket."""
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def gateway_server() -> Iterator[Callable[..., Any]]:
    """Factory: ``gateway_server(config_dict, plugins=[(name, obj)])``
    starts a real gateway on a free port; it is stopped after the test."""
    from portway.testing.gateway import GatewayServer

    started: list[GatewayServer] = []

    def start(config: dict[str, Any] | None = None, **options: Any) -> GatewayServer:
        server = GatewayServer(config, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def portway_conformance_servers() -> Iterator[None]:
    """Used by :func:`portway.testing.conformance.conformance_tests`: the
    servers of each check wind down in the background while the next check
    runs; here, at the end of the test module, they are waited for, so none
    outlives the module (and the tests after it see no stray server threads)."""
    from portway.testing.conformance import wait_for_stopped

    yield
    wait_for_stopped()


#: The Redis that tests use (the machine's own; `.ci/run` starts it).
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the real Redis (tests run in
    parallel); every key under it is deleted afterwards.  Needs the
    ``redis`` package, which the plugins that use Redis depend on."""
    import uuid

    import redis

    prefix = f"portway-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()
