"""Derived figures (added latency vs a, ratios to b) and the Markdown report."""

from __future__ import annotations

import statistics
from typing import Any

from bench.targets import TARGETS


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _spread(values: list[Any]) -> float | None:
    """(max - min) / median over the N runs, in %: how much one figure moved between rounds."""
    vals = sorted(v for v in values if _num(v))
    if len(vals) < 2:
        return None
    med = statistics.median(vals)
    return round(100 * (vals[-1] - vals[0]) / med, 1) if med else None


def _series(r: dict[str, Any]) -> dict[str, list[Any]]:
    """The per-round raw values of the figures that get a spread and a per-round ratio."""
    st = r["stream"]
    return {
        "rps_c1": [x["rps"] for x in r["nonstream"]["c1"]["runs"]],
        "rps_c64": [x["rps"] for x in r["nonstream"]["c64"]["runs"]],
        "cpu_per_req_c64": [x.get("server_cpu_us_per_req") for x in r["nonstream"]["c64"]["runs"]],
        "ttfb_p50": [x.get("ttfb_p50_ms") for x in st["ttfb_runs"]],
        "streams_per_s": [x["rps"] for x in st["c16"]["runs"]],
        "cpu_per_req_c16": [x.get("server_cpu_us_per_req") for x in st["c16"]["runs"]],
        "rps_large": [x["rps"] for x in r["large"]["runs"]],
        "cpu_per_req_large": [x.get("server_cpu_us_per_req") for x in r["large"]["runs"]],
        "startup": r["startup_ms_runs"],
    }


