"""Smoke test of the benchmark harness: ``bench/run --quick --repeat 2`` runs and
writes well-formed, positive numbers (medians and raw runs) for every target that ran,
the large case (a Claude Code-like /v1/messages stream) included.

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

import orjson
import pytest

REPO = Path(__file__).resolve().parent.parent
# Generous: a smoke test of the harness, not of speed; a fresh clone on a busy 2-core machine
# (the suite running beside it) took 29 s of the 30 once allowed.
TIMEOUT_S = 180
REPEAT = 2  # exercises the interleaved rounds and the medians; quick mode alone would do 1
EVENTS_PER_STREAM = 23  # 20 content chunks + finish + usage + [DONE] (bench/payloads.py)
# message_start, 2 x (block start, deltas, stop), ping, message_delta, message_stop (bench/payloads.py)
LARGE_EVENTS_PER_STREAM = 25

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
    # The large case: every target relays the whole Anthropic stream (Portway's
    # pass-through event for event), and its server CPU per request is recorded.
    large = r["large"]
    assert large["requests"] > 0 and large["errors"] == 0 and is_num(large["rps"]) and large["rps"] > 0, (key, large)
    assert len(large["runs"]) == REPEAT and large["concurrency"] > 1, (key, large)
    assert large["events_per_stream"] == LARGE_EVENTS_PER_STREAM, (key, large)
    assert 100_000 <= large["body_bytes"] <= 118_000, (key, large["body_bytes"])
    assert is_num(large["server_cpu_us_per_req"]) and large["server_cpu_us_per_req"] >= 0, (key, large)
    rss = r["rss_kib"]
    assert rss["idle"] > 0 and rss["loaded"] > 0 and rss["after"] > 0 and rss["soak_requests"] >= 1, (key, rss)
    assert rss["soak_growth"] == rss["after"] - rss["loaded"], (key, rss)
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
    assert report["ratios_vs_b"]["b"]["rps_large"] == 1.0
    assert report["ratios_vs_b"]["b"]["per_round"]["rps_large"] == [1.0] * REPEAT
    for key in report["ratios_vs_b"]:  # present for every target; None only where b's CPU rounded to 0 ticks
        assert "cpu_per_req_large" in report["ratios_vs_b"][key], key
    assert report["meta"]["large_case"]["body_bytes"] == report["targets"]["b"]["large"]["body_bytes"]
    md = (tmp_path / "latest.md").read_text()
    assert "| a: mock (direct) |" in md and "| b: floor proxy |" in md
    assert "CPU/req c64" in md and "Run-to-run spread" in md
    assert md.count("large: CPU/req") == 3  # the figures, the ratios and the spread tables


def test_large_request_is_shaped_like_claude_codes() -> None:
    """The large case's body has the shape and size of a recorded Claude Code request."""
    from bench import payloads

    body = json.loads(payloads.LARGE_BODY)
    assert 100_000 <= len(payloads.LARGE_BODY) <= 118_000
    assert [len(b["text"]) for b in body["system"][:2]] == [74, 62] and 6_000 < len(body["system"][2]["text"]) < 8_000
    assert ["cache_control" in b for b in body["system"]] == [False, True, True]
    assert len(body["tools"]) == 24 and all(t["input_schema"]["type"] == "object" for t in body["tools"])
    kinds = {b["type"] for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]}
    assert {"tool_use", "tool_result", "thinking", "text"} <= kinds
    assert body["messages"][-1]["role"] == "system" and body["stream"] is True
    assert json.loads(body["metadata"]["user_id"])["session_id"]
    assert body["thinking"]["type"] == "adaptive" and body["output_config"] == {"effort": "medium"}
    assert body["context_management"]["edits"][0]["type"] == "clear_thinking_20251015"
    assert len(payloads.LARGE_HEADERS["anthropic-beta"].split(",")) == 8
    assert orjson.dumps(payloads.large_request()) == payloads.LARGE_BODY  # the same bytes every time
    assert len(payloads.LARGE_STREAM_EVENTS) == LARGE_EVENTS_PER_STREAM
