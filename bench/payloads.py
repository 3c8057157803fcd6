"""Fixed request and response bodies shared by the mocks, the loadgen and the checks.

Bodies are built once at import: the mock must do no per-request work beyond
writing prebuilt bytes, so it is never the bottleneck.
"""

from __future__ import annotations

import random
import string
import uuid
from typing import Any

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


# -- The large case: a Claude Code-like /v1/messages request, and its streamed answer --
#
# Shaped after a recorded Claude Code 2.1.332 request (its shape and sizes, not its
# text): three system blocks (74 chars; 62 chars and ~7 KB, both with cache_control),
# 24 tools with long descriptions and JSON schemas, a history of tool_use / tool_result
# turns, adaptive thinking, context_management, output_config, metadata, stream, and a
# mid-conversation system message at the end. Built from a seeded generator, so the
# bytes are the same on every run and every machine.

LARGE_MODEL = "claude-opus-5-5"
LARGE_BETAS = (
    "claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27",
    "fine-grained-tool-streaming-2025-05-14", "prompt-caching-scope-2026-01-05", "effort-2025-11-24",
    "mid-conversation-system-2026-04-07", "tool-examples-2025-10-29",
)
#: What Claude Code (the Anthropic TypeScript SDK inside it) sends besides the body.
LARGE_HEADERS: dict[str, str] = {
    "accept": "application/json",
    "anthropic-beta": ",".join(LARGE_BETAS),
    "anthropic-dangerous-direct-browser-access": "true",
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
    "user-agent": "claude-cli/2.1.332 (external, cli)",
    "x-api-key": "bench-key",
    "x-app": "cli",
    "x-stainless-arch": "x64",
    "x-stainless-helper-method": "stream",
    "x-stainless-lang": "js",
    "x-stainless-os": "Linux",
    "x-stainless-package-version": "0.71.2",
    "x-stainless-retry-count": "0",
    "x-stainless-runtime": "node",
    "x-stainless-runtime-version": "v22.19.0",
    "x-stainless-timeout": "600",
}

_WORDS = (
    "the a request gateway upstream provider stream token model cache tool schema file path test error retry "
    "config plugin hook body header chunk event latency pool connection client server user assistant message "
    "content block result input output value key list string number always never only when before after must "
    "should use read write edit search run command directory project repository function class module return "
    "call check change keep send answer instead of with without for each every one two this that it its"
).split()

# (name, description size in chars, parameters): Claude Code's tool list, sizes rounded.
_TOOLS = (
    ("Task", 4600, "description prompt subagent_type model resume"),
    ("Bash", 8800, "command timeout description run_in_background dangerouslyDisableSandbox"),
    ("Glob", 900, "pattern path"),
    ("Grep", 2600, "pattern path glob output_mode -B -A -C -n -i type head_limit offset multiline"),
    ("ExitPlanMode", 1300, "plan"),
    ("Read", 2100, "file_path offset limit"),
    ("Edit", 1600, "file_path old_string new_string replace_all"),
    ("Write", 1000, "file_path content"),
    ("NotebookEdit", 900, "notebook_path cell_id new_source cell_type edit_mode"),
    ("WebFetch", 1500, "url prompt"),
    ("TodoWrite", 7600, "todos"),
    ("WebSearch", 1100, "query allowed_domains blocked_domains"),
    ("BashOutput", 500, "bash_id filter"),
    ("KillShell", 300, "shell_id"),
    ("Skill", 1400, "skill"),
    ("SlashCommand", 1700, "command"),
    ("AskUserQuestion", 1800, "questions answers"),
    ("EnterPlanMode", 1200, ""),
    ("TaskOutput", 600, "task_id block timeout"),
    ("LSP", 1500, "operation filePath line character"),
    ("ListMcpResourcesTool", 400, "server"),
    ("ReadMcpResourceTool", 400, "server uri"),
    ("mcp__ide__getDiagnostics", 300, "uri"),
    ("mcp__ide__executeCode", 700, "code"),
)
_NUMBERS = {"timeout", "offset", "limit", "-A", "-B", "-C", "head_limit", "line", "character"}
_BOOLEANS = {"replace_all", "run_in_background", "dangerouslyDisableSandbox", "-n", "-i", "multiline", "block"}
_ENUMS = {
    "output_mode": ["content", "files_with_matches", "count"], "cell_type": ["code", "markdown"],
    "edit_mode": ["replace", "insert", "delete"], "model": ["sonnet", "opus", "haiku"],
    "operation": ["goToDefinition", "findReferences", "hover", "documentSymbol"],
}
# (tool, input) of each assistant turn in the history; each gets a tool_result.
_TURNS = (
    ("Grep", {"pattern": "max_event_bytes", "path": "core/portway", "output_mode": "content", "-n": True}),
    ("Read", {"file_path": "/home/dev/portway/core/portway/upstream.py"}),
    ("Read", {"file_path": "/home/dev/portway/core/portway/sse.py", "offset": 40, "limit": 120}),
    ("Bash", {"command": "cd /home/dev/portway && .venv/bin/python -m pytest tests/test_sse.py -q -x 2>&1 | tail -40",
              "description": "Run the SSE tests"}),
    ("Read", {"file_path": "/home/dev/portway/tests/test_sse.py", "offset": 1, "limit": 90}),
    ("Edit", {"file_path": "/home/dev/portway/core/portway/sse.py", "old_string": "if b\"\\r\" in buffer:",
              "new_string": "if b\"\\r\" in buffer:  # CRLF or CR line ends (Gemini sends CRLF)"}),
    ("Bash", {"command": "cd /home/dev/portway && .venv/bin/python -m pytest tests/ -q -x -n 2 2>&1 | tail -20",
              "description": "Run the whole suite"}),
)


