"""Writes ``docs/metrics.md`` from :data:`portway_metrics.families.FAMILIES`:
``python -m portway_metrics.docs > docs/metrics.md``.  A test fails when the
file and this output differ, and when the registry exposes other families."""

from __future__ import annotations

from portway_metrics.families import FAMILIES, Family

INTRO = """\
# Metrics

Generated from `plugins/observability/metrics/portway_metrics/families.py` by
`python -m portway_metrics.docs > docs/metrics.md`; a test fails when the two disagree, or when
`GET /metrics` exposes a family this page does not list.

`GET /metrics` answers in the Prometheus text format (through
[`prometheus-client`](https://github.com/prometheus/client_python), the reference Python client: the
exposition format, multiprocess mode and the process collector, nothing written here). It comes with
the `portway-metrics` plugin, which `pip install portway` pulls in: metrics are on by default.

```yaml
metrics:
  public: true          # default: /metrics needs no key (Prometheus scrapers rarely send one);
                        # false: it needs the master key, like the API (auth.master_key)
  sample_interval: 5    # seconds; with --workers N, how often each worker writes what it samples
```

A scrape config:

```yaml
scrape_configs:
  - job_name: portway
    static_configs: [{targets: ["127.0.0.1:8787"]}]
    # with metrics.public: false
    authorization: {credentials: <the master key>}
```

## How values are made

- **Per request** (`request`): the `request_finished` hook adds to plain numbers in the process
  (each label set's series is looked up once and kept; no lock, no I/O, no queue: about 4 µs a
  request, 6 µs a stream, measured on the bench machine), and they are handed to prometheus-client
  when `/metrics` is scraped (with several workers, also every `sample_interval`). Observing
  through prometheus-client directly cost about 27 µs a request (a lock per value, a loop per
  histogram).
- **Sampled** (`sampled`): what the gateway and other plugins count themselves (requests in flight,
  circuit breakers, concurrency limits and their queues, connection pools, the request log's queue,
  hook calls) is read when `/metrics`
  is scraped, and, with several workers, every `sample_interval` seconds.
- **Static** (`static`): set when the gateway starts.

## Labels

Label values come only from the config and from the code, never from what a client sends as it is:

- `model`: the alias the request named; a wildcard alias's pattern (`claude-*`) for a name it
  matched; `<provider>/<model>` when the provider lists that model or an alias targets it; else
  `<provider>/other` for a configured provider, and `other` for anything else.
- `provider`: the configured provider instance that answered; `cache` when a `pre_request` hook
  answered (a cache hit); `none` when no upstream answered (the request failed before one did).
- `endpoint`: `chat.completions`, `embeddings`, `messages`, `responses`, `rerank`, and `compare`
  (each model of a `POST /v1/compare`).
- `status`: the HTTP status sent (`499`: the client went away).
- `kind`: the error kind (`rate_limit`, `timeout`, `server_error`, `bad_request`, `not_found`, ...).
- `target`: a target as `<provider>/<model>` (from the config, or tried through one).
- `limiter`: a provider instance or a target with `max_concurrency` (portway-routing's queueing).
- `plugin`, `hook`: installed plugins and the request-path hooks they implement.

## Several workers

With `portway serve --workers N` (N > 1), `serve` sets `PROMETHEUS_MULTIPROC_DIR` to a fresh
temporary directory (unless it is already set: then that one is used and left in place) and removes
it on exit. Every worker writes its values to files there (prometheus-client's multiprocess mode),
and a scrape answered by any worker adds them all up: counters and histograms are sums over the
workers; each gauge says below how it combines (`livesum`: the sum over live workers, `livemax`:
the largest, `min`: the smallest). Sampled values of other workers are at most `sample_interval`
old. prometheus-client's process and platform collectors (`process_*`, `python_*`) describe one
process, so they are exposed only with one worker. A worker that stops cleanly takes its live
gauges out of the sums.

With one worker no directory is used and nothing is written to disk.

## Gateway overhead

`portway_gateway_overhead_seconds` is the request's duration minus the time spent waiting on
upstreams (`ctx.upstream_wait`: each attempt's answer, a stream's every chunk, and the backoff
between retries). It is the gateway's own work: parsing, validation, hooks, translation,
serialisation. For a stream it also holds the time spent handing chunks to a slow-reading client.

## Families
"""


def _row(family: Family) -> str:
    name = family.name + ("_total" if family.kind == "counter" else "")
    labels = ", ".join(f"`{label}`" for label in family.labels) or "none"
    kind = family.kind
    if family.kind == "gauge":
        kind += f" ({family.multiprocess})"
    return f"| `{name}` | {kind} | {labels} | {family.source} | {family.help} |"


def render() -> str:
    lines = [INTRO, "| family | type | labels | values | meaning |", "|---|---|---|---|---|"]
    lines += [_row(family) for family in FAMILIES]
    lines.append("")
    lines.append(f"{len(FAMILIES)} families, plus prometheus-client's `process_*` and `python_*` with one worker.")
    lines.append("")
    lines.append("Histogram buckets (seconds, tokens, dollars, chunks, bytes) are in `families.py`.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
