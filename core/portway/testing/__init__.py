"""Test kit for Portway and its plugins: fake upstreams and a real gateway
on a socket.  Also registered as a pytest plugin (fixtures ``fake_upstream``
and ``gateway_server``)."""

from portway.testing.providers import collect_stream, run_provider
from portway.testing.servers import ThreadedServer, free_port
from portway.testing.upstream import (
    FakeUpstream,
    Gate,
    RecordedRequest,
    Reply,
    json_reply,
    ndjson_reply,
    split_reads,
    sse_reply,
)

__all__ = [
    "FakeUpstream", "Gate", "RecordedRequest", "Reply", "ThreadedServer", "collect_stream", "free_port", "json_reply",
    "ndjson_reply", "run_provider", "split_reads", "sse_reply",
]
