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
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import loadgen, payloads
from bench.procs import (
    REPO,
    Server,
    StartupError,
    free_port,
    loaded_modules,
    pin_prefix,
    rss_kib,
    steal_ticks,
    with_cpu,
)
from bench.report import derive, markdown
from bench.targets import (
    NONSTREAM_BODY,
    STREAM_BODY,
    TARGETS,
    optional_plugins,
    portway_config,
    start_floor,
    start_mock,
    start_portway,
)

DEFAULT_OUT = REPO / "bench" / "results"


@dataclass(frozen=True)
class Settings:
    """Request counts and durations of one mode. Counts cap the aiohttp runs,
    durations the wrk runs (wrk is duration-based)."""

    quick: bool
    repeat: int  # N: every timed run and the start-up are done N times; the medians are reported
    c1_duration: float
    c64_duration: float
    c1_count: int | None
    c64_count: int | None
    ttfb_count: int
    ttfb_duration: float
    stream_duration: float
    stream_count: int | None
    large_duration: float  # the large case (a Claude Code-like /v1/messages stream)
    large_count: int | None
    warmup_count: int
    soak_total: int  # N: small requests the soak serves between the "loaded" and "after" RSS samples...
    soak_max_s: float  # ...unless it hits this time cap first (slow targets)
    startup_timeout: float


QUICK = Settings(
    quick=True, repeat=1, c1_duration=2, c64_duration=2, c1_count=40, c64_count=320, ttfb_count=20, ttfb_duration=2,
    stream_duration=2, stream_count=64, large_duration=2, large_count=32, warmup_count=20, soak_total=800,
    soak_max_s=10, startup_timeout=8,
)
# Full: 3 rounds x 4 targets x (4 + 4 + 4 + 4 s wrk runs + <= 2.5 s of TTFB), then the
# soaks; about 5 minutes on 2 cores.
FULL = Settings(
    quick=False, repeat=3, c1_duration=4, c64_duration=4, c1_count=None, c64_count=None, ttfb_count=1000,
    ttfb_duration=2.5, stream_duration=4, stream_count=None, large_duration=4, large_count=None, warmup_count=200,
    soak_total=100_000, soak_max_s=40, startup_timeout=30,
)

#: Connections of the large case: enough to keep one Python worker busy (a
#: request costs it milliseconds of CPU), few enough to be one team's agents.
LARGE_CONCURRENCY = 16

#: The timed runs of one round, in order (TTFB before c16: c16 takes its events per stream).
PHASES = ("c1", "c64", "ttfb", "c16", "large")


@dataclass
class Tools:
    """What the load phases run with: wrk or not, the load core, the work dir."""

    wrk: bool
    load_cpu: int | None
    work: Path

    def body_file(self, body: bytes, name: str) -> Path:
        """``body`` in the work dir (a request body, or headers), for wrk to read."""
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


def ttfb_run(server: Server, tools: Tools, s: Settings) -> dict[str, Any]:
    """Stream TTFB (c=1): time from sending the request to the first body byte."""
    return with_cpu(server, lambda: loadgen.run_aiohttp(
        server.stream_url, STREAM_BODY, 1, count=s.ttfb_count, duration=s.ttfb_duration, stream=True).summary())


def stream_run(server: Server, tools: Tools, s: Settings, events_per_stream: float) -> dict[str, Any]:
    """Stream throughput (c=16). wrk counts whole streams; the events per stream
    come from the TTFB run of the same round, which parsed every stream to [DONE]."""
    if not tools.wrk:
        return with_cpu(server, lambda: loadgen.run_aiohttp(
            server.stream_url, STREAM_BODY, 16, count=s.stream_count, duration=s.stream_duration * 5, stream=True).summary())
    st = with_cpu(server, lambda: loadgen.run_wrk(
        server.stream_url, tools.body_file(STREAM_BODY, "stream.json"), 16, s.stream_duration,
        prefix=pin_prefix(tools.load_cpu)))
    # wrk does not parse bodies; an SSE stream is ~6x the JSON answer, so
    # the mean response size tells whether the run really got streams.
    if st["bytes_per_response"] < len(payloads.STREAM_BODY) // 2:
        raise RuntimeError(f"stream run got {st['bytes_per_response']} B responses: not SSE streams")
    st["events_per_stream"] = events_per_stream
    st["events_per_s"] = round(st["rps"] * events_per_stream, 1)
    return st


