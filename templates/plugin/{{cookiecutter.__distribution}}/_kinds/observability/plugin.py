"""{{ cookiecutter.description }}

A request log: one JSON line per finished request (request id, model,
provider, status, latency, token usage) appended to a file.  The request
path only puts a small record on a bounded queue; a background task does
the writing, so a slow disk never slows a request.

Configure it with its own top-level section::

    {{ cookiecutter.name }}:
      path: /var/log/portway/requests.jsonl
      queue_size: 10000     # records beyond this are dropped (and counted)

To send the records somewhere else (an HTTP collector, a message queue),
replace :meth:`Sink.write`; to record more, extend :func:`record_of`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from typing import IO, Any

from portway import hookimpl
from pydantic import BaseModel, ConfigDict, Field

PORTWAY_PLUGIN_KIND = "observability"
NAME = "{{ cookiecutter.name }}"

log = logging.getLogger(NAME)


class Settings(BaseModel):
    """The ``{{ cookiecutter.name }}:`` config section (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    path: str = "portway-requests.jsonl"
    queue_size: int = Field(default=10_000, ge=1)


class Sink:
    """The queue, the file and the task that moves records from one to the other."""

    def __init__(self, settings: Settings) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(settings.queue_size)
        self.file: IO[str] = open(settings.path, "a", encoding="utf-8")  # closed in close()
        self.dropped = 0
        self.task = asyncio.create_task(self.run(), name=f"{NAME} writer")

    def put(self, record: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self) -> None:
        """Write whatever is queued, in batches, until the ``None`` that
        :meth:`close` sends."""
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            records = [record for record in batch if record is not None]
            if records:
                try:
                    await asyncio.to_thread(self.write, records)
                except Exception:
                    log.exception("%s: could not write %d records", NAME, len(records))
            if len(records) < len(batch):
                return

    def write(self, records: list[dict[str, Any]]) -> None:
        """Runs in a worker thread: blocking I/O is fine here."""
        self.file.write("".join(json.dumps(record, default=str) + "\n" for record in records))
        self.file.flush()

    async def close(self) -> None:
        await self.queue.put(None)
        await self.task
        self.file.close()
        if self.dropped:
            log.warning("%s: dropped %d records (queue full)", NAME, self.dropped)


# One sink per gateway, found from a request as sinks[ctx.gateway].  Several
# gateways may run in one process (tests, an app embedding Portway), each
# with its own config and event loop, and a queue or task belongs to one
# loop; stopping one gateway must not close another's sink.  Weak keys:
# nothing here keeps a gateway alive.
sinks: weakref.WeakKeyDictionary[Any, Sink] = weakref.WeakKeyDictionary()


@hookimpl
def register_config(register: Any) -> None:
    register(NAME, Settings)


@hookimpl
async def startup(gateway: Any) -> None:
    """Open the file (a bad path stops the gateway with a clear error) and
    start the writer."""
    sinks[gateway] = Sink(gateway.plugin_config[NAME])


@hookimpl
async def shutdown(gateway: Any) -> None:
    """Write what is still queued, then close the file."""
    sink = sinks.pop(gateway, None)
    if sink is not None:
        await sink.close()


def record_of(ctx: Any) -> dict[str, Any]:
    """The record for one finished request (see portway.context.RequestContext)."""
    if ctx.target is not None:
        provider = ctx.target.provider.name
    else:
        provider = "cache" if ctx.cached else None
    return {
        "time": time.time(),
        "request_id": ctx.request_id,
        "endpoint": ctx.endpoint,
        "model": ctx.model,
        "provider": provider,
        "stream": ctx.stream,
        "status": ctx.status,
        "latency_ms": None if ctx.latency is None else round(ctx.latency * 1000, 3),
        "usage": ctx.usage,
        "error": None if ctx.error is None else str(ctx.error),
    }


@hookimpl
def request_finished(ctx: Any) -> None:
    """Called once the response is sent (or failed).  Synchronous and on
    the request path: build the record and queue it, nothing more."""
    sink = sinks.get(ctx.gateway)
    if sink is not None:  # None: a request still finishing after shutdown
        sink.put(record_of(ctx))