def _prose(rng: random.Random, size: int) -> str:
    """Sentences of plausible words, exactly ``size`` characters."""
    out: list[str] = []
    length = 0
    while length < size:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
        sentence = " ".join(words).capitalize() + rng.choice((". ", ". ", ". ", ".\n\n", ": ", "; "))
        out.append(sentence)
        length += len(sentence)
    return "".join(out)[:size]


def _ident(rng: random.Random) -> str:
    return "_".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))


def _source(rng: random.Random, lines: int) -> str:
    """A file as Claude Code's Read tool shows it: numbered lines (with its arrow)."""
    out = []
    for n in range(1, lines + 1):
        kind = rng.random()
        indent = rng.randint(1, 2)
        if kind < 0.12:
            text, indent = f"def {_ident(rng)}(self, {_ident(rng)}: str) -> dict[str, Any]:", 0
        elif kind < 0.22:
            text = f'"""{_prose(rng, rng.randint(30, 90)).strip()}"""'
        elif kind < 0.30:
            text = f"# {_prose(rng, rng.randint(20, 80)).strip()}"
        elif kind < 0.36:
            text = ""
        elif kind < 0.50:
            text = f'raise ValueError(f"{_prose(rng, rng.randint(15, 50)).strip()} {{{_ident(rng)}!r}}")'
        else:
            text = f"{_ident(rng)} = self.{_ident(rng)}.get(\"{rng.choice(_WORDS)}\", {rng.randint(0, 4096)})"
        out.append(f"{n:6d}\u2192{'    ' * indent}{text}")
    return "\n".join(out)


