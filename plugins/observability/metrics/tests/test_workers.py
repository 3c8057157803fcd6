"""``portway serve --workers 2`` as a subprocess: whichever worker answers
the scrape, /metrics counts every worker's requests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from portway.testing.process import portway_serve

CONFIG = """\
providers:
  mock: {type: mock}
models:
  echo: {target: {provider: mock, model: echo}}
metrics: {sample_interval: 0.2}
"""


@contextlib.contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[str]:
    config = tmp_path / "portway.yaml"
    config.write_text(CONFIG)
    # TMPDIR: where serve makes the workers' metrics directory.
    with portway_serve("--config", str(config), *args, cwd=tmp_path, env={"TMPDIR": str(tmp_path)}) as url:
        yield url


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    values["families"] = len([f for f in text_string_to_metric_families(text) if f.name.startswith("portway_")])
    return values


def requests_in(path: Path) -> float:
    """One worker's own ``portway_requests_total``, from its file."""
    return sum(sample.value for metric in MultiProcessCollector.merge([str(path)], accumulate=False)
               if metric.name == "portway_requests" for sample in metric.samples)


def test_two_workers_metrics_add_up(tmp_path: Path) -> None:
    n = 40
    with serving(tmp_path, "--workers", "2") as url:
        shared = list(tmp_path.glob("portway-metrics-*"))
        assert len(shared) == 1  # serve made one directory for its workers
        for i in range(n):
            # A new connection each time, so that both workers get some of them.
            response = httpx.post(url + "/v1/chat/completions", timeout=10, headers={"connection": "close"},
                                  json={"model": "echo", "messages": [{"role": "user", "content": f"hi {i}"}]})
            assert response.status_code == 200
        deadline = time.monotonic() + 10
        while True:  # each worker hands its counts to the shared files every 0.2 s (sample_interval)
            scrapes = [scrape(url) for _ in range(6)]
            settled = all(s.get("portway_workers") == 2 and s.get("portway_requests_total") == n for s in scrapes)
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # Each worker keeps its own counts in its own file there, and both served some.
        per_worker = [requests_in(path) for path in shared[0].glob("counter_*.db")]
    assert len(per_worker) == 2 and all(per_worker) and sum(per_worker) == n, per_worker
    for values in scrapes:  # whichever worker answered
        assert values["portway_requests_total"] == n
        assert values["portway_request_duration_seconds_count"] == n
        assert values["portway_input_tokens_total"] == sum(len(f"hi {i}".split()) for i in range(n))
        assert values["portway_workers"] == 2
        assert values["portway_requests_in_flight"] == 0
        assert values["families"] >= 40
    assert not list(tmp_path.glob("portway-metrics-*"))  # removed when serve ended
