"""Benchmark runner: starts the mock and each target, measures, writes the report.

Usage (via the ``bench/run`` wrapper): ``bench/run [--quick] [--targets a,b,c,d]``.
See bench/README.md for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import loadgen, payloads
from bench.procs import REPO, Server, StartupError, free_port, loaded_modules, pin_prefix, rss_kib, with_cpu
from bench.report import derive, markdown
from bench.targets import (
    NONSTREAM_BODY, STREAM_BODY, TARGETS, optional_plugins, portway_config, start_floor, start_mock, start_portway,
)

DEFAULT_OUT = REPO / "bench" / "results"


@dataclass(frozen=True)
class Settings:
    """Request counts and durations of one mode. Counts cap the aiohttp runs,
    durations the wrk runs (wrk is duration-based)."""

    quick: bool
    c1_duration: float
    c64_duration: float
    c1_count: int | None
    c64_count: int | None
    ttfb_count: int
    ttfb_duration: float
    stream_duration: float
    stream_count: int | None
    warmup_count: int
    soak_total: int  # N: requests served before the "after" RSS sample...
    soak_max_s: float  # ...unless the soak hits this time cap first (slow targets)
    startup_timeout: float


QUICK = Settings(
    quick=True, c1_duration=2, c64_duration=2, c1_count=40, c64_count=320, ttfb_count=20, ttfb_duration=2,
    stream_duration=2, stream_count=64, warmup_count=20, soak_total=800, soak_max_s=10,
    startup_timeout=8,
)
FULL = Settings(
    quick=False, c1_duration=5, c64_duration=8, c1_count=None, c64_count=None, ttfb_count=1000, ttfb_duration=3,
    stream_duration=8, stream_count=None, warmup_count=200, soak_total=100_000,
    soak_max_s=40, startup_timeout=30,
)


@dataclass
class Tools:
    """What the load phases run with: wrk or not, the load core, the work dir."""

    wrk: bool
    load_cpu: int | None
    work: Path

    def body_file(self, body: bytes, name: str) -> Path:
        path = self.work / name
        if not path.exists():
            path.write_bytes(body)
        return path


def nonstream(server: Server, tools: Tools, conc: int, duration: float, count: int | None) -> dict[str, Any]:
    if tools.wrk:
        return with_cpu(server, lambda: loadgen.run_wrk(
            server.url, tools.body_file(NONSTREAM_BODY, "nonstream.json"), conc, duration, prefix=pin_prefix(tools.load_cpu)))
    return with_cpu(server, lambda: loadgen.run_aiohttp(
        server.url, NONSTREAM_BODY, conc, count=count, duration=duration * 5).summary())


def measure(server: Server, tools: Tools, s: Settings) -> dict[str, Any]:
    """All phases for one running target, in a fixed order (the soak last)."""
    time.sleep(0.2)  # let start-up work (imports, pool creation) settle
    rss_idle = rss_kib(server.proc.pid)

    # Warm-up: connection pools filled, lazy imports done, before any timing.
    loadgen.run_aiohttp(server.url, NONSTREAM_BODY, 8, count=s.warmup_count, duration=10)
    loadgen.run_aiohttp(server.stream_url, STREAM_BODY, 4, count=max(4, s.warmup_count // 4), duration=10, stream=True)
    server.served += s.warmup_count + max(4, s.warmup_count // 4)

    c1 = nonstream(server, tools, 1, s.c1_duration, s.c1_count)
    c64 = nonstream(server, tools, 64, s.c64_duration, s.c64_count)

    # Stream TTFB (c=1): time from sending the request to the first body byte.
    ttfb = with_cpu(server, lambda: loadgen.run_aiohttp(
        server.stream_url, STREAM_BODY, 1, count=s.ttfb_count, duration=s.ttfb_duration, stream=True).summary())

    # Stream throughput (c=16). wrk counts whole streams; the events per stream
    # come from the aiohttp run above, which parsed every stream to [DONE].
    if tools.wrk:
        st = with_cpu(server, lambda: loadgen.run_wrk(
            server.stream_url, tools.body_file(STREAM_BODY, "stream.json"), 16, s.stream_duration,
            prefix=pin_prefix(tools.load_cpu)))
        # wrk does not parse bodies; an SSE stream is ~6x the JSON answer, so
        # the mean response size tells whether the run really got streams.
        if st["bytes_per_response"] < len(payloads.STREAM_BODY) // 2:
            raise RuntimeError(f"stream run got {st['bytes_per_response']} B responses: not SSE streams")
        st["events_per_stream"] = ttfb.get("events_per_stream", 0)
        st["events_per_s"] = round(st["rps"] * st["events_per_stream"], 1)
    else:
        st = with_cpu(server, lambda: loadgen.run_aiohttp(
            server.stream_url, STREAM_BODY, 16, count=s.stream_count, duration=s.stream_duration * 5, stream=True).summary())

    # Soak up to N requests in total (or the time cap), then sample RSS again:
    # growth that keeps rising with N is a leak.
    remaining = s.soak_total - server.served
    if remaining > 0:
        if tools.wrk:
            with_cpu(server, lambda: loadgen.run_wrk(server.url, tools.body_file(NONSTREAM_BODY, "nonstream.json"), 64,
                                                     s.soak_max_s, max_requests=remaining, prefix=pin_prefix(tools.load_cpu)))
        else:
            with_cpu(server, lambda: loadgen.run_aiohttp(
                server.url, NONSTREAM_BODY, 64, count=remaining, duration=s.soak_max_s).summary())
    time.sleep(0.2)
    rss_after = rss_kib(server.proc.pid)

    return {
        "status": "ok",
        "name": server.name,
        "startup_ms": round(server.startup_ms, 1),
        "nonstream": {"c1": c1, "c64": c64},
        "stream": {
            "ttfb_p50_ms": ttfb.get("ttfb_p50_ms", 0.0),
            "ttfb_p99_ms": ttfb.get("ttfb_p99_ms", 0.0),
            "ttfb_streams": ttfb["requests"],
            "ttfb_errors": ttfb["errors"],
            "c16": {
                "streams_per_s": st["rps"],
                "chunks_per_s": st["events_per_s"],
                "chunks_per_stream": st["events_per_stream"],
                "p50_ms": st["p50_ms"],
                "p99_ms": st["p99_ms"],
                "requests": st["requests"],
                "errors": st["errors"],
                "server_cpu_pct": st["server_cpu_pct"],
            },
        },
        "rss_kib": {"idle": rss_idle, "after": rss_after, "growth": rss_after - rss_idle, "requests_served": server.served},
        "modules_loaded": loaded_modules(server.proc.pid),
        **({"info": server.info} if server.info else {}),
    }


def ensure_tools() -> tuple[bool, bool]:
    """Install nginx and wrk from Debian if missing (full mode only)."""
    missing = [pkg for pkg, binary in (("nginx", "nginx"), ("wrk", "wrk")) if not shutil.which(binary)]
    if missing and shutil.which("apt-get") and os.geteuid() == 0:
        print(f"bench: installing {' '.join(missing)} with apt-get", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, check=False)
    have_nginx, have_wrk = bool(shutil.which("nginx")), bool(shutil.which("wrk"))
    for name, have in (("nginx", have_nginx), ("wrk", have_wrk)):
        if not have:
            print(f"bench: WARNING: {name} unavailable, falling back to the Python one (slower)", file=sys.stderr)
    return have_nginx, have_wrk


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def default_portway() -> str | None:
    beside = Path(sys.executable).parent / "portway"
    return str(beside) if beside.exists() else shutil.which("portway")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description="Portway benchmark (see bench/README.md).")
    p.add_argument("--quick", action="store_true", help="smoke run: seconds, Python-only mock and load generator")
    p.add_argument("--targets", default="a,b,c,d", help="comma list of a (mock), b (floor), c (portway), d (portway, plugins off)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for latest.md / latest.json (default bench/results)")
    p.add_argument("--portway", default=default_portway(), help="portway executable (default: the venv's)")
    p.add_argument("--disable-plugins", default=None, help="comma list of plugins to disable for (d); default: ask `portway plugins --json`")
    p.add_argument("--requests", type=int, default=None, help="N for the RSS-after-N sample (default 100000, quick 800)")
    p.add_argument("--soak-seconds", type=float, default=None, help="time cap of the soak to N (default 40, quick 10)")
    args = p.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown or not args.targets:
        p.error(f"unknown targets {unknown}; choose from {','.join(TARGETS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.requests is not None:
        settings = Settings(**{**settings.__dict__, "soak_total": args.requests})
    if args.soak_seconds is not None:
        settings = Settings(**{**settings.__dict__, "soak_max_s": args.soak_seconds})
    started = time.time()
    load_at_start = round(os.getloadavg()[0], 2)

    cpus = sorted(os.sched_getaffinity(0))
    load_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})  # the aiohttp client runs in this process
    have_nginx, have_wrk = (False, False) if settings.quick else ensure_tools()
    mock_kind = "nginx" if have_nginx else "python"

    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    tools = Tools(wrk=have_wrk, load_cpu=load_cpu, work=work)

    results: dict[str, dict[str, Any]] = {}
    mock = start_mock(mock_kind, work, load_cpu, settings.startup_timeout)
    try:
        for key in args.targets:
            print(f"bench: measuring {key}: {TARGETS[key]}", file=sys.stderr, flush=True)
            server: Server | None = None
            extra: dict[str, Any] = {}
            try:
                if key == "a":
                    server = mock
                elif key == "b":
                    server = start_floor(mock, work, server_cpu, settings.startup_timeout)
                else:
                    if not args.portway:
                        raise StartupError("`portway` executable not found (is the CLI installed in the venv?)")
                    disable: list[str] | None = None
                    if key == "d":
                        if args.disable_plugins is not None:
                            disable = [x for x in args.disable_plugins.split(",") if x]
                            extra["plugins_source"] = "--disable-plugins"
                        else:
                            probe = work / "portway-probe.yaml"
                            probe.write_text(portway_config(free_port(), mock.port, None))
                            disable, extra["plugins_source"] = optional_plugins(args.portway, probe)
                        extra["plugins_disabled"] = disable
                    server = start_portway(key, args.portway, mock, work, server_cpu, settings.startup_timeout, disable)
                results[key] = {**measure(server, tools, settings), **extra}
            except StartupError as exc:
                status = "skipped" if key in ("c", "d") else "failed"
                results[key] = {"status": status, "name": TARGETS[key], "reason": str(exc), **extra}
                print(f"bench: {key} {status}: {exc}", file=sys.stderr)
            except Exception as exc:  # keep measuring the other targets
                results[key] = {"status": "failed", "name": TARGETS[key], "reason": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
            finally:
                if server is not None and server is not mock:
                    server.stop()
    finally:
        mock.stop()

    report = {
        "meta": {
            "mode": "quick" if settings.quick else "full",
            "started_at": datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ"),
            "elapsed_s": round(time.time() - started, 1),
            "mock": mock_kind,
            "loadgen": "wrk (non-stream, streams/s) + aiohttp (TTFB, chunks)" if have_wrk else "aiohttp",
            "pinning": f"servers on CPU {server_cpu}, mock + load on CPU {load_cpu}" if load_cpu is not None else "none (1 CPU)",
            "soak_total": settings.soak_total,
            "settings": settings.__dict__,
            # Other work on the machine skews every figure: a 1-min load average
            # well above ~2 at the start means re-run on a quieter machine.
            "host": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version(),
                     "loadavg_at_start": load_at_start},
            "versions": {
                "wrk": tool_version(["wrk", "-v"]) if have_wrk else None,
                "nginx": tool_version(["nginx", "-v"]) if have_nginx else None,
                **{m: package_version(m) for m in ("uvicorn", "starlette", "aiohttp", "httptools", "uvloop", "orjson")},
            },
        },
        "targets": results,
        "ratios_vs_b": {},
    }
    report["ratios_vs_b"] = derive(results)
    md = markdown(report)
    (args.out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "latest.md").write_text(md)
    print(md)
    return 1 if any(r["status"] == "failed" for r in results.values()) else 0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