def large_run(server: Server, tools: Tools, s: Settings) -> dict[str, Any]:
    """The large case: a Claude Code-like /v1/messages request (~110 KB, with
    Claude Code's headers), streamed, at LARGE_CONCURRENCY connections."""
    if not tools.wrk:
        return with_cpu(server, lambda: loadgen.run_aiohttp(
            server.messages_url, payloads.LARGE_BODY, LARGE_CONCURRENCY, count=s.large_count,
            duration=s.large_duration * 5, stream=True, headers=payloads.LARGE_HEADERS,
            stream_end=payloads.LARGE_STREAM_END).summary())
    headers = "".join(f"{k}: {v}\n" for k, v in payloads.LARGE_HEADERS.items()).encode()
    res = with_cpu(server, lambda: loadgen.run_wrk(
        server.messages_url, tools.body_file(payloads.LARGE_BODY, "large.json"), LARGE_CONCURRENCY,
        s.large_duration, headers_file=tools.body_file(headers, "large.headers"), prefix=pin_prefix(tools.load_cpu)))
    # As for c16: the mean response size tells a stream from an error answer.
    if res["bytes_per_response"] < len(payloads.LARGE_STREAM_BODY) // 2:
        raise RuntimeError(f"large-case run got {res['bytes_per_response']} B responses: not Anthropic streams")
    return res


