"""The request log's queue and drops as metrics (portway_log.sink_of(gateway)).

Runs only where portway-log is installed (it is being built on its own branch;
until it is merged here this module is skipped)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from portway.testing.gateway import GatewayServer

pytest.importorskip("portway_log")

HI = [{"role": "user", "content": "hi"}]


def scrape(server: GatewayServer) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + "".join(f":{v}" for _, v in sorted(sample.labels.items()))
            values[key] = values.get(key, 0.0) + sample.value
    return values


def settle(server: GatewayServer, done: str, n: int) -> dict[str, float]:
    """Scrape until ``done`` reaches ``n`` (the sink writes in the background)."""
    deadline = time.monotonic() + 30
    while True:
        values = scrape(server)
        if values.get(done, 0) >= n or time.monotonic() > deadline:
            return values
        time.sleep(0.05)


@pytest.mark.parametrize("store", ["sqlite", "dead"])
def test_log_records_written_or_dropped_are_counted(tmp_path: Path, store: str) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}" if store == "sqlite" else "postgresql://postgres@127.0.0.1:1/none"
    config = {"providers": {"mock": {"type": "mock"}}, "store": {"url": url}, "log": {"queue_size": 1000}}
    n = 12
    with GatewayServer(config) as server:
        client = server.openai_client()
        for _ in range(n):
            client.chat.completions.create(model="mock/echo", messages=HI)
        if store == "sqlite":
            values = settle(server, "portway_log_records_written_total", n)
        else:
            values = settle(server, "portway_log_records_dropped_total:store_error", n)
    assert values["portway_log_queue_size"] == 1000
    assert values["portway_log_queue_depth"] == 0
    if store == "sqlite":
        assert values["portway_log_records_written_total"] == n
        assert values.get("portway_log_records_dropped_total:store_error", 0) == 0
    else:
        assert values["portway_log_records_dropped_total:store_error"] == n
        assert values.get("portway_log_records_written_total", 0) == 0
        assert values["portway_log_write_errors_total"] >= 1
