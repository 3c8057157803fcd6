"""Serving answers to clients that may leave.

A provider keeps generating (and billing) until its connection closes, so
the moment a client disconnects, the work done for it must be cancelled:
before the answer starts (:func:`unless_disconnected`) and while a stream
is being sent (:class:`EventStreamResponse`).  Both use one watcher task
that waits for the ASGI ``http.disconnect`` message and cancels the
request's own task; the work runs in that task, with no task group and no
extra task per chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client went away before the answer was ready."""


#: A request still running after this many seconds gets a watcher.  Quicker
#: answers never pay for one (a task, a pending receive and a cancellation
#: cost about as much as the rest of the gateway's own work per request);
#: a disconnect is still noticed, at most this much later.
WATCH_AFTER = 0.05


class _Watch:
    """Cancels the current task when ``receive`` reports the client has gone."""

    __slots__ = ("task", "gone", "_receive", "_timer", "_watcher")

    def __init__(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.gone = False
        self._receive = receive
        self._watcher: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER, self._start)

    def _start(self) -> None:
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        # The request body is already read, so the next message is the disconnect.
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.task.cancel()

    def caused(self) -> bool:
        """After a CancelledError: was it ours (the client left)?  Then the
        cancellation is consumed and the caller carries on to clean up."""
        return self.gone and self.task.uncancel() == 0

    def stop(self) -> None:
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


async def unless_disconnected(receive: Callable[[], Awaitable[dict[str, Any]]], work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise
    :class:`ClientDisconnected`.  (Starlette watches for disconnects only
    once a streamed body has begun; this covers the time before it.)"""
    watch = _Watch(receive)
    try:
        return await work
    except asyncio.CancelledError:
        if watch.caused():
            raise ClientDisconnected() from None
        raise
    finally:
        watch.stop()


class EventStreamResponse(Response):
    """``text/event-stream`` from an async iterator of bytes, one write per
    item.  When the client disconnects, the iterator is cancelled and closed
    at once, which closes the upstream request behind it."""

    media_type = "text/event-stream"

    def __init__(self, body: AsyncIterator[bytes], headers: dict[str, str] | None = None,
                 on_close: Callable[[bool], None] | None = None) -> None:
        self.body_iterator = body
        #: Called once the response is over, however it ended (after its last
        #: byte and after the body is closed), with whether the body was read at all.
        self.on_close = on_close
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = _Watch(receive)
        ran = False
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            ran = True
            # The first part leaves at once, with the headers (the time to the
            # first byte); later ones at the end of their event-loop turn.
            flush = scope.get("portway.flush")
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if flush is not None:
                    flush()
                    flush = None
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.caused():
                raise
        except OSError:
            pass  # the connection broke while writing: same as a disconnect
        finally:
            watch.stop()
            closer = getattr(self.body_iterator, "aclose", None)
            if closer is not None:
                await closer()
            if self.on_close is not None:
                self.on_close(ran)
