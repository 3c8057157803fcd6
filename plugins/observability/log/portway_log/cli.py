"""``portway logs tail`` and ``portway logs show ID``: the request log on
the terminal, read from the store the config names (no server needed)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime
from typing import Any

from portway import config as config_module
from portway import configcheck
from portway.catalog import format_cost
from portway.stores.sql import DATA_DIR_ENV, StoreConfig, StoreUnavailable, open_database
from portway_log.store import LogStore, logged_since, newest

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
#: Seconds ``tail`` looks back past the newest record it saw, for batches committed out of order.
FOLLOW_LOOKBACK = 10.0


def arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="logs_command", metavar="ACTION", required=True)
    tail = sub.add_parser("tail", help="print the newest requests, then follow new ones")
    tail.add_argument("-n", "--lines", type=int, default=10, help="how many of the newest to print first (default 10)")
    tail.add_argument("--no-follow", action="store_true", help="print and exit")
    tail.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")
    show = sub.add_parser("show", help="one request's whole record, as JSON")
    show.add_argument("request_id")
    for each in (tail, show):
        each.add_argument("--config", "-c", help="the config whose store: to read (found as `portway serve` finds it)")
        each.add_argument("--data-dir", help=f"where the default SQLite store is (default: ${DATA_DIR_ENV} or the XDG data dir)")


def line(record: dict[str, Any]) -> str:
    """One record as a terminal line."""
    when = datetime.fromtimestamp(record["time"]).strftime("%Y-%m-%d %H:%M:%S")
    served = f"{record['provider']}/{record['provider_model']}" if record["provider"] else "-"
    parts = [when, record["request_id"], record["endpoint"], f"model={record['model']}", "->", served,
             str(record["status"])]
    if record["latency_ms"] is not None:
        parts.append(f"{record['latency_ms']:.1f}ms")
    if record["ttft_ms"] is not None:
        parts.append(f"ttft={record['ttft_ms']:.1f}ms")
    if record["input_tokens"] is not None or record["output_tokens"] is not None:
        parts.append(f"tokens={record['input_tokens']}/{record['output_tokens']}")
    parts.append("cost=" + ("unknown" if record["cost"] is None else format_cost(record["cost"])))
    if record["error_kind"]:
        parts.append(f"error={record['error_kind']}")
    text = " ".join(str(part) for part in parts)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def store_url(args: argparse.Namespace) -> str | None:
    if args.data_dir:
        os.environ[DATA_DIR_ENV] = args.data_dir
    choice = config_module.discover(args.config)
    config = configcheck.checked_config(choice.path, secrets=False)
    section = config.extra_sections().get("store")
    store = config_module.validate_section(StoreConfig, {} if section is None else section, config.source, "store")
    return store.resolved_url()


def run(args: argparse.Namespace) -> int:
    url = store_url(args)
    if url is None:
        print("portway: the request log is off (store: false)", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_tail(url, args) if args.logs_command == "tail" else _show(url, args.request_id))
    except StoreUnavailable as exc:
        print(f"portway: the log store is unavailable: {exc}", file=sys.stderr)
        return EXIT_FAIL


async def _open(url: str) -> LogStore:
    store = LogStore(await open_database(url))
    await store.migrate()
    return store


async def _show(url: str, request_id: str) -> int:
    store = await _open(url)
    try:
        record = await store.get(request_id)
    finally:
        await store.db.close()
    if record is None:
        print(f"portway: no logged request {request_id!r}", file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(record, indent=2))
    return EXIT_OK


async def _tail(url: str, args: argparse.Namespace) -> int:
    store = await _open(url)
    try:
        records = await newest(store, args.lines) if args.lines > 0 else []
        for record in records:
            print(line(record), flush=True)
        # Follow by when records were written, looking back a little: another
        # worker's batch can commit after a later one, so ids already seen are skipped.
        latest = (await store.db.fetch("SELECT MAX(logged_at) AS at FROM log_requests"))[0]["at"]
        mark = latest if latest is not None else time.time()
        # What is already there counts as seen, printed or not: only records written from now on follow.
        seen = {record["id"]: record["logged_at"] for record in await logged_since(store, mark - FOLLOW_LOOKBACK)}
        while not args.no_follow:
            await asyncio.sleep(args.interval)
            for record in await logged_since(store, mark - FOLLOW_LOOKBACK):
                if record["id"] not in seen:
                    seen[record["id"]] = record["logged_at"]
                    print(line(record), flush=True)
                mark = max(mark, record["logged_at"])
            seen = {key: at for key, at in seen.items() if at >= mark - FOLLOW_LOOKBACK}
    finally:
        await store.db.close()
    return EXIT_OK
