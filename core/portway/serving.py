"""How the gateway is served: uvicorn's httptools protocol, made to answer
the requests it cannot parse in the API's JSON error shape, and to refuse
oversized request headers before buffering them.

uvicorn answers a request its parser rejects (a NUL or a bare CR in a
header, a bad Content-Length, broken chunked framing) with a plain-text
400.  Clients of this API parse JSON errors, so :class:`GatewayProtocol`
sends one body that both SDKs read: OpenAI's ``{"error": {...}}`` with the
Anthropic ``"type": "error"`` beside it.  httptools itself puts no limit on
header size, so the protocol counts what arrives before the headers are
complete and answers 431 past ``max_header_bytes``.

Every such refusal, and any response that closes a connection whose
request body was not read to its end (a 413), closes *lingering*: the
answer and a FIN go out, and what the client is still uploading is read and
dropped for a moment before the socket closes.  Closing at once with unread
data makes the kernel send a reset, and the client would see "connection
reset" instead of the 413 or 431 it was sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from portway import serialization

#: Default cap on a request's line and headers together.
MAX_HEADER_BYTES = 64 * 1024

_REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}


def error_bytes(status: int, message: str, code: str) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection."""
    body = serialization.dumps({"type": "error", "error": {
        "message": message, "type": "invalid_request_error", "param": None, "code": code}})
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
        body,
    ])


#: How long, and how much, a closing connection keeps reading what the client still sends.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024


class LingeringTransport:
    """The connection's transport, with writes gathered per event-loop turn
    and a ``close`` that lingers when the client may still be sending (see
    the module docstring); an idle keep-alive connection closes at once.
    Everything else is the real transport's.

    uvicorn writes a response's status line and headers, each body part and
    the chunked end marker with one ``write`` each, and each is a system
    call (on loopback, the receiving side's TCP work too).  What one turn of
    the loop writes leaves in one ``writelines`` at the end of the turn: an
    answer is one write, and so is a stream whose upstream sent it in one
    read (headers, events, ``[DONE]``, end marker), where a plain transport
    makes three or four.  Nothing waits longer than the rest of the turn;
    a finished response does not wait at all (its protocol flushes it the
    moment it completes), nor does a stream's first part (its response
    calls the request's ``scope["portway.flush"]``)."""

    def __init__(self, transport: asyncio.Transport, receiving: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._receiving = receiving
        self._loop = loop
        self._held: list[bytes] | None = None  # written this turn, not yet sent
        self.lingering = False
        # What uvicorn calls per request and per streamed write, bound here: a
        # name found only through __getattr__ first raises (and formats) an
        # AttributeError on every lookup.
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = [data]
            self._loop.call_soon(self.flush)
        else:
            held.append(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send what was written this turn (at its end; before a close)."""
        held, self._held = self._held, None
        if not held or self._transport.is_closing():
            return
        if len(held) == 1:
            self._transport.write(held[0])
        else:
            self._transport.writelines(held)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held or ()))

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self, linger: bool = False) -> None:
        if self.is_closing():
            return
        self.flush()
        if not (linger or self._receiving()) or not self._transport.can_write_eof():
            self._transport.close()
            return
        self.lingering = True
        # Whatever happens next, the connection is gone within LINGER_SECONDS,
        # even if the client never reads our answer (a plain close would wait
        # for the unsent part forever).
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self._transport.abort)
        try:
            self._transport.write_eof()  # after what is queued: the answer arrives whole
            self._transport.resume_reading()  # keep draining, or a client still sending would block
        except OSError:  # the client reset the connection meanwhile
            self._transport.abort()

    def abort(self) -> None:
        self.lingering = True
        self._held = None  # an abort drops what is unsent
        self._transport.abort()


class GatewayProtocol(HttpToolsProtocol):
    max_header_bytes = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._dropped = 0
        self._receiving = False  # a request has begun and its body has not fully arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        wrapped = LingeringTransport(transport, lambda: self._receiving, self.loop)  # type: ignore[arg-type]
        super().connection_made(wrapped)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        transport: LingeringTransport = self.transport  # type: ignore[assignment]
        if transport.lingering:  # answered and closing: read what is still coming, and drop it
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                transport.abort()
            return
        super().data_received(data)
        if self._in_head and not transport.is_closing():
            # All of this read was request line and headers (the parser has not finished them).
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, f"request headers are larger than {self.max_header_bytes} bytes",
                             "request_header_too_large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._in_head = True
        self._receiving = True

    def on_message_complete(self) -> None:
        self._receiving = False
        super().on_message_complete()

    def on_headers_complete(self) -> None:
        self._in_head = False
        # For a response that must not wait for the end of the turn (a
        # stream's first part): ``scope["portway.flush"]()`` sends what is held.
        self.scope["portway.flush"] = self.transport.flush  # type: ignore[typeddict-unknown-key, attr-defined]
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # A finished answer leaves now, not at the end of the turn: what the
        # request does after its answer (request_finished) never delays it.
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, f"the HTTP request could not be parsed: {msg}", "invalid_http_request")

    def _refuse(self, status: int, message: str, code: str) -> None:
        if self.transport.is_closing():
            return
        self.logger.warning("%s", message)
        self.transport.write(error_bytes(status, message, code))
        self.transport.close(linger=True)  # type: ignore[call-arg]


def protocol_class(max_header_bytes: int = MAX_HEADER_BYTES) -> type[GatewayProtocol]:
    """The protocol class uvicorn instantiates per connection, with its limit."""
    if max_header_bytes == GatewayProtocol.max_header_bytes:
        return GatewayProtocol
    return type("GatewayProtocol", (GatewayProtocol,), {"max_header_bytes": max_header_bytes})
