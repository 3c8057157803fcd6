"""The cache's cost and gain, through real `portway serve` processes (issue 14).

    python -m bench.cache                 # ~1 minute on 2 cores
    python -m bench.cache --requests 300  # quicker, noisier

The Python mock upstream (bench/mock_upstream.py) runs on CPU 0 with the load
client; each gateway runs alone on CPU 1.  Gateways: no cache (the baseline),
exact cache in memory, exact cache in Redis, semantic cache in memory (the
mock's /v1/embeddings is the embedding model).  For each path it measures, at
concurrency 1, the latency of sequential requests (p50 / p99) and the
requests per second, then requests per second at concurrency 16:

- ``hit``: the same request again and again;
- ``miss``: a new prompt each time (look up, go upstream, store; in semantic
  mode also the embedding call and the vector search);
- the mock itself (the floor of any request) and the no-cache gateway.

The added latency of a hit is its p50 minus the mock's p50: what a client
waits for an answer the gateway already has.  Results are printed as a
markdown table (docs/caching.md has the latest).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.loadgen import percentile
from bench.procs import CHAT, REPO, Server, free_port, pin_prefix, spawn, wait_ready

HEADERS = {"content-type": "application/json", "authorization": "Bearer bench-key"}
REDIS_URL = "redis://127.0.0.1:6379/0"


def body(prompt: str) -> bytes:
    return orjson.dumps({"model": "fast", "max_tokens": 64, "temperature": 0.2, "messages": [
        {"role": "system", "content": "You are a concise assistant. Answer in one short paragraph."},
        {"role": "user", "content": prompt}]})


def gateway_config(mock_port: int, cache: dict[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "server": {"access_log": False},
        "providers": {"up": {"type": "openai", "api_key": "sk-bench", "base_url": f"http://127.0.0.1:{mock_port}/v1"}},
        "models": {"fast": {"target": {"provider": "up", "model": "gpt-4o-mini"}},
                   "embed": {"target": {"provider": "up", "model": "text-embedding-3-small"}}},
        "routing": {"breaker": {"enabled": False}},
    }
    if cache is not None:
        config["cache"] = cache
    return config


async def sequential(url: str, bodies: list[bytes], headers: dict[str, str]) -> tuple[list[float], float, list[str]]:
    """Latencies (ms) of the bodies sent one after another, the elapsed seconds, and each x-portway-cache."""
    latencies, statuses = [], []
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        for data in bodies:
            t0 = time.perf_counter()
            async with session.post(url, data=data, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"{url} answered {resp.status}: {await resp.text()}")
                statuses.append(resp.headers.get("x-portway-cache", "-"))
            latencies.append((time.perf_counter() - t0) * 1000)
        return latencies, time.perf_counter() - start, statuses


async def concurrent(url: str, bodies: list[bytes], concurrency: int) -> float:
    """Requests per second with ``concurrency`` clients sharing ``bodies``."""
    queue = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            while queue:
                data = queue.pop()
                async with session.post(url, data=data, headers=HEADERS) as resp:
                    await resp.read()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(bodies) / (time.perf_counter() - start)


def measure(url: str, bodies: list[bytes], expect: str | None) -> dict[str, Any]:
    latencies, elapsed, statuses = asyncio.run(sequential(url, bodies, HEADERS))
    if expect is not None and statuses.count(expect) < len(statuses) * 0.99:
        raise SystemExit(f"{url}: expected {expect}, got {sorted(set(statuses))}")
    ordered = sorted(latencies)
    return {"p50_ms": round(percentile(ordered, 50), 3), "p99_ms": round(percentile(ordered, 99), 3),
            "rps_c1": round(len(bodies) / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests per measured path (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, the median kept (default 3)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    work = args.out / "work" / "cache"
    work.mkdir(parents=True, exist_ok=True)
    portway = shutil.which("portway") or str(Path(__import__("sys").executable).parent / "portway")
    python = str(Path(__import__("sys").executable))
    prefix = f"portway-bench:{uuid.uuid4().hex}:"

    servers: list[Server] = []
    try:
        mock_port = free_port()
        proc, t0 = spawn("mock", [*pin_prefix(0), python, "-m", "bench.mock_upstream", "--port", str(mock_port)],
                         work / "mock.log")
        mock = Server("mock", proc, mock_port, work / "mock.log")
        servers.append(mock)
        wait_ready(mock, t0, 20, body("warm up"))
        gateways = {
            "no cache": None,
            "exact, memory": {"backend": "memory"},
            "exact, redis": {"backend": "redis", "redis_url": REDIS_URL, "prefix": prefix},
            "semantic, memory": {"backend": "memory", "mode": "semantic",
                                 "semantic": {"embedding_model": "embed", "threshold": 0.95}},
        }
        started: dict[str, Server] = {}
        for name, cache in gateways.items():
            port = free_port()
            config = work / f"{name.replace(', ', '-').replace(' ', '-')}.json"
            config.write_text(json.dumps(gateway_config(mock_port, cache)))
            log = work / f"{config.stem}.log"
            proc, t0 = spawn(name, [*pin_prefix(1), portway, "serve", "--config", str(config), "--port", str(port),
                                    "--log-level", "warning"], log)
            server = Server(name, proc, port, log)
            servers.append(server)
            wait_ready(server, t0, 30, body("warm up"), health="/health")
            started[name] = server

        n = args.requests
        rows: dict[str, list[dict[str, Any]]] = {}

        def run(label: str, server: Server, bodies: list[bytes], expect: str | None) -> None:
            figures = measure(f"http://127.0.0.1:{server.port}{CHAT}", bodies, expect)
            figures["rps_c16"] = round(asyncio.run(concurrent(f"http://127.0.0.1:{server.port}{CHAT}", bodies, 16)), 1)
            rows.setdefault(label, []).append(figures)

        for round_ in range(args.repeat):
            same = [body("Summarise why connection pooling matters.")] * n
            run("mock upstream (floor)", mock, same, None)
            run("no cache", started["no cache"], same, None)
            for name in ("exact, memory", "exact, redis", "semantic, memory"):
                server = started[name]
                fresh = [body(f"round {round_} question {i} for {name}") for i in range(n)]
                # Concurrency 16 needs prompts of its own: a second pass over `fresh` would hit.
                figures = measure(f"http://127.0.0.1:{server.port}{CHAT}", fresh, "miss")
                more = [body(f"round {round_} c16 question {i} for {name}") for i in range(n)]
                figures["rps_c16"] = round(asyncio.run(concurrent(f"http://127.0.0.1:{server.port}{CHAT}", more, 16)), 1)
                rows.setdefault(f"{name}: miss", []).append(figures)
                run(f"{name}: hit", server, [body(f"round {round_} question 0 for {name}")] * n, "hit")

        table = {label: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                 for label, runs in rows.items()}
        floor = table["mock upstream (floor)"]["p50_ms"]
        print(f"\n{n} requests per figure, median of {args.repeat} runs\n")
        print("| path | p50 c=1 (ms) | p99 c=1 (ms) | added p50 vs mock (ms) | RPS c=1 | RPS c=16 |")
        print("|---|--:|--:|--:|--:|--:|")
        for label, f in table.items():
            added = "–" if label.startswith("mock") else f"{f['p50_ms'] - floor:+.3f}"
            print(f"| {label} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} | {added} | {f['rps_c1']:,.0f} | "
                  f"{f['rps_c16']:,.0f} |")
        print()
        for name in ("exact, memory", "exact, redis", "semantic, memory"):
            hit, miss = table[f"{name}: hit"], table[f"{name}: miss"]
            print(f"{name}: hit / miss RPS {hit['rps_c1'] / miss['rps_c1']:.2f}x at c=1, "
                  f"{hit['rps_c16'] / miss['rps_c16']:.2f}x at c=16")
        print(f"semantic miss − exact miss, p50: {table['semantic, memory: miss']['p50_ms'] - table['exact, memory: miss']['p50_ms']:+.3f} ms "
              f"(the embedding call and the vector search)")
        (args.out / "cache.json").write_text(json.dumps(table, indent=2))
    finally:
        for server in servers:
            server.stop()
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
        except Exception:
            pass


if __name__ == "__main__":
    main()
