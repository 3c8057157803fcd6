"""Smoke test of ``python -m bench.cache``: it runs end to end (four real
gateways, the mock with embeddings, the real Redis) and writes a positive
figure for every path; every hit path really hit and every miss path really
missed (the harness checks each answer's x-portway-cache).  Speed is never
asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the harness reads /proc and pins CPUs")


def test_the_cache_benchmark_runs_and_reports_every_path(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "bench.cache", "--requests", "20", "--repeat", "1",
                             "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    table = json.loads((tmp_path / "cache.json").read_text())
    paths = {"mock upstream (floor)", "no cache"} | {f"{name}: {kind}" for name in (
        "exact, memory", "exact, redis", "semantic, memory") for kind in ("hit", "miss")}
    assert set(table) == paths
    assert all(figure > 0 for row in table.values() for figure in row.values())
    assert "hit / miss RPS" in result.stdout