def warm_up(server: Server, s: Settings) -> None:
    """Connection pools filled, lazy imports done, before any timing."""
    loadgen.run_aiohttp(server.url, NONSTREAM_BODY, 8, count=s.warmup_count, duration=10)
    loadgen.run_aiohttp(server.stream_url, STREAM_BODY, 4, count=max(4, s.warmup_count // 4), duration=10, stream=True)
    loadgen.run_aiohttp(server.messages_url, payloads.LARGE_BODY, 4, count=max(4, s.warmup_count // 4), duration=10,
                        stream=True, headers=payloads.LARGE_HEADERS, stream_end=payloads.LARGE_STREAM_END)
    server.served += s.warmup_count + 2 * max(4, s.warmup_count // 4)


def soak(server: Server, tools: Tools, s: Settings) -> int:
    """Serve N more small requests (or until the time cap); returns how many.
    RSS sampled before and after shows growth with requests alone: what keeps
    rising with N is a leak, while the timed runs' high-water mark (the large
    case's 110 KB bodies, 16 at a time) is already in the "before" sample."""
    before = server.served
    if tools.wrk:
        with_cpu(server, lambda: loadgen.run_wrk(server.url, tools.body_file(NONSTREAM_BODY, "nonstream.json"), 64,
                                                 s.soak_max_s, max_requests=s.soak_total,
                                                 prefix=pin_prefix(tools.load_cpu)))
    else:
        with_cpu(server, lambda: loadgen.run_aiohttp(
            server.url, NONSTREAM_BODY, 64, count=s.soak_total, duration=s.soak_max_s).summary())
    return server.served - before


@dataclass
class Target:
    """One target across the whole run: its kept server, and every raw figure."""

    key: str
    status: str = "ok"
    reason: str = ""
    server: Server | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    startup_runs: list[float] = field(default_factory=list)
    rss_idle: int = 0
    rss_loaded: int = 0  # after the timed runs, before the soak
    rss_after: int = 0
    soak_served: int = 0
    modules: dict[str, bool] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {p: [] for p in PHASES})

    def fail(self, status: str, reason: str, mock: Server) -> None:
        self.status, self.reason = status, reason
        print(f"bench: {self.key} {status}: {reason}", file=sys.stderr, flush=True)
        if self.server is not None and self.server is not mock:
            self.server.stop()
        self.server = None


@dataclass
class Rig:
    """Everything needed to start a target: options, mode, the running mock."""

    args: argparse.Namespace
    settings: Settings
    tools: Tools
    mock: Server
    mock_kind: str
    server_cpu: int | None
    mock_rss_idle: int

    def start(self, t: Target, tag: str) -> Server:
        s, work = self.settings, self.tools.work
        if t.key == "a":  # a throwaway mock, on the load core like the real one
            return start_mock(self.mock_kind, work, self.tools.load_cpu, s.startup_timeout, tag)
        if t.key == "b":
            return start_floor(self.mock, work, self.server_cpu, s.startup_timeout, tag)
        return start_portway(t.key, self.args.portway, self.mock, work, self.server_cpu, s.startup_timeout,
                             t.extra.get("plugins_disabled") if t.key == "d" else None, tag)


def guarded(t: Target, mock: Server, what: Callable[[], None]) -> None:
    """Run one step for a target; a failure ends that target only."""
    try:
        what()
    except StartupError as exc:
        t.fail("skipped" if t.key in ("c", "d") else "failed", str(exc), mock)
    except Exception as exc:  # keep measuring the other targets
        traceback.print_exc()
        t.fail("failed", f"{type(exc).__name__}: {exc}", mock)


def measure_all(rig: Rig, targets: list[Target]) -> None:
    """Start-up N times; then N rounds of the timed runs, interleaved across the
    targets, all servers kept running; then the soak and the RSS sample."""
    s, tools, mock = rig.settings, rig.tools, rig.mock
    n = s.repeat

    def live() -> list[Target]:
        return [t for t in targets if t.status == "ok"]

    # Start-up: N fresh starts per target, interleaved; the last one is kept.
    # The real mock was started first (the others need it): it is a's last sample.
    for rnd in range(n):
        last = rnd == n - 1
        for t in live():
            def start(t: Target = t, last: bool = last, rnd: int = rnd) -> None:
                server = mock if (t.key == "a" and last) else rig.start(t, "" if last else f"-start{rnd + 1}")
                t.startup_runs.append(server.startup_ms)
                if not last:
                    server.stop()
                    return
                t.server = server
                if server is not mock:
                    time.sleep(0.2)  # let start-up work (imports, pool creation) settle
                    t.rss_idle = rss_kib(server.proc.pid)
            guarded(t, mock, start)
    for t in live():
        if t.key == "a":
            t.rss_idle = rig.mock_rss_idle
        guarded(t, mock, lambda t=t: warm_up(t.server, s))

    for rnd in range(n):
        print(f"bench: round {rnd + 1}/{n}", file=sys.stderr, flush=True)
        order = live()
        order = order[rnd % len(order):] + order[:rnd % len(order)] if order else order  # rotate: no fixed position
        for phase in PHASES:
            for t in order:
                if t.status != "ok":
                    continue

                def run(t: Target = t, phase: str = phase) -> None:
                    srv = t.server
                    if phase == "c1":
                        res = nonstream(srv, tools, 1, s.c1_duration, s.c1_count)
                    elif phase == "c64":
                        res = nonstream(srv, tools, 64, s.c64_duration, s.c64_count)
                    elif phase == "ttfb":
                        res = ttfb_run(srv, tools, s)
                    elif phase == "c16":
                        res = stream_run(srv, tools, s, t.runs["ttfb"][-1].get("events_per_stream", 0))
                    else:
                        res = large_run(srv, tools, s)
                    t.runs[phase].append(res)
                guarded(t, mock, run)

    for t in live():
        def finish(t: Target = t) -> None:
            time.sleep(0.2)
            t.rss_loaded = rss_kib(t.server.proc.pid)
            t.soak_served = soak(t.server, tools, s)
            time.sleep(0.2)
            t.rss_after = rss_kib(t.server.proc.pid)
            t.modules = loaded_modules(t.server.proc.pid)
        guarded(t, mock, finish)


SUMMED = ("requests", "errors")


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over the runs of every figure; requests and errors are totals."""
    out: dict[str, Any] = {}
    for k in runs[0]:
        vals = [r[k] for r in runs if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        if k in SUMMED:
            out[k] = sum(vals)
        else:
            out[k] = round(statistics.median(vals), 3) if vals else None
    return out


def result(t: Target) -> dict[str, Any]:
    if t.status != "ok":
        return {"status": t.status, "name": TARGETS[t.key], "reason": t.reason, **t.extra}
    server = t.server
    assert server is not None
    c1, c64 = aggregate(t.runs["c1"]), aggregate(t.runs["c64"])
    ttfb, st, large = aggregate(t.runs["ttfb"]), aggregate(t.runs["c16"]), aggregate(t.runs["large"])
    return {
        "status": "ok",
        "name": server.name,
        "repeat": len(t.runs["c1"]),
        "startup_ms": round(statistics.median(t.startup_runs), 1),
        "startup_ms_runs": [round(x, 1) for x in t.startup_runs],
        "nonstream": {"c1": {**c1, "runs": t.runs["c1"]}, "c64": {**c64, "runs": t.runs["c64"]}},
        "stream": {
            "ttfb_p50_ms": ttfb.get("ttfb_p50_ms") or 0.0,
            "ttfb_p99_ms": ttfb.get("ttfb_p99_ms") or 0.0,
            "ttfb_streams": ttfb["requests"],
            "ttfb_errors": ttfb["errors"],
            "ttfb_runs": t.runs["ttfb"],
            "c16": {
                "streams_per_s": st["rps"],
                "chunks_per_s": st["events_per_s"],
                "chunks_per_stream": st["events_per_stream"],
                "p50_ms": st["p50_ms"],
                "p99_ms": st["p99_ms"],
                "requests": st["requests"],
                "errors": st["errors"],
                "server_cpu_pct": st["server_cpu_pct"],
                "server_cpu_us_per_req": st["server_cpu_us_per_req"],
                "runs": t.runs["c16"],
            },
        },
        # The large case: rps (whole streams/s), latency, server CPU per request.
        "large": {**large, "concurrency": LARGE_CONCURRENCY, "body_bytes": len(payloads.LARGE_BODY),
                  "runs": t.runs["large"]},
        "rss_kib": {"idle": t.rss_idle, "loaded": t.rss_loaded, "after": t.rss_after,
                    "growth": t.rss_after - t.rss_idle, "soak_growth": t.rss_after - t.rss_loaded,
                    "soak_requests": t.soak_served, "requests_served": server.served},
        "modules_loaded": t.modules,
        **({"info": server.info} if server.info else {}),
        **t.extra,
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
    p.add_argument("--soak-seconds", type=float, default=None, help="time cap of the soak of N requests (default 40, quick 10)")
    p.add_argument("--repeat", type=int, default=None,
                   help="runs of each timed measurement and of the start-up, interleaved across targets; "
                        "medians are reported (default 3, quick 1)")
    args = p.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown or not args.targets:
        p.error(f"unknown targets {unknown}; choose from {','.join(TARGETS)}")
    return args


def compile_sources() -> None:
    """Byte-compile the repo's packages, as pip does when it installs a wheel.

    The repo's packages are installed editable, so their ``.pyc`` files are
    written on first import only where Python may write them: with
    ``PYTHONDONTWRITEBYTECODE`` set (as on the project's machines) every start
    compiled Portway's own modules again, and start-up measured that (about a
    sixth of it), not what a deployed install does.
    """
    import compileall

    for part in ("core", "plugins"):
        compileall.compile_dir(REPO / part, quiet=2, workers=0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.requests is not None:
        settings = Settings(**{**settings.__dict__, "soak_total": args.requests})
    if args.soak_seconds is not None:
        settings = Settings(**{**settings.__dict__, "soak_max_s": args.soak_seconds})
    if args.repeat is not None:
        settings = Settings(**{**settings.__dict__, "repeat": args.repeat})
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
    if not settings.quick:
        compile_sources()

    steal0 = steal_ticks()
    mock = start_mock(mock_kind, work, load_cpu, settings.startup_timeout)
    rig = Rig(args, settings, tools, mock, mock_kind, server_cpu, rss_kib(mock.proc.pid))
    targets = [Target(key) for key in args.targets]
    try:
        for t in targets:
            if t.key in ("c", "d") and not args.portway:
                t.fail("skipped", "`portway` executable not found (is the CLI installed in the venv?)", mock)
            elif t.key == "d":
                if args.disable_plugins is not None:
                    t.extra["plugins_disabled"] = [x for x in args.disable_plugins.split(",") if x]
                    t.extra["plugins_source"] = "--disable-plugins"
                else:
                    probe = work / "portway-probe.yaml"
                    probe.write_text(portway_config(free_port(), mock.port, None))
                    t.extra["plugins_disabled"], t.extra["plugins_source"] = optional_plugins(args.portway, probe)
        print(f"bench: {settings.repeat} round(s), targets {','.join(args.targets)}", file=sys.stderr, flush=True)
        measure_all(rig, targets)
        results = {t.key: result(t) for t in targets}
    finally:
        for t in targets:
            if t.server is not None and t.server is not mock:
                t.server.stop()
        mock.stop()
    steal1 = steal_ticks()
    steal_pct = round(100 * (steal1[0] - steal0[0]) / (steal1[1] - steal0[1]), 2) if steal1[1] > steal0[1] else None

    report = {
        "meta": {
            "mode": "quick" if settings.quick else "full",
            "started_at": datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ"),
            "elapsed_s": round(time.time() - started, 1),
            "mock": mock_kind,
            "loadgen": "wrk (non-stream, streams/s) + aiohttp (TTFB, chunks)" if have_wrk else "aiohttp",
            "pinning": f"servers on CPU {server_cpu}, mock + load on CPU {load_cpu}" if load_cpu is not None else "none (1 CPU)",
            "repeat": settings.repeat,
            "soak_total": settings.soak_total,
            "settings": settings.__dict__,
            "large_case": {
                "what": "Claude Code-like POST /v1/messages, streamed; Portway: claude-* -> anthropic provider",
                "body_bytes": len(payloads.LARGE_BODY), "stream_bytes": len(payloads.LARGE_STREAM_BODY),
                "stream_events": len(payloads.LARGE_STREAM_EVENTS), "concurrency": LARGE_CONCURRENCY,
            },
            # Other work on the machine skews every figure: a 1-min load average
            # well above ~2 at the start means re-run on a quieter machine.
            "host": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version(),
                     "loadavg_at_start": load_at_start, "loadavg_at_end": round(os.getloadavg()[0], 2),
                     # CPU time the hypervisor gave to others, over the whole run, both CPUs
                     "steal_pct": steal_pct},
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
