"""Mock OpenAI and Anthropic upstream: a pure-Python server (quick mode, CI) and an nginx config (full run).

Both serve the same paths, so the harness points targets at either unchanged:

* ``POST /v1/chat/completions``        -> chat.completion JSON, or an SSE stream
                                          when the body has ``"stream": true``
                                          (Python mock only; nginx cannot read the body)
* ``POST /stream/v1/chat/completions`` -> always the SSE stream
* ``POST /v1/messages``                -> always the Anthropic SSE stream of the large
                                          case (bench/payloads.py): that case only streams
* ``POST /v1/embeddings``              -> a 1536-wide random unit vector seeded by the body
                                          (Python mock only, for bench/cache.py: distinct prompts
                                          get unrelated vectors, so they miss; ~0.1 ms each)

The harness always uses the ``/stream`` base URL for stream runs, which is what
lets nginx serve them from a static body.

Run the Python mock: ``python -m bench.mock_upstream --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import zlib
from pathlib import Path

import httptools
import orjson

from bench.payloads import LARGE_STREAM_BODY, LARGE_STREAM_EVENTS, NONSTREAM_BODY, STREAM_EVENTS

CHAT_PATH = b"/v1/chat/completions"
STREAM_PATH = b"/stream/v1/chat/completions"
MESSAGES_PATH = b"/v1/messages"
EMBEDDINGS_PATH = b"/v1/embeddings"
EMBEDDING_WIDTH = 1536


def _nonstream_response() -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(NONSTREAM_BODY)).encode() + b"\r\n\r\n"
    )
    return head + NONSTREAM_BODY


def _stream_response(events: list[bytes]) -> bytes:
    # Chunked transfer encoding with one HTTP chunk per SSE event, which is how
    # OpenAI and Anthropic frame their streams; built once so serving it is a single write.
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)
    return head + chunks + b"0\r\n\r\n"


NONSTREAM_RESPONSE = _nonstream_response()
STREAM_RESPONSE = _stream_response(STREAM_EVENTS)
MESSAGES_RESPONSE = _stream_response(LARGE_STREAM_EVENTS)



def embedding_response(body: bytes) -> bytes:
    import numpy  # only the cache benchmark asks for embeddings

    vector = numpy.random.default_rng(zlib.crc32(body)).standard_normal(EMBEDDING_WIDTH)
    payload = orjson.dumps({"object": "list", "model": "bench-embed", "usage": {"prompt_tokens": 8, "total_tokens": 8},
                            "data": [{"object": "embedding", "index": 0, "embedding": (vector / numpy.linalg.norm(vector)).tolist()}]})
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(payload)).encode() + b"\r\n\r\n" + payload)

NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


class MockProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive server on httptools: no framework, prebuilt responses."""

    __slots__ = ("transport", "parser", "url", "body")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        path = self.url.split(b"?", 1)[0]
        if path == STREAM_PATH:
            self.transport.write(STREAM_RESPONSE)
        elif path == MESSAGES_PATH:
            self.transport.write(MESSAGES_RESPONSE)
        elif path == EMBEDDINGS_PATH:
            self.transport.write(embedding_response(b"".join(self.body)))
        elif path == CHAT_PATH:
            stream = False
            if self.body:
                try:
                    stream = bool(orjson.loads(b"".join(self.body)).get("stream"))
                except (orjson.JSONDecodeError, AttributeError):
                    pass
            self.transport.write(STREAM_RESPONSE if stream else NONSTREAM_RESPONSE)
        else:
            self.transport.write(NOT_FOUND)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockProtocol, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def nginx_conf(port: int, workdir: Path) -> str:
    """nginx.conf for a single pinned process serving the static bodies."""

    def quote(body: bytes) -> str:
        # nginx single-quoted string: only backslash and quote need escaping, and
        # a literal newline inside the quotes is kept as is.
        text = body.decode()
        assert "$" not in text, "nginx would expand $ as a variable"
        quoted = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        assert len(quoted) < 4000, "nginx's config parser refuses a string over 4 KB"
        return quoted

    stream_body = b"".join(STREAM_EVENTS)
    temp = "\n".join(
        f"  {name}_temp_path {workdir}/{name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
daemon off;
master_process off;  # one process: easy to pin with taskset, and to kill by pid
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  server_tokens off;
{temp}
  # Upstream pools keep connections for the whole run; nginx's default of
  # 1000 requests per connection would add reconnects to the gateway's path.
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /v1/chat/completions {{
      default_type application/json;
      return 200 {quote(NONSTREAM_BODY)};
    }}
    location = /stream/v1/chat/completions {{
      default_type text/event-stream;
      add_header cache-control no-cache;
      return 200 {quote(stream_body)};
    }}
    location = /v1/messages {{
      default_type text/event-stream;
      add_header cache-control no-cache;
      return 200 {quote(LARGE_STREAM_BODY)};
    }}
    location / {{ return 404; }}
  }}
}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    except ImportError:  # the mock still works, just slower
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
