"""Fixed request and response bodies shared by the mocks, the loadgen and the checks.

Bodies are built once at import: the mock must do no per-request work beyond
writing prebuilt bytes, so it is never the bottleneck.
"""

from __future__ import annotations

import orjson

STREAM_TOKENS = 20  # content chunks per stream, as in the issue

REQUEST: dict = {
    "model": "bench",
    "messages": [
        {"role": "system", "content": "You are a concise assistant. Answer in one short paragraph."},
        {"role": "user", "content": "Summarise why connection pooling matters for an HTTP proxy in two sentences."},
    ],
    "max_tokens": 64,
    "temperature": 0.2,
}

CHAT_COMPLETION: dict = {
    "id": "chatcmpl-bench0001",
    "object": "chat.completion",
    "created": 1717000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_bench",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "Connection pooling lets a proxy reuse established TCP connections to its upstream "
                    "instead of paying a handshake per request, which cuts latency and CPU. It also caps "
                    "concurrent sockets, protecting both the proxy and the provider under load."
                ),
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 38, "completion_tokens": 46, "total_tokens": 84},
}


def request_body(stream: bool = False, model: str = "bench") -> bytes:
    body = {**REQUEST, "model": model}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def _event(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def sse_events() -> list[bytes]:
    """The SSE events of one streamed completion, in order, as OpenAI sends them."""
    base = {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = [
        _event({**base, "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}]})
        for _ in range(STREAM_TOKENS)
    ]
    events.append(_event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    events.append(
        _event(
            {
                **base,
                "choices": [],
                "usage": {"prompt_tokens": 38, "completion_tokens": STREAM_TOKENS, "total_tokens": 38 + STREAM_TOKENS},
            }
        )
    )
    events.append(b"data: [DONE]\n\n")
    return events


NONSTREAM_BODY: bytes = orjson.dumps(CHAT_COMPLETION)
STREAM_EVENTS: list[bytes] = sse_events()
STREAM_BODY: bytes = b"".join(STREAM_EVENTS)
EVENTS_PER_STREAM: int = len(STREAM_EVENTS)  # 20 tokens + finish + usage + [DONE]