def _token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _schema(rng: random.Random, params: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name in params.split():
        prop: dict[str, Any] = {"type": "number" if name in _NUMBERS else "boolean" if name in _BOOLEANS else "string"}
        if name in _ENUMS:
            prop["enum"] = _ENUMS[name]
        if name in ("todos", "questions", "allowed_domains", "blocked_domains"):
            item = {"type": "string"} if name.endswith("domains") else {
                "type": "object", "additionalProperties": False, "required": ["content", "status", "activeForm"],
                "properties": {"content": {"type": "string", "minLength": 1},
                               "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                               "activeForm": {"type": "string", "minLength": 1}}}
            prop = {"type": "array", "items": item}
        prop["description"] = _prose(rng, rng.randint(60, 260)).strip()
        props[name] = prop
    required = [name for name in props if name not in _NUMBERS and name not in _BOOLEANS][:2]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#"}


def _reminder(rng: random.Random, size: int) -> dict[str, Any]:
    return {"type": "text", "text": f"<system-reminder>\n{_prose(rng, size)}\n</system-reminder>"}


def large_request() -> dict[str, Any]:
    """The Claude Code-like request body (about 110 KB as JSON), the same every time."""
    rng = random.Random(21332)
    ephemeral = {"type": "ephemeral"}
    system = [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.e7c; cc_entrypoint=sdk-cli;"},
        {"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.", "cache_control": ephemeral},
        {"type": "text", "text": _prose(rng, 7200), "cache_control": ephemeral},
    ]
    tools = [{"name": name, "description": _prose(rng, size), "input_schema": _schema(rng, params)}
             for name, size, params in _TOOLS]
    messages: list[dict[str, Any]] = [{"role": "user", "content": [
        _reminder(rng, 3400), _reminder(rng, 600),
        {"type": "text", "text": "The SSE decoder drops the last event when a stream ends without a blank line; "
                                 "find why, fix it, and run the tests."},
    ]}]
    for k, (tool, tool_input) in enumerate(_TURNS):
        call_id = "toolu_01" + _token(rng, 22)
        messages.append({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "", "signature": _token(rng, rng.randint(500, 900),
                                                                      string.ascii_letters + string.digits + "+/")},
            {"type": "text", "text": _prose(rng, rng.randint(80, 240)).strip()},
            {"type": "tool_use", "id": call_id, "name": tool, "input": tool_input},
        ]})
        result: str | list[dict[str, Any]] = _source(rng, rng.randint(40, 64))
        if k % 3 == 2:  # some tools answer with blocks, and a reminder rides along
            result = [{"type": "text", "text": result}]
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": result}]})
    messages[-1]["content"][-1]["cache_control"] = ephemeral  # Claude Code marks the newest turn for caching
    messages.append({"role": "system", "content": _reminder(rng, 420)["text"]})
    device = _token(rng, 64, "0123456789abcdef")
    session = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return {
        "model": LARGE_MODEL,
        "messages": messages,
        "system": system,
        "tools": tools,
        "metadata": {"user_id": orjson.dumps({"device_id": device, "account_uuid": "",
                                              "session_id": session}).decode()},
        "max_tokens": 128000,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "stream": True,
    }


def _named_event(obj: dict[str, Any]) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def large_stream_events() -> list[bytes]:
    """The Anthropic SSE answer: a text block, then a tool_use block whose
    input arrives in input_json_delta pieces, as the Messages API sends it.
    Under 4 KB: nginx's `return` takes at most a 4 KB string."""
    usage = {"input_tokens": 6, "cache_creation_input_tokens": 1843, "cache_read_input_tokens": 27211,
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1843},
             "output_tokens": 3, "service_tier": "standard"}
    message = {"model": LARGE_MODEL, "id": "msg_01BenchLargeAgentCase0001", "type": "message", "role": "assistant",
               "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
    text = ("The decoder keeps the unfinished block in its buffer and only flush() parses it, but the stream "
            "loop never calls flush() when the upstream closes. I will read the loop and add the call.")
    pieces = text.split(" ")
    words = [" ".join(pieces[i:i + 4]) + " " for i in range(0, len(pieces), 4)]
    tool_input = orjson.dumps({"file_path": "/home/dev/portway/core/portway/sse.py", "offset": 150, "limit": 60}).decode()
    json_parts = [tool_input[i:i + 12] for i in range(0, len(tool_input), 12)]
    events = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}} for w in words),
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_01BenchLargeAgentCaseTool", "name": "Read", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        *({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": p}}
          for p in json_parts),
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"input_tokens": 6, "cache_creation_input_tokens": 1843, "cache_read_input_tokens": 27211,
                   "output_tokens": 112}},
        {"type": "message_stop"},
    ]
    return [_named_event(e) for e in events]


LARGE_BODY: bytes = orjson.dumps(large_request())
LARGE_STREAM_EVENTS: list[bytes] = large_stream_events()
LARGE_STREAM_BODY: bytes = b"".join(LARGE_STREAM_EVENTS)
LARGE_STREAM_END: bytes = LARGE_STREAM_EVENTS[-1].rstrip()  # what a complete answer ends with
