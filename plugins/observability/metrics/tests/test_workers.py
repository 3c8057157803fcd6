"""``portway serve --workers 2`` as a subprocess: whichever worker answers
the scrape, /metrics counts every worker's requests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from portway.testing import free_port

PORTWAY = shutil.which("portway", path=os.path.dirname(sys.executable)) or "portway"
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
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"PORTWAY_CONFIG", "PROMETHEUS_MULTIPROC_DIR"}}
    env["TMPDIR"] = str(tmp_path)  # where serve makes the workers' metrics directory
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([PORTWAY, "serve", "--config", str(config), "--port", str(port), *args],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


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
