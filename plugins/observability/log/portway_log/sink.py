"""The log sink: a bounded queue filled by ``request_finished`` and a
background task that writes it in batches.

Nothing here can slow or fail a request: :meth:`LogSink.add` appends a tuple
or, with the queue full, counts a drop.  A store that is down or slow costs
records, never latency: a batch that cannot be written is dropped and
counted, and the writer waits (0.5 s, doubling to 30 s) before it tries the
store again, while the queue fills and then drops.

The counters are per process (``--workers N``: per worker), and are what
``GET /admin/logs/stats`` shows and what a metrics plugin reads
(:func:`portway_log.sink_of`):

- ``queue_depth``: records waiting now; ``queue_size`` its limit;
- ``accepted``, ``written``: records queued, records in the store;
- ``dropped``: records lost, of which ``dropped_queue_full`` (the queue was
  full) and ``dropped_store_error`` (their batch could not be written);
- ``write_errors``: failed batches; ``last_error``: the last failure's text;
- ``bodies_skipped``: records queued without their bodies (:data:`BODY_BUDGET`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import deque
from typing import Any

from portway.stores.sql import StoreUnavailable, open_database, redact_url
from portway_log.config import LogConfig
from portway_log.record import capture, row
from portway_log.store import LogStore

log = logging.getLogger("portway.log")

RETRY_INITIAL = 0.5
RETRY_MAX = 30.0
#: The longest a record waits for more to share its transaction (a read of the
#: log or a full batch writes at once).  One transaction per request cost a
#: busy gateway about a quarter of its throughput; a batch costs little a record.
FLUSH_SECONDS = 0.2
#: Bytes of request body the queue may hold (when bodies are logged): past it
#: a record is queued without its bodies (``body_truncated``), so a store that
#: is down cannot make the queue hold ``queue_size`` large bodies.
BODY_BUDGET = 64 * 1024 * 1024


class LogSink:
    def __init__(self, url: str, config: LogConfig) -> None:
        self.url = url
        self.config = config
        self.bodies = config.log_bodies != "off"
        self.queue_size = config.queue_size
        self._pending: deque[tuple[Any, ...]] = deque()
        self._wake = asyncio.Event()  # something is queued
        self._now = asyncio.Event()  # write without waiting for more: a full batch, a flush, shutdown
        self._settled = asyncio.Condition()
        self._store: LogStore | None = None
        self._open_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self.accepted = 0
        self.written = 0
        self.dropped_queue_full = 0
        self.dropped_store_error = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self.swept = 0
        self.bodies_skipped = 0
        self._held_bytes = 0

    # -- the request path ------------------------------------------------------------

    def add(self, ctx: Any) -> None:
        if len(self._pending) >= self.queue_size:
            self.dropped_queue_full += 1
            return
        if self.bodies:
            held = ctx.body_bytes or 0
            if self._held_bytes + held > BODY_BUDGET:
                self.bodies_skipped += 1
                self._pending.append(capture(ctx, False, 0, True))
            else:
                self._held_bytes += held
                self._pending.append(capture(ctx, True, held))
        else:
            self._pending.append(capture(ctx, False))
        self.accepted += 1
        if not self._wake.is_set():
            self._wake.set()
        if len(self._pending) >= self.config.batch_size:
            self._now.set()

    # -- figures ----------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def dropped(self) -> int:
        return self.dropped_queue_full + self.dropped_store_error

    def stats(self) -> dict[str, Any]:
        return {
            "store": redact_url(self.url), "connected": self._store is not None, "pid": os.getpid(),
            "queue_depth": self.queue_depth, "queue_size": self.queue_size, "accepted": self.accepted,
            "written": self.written, "dropped": self.dropped, "dropped_queue_full": self.dropped_queue_full,
            "dropped_store_error": self.dropped_store_error, "write_errors": self.write_errors,
            "last_error": self.last_error, "swept": self.swept, "bodies_skipped": self.bodies_skipped,
        }

    # -- the store ----------------------------------------------------------------------

    async def store(self) -> LogStore:
        """The store, opened (and migrated) on first use; raises
        :class:`StoreUnavailable` when it cannot be reached."""
        async with self._open_lock:
            if self._store is None:
                db = await open_database(self.url)
                store = LogStore(db)
                try:
                    await store.migrate()
                except BaseException as exc:
                    await db.close()
                    if isinstance(exc, Exception) and not isinstance(exc, StoreUnavailable):
                        # A refused migration (permissions, a foreign table in the way): the store is unusable.
                        raise StoreUnavailable(f"cannot migrate the log's tables: {type(exc).__name__}: {exc}") from exc
                    raise
                self._store = store
            return self._store

    async def _forget_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):
                await store.db.close()

    # -- the background tasks ---------------------------------------------------------

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_forever(), name="portway-log-writer")
        if self.config.retention is not None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="portway-log-sweep")

    async def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then close."""
        self._closing = True
        self._wake.set()
        self._now.set()
        for task in (self._sweeper, self._writer):
            if task is None:
                continue
            if task is self._writer:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._forget_store()

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record accepted before the call is written or
        dropped (False: not within ``timeout`` seconds)."""
        target = self.accepted
        self._wake.set()
        self._now.set()

        async def settled() -> None:
            async with self._settled:
                await self._settled.wait_for(lambda: self.written + self.dropped_store_error >= target)

        try:
            await asyncio.wait_for(settled(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _write_forever(self) -> None:
        delay = RETRY_INITIAL
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(self._pending) < self.config.batch_size and not self._now.is_set() and not self._closing:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._now.wait(), FLUSH_SECONDS)
            if len(self._pending) <= self.config.batch_size:
                self._now.clear()  # (a fuller queue goes on at once)
            batch = [self._pending.popleft() for _ in range(min(self.config.batch_size, len(self._pending)))]
            if self.bodies:
                self._held_bytes -= sum(values[-2] for values in batch)
            if self._closing and self._store is None and self.write_errors:
                # Shutting down with the store already failing: do not wait out another connect.
                self.dropped_store_error += len(batch)
                await self._notify()
                continue
            try:
                store = await self.store()
                rows, tags = self._rows(batch)
                await store.write(rows, tags)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.dropped_store_error += len(batch)
                self.write_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("request log: %d records dropped, the store failed: %s", len(batch), self.last_error)
                await self._forget_store()
                await self._notify()
                if self._closing:
                    continue  # shutting down: drop the rest rather than wait for the store
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_INITIAL
            self.written += len(batch)
            await self._notify()

    async def _notify(self) -> None:
        async with self._settled:
            self._settled.notify_all()

    def _rows(self, batch: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[tuple[str, str, str]]]:
        mode, cap = self.config.log_bodies, self.config.max_body_bytes
        rows, tags = [], []
        now = time.time()
        for values in batch:
            # Time first, so that rows go in at the end of the primary key's index
            # (a random key lands anywhere in it: measured, that costs SQLite a third more per row).
            # The random part tells apart rows of the same nanosecond from other workers and
            # machines; ``random`` (reseeded in a forked worker) needs no system call per row.
            record_id = f"{time.time_ns():016x}{random.getrandbits(32):08x}"
            rows.append(row(record_id, now, values, mode, cap))
            given = values[7]
            if isinstance(given, dict):
                tags += [(record_id, str(name), str(value)) for name, value in given.items()]
        return rows, tags

    async def _sweep_forever(self) -> None:
        retention = self.config.retention
        assert retention is not None
        # Often enough that nothing outlives its retention by more than a tenth of it (at most an hour).
        every = min(max(retention / 10, 0.05), 3600.0)
        while True:
            try:
                store = await self.store()
                self.swept += await store.sweep(time.time() - retention)
            except StoreUnavailable:
                pass  # the writer counts and reports a store that is down
            except Exception as exc:  # a sweep must never end the task
                log.warning("request log: retention sweep failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(every)