def derive(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Added latency vs the mock (a), run-to-run spreads, and every target's
    ratios to the floor (b): ratios of the medians, plus (in the JSON) the
    ratio of each round, the target's run to the floor's run of that round."""
    ok = {k: v for k, v in results.items() if v.get("status") == "ok"}
    a = ok.get("a")
    for r in ok.values():
        r["added_vs_a"] = {
            "p50_ms_c1": round(r["nonstream"]["c1"]["p50_ms"] - a["nonstream"]["c1"]["p50_ms"], 3) if a else None,
            "p50_ms_c64": round(r["nonstream"]["c64"]["p50_ms"] - a["nonstream"]["c64"]["p50_ms"], 3) if a else None,
            "ttfb_p50_ms": round(r["stream"]["ttfb_p50_ms"] - a["stream"]["ttfb_p50_ms"], 3) if a else None,
        }
        r["spread_pct"] = {k: _spread(v) for k, v in _series(r).items()}
    b = ok.get("b")
    if not b:
        return {}

    def ratio(x: float | None, y: float | None) -> float | None:
        return round(x / y, 3) if _num(x) and _num(y) and y else None

    b_series = _series(b)
    ratios: dict[str, dict[str, Any]] = {}
    for k, r in ok.items():
        c64, c16, large = r["nonstream"]["c64"], r["stream"]["c16"], r["large"]
        ratios[k] = {
            "rps_c1": ratio(r["nonstream"]["c1"]["rps"], b["nonstream"]["c1"]["rps"]),
            "rps_c64": ratio(c64["rps"], b["nonstream"]["c64"]["rps"]),
            "cpu_per_req_c64": ratio(c64.get("server_cpu_us_per_req"), b["nonstream"]["c64"].get("server_cpu_us_per_req")),
            "added_p50_c1": ratio(r["added_vs_a"]["p50_ms_c1"], b["added_vs_a"]["p50_ms_c1"]),
            "ttfb_overhead": ratio(r["added_vs_a"]["ttfb_p50_ms"], b["added_vs_a"]["ttfb_p50_ms"]),
            "streams_per_s": ratio(c16["streams_per_s"], b["stream"]["c16"]["streams_per_s"]),
            "cpu_per_req_c16": ratio(c16.get("server_cpu_us_per_req"), b["stream"]["c16"].get("server_cpu_us_per_req")),
            "rps_large": ratio(large["rps"], b["large"]["rps"]),
            "cpu_per_req_large": ratio(large.get("server_cpu_us_per_req"), b["large"].get("server_cpu_us_per_req")),
            "rss_after": ratio(r["rss_kib"]["after"], b["rss_kib"]["after"]),
            "startup": ratio(r["startup_ms"], b["startup_ms"]),
            "per_round": {
                f: [ratio(x, y) for x, y in zip(xs, b_series[f], strict=False)]
                for f, xs in _series(r).items() if f != "startup" and len(xs) == len(b_series[f])
            },
        }
    return ratios


def large_case(meta: dict[str, Any]) -> str:
    """One line on what the large-case columns measured."""
    case = meta.get("large_case") or {}
    return (f"a Claude Code-like `/v1/messages` request of {case.get('body_bytes', 0) / 1000:.0f} KB with Claude "
            f"Code's headers, streamed ({case.get('stream_events', '?')} Anthropic events), "
            f"{case.get('concurrency', '?')} connections; req/s is whole streams per second, CPU/req the server's "
            "CPU time per stream (it reads high when the server CPU is well under 100 %: the load core, shared "
            "with other work, was the limit)")


def markdown(report: dict[str, Any]) -> str:
    meta, results, ratios = report["meta"], report["targets"], report["ratios_vs_b"]
    host, repeat = meta["host"], meta.get("repeat", 1)

    def n(x: Any, fmt: str = ",.0f") -> str:
        return "–" if x is None else format(x, fmt)

    def mib(kib: int) -> str:
        return f"{kib / 1024:.1f}"

    how = (f"every timed figure and the start-up are the **median of {repeat} runs**, interleaved across the "
           "targets (raw runs in latest.json)" if repeat > 1 else "one run of each figure")
    steal = "" if host.get("steal_pct") is None else f", CPU steal during the run {host['steal_pct']:.1f} %"
    out = [
        f"# Portway benchmark ({meta['mode']} mode, {meta['started_at']})",
        "",
        f"mock: {meta['mock']} · load generator: {meta['loadgen']} · pinning: {meta['pinning']} · {how} · "
        f"RSS is sampled idle (after start-up), loaded (after the timed runs) and after a soak of "
        f"N = {meta['soak_total']:,} more small requests, or fewer (shown) if the "
        f"{meta['settings']['soak_max_s']:.0f} s cap came first: loaded → after is growth with requests alone",
        "",
        f"host: {host['cpus']} CPUs, {host['cpu_model']}, load average at start {host['loadavg_at_start']}, "
        f"at end {host.get('loadavg_at_end', '–')} (the run itself adds ~2){steal}; other work on the machine "
        "skews wall-clock figures, CPU/req much less",
        "",
        f"large: {large_case(meta)}",
        "",
        "| target | RPS c1 | p50 / p99 c1 (ms) | RPS c64 | server CPU c64 | CPU/req c64 (µs) | p50 / p99 c64 (ms) "
        "| +p50 vs a, c1 (ms) | stream TTFB p50 c1 (ms) | TTFB +vs a (ms) | streams/s c16 | chunks/s c16 "
        "| CPU/stream c16 (µs) | large: req/s | large: server CPU | large: CPU/req (µs) "
        "| RSS idle → loaded → after soak (MiB) (soak requests) | start-up (ms) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    for key, r in results.items():
        label = f"{key}: {TARGETS[key]}"
        if r["status"] != "ok":
            notes.append(f"- **{label}: {r['status']}**: {r['reason']}")
            continue
        c1, c64, st, add, large = r["nonstream"]["c1"], r["nonstream"]["c64"], r["stream"], r["added_vs_a"], r["large"]
        out.append(
            f"| {label} | {n(c1['rps'])} | {c1['p50_ms']:.2f} / {c1['p99_ms']:.2f} | {n(c64['rps'])} "
            f"| {c64['server_cpu_pct']:.0f} % | {n(c64.get('server_cpu_us_per_req'))} "
            f"| {c64['p50_ms']:.2f} / {c64['p99_ms']:.2f} | {n(add['p50_ms_c1'], '+.3f')} "
            f"| {st['ttfb_p50_ms']:.2f} | {n(add['ttfb_p50_ms'], '+.3f')} | {n(st['c16']['streams_per_s'])} "
            f"| {n(st['c16']['chunks_per_s'])} | {n(st['c16'].get('server_cpu_us_per_req'))} "
            f"| {n(large['rps'])} | {large['server_cpu_pct']:.0f} % | {n(large.get('server_cpu_us_per_req'))} "
            f"| {mib(r['rss_kib']['idle'])} → {mib(r['rss_kib']['loaded'])} → {mib(r['rss_kib']['after'])} "
            f"({r['rss_kib']['soak_requests']:,}) "
            f"| {r['startup_ms']:.0f} |"
        )
        errors = c1["errors"] + c64["errors"] + st["ttfb_errors"] + st["c16"]["errors"] + large["errors"]
        if errors:
            notes.append(f"- {label}: {errors} failed requests during timed runs (excluded from RPS)")
    if ratios:
        cols = ("rps_c1", "rps_c64", "cpu_per_req_c64", "added_p50_c1", "ttfb_overhead", "streams_per_s",
                "cpu_per_req_c16", "rps_large", "cpu_per_req_large", "rss_after", "startup")
        out += [
            "",
            "## Ratios to the floor proxy (b) — the headline",
            "",
            "RPS and streams/s: higher is better (1.00 = as fast as the floor). CPU/req, added latency, "
            "TTFB overhead, RSS, start-up: lower is better (1.00 = same cost as the floor). CPU/req is the "
            "server's own CPU time per request: the steadiest figure when the machine is shared.",
            "",
            "| target | RPS c1 | RPS c64 | CPU/req c64 | added p50 c1 | TTFB overhead | streams/s c16 "
            "| CPU/stream c16 | large: req/s | large: CPU/req | RSS after N | start-up |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for key, q in ratios.items():
            cells = " | ".join("–" if q[f] is None else f"{q[f]:.2f}×" for f in cols)
            out.append(f"| {key}: {TARGETS[key]} | {cells} |")
    spreads = {k: r["spread_pct"] for k, r in results.items() if r["status"] == "ok" and r.get("spread_pct")}
    if repeat > 1 and spreads:
        cols = ("rps_c1", "rps_c64", "cpu_per_req_c64", "ttfb_p50", "streams_per_s", "cpu_per_req_c16",
                "rps_large", "cpu_per_req_large", "startup")
        out += [
            "",
            f"## Run-to-run spread: (max − min) / median over the {repeat} runs",
            "",
            "How far one target's runs were apart; a ratio above is only as trustworthy as this is small.",
            "",
            "| target | RPS c1 | RPS c64 | CPU/req c64 | TTFB p50 | streams/s c16 | CPU/stream c16 | large: req/s "
            "| large: CPU/req | start-up |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for key, sp in spreads.items():
            cells = " | ".join("–" if sp.get(f) is None else f"{sp[f]:.0f} %" for f in cols)
            out.append(f"| {key}: {TARGETS[key]} | {cells} |")
    for key, r in results.items():
        if r.get("plugins_disabled") is not None:
            notes.append(f"- {key}: plugins disabled: {r['plugins_disabled'] or 'none'} ({r['plugins_source']})")
    if notes:
        out += ["", *notes]
    return "\n".join(out) + "\n"
