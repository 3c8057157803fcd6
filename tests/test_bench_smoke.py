"""Smoke test of the benchmark harness: ``bench/run --quick --repeat 2`` runs and
writes well-formed, positive numbers (medians and raw runs) for every target that ran.

Speed is never asserted here (timings on a shared CI core mean nothing); the
whole run is capped at 30 s by the subprocess timeout.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 30
REPEAT = 2  # exercises the interleaved rounds and the medians; quick mode alone would do 1
EVENTS_PER_STREAM = 23  # 20 content chunks + finish + usage + [DONE] (bench/payloads.py)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the harness reads /proc and pins CPUs")


def portway_available() -> bool:
    """Importable and its CLI answers: only then ask for targets c and d."""
    exe = Path(sys.executable).parent / "portway"
    exe_path = str(exe) if exe.exists() else shutil.which("portway")
    if importlib.util.find_spec("portway") is None or exe_path is None:
        return False
    try:
        return subprocess.run([exe_path, "--help"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_ok_target(key: str, r: dict[str, Any]) -> None:
    assert r["repeat"] == REPEAT and len(r["startup_ms_runs"]) == REPEAT, (key, r["repeat"], r["startup_ms_runs"])
    for conc in ("c1", "c64"):
        run = r["nonstream"][conc]
        assert is_num(run["rps"]) and run["rps"] > 0, (key, conc, run)
        assert is_num(run["p50_ms"]) and is_num(run["p99_ms"]) and 0 < run["p50_ms"] <= run["p99_ms"], (key, conc, run)
        assert run["requests"] > 0 and run["errors"] == 0, (key, conc, run)
        # The median of the raw runs, which are all kept.
        assert len(run["runs"]) == REPEAT and min(x["rps"] for x in run["runs"]) <= run["rps"], (key, conc, run)
        # CPU time per request: /proc ticks are 10 ms, so a short quick run may see 0.
        assert is_num(run["server_cpu_us_per_req"]) and run["server_cpu_us_per_req"] >= 0, (key, conc, run)
    stream = r["stream"]
    assert is_num(stream["ttfb_p50_ms"]) and stream["ttfb_p50_ms"] > 0, (key, stream)
    assert stream["ttfb_errors"] == 0, (key, stream)
    c16 = stream["c16"]
    assert is_num(c16["streams_per_s"]) and c16["streams_per_s"] > 0, (key, c16)
    assert is_num(c16["chunks_per_s"]) and c16["chunks_per_s"] > 0, (key, c16)
    assert c16["errors"] == 0, (key, c16)
    assert len(c16["runs"]) == REPEAT and len(stream["ttfb_runs"]) == REPEAT, (key, c16)
    assert is_num(c16["server_cpu_us_per_req"]) and c16["server_cpu_us_per_req"] >= 0, (key, c16)
    if key in ("a", "b"):  # the mock and a pure passthrough must relay every event
        assert c16["chunks_per_stream"] == EVENTS_PER_STREAM, (key, c16)
    rss = r["rss_kib"]
    assert rss["idle"] > 0 and rss["after"] > 0 and rss["requests_served"] >= 1, (key, rss)
    assert is_num(r["startup_ms"]) and r["startup_ms"] > 0, (key, r["startup_ms"])
    assert set(r["added_vs_a"]) == {"p50_ms_c1", "p50_ms_c64", "ttfb_p50_ms"}


def test_quick_bench_runs_and_reports(tmp_path: Path) -> None:
    targets = ["a", "b"] + (["c", "d"] if portway_available() else [])
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--repeat", str(REPEAT), "--targets", ",".join(targets),
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["meta"]["mode"] == "quick"
    assert list(report["targets"]) == targets
    for key, r in report["targets"].items():
        if key in ("a", "b"):
            assert r["status"] == "ok", (key, r)
        if r["status"] == "ok":
            check_ok_target(key, r)
        else:  # c/d may be skipped while Portway cannot serve yet, but must say why
            assert r["status"] == "skipped" and isinstance(r["reason"], str) and r["reason"], (key, r)

    assert report["meta"]["repeat"] == REPEAT
    assert report["ratios_vs_b"]["b"]["rps_c64"] == 1.0
    assert report["ratios_vs_b"]["b"]["per_round"]["rps_c64"] == [1.0] * REPEAT
    md = (tmp_path / "latest.md").read_text()
    assert "| a: mock (direct) |" in md and "| b: floor proxy |" in md
    assert "CPU/req c64" in md and "Run-to-run spread" in md
