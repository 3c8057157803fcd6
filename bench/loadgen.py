"""Load generators: wrk (full run) and a small asyncio + aiohttp client.

wrk is C and keeps up with anything a single Python worker can serve, so it
gives the RPS and latency figures of the full run. The aiohttp client is used
where wrk cannot see what we need (time to the first body byte of a stream,
SSE events per stream) and for the whole quick mode, which must run with
nothing but the Python venv.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

WRK_LUA = Path(__file__).with_name("wrk_post.lua")
HEADERS = {"content-type": "application/json", "authorization": "Bearer bench-key"}
DONE = b"data: [DONE]"  # how an OpenAI stream ends


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    """What one load run saw. Latencies in ms; only successful requests count."""

    requests: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    events: int = 0  # SSE events received over all streams

    def summary(self) -> dict[str, float | int]:
        lat = sorted(self.latencies_ms)
        out: dict[str, float | int] = {
            "requests": self.requests,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "rps": round(self.requests / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0,
            "p50_ms": round(percentile(lat, 50), 3),
            "p99_ms": round(percentile(lat, 99), 3),
        }
        if self.ttfb_ms:
            ttfb = sorted(self.ttfb_ms)
            out["ttfb_p50_ms"] = round(percentile(ttfb, 50), 3)
            out["ttfb_p99_ms"] = round(percentile(ttfb, 99), 3)
            out["events_per_stream"] = round(self.events / self.requests, 2) if self.requests else 0
            out["events_per_s"] = round(self.events / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0
        return out


async def _run(
    url: str, body: bytes, concurrency: int, count: int | None, duration: float | None, stream: bool,
    headers: Mapping[str, str], stream_end: bytes,
) -> LoadResult:
    result = LoadResult()
    issued = 0
    deadline = time.perf_counter() + duration if duration else float("inf")
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal issued
        while (count is None or issued < count) and time.perf_counter() < deadline:
            issued += 1
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    if stream:
                        first = await resp.content.readany()
                        t_first = time.perf_counter()
                        rest = await resp.read()
                        payload = first + rest
                    else:
                        payload = await resp.read()
                    t1 = time.perf_counter()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                result.errors += 1
                continue
            # A stream only counts if it is one: 200, ended by its end marker. This
            # also catches a stream request answered with a plain JSON completion.
            if resp.status != 200 or not payload or (stream and not payload.rstrip().endswith(stream_end)):
                result.errors += 1
                continue
            result.requests += 1
            result.latencies_ms.append((t1 - t0) * 1000)
            if stream:
                result.ttfb_ms.append((t_first - t0) * 1000)
                # Counting event starts over the whole body is immune to how
                # the bytes were split into reads.
                result.events += payload.count(b"data: ")

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - start
    return result


def run_aiohttp(
    url: str,
    body: bytes,
    concurrency: int,
    *,
    count: int | None = None,
    duration: float | None = None,
    stream: bool = False,
    headers: Mapping[str, str] = HEADERS,
    stream_end: bytes = DONE,
) -> LoadResult:
    """Closed-loop load: `concurrency` connections, until `count` requests or `duration` s.
    A stream counts as served only if its body ends with `stream_end`."""
    if count is None and duration is None:
        raise ValueError("give count or duration")
    coro = _run(url, body, concurrency, count, duration, stream, headers, stream_end)
    try:
        import uvloop  # the client is on the load core: the cheaper its loop, the better

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def run_wrk(
    url: str,
    body_file: Path,
    connections: int,
    duration_s: float,
    *,
    max_requests: int | None = None,
    headers_file: Path | None = None,
    prefix: Sequence[str] = (),
) -> dict[str, float | int]:
    """One wrk run (one thread); returns the same keys as LoadResult.summary().

    `prefix` is e.g. ``["taskset", "-c", "0"]``. With `max_requests`, wrk is
    stopped by SIGINT once the Lua script reports the limit was reached.
    `headers_file` ("Name: value" lines) replaces the default headers.
    """
    cmd = [
        *prefix, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s",
        "-s", str(WRK_LUA), url, "--", str(body_file),
    ]
    if max_requests is not None:
        cmd.append(f"max={max_requests}")
    if headers_file is not None:
        cmd.append(f"headers={headers_file}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    summary: dict | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("WRK_LIMIT_REACHED"):
            proc.send_signal(signal.SIGINT)
        elif line.startswith("WRK_JSON "):
            summary = json.loads(line[len("WRK_JSON "):])
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.wait()
    if summary is None:
        raise RuntimeError(f"wrk gave no summary (exit {proc.returncode}): {stderr.strip()[:500]}")
    errors = summary["errors"]
    elapsed = summary["duration_us"] / 1e6
    lat = summary["latency_us"]
    # wrk counts a non-2xx response in "requests" and also as a "status" error;
    # only successes count towards RPS, so a fast error page never looks good.
    ok = summary["requests"] - errors["status"]
    return {
        "requests": ok,
        "errors": sum(errors.values()),
        "elapsed_s": round(elapsed, 3),
        "rps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(lat["p50"] / 1000, 3),
        "p99_ms": round(lat["p99"] / 1000, 3),
        # Headers included; lets the caller check it got streams, not JSON.
        "bytes_per_response": round(summary["bytes"] / summary["requests"]) if summary["requests"] else 0,
    }
