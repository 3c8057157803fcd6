"""portway.testing.free_port under pytest-xdist: each worker its own ports."""

from __future__ import annotations

import pytest

from portway.testing import servers


@pytest.mark.parametrize("worker", ["gw0", "gw1", "gw5", "gw17"])
def test_each_xdist_worker_takes_only_its_own_ports(monkeypatch: pytest.MonkeyPatch, worker: str) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    slot = int(worker[2:]) % servers.PORT_SLOTS
    assert {servers.port_slot(servers.free_port()) for _ in range(20)} == {slot}


def test_outside_xdist_any_free_port_will_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert len({servers.port_slot(servers.free_port()) for _ in range(200)}) > 1
