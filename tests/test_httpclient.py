"""Portway's own HTTP/1.1 client (the upstream seam's default transport),
against scripted servers on real sockets: what goes on the wire, how
answers are framed, and what happens to connections."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from portway import httpclient
from portway.errors import ProviderError
from portway.upstream import USER_AGENT, Upstream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A scripted HTTP server: ``handle`` is called per connection; the
    requests it read are kept (``requests``: their raw heads and bodies)."""

    def __init__(self, handle: Callable[[Server, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.handle = handle
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Server:
        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handle(self, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass  # the client went away, or the test ended
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
        self.url = "http://127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return head, body


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def keep_alive(*answers: bytes) -> Any:
    """Answer each request on a connection with the next of ``answers``."""
    script = list(answers)

    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await server.read_request(reader) is not None:
            writer.write(script.pop(0))
            await writer.drain()

    return handle


def run(handle: Any, work: Callable[[Upstream, Server], Awaitable[Any]], **options: Any) -> tuple[Any, Server]:
    async def main() -> tuple[Any, Server]:
        async with Server(handle) as server:
            up = Upstream(server.url + options.pop("prefix", ""), name="up", headers=options.pop("headers", {}),
                          **options)
            await up.start()
            try:
                return await work(up, server), server
            finally:
                await up.aclose()

    return asyncio.run(main())


async def post(up: Upstream, path: str = "/x", **kwargs: Any) -> Any:
    return await up.request("POST", path, body=b"{}", **kwargs)


# -- the request on the wire -------------------------------------------------------------------------------------


def test_the_request_carries_host_length_and_the_providers_headers() -> None:
    async def work(up: Upstream, server: Server) -> Any:
        return await up.request("POST", "/m/a%3Ab?x=1", json={"a": 1}, headers={"x-extra": "1"})

    response, server = run(keep_alive(answer(b'{"ok":1}', "X-Ratelimit: 9")), work,
                           headers={"Authorization": "Bearer k"})
    assert response.status == 200 and response.content == b'{"ok":1}'
    assert response.headers["x-ratelimit"] == "9"  # case-insensitive
    head, body = server.requests[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /m/a%3Ab?x=1 HTTP/1.1"  # the adapter's escapes are kept
    port = server.url.rsplit(":", 1)[1]
    assert f"host: 127.0.0.1:{port}" in lines
    assert "authorization: Bearer k" in lines and "x-extra: 1" in lines
    assert f"user-agent: {USER_AGENT}" in lines and "accept-encoding: gzip, deflate" in lines
    assert "content-type: application/json" in lines and f"content-length: {len(body)}" in lines
    assert body == b'{"a":1}'


def test_a_requests_own_header_replaces_the_providers_whatever_its_case() -> None:
    async def work(up: Upstream, server: Server) -> Any:
        return await post(up, headers={"Authorization": "Bearer signed", "User-Agent": "mine"})

    _, server = run(keep_alive(answer(b"{}")), work, headers={"authorization": "Bearer k"})
    lines = server.requests[0][0].decode().lower().split("\r\n")
    assert [line for line in lines if line.startswith("authorization")] == ["authorization: bearer signed"]
    assert [line for line in lines if line.startswith("user-agent")] == ["user-agent: mine"]


def test_the_default_port_is_left_out_of_the_host_header() -> None:
    up = Upstream("https://api.example.com/v1", name="up")
    assert up._target("/chat") == (("https", "api.example.com", 443), " /v1/chat HTTP/1.1\r\nhost: api.example.com\r\n")
    up = Upstream("http://[::1]:8080", name="up")
    assert up._target("/c") == (("http", "[::1]", 8080), " /c HTTP/1.1\r\nhost: [::1]:8080\r\n")


@pytest.mark.parametrize("value", ["a\r\nx-evil: 1", "a\nb", "a\rb", "a\0b"])
def test_a_header_with_a_line_break_is_never_sent(value: str) -> None:
    async def work(up: Upstream, server: Server) -> Any:
        with pytest.raises(ProviderError) as info:
            await post(up, headers={"anthropic-beta": value})
        return info.value

    error, server = run(keep_alive(answer(b"{}")), work)
    assert error.status == 400 and "line break or a NUL" in error.message
    assert server.requests == []


def test_a_provider_header_with_a_line_break_is_refused_at_start() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="line break"):
            await Upstream("http://127.0.0.1:1", name="up", headers={"x-key": "k\r\nx-evil: 1"}).start()

    asyncio.run(main())


# -- framing ---------------------------------------------------------------------------------------------------------


def test_a_chunked_answer_with_trailers_is_read_whole() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n")

    async def work(up: Upstream, server: Server) -> Any:
        return [(await post(up)).content for _ in range(2)]

    bodies, server = run(keep_alive(chunked, chunked), work)
    assert bodies == [b"hello world"] * 2
    assert server.connections == 1  # the connection was kept after the chunked end


def test_a_body_that_ends_with_the_connection_is_read_to_its_end() -> None:
    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npart one, ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"part two")
        await writer.drain()

    async def work(up: Upstream, server: Server) -> Any:
        return [(await post(up)).content for _ in range(2)]

    bodies, server = run(handle, work)
    assert bodies == [b"part one, part two"] * 2
    assert server.connections == 2  # never reused


def test_an_interim_answer_is_skipped() -> None:
    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # the client has read the interim answer on its own
        writer.write(answer(b"{}", "x-final: 1"))
        await writer.drain()

    async def work(up: Upstream, server: Server) -> Any:
        return await post(up)

    response, _ = run(handle, work)
    assert response.status == 200 and response.headers["x-final"] == "1" and "link" not in response.headers


def test_an_answer_that_is_not_http_is_a_classified_error() -> None:
    async def work(up: Upstream, server: Server) -> Any:
        with pytest.raises(ProviderError) as info:
            await post(up)
        return info.value

    error, _ = run(keep_alive(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"), work)
    assert error.kind == "connection" and error.status == 502 and "BadResponse" in error.message


@pytest.mark.parametrize("encoding", ["deflate-zlib", "deflate-raw", "gzip"])
def test_deflate_and_gzip_bodies_are_decoded(encoding: str) -> None:
    text = b'{"text": "' + b"hello " * 5000 + b'"}'
    if encoding == "gzip":
        data = gzip.compress(text)
    else:
        packer = zlib.compressobj(wbits=zlib.MAX_WBITS if encoding == "deflate-zlib" else -zlib.MAX_WBITS)
        data = packer.compress(text) + packer.flush()
    name = encoding.split("-")[0]

    async def work(up: Upstream, server: Server) -> Any:
        return (await post(up)).content

    body, _ = run(keep_alive(answer(data, f"content-encoding: {name}")), work)
    assert body == text


def test_an_encoding_nobody_asked_for_is_refused() -> None:
    async def work(up: Upstream, server: Server) -> Any:
        with pytest.raises(ProviderError) as info:
            await post(up)
        return info.value

    error, _ = run(keep_alive(answer(b"\x1b\x00", "content-encoding: br")), work)
    assert error.kind == "connection" and "BadResponse" in error.message


def test_a_decoded_body_comes_in_bounded_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpclient, "DECODE_PIECE", 1000)
    text = b"x" * 100_000  # compresses to a few hundred bytes

    async def work(up: Upstream, server: Server) -> list[int]:
        async with up.stream("POST", "/x", body=b"{}") as response:
            return [len(piece) async for piece in response.aiter_bytes()]

    sizes, _ = run(keep_alive(answer(gzip.compress(text), "content-encoding: gzip")), work)
    assert sum(sizes) == len(text) and max(sizes) <= 1000


def test_a_compressed_body_past_the_limit_is_refused_without_being_decoded_whole() -> None:
    """A small compressed answer that decodes to 64 MiB, against a 1 MiB
    limit: decoding stops at the limit, so memory never holds the whole."""
    packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    bomb = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()
    assert len(bomb) < 200_000

    async def work(up: Upstream, server: Server) -> Any:
        tracemalloc.start()
        try:
            with pytest.raises(ProviderError) as info:
                await post(up)
            return info.value, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    (error, peak), _ = run(keep_alive(answer(bomb, "content-encoding: gzip")), work, max_response_bytes=1024 * 1024)
    assert "larger than max_response_bytes" in error.message
    assert peak < 16 * 1024 * 1024


# -- connections ---------------------------------------------------------------------------------------------------


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_request_sent_once() -> None:
    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)  # one answer per connection, then a close the client is not told of
        writer.write(answer(b'{"n": %d}' % server.connections))
        await writer.drain()

    async def work(up: Upstream, server: Server) -> Any:
        first = await post(up)
        await asyncio.sleep(0.05)  # the close reaches the client: the idle connection is known dead
        second = await post(up)
        return first.content, second.content

    bodies, server = run(handle, work)
    assert bodies == (b'{"n": 1}', b'{"n": 2}')
    assert len(server.requests) == 2


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
def test_a_request_on_a_connection_closed_as_it_was_sent(method: str) -> None:
    """The race the retry is for: the server closes an idle connection just
    as the client takes it from the pool and sends on it.  An idempotent
    request is sent again once; a POST is a connection error (RFC 9112,
    9.3.1: the server may have acted on it), for the routing layer to retry."""
    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if server.connections == 1:
            await server.read_request(reader)
            writer.write(answer(b"first"))
            await writer.drain()
            await server.read_request(reader)  # read the second request, answer nothing, close
            server.requests.pop()  # it never got an answer: as if it never came
            return
        await server.read_request(reader)
        writer.write(answer(b"second"))
        await writer.drain()

    async def work(up: Upstream, server: Server) -> Any:
        first = (await up.request(method, "/x")).content
        try:
            return first, (await up.request(method, "/x")).content
        except ProviderError as error:
            return first, error.kind

    bodies, server = run(handle, work)
    if method == "POST":
        assert bodies == (b"first", "connection") and server.connections == 1
    else:
        assert bodies == (b"first", b"second") and server.connections == 2


def test_a_fresh_connection_that_breaks_is_an_error_not_a_second_request() -> None:
    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)  # read it, then close without a word

    async def work(up: Upstream, server: Server) -> Any:
        with pytest.raises(ProviderError) as info:
            await post(up)
        return info.value

    error, server = run(handle, work)
    assert error.kind == "connection" and "Disconnected" in error.message
    assert len(server.requests) == 1


def test_a_connection_that_broke_after_part_of_an_answer_is_not_retried() -> None:
    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await server.read_request(reader) is not None:
            if len(server.requests) == 1:
                writer.write(answer(b"ok"))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
                await writer.drain()
                return

    async def work(up: Upstream, server: Server) -> Any:
        await post(up)
        with pytest.raises(ProviderError) as info:
            await post(up)
        return info.value

    error, server = run(handle, work)
    assert error.kind == "connection" and len(server.requests) == 2 and server.connections == 1


def test_an_idle_connection_past_its_keep_alive_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def work(up: Upstream, server: Server) -> Any:
        await post(up)
        monkeypatch.setattr(httpclient, "KEEPALIVE_SECONDS", 0.0)
        await post(up)
        monkeypatch.setattr(httpclient, "KEEPALIVE_SECONDS", 60.0)
        await post(up)

    _, server = run(keep_alive(*[answer(b"{}")] * 3), work)
    assert server.connections == 2  # the first expired; the second was kept


def test_a_connection_closed_by_the_answer_is_not_reused() -> None:
    async def work(up: Upstream, server: Server) -> Any:
        await post(up)
        await post(up)

    _, server = run(keep_alive(answer(b"{}", "connection: close"), answer(b"{}")), work)
    assert server.connections == 2


def test_closed_connections_are_forgotten_and_aclose_closes_the_rest() -> None:
    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(answer(b"{}", "connection: close"))
        await writer.drain()

    async def work(up: Upstream, server: Server) -> int:
        for _ in range(20):
            await post(up)
        await asyncio.sleep(0.05)
        assert up._pool is not None
        return up._pool.open_connections

    still_open, server = run(handle, work)
    assert still_open == 0 and server.connections == 20


def test_a_stream_not_being_read_stops_reading_its_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpclient, "HIGH_WATER", 64 * 1024)
    size = 4 * 1024 * 1024

    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await writer.drain()

    async def work(up: Upstream, server: Server) -> tuple[bool, int]:
        async with up.stream("POST", "/x", body=b"{}") as response:
            reads = response._reads()
            first = await reads.__anext__()
            await asyncio.sleep(0.2)  # the server keeps sending; nobody reads
            assert up._pool is not None
            conn = next(iter(up._pool._open))
            paused = conn.paused
            total = len(first)
            async for chunk in reads:
                total += len(chunk)
            return paused, total

    (paused, total), _ = run(handle, work)
    assert paused and total == size


def test_a_silent_server_times_out_between_reads_not_in_total() -> None:
    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        # 0.75 s in all, never 0.3 s apart; the head comes in pieces that complete nothing on their own.
        for part in (b"HTTP/1.1 200 OK\r\n", b"content-length: 6\r\n", b"\r\n", b"ab", b"cd", b"ef"):
            await asyncio.sleep(0.15)
            writer.write(part)
            await writer.drain()

    async def work(up: Upstream, server: Server) -> Any:
        return (await post(up)).content

    body, _ = run(handle, work, timeout=0.3)
    assert body == b"abcdef"


@pytest.mark.parametrize("size", [4096, 4097])
def test_an_answer_that_came_whole_is_held_to_max_response_bytes(size: int) -> None:
    async def work(up: Upstream, server: Server) -> Any:
        try:
            return len((await post(up)).content)
        except ProviderError as error:
            return error.message

    got, _ = run(keep_alive(answer(b"x" * size)), work, max_response_bytes=4096)
    assert got == (4096 if size == 4096 else
                   "provider 'up': the response body from the upstream is larger than max_response_bytes (4096 bytes)")


@pytest.mark.parametrize("later", [False, True], ids=["with-the-answer", "while-idle"])
def test_a_connection_that_says_more_than_its_answer_is_not_reused(later: bool) -> None:
    """What comes after an answer belongs to no request: the connection is
    dropped, so the next answer is never read after it."""
    async def handle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await server.read_request(reader) is not None:
            writer.write(answer(b"real %d" % len(server.requests)))
            if server.connections == 1:
                if later:
                    await writer.drain()
                    await asyncio.sleep(0.02)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-le")  # half an answer nobody asked for
            await writer.drain()

    async def work(up: Upstream, server: Server) -> Any:
        first = await post(up)
        await asyncio.sleep(0.05)
        return first.content, (await post(up)).content

    bodies, server = run(handle, work)
    assert bodies == (b"real 1", b"real 2") and server.connections == 2


# -- TLS ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ssl.SSLContext]:
    """A self-signed certificate for a name, trusted by the client's default
    context (OpenSSL reads ``SSL_CERT_FILE``), and the server's context."""
    def make(name: str) -> ssl.SSLContext:
        key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
                        "-addext", f"subjectAltName=DNS:{name}"], check=True, capture_output=True)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        monkeypatch.setattr(httpclient, "_ssl_context", None)  # made again, with that trust store
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert, key)
        return server

    return make


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("name", ["localhost", "elsewhere.example"])
def test_tls_checks_the_servers_certificate_against_its_name(certificate: Any, name: str) -> None:
    server_tls = certificate(name)

    async def main() -> Any:
        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                writer.write(answer(head.split(b"\r\n")[0]))
                await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(on_connection, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        up = Upstream(f"https://localhost:{port}", name="up")
        await up.start()
        try:
            return (await post(up)).content
        except ProviderError as error:
            return error
        finally:
            await up.aclose()
            server.close()

    got = asyncio.run(main())
    if name == "localhost":
        assert got == b"POST /x HTTP/1.1"
    else:  # the certificate names another host
        assert isinstance(got, ProviderError) and got.kind == "connection" and got.message.endswith("TLSError")
