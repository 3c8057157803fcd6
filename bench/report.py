"""Derived figures (added latency vs a, ratios to b) and the Markdown report."""

from __future__ import annotations

from typing import Any

from bench.targets import TARGETS


def derive(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Added latency vs the mock (a), and every target's ratios to the floor (b)."""
    ok = {k: v for k, v in results.items() if v.get("status") == "ok"}
    a = ok.get("a")
    for r in ok.values():
        r["added_vs_a"] = {
            "p50_ms_c1": round(r["nonstream"]["c1"]["p50_ms"] - a["nonstream"]["c1"]["p50_ms"], 3) if a else None,
            "p50_ms_c64": round(r["nonstream"]["c64"]["p50_ms"] - a["nonstream"]["c64"]["p50_ms"], 3) if a else None,
            "ttfb_p50_ms": round(r["stream"]["ttfb_p50_ms"] - a["stream"]["ttfb_p50_ms"], 3) if a else None,
        }
    b = ok.get("b")
    if not b:
        return {}

    def ratio(x: float | None, y: float | None) -> float | None:
        return round(x / y, 3) if x is not None and y else None

    ratios: dict[str, dict[str, float | None]] = {}
    for k, r in ok.items():
        ratios[k] = {
            "rps_c1": ratio(r["nonstream"]["c1"]["rps"], b["nonstream"]["c1"]["rps"]),
            "rps_c64": ratio(r["nonstream"]["c64"]["rps"], b["nonstream"]["c64"]["rps"]),
            "added_p50_c1": ratio(r["added_vs_a"]["p50_ms_c1"], b["added_vs_a"]["p50_ms_c1"]),
            "ttfb_overhead": ratio(r["added_vs_a"]["ttfb_p50_ms"], b["added_vs_a"]["ttfb_p50_ms"]),
            "streams_per_s": ratio(r["stream"]["c16"]["streams_per_s"], b["stream"]["c16"]["streams_per_s"]),
            "rss_after": ratio(r["rss_kib"]["after"], b["rss_kib"]["after"]),
            "startup": ratio(r["startup_ms"], b["startup_ms"]),
        }
    return ratios


def markdown(report: dict[str, Any]) -> str:
    meta, results, ratios = report["meta"], report["targets"], report["ratios_vs_b"]

    def n(x: Any, fmt: str = ",.0f") -> str:
        return "–" if x is None else format(x, fmt)

    def mib(kib: int) -> str:
        return f"{kib / 1024:.1f}"

    out = [
        f"# Portway benchmark ({meta['mode']} mode, {meta['started_at']})",
        "",
        f"mock: {meta['mock']} · load generator: {meta['loadgen']} · pinning: {meta['pinning']} · "
        f"RSS 'after' is sampled after N = {meta['soak_total']:,} requests, or fewer (shown) if the "
        f"{meta['settings']['soak_max_s']:.0f} s soak cap came first",
        "",
        f"host: {meta['host']['cpus']} CPUs, {meta['host']['cpu_model']}, load average at start "
        f"{meta['host']['loadavg_at_start']} (other work on the machine skews every figure)",
        "",
        "| target | RPS c1 | p50 / p99 c1 (ms) | RPS c64 | server CPU c64 | p50 / p99 c64 (ms) | +p50 vs a, c1 (ms) "
        "| stream TTFB p50 c1 (ms) | TTFB +vs a (ms) | streams/s c16 | chunks/s c16 | RSS idle → after (MiB) (requests) "
        "| start-up (ms) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    for key, r in results.items():
        label = f"{key}: {TARGETS[key]}"
        if r["status"] != "ok":
            notes.append(f"- **{label}: {r['status']}**: {r['reason']}")
            continue
        c1, c64, st, add = r["nonstream"]["c1"], r["nonstream"]["c64"], r["stream"], r["added_vs_a"]
        out.append(
            f"| {label} | {n(c1['rps'])} | {c1['p50_ms']:.2f} / {c1['p99_ms']:.2f} | {n(c64['rps'])} | {c64['server_cpu_pct']:.0f} % "
            f"| {c64['p50_ms']:.2f} / {c64['p99_ms']:.2f} | {n(add['p50_ms_c1'], '+.3f')} "
            f"| {st['ttfb_p50_ms']:.2f} | {n(add['ttfb_p50_ms'], '+.3f')} | {n(st['c16']['streams_per_s'])} "
            f"| {n(st['c16']['chunks_per_s'])} | {mib(r['rss_kib']['idle'])} → {mib(r['rss_kib']['after'])} "
            f"({r['rss_kib']['requests_served']:,}) "
            f"| {r['startup_ms']:.0f} |"
        )
        errors = c1["errors"] + c64["errors"] + st["ttfb_errors"] + st["c16"]["errors"]
        if errors:
            notes.append(f"- {label}: {errors} failed requests during timed runs (excluded from RPS)")
    if ratios:
        out += [
            "",
            "## Ratios to the floor proxy (b) — the headline",
            "",
            "RPS and streams/s: higher is better (1.00 = as fast as the floor). "
            "Added latency, TTFB overhead, RSS, start-up: lower is better (1.00 = same cost as the floor).",
            "",
            "| target | RPS c1 | RPS c64 | added p50 c1 | TTFB overhead | streams/s c16 | RSS after N | start-up |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for key, q in ratios.items():
            cells = " | ".join("–" if q[f] is None else f"{q[f]:.2f}×" for f in
                               ("rps_c1", "rps_c64", "added_p50_c1", "ttfb_overhead", "streams_per_s", "rss_after", "startup"))
            out.append(f"| {key}: {TARGETS[key]} | {cells} |")
    for key, r in results.items():
        if r.get("plugins_disabled") is not None:
            notes.append(f"- {key}: plugins disabled: {r['plugins_disabled'] or 'none'} ({r['plugins_source']})")
    if notes:
        out += ["", *notes]
    return "\n".join(out) + "\n"
