"""The added latency of the default ``pii`` guardrail on a 2 KB prompt, at c=1.

    .venv/bin/python -m bench.guardrails [--requests N] [--rounds R]

Two figures (docs/guardrails.md keeps the latest):

* **in process**: the guardrail framework's ``pre_request`` with one ``pii``
  check (``action: redact``, every entity) on the 2 KB prompt, called
  directly, many times: exactly the work a request gains, without the
  network's noise;
* **end to end**: two ``portway serve`` processes in front of the Python mock
  upstream, one without guardrails and one with ``default: [pii]``, each
  asked the same 2 KB prompt one request at a time (c=1), in interleaved
  rounds; the difference of the medians of p50.

Needs portway-guardrails and portway-guardrails-pii installed (``./dev install``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.loadgen import run_aiohttp
from bench.procs import Server, free_port, spawn, wait_ready
from bench.targets import start_mock

#: About 2 KB of ordinary prose with a few numbers in it and no personal data (the common case:
#: every pattern runs, nothing is replaced).
SENTENCES = [
    "The quarterly report covers 12 regions and 340 stores across the network.",
    "Revenue grew by 4.5 percent while costs stayed flat for the third quarter in a row.",
    "Please summarise the main risks and suggest two actions for the coming year.",
    "Our support team answered 9120 tickets, most of them within 24 hours of arrival.",
    "The new warehouse opened on schedule and handles about 1500 parcels a day.",
]


def prompt(size: int = 2048) -> str:
    text = ""
    i = 0
    while len(text) < size:
        text += SENTENCES[i % len(SENTENCES)] + " "
        i += 1
    return text[:size]


def body(text: str) -> bytes:
    return json.dumps({"model": "bench", "max_tokens": 64,
                       "messages": [{"role": "user", "content": text}]}).encode()


def config(port: int, mock_port: int, guardrails: bool) -> str:
    lines = [
        f"server: {{host: 127.0.0.1, port: {port}}}",
        "providers:",
        f'  up: {{type: openai, api_key: "bench-key", base_url: "http://127.0.0.1:{mock_port}/v1"}}',
        "models:",
        "  bench: {target: {provider: up, model: gpt-4o-mini}}",
    ]
    if guardrails:
        lines += ["guardrails:", "  checks: {pii: {type: pii, action: redact, on: [input]}}", "  default: [pii]"]
    return "\n".join(lines) + "\n"


def in_process(text: str, count: int) -> float:
    """Microseconds per call of the framework's pre_request with the pii check."""
    from portway_guardrails.runner import Guardrails
    from portway_guardrails_pii.pii import PIICheck, PIIConfig

    check = PIICheck("pii", PIIConfig(type="pii", action="redact", on=["input"]))
    runner = Guardrails({"pii": check}, ["pii"], 64, False)

    def ctx() -> Any:
        return SimpleNamespace(body={"model": "bench", "messages": [{"role": "user", "content": text}]},
                               headers={}, stream=False, metadata={}, verdicts=[], response_headers={},
                               model="bench", route=None, gates=[], alias_option=lambda key: None)

    async def run() -> float:
        for _ in range(200):
            await runner.pre_request(ctx())
        contexts = [ctx() for _ in range(count)]
        started = time.perf_counter()
        for c in contexts:
            await runner.pre_request(c)
        return (time.perf_counter() - started) / count * 1e6

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guardrails", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round and server (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--portway", default=str(Path(sys.executable).parent / "portway"))
    args = parser.parse_args(argv)
    text = prompt()
    micro = in_process(text, 20000)
    print(f"in process: pre_request with pii on a {len(text)}-character prompt: {micro:.1f} us")

    work = Path(tempfile.mkdtemp(prefix="portway-bench-guardrails-"))
    mock = start_mock("python", work, None, 30)
    servers: dict[str, Server] = {}
    try:
        for name, with_guardrails in (("without", False), ("with pii", True)):
            port = free_port()
            path = work / f"{name.replace(' ', '-')}.yaml"
            path.write_text(config(port, mock.port, with_guardrails))
            proc, t0 = spawn(name, [args.portway, "serve", "--config", str(path), "--port", str(port)],
                             work / f"{path.stem}.log")
            servers[name] = Server(name, proc, port, work / f"{path.stem}.log")
            wait_ready(servers[name], t0, 60, body("hi"), health="/health")
        payload = body(text)
        p50: dict[str, list[float]] = {name: [] for name in servers}
        for rnd in range(args.rounds):
            order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
            for name in order:
                result = run_aiohttp(servers[name].url, payload, 1, count=args.requests).summary()
                if result["errors"]:
                    print(f"{name}: {result['errors']} errors", file=sys.stderr)
                    return 1
                p50[name].append(float(result["p50_ms"]))
        for name, values in p50.items():
            print(f"{name:>9}: p50 {statistics.median(values):.3f} ms (rounds: {', '.join(f'{v:.3f}' for v in values)})")
        added = statistics.median(p50["with pii"]) - statistics.median(p50["without"])
        per_round = [w - o for w, o in zip(p50["with pii"], p50["without"], strict=True)]
        print(f"added at c=1: {added * 1000:.0f} us (median of p50s; per round: "
              f"{', '.join(f'{d * 1000:.0f}' for d in per_round)} us)")
    finally:
        for server in servers.values():
            server.stop()
        mock.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
