"""A fake Ollama server (the native ``/api/chat`` and ``/api/embed``),
driven by a script, for the ``ollama`` provider's tests (and anyone testing
against Ollama's wire format).

Install it on a :class:`~portway.testing.FakeUpstream` and point the
provider's ``base_url`` at ``upstream.url``::

    api = OllamaAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")])
    with FakeUpstream() as upstream:
        api.install(upstream)

Built from Ollama's ``docs/api.md`` (chat, embed, streaming, errors),
``docs/api/errors.mdx``, ``docs/capabilities/thinking.mdx``, the request
types in ``api/types.go`` (``ChatRequest``, ``Message``, ``ToolCall``,
``ThinkValue``, ``Options.FromMap``) and ``server/routes.go``
(``ChatHandler``, ``toolCallId``):

- ``POST /api/chat`` answers the next turn.  It streams unless the body
  says ``"stream": false`` (Ollama's default): NDJSON lines
  (``application/x-ndjson``), the turn's reasoning as ``message.thinking``
  in two lines (unless ``think`` is ``false``), its text in two lines of
  ``message.content``, its tool calls whole in one line (arguments as an
  object, an id ``call_<8 chars>``), then a last line with ``done: true``,
  ``done_reason`` (``stop``, or ``length`` for a truncated turn) and the
  counts (``prompt_eval_count``, ``eval_count``, durations).  Not streamed:
  one object of the same shape.
- ``POST /api/embed`` answers one vector per input (``embeddings``), with
  ``prompt_eval_count``.
- It refuses, as ``{"error": "..."}``: a body without ``model`` (400 "model
  is required"); a ``messages`` entry Go cannot decode into ``api.Message``
  (content that is not a string, an image that is not base64 — a ``data:``
  URI is not —, tool call arguments that are not an object, an unknown
  role); a ``think`` that is not a boolean or a level; a ``format`` that is
  not ``"json"`` or a schema object; an option of the wrong type (``stop``
  not a list of strings, a count that is not a number); with ``api_key``
  set, a missing or other bearer token (401 "unauthorized", as ollama.com);
  and a call after the script is used up.  Stricter than Ollama, which
  ignores them, so an adapter's slip is caught: a top-level field the chat
  request does not have (an OpenAI key such as ``max_tokens`` sent as it
  is), an unknown option name, and a ``tool`` message that names no earlier
  tool call (by ``tool_call_id`` or ``tool_name``).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from portway import serialization
from portway.testing.openai_chat import vector_of
from portway.testing.script import Call, Script, Step, ToolResult, Turn, halves
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply

CREATED_AT = "2026-01-01T00:00:00.000000Z"
#: The fields of ``api.ChatRequest``.
CHAT_FIELDS = frozenset({"model", "messages", "stream", "format", "keep_alive", "tools", "options", "think",
                         "truncate", "shift", "logprobs", "top_logprobs"})
#: The fields of ``api.Message``.
MESSAGE_FIELDS = frozenset({"role", "content", "thinking", "images", "tool_calls", "tool_name", "tool_call_id"})
ROLES = ("system", "user", "assistant", "tool")
#: The fields of ``api.EmbedRequest``.
EMBED_FIELDS = frozenset({"model", "input", "truncate", "dimensions", "keep_alive", "options"})
#: ``api.Options`` (runner and model options) by JSON type.
INT_OPTIONS = frozenset({"num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread", "num_keep", "seed",
                         "num_predict", "top_k", "repeat_last_n", "mirostat", "draft_num_predict"})
FLOAT_OPTIONS = frozenset({"top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty",
                           "frequency_penalty", "mirostat_tau", "mirostat_eta", "tfs_z"})
BOOL_OPTIONS = frozenset({"numa", "use_mmap", "use_mlock", "low_vram", "f16_kv", "logits_all", "vocab_only",
                          "penalize_newline", "embedding_only"})
THINK_LEVELS = ("high", "medium", "low", "max")
#: Image types by their first bytes (Ollama's images carry no media type; the kit wants one).
MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"), (b"RIFF", "image/webp"))


class OllamaAPI:
    """The fake; see the module docstring.  ``api_key``: when given, the
    bearer token it requires (ollama.com); a local server requires none."""

    def __init__(self, script: Sequence[Step] = (), *, api_key: str | None = None) -> None:
        self.script = Script(script)
        self.api_key = api_key
        self.calls: list[Call] = []
        #: The body of every accepted embed request.
        self.embed_requests: list[dict[str, Any]] = []
        #: (request, status, message) of every refused request.
        self.refusals: list[tuple[RecordedRequest, int, str]] = []
        self.disconnected = threading.Event()
        #: Seconds between streamed lines.
        self.stream_delay = 0.0
        self._ids = itertools.count(1)

    def install(self, upstream: FakeUpstream) -> OllamaAPI:
        upstream.add("/api/chat", self)
        upstream.add("/api/embed", self)
        self.disconnected = upstream.disconnected
        return self

    # -- answering ----------------------------------------------------------------

    def __call__(self, request: RecordedRequest) -> Reply:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._refuse(request, 401, "unauthorized")
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._refuse(request, 400, "missing request body" if not request.body else
                                "invalid character in request body")
        if request.path == "/api/embed":
            problem = check_embed(body)
            return self._refuse(request, 400, problem) if problem else self._embed(body)
        problem = check_chat(body)
        if problem is not None:
            return self._refuse(request, 400, problem)
        seen = Call(request, body, tool_results(body.get("messages") or []))
        step = self.script.next_turn(seen)
        if step is None:
            return self._refuse(request, 400, f"fake Ollama: the script has no turn left for call "
                                f"{len(self.calls) + 1}")
        if isinstance(step, Reply):
            return step
        seen.answer = step
        self.calls.append(seen)
        lines = list(self.lines(step, body))
        if body.get("stream") is False:
            return json_reply(whole(lines))
        chunks: list[Any] = [serialization.dumps(line) + b"\n" for line in lines]
        return Reply(chunks=chunks, delay=self.stream_delay, content_type="application/x-ndjson",
                     disconnected=self.disconnected)

    def _refuse(self, request: RecordedRequest, status: int, message: str) -> Reply:
        self.refusals.append((request, status, message))
        return json_reply({"error": message}, status)

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        """An error answer in Ollama's shape (a script step may return it)."""
        return json_reply({"error": message}, status, {"retry-after": retry_after} if retry_after else None)

    def lines(self, turn: Turn, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """``turn`` as the NDJSON lines Ollama streams."""
        model = body["model"]

        def line(**message: Any) -> dict[str, Any]:
            return {"model": model, "created_at": CREATED_AT, "message": {"role": "assistant", "content": "",
                                                                           **message}, "done": False}

        if turn.reasoning and body.get("think") is not False:
            for piece in halves(turn.reasoning):
                yield line(thinking=piece)
        for part in turn.parts:
            if isinstance(part, str):
                for piece in halves(part):
                    yield line(content=piece)
            else:
                yield line(tool_calls=[{"id": part.id or f"call_{next(self._ids):08d}",
                                        "function": {"index": 0, "name": part.name, "arguments": part.arguments}}])
        yield {"model": model, "created_at": CREATED_AT, "message": {"role": "assistant", "content": ""},
               "done_reason": "length" if turn.truncated else "stop", "done": True, "total_duration": 4883583458,
               "load_duration": 1334875, "prompt_eval_count": turn.input_tokens, "prompt_eval_duration": 342546000,
               "eval_count": turn.output_tokens, "eval_duration": 4535599000}

    def _embed(self, body: dict[str, Any]) -> Reply:
        self.embed_requests.append(body)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        vectors = [vector_of(text) for text in texts]
        if body.get("dimensions"):
            vectors = [vector[: body["dimensions"]] for vector in vectors]
        return json_reply({"model": body["model"], "embeddings": vectors, "total_duration": 14143917,
                           "load_duration": 1019500, "prompt_eval_count": sum(len(t.split()) for t in texts)})

    # -- the neutral view, for the conformance kit --------------------------------------

    def seen(self, call: Call) -> Any:
        from portway.testing.conformance import Seen

        return Seen(**seen_fields(call))


def whole(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The streamed lines as the one object of a ``"stream": false`` answer."""
    last = dict(lines[-1])
    message: dict[str, Any] = {"role": "assistant", "content": "".join(li["message"].get("content", "")
                                                                      for li in lines)}
    thinking = "".join(li["message"].get("thinking", "") for li in lines)
    if thinking:
        message["thinking"] = thinking
    calls = [call for li in lines for call in li["message"].get("tool_calls", ())]
    if calls:
        message["tool_calls"] = calls
    last["message"] = message
    return last


def check_chat(body: dict[str, Any]) -> str | None:
    """Ollama's refusal of a chat ``body`` (see the module docstring), or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model is required"
    unknown = sorted(set(body) - CHAT_FIELDS)
    if unknown:
        return f"fake Ollama (stricter than Ollama, which ignores it): unknown field {unknown[0]!r}"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "json: cannot unmarshal into Go struct field ChatRequest.stream of type bool"
    messages = body.get("messages")
    if messages is not None and not isinstance(messages, list):
        return "json: cannot unmarshal into Go struct field ChatRequest.messages of type []api.Message"
    called: set[str] = set()
    for i, message in enumerate(messages or ()):
        problem = check_message(message, i, called)
        if problem:
            return problem
    think = body.get("think")
    if think is not None and not isinstance(think, bool) and think not in THINK_LEVELS:
        return f'invalid think value: {think!r} (must be "high", "medium", "low", "max", true, or false)'
    fmt = body.get("format")
    if fmt is not None and fmt not in ("", "json") and not isinstance(fmt, dict):
        return f'invalid format: {serialization.dumps_str(fmt)!r}; expected "json" or a valid JSON Schema object'
    for j, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("function"), dict) or \
                not tool["function"].get("name"):
            return f"json: tools[{j}] is not a function tool"
    return check_options(body.get("options"))


def check_message(message: Any, i: int, called: set[str]) -> str | None:
    if not isinstance(message, dict):
        return f"json: cannot unmarshal messages[{i}] into Go value of type api.Message"
    unknown = sorted(set(message) - MESSAGE_FIELDS)
    if unknown:
        return f"fake Ollama (stricter than Ollama, which ignores it): unknown field messages[{i}].{unknown[0]}"
    role = str(message.get("role", "")).lower()
    if role not in ROLES:
        return f"messages[{i}]: invalid role {message.get('role')!r}"
    if not isinstance(message.get("content", ""), str):
        return "json: cannot unmarshal array into Go struct field Message.messages.content of type string"
    for image in message.get("images") or ():
        try:
            base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError, TypeError):
            return "illegal base64 data at input byte 4"
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("arguments", {}), dict):
            return "json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls.function" \
                   ".arguments of type map[string]interface {}"
        called.update(str(v) for v in (call.get("id"), function.get("name")) if v)
    if role == "tool" and not ({message.get("tool_call_id"), message.get("tool_name")} & called):
        return f"fake Ollama (stricter than Ollama): messages[{i}] answers no earlier tool call"
    return None


def check_options(options: Any) -> str | None:
    if options is None:
        return None
    if not isinstance(options, dict):
        return "json: cannot unmarshal into Go struct field ChatRequest.options of type map[string]interface {}"
    for key, value in options.items():
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if key in INT_OPTIONS and not number:
            return f"option {key!r} must be of type integer"
        if key in FLOAT_OPTIONS and not number:
            return f"option {key!r} must be of type float32"
        if key in BOOL_OPTIONS and not isinstance(value, bool):
            return f"option {key!r} must be of type boolean"
        if key == "stop" and (not isinstance(value, list) or not all(isinstance(s, str) for s in value)):
            return "option 'stop' must be of type array"
        if key not in INT_OPTIONS | FLOAT_OPTIONS | BOOL_OPTIONS | {"stop"}:
            return f"fake Ollama (stricter than Ollama, which logs 'invalid option provided'): option {key!r}"
    return None


def check_embed(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model is required"
    unknown = sorted(set(body) - EMBED_FIELDS)
    if unknown:
        return f"fake Ollama (stricter than Ollama, which ignores it): unknown field {unknown[0]!r}"
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return "invalid input type"
    return check_options(body.get("options"))


def tool_results(messages: list[Any]) -> list[ToolResult]:
    return [ToolResult(str(m.get("tool_call_id") or m.get("tool_name")), m.get("content") or "")
            for m in messages if isinstance(m, dict) and m.get("role") == "tool"]


def media_type(data: str) -> str:
    head = base64.b64decode(data[:16] + "=" * (-len(data[:16]) % 4))
    return next((kind for magic, kind in MAGIC if head.startswith(magic)), "application/octet-stream")


def seen_fields(call: Call) -> dict[str, Any]:
    """What an ``/api/chat`` request asked for, in the conformance kit's neutral terms."""
    body = call.body
    messages = body.get("messages") or []
    system = [m.get("content") or "" for m in messages if m.get("role") == "system"]
    turns, images, calls = [], [], []
    for message in messages:
        if message.get("role") in ("user", "assistant", "tool"):
            turns.append((message["role"], message.get("content") or ""))
        images += [f"base64:{media_type(image)}" for image in message.get("images") or ()]
        calls += [(c["function"]["name"], c["function"].get("arguments") or {}) for c in message.get("tool_calls") or ()]
    fmt = body.get("format")
    options = body.get("options") or {}
    params = {"max_tokens": options.get("num_predict"), "stop": options.get("stop"),
              "temperature": options.get("temperature"), "top_p": options.get("top_p"), "seed": options.get("seed"),
              "frequency_penalty": options.get("frequency_penalty"),
              "presence_penalty": options.get("presence_penalty")}
    return {
        "model": body["model"], "stream": body.get("stream") is not False,
        "system": "\n".join(system) if system else None, "messages": turns,
        "tool_names": [t["function"]["name"] for t in body.get("tools") or ()], "tool_calls": calls,
        "tool_results": [(r.call_id, r.text) for r in call.tool_results], "images": images,
        "json_mode": "object" if fmt == "json" else "schema" if isinstance(fmt, dict) else None,
        "json_schema": fmt if isinstance(fmt, dict) else None,
        "params": {k: v for k, v in params.items() if v is not None}, "raw": body,
    }


__all__ = ["CHAT_FIELDS", "OllamaAPI", "check_chat", "seen_fields"]
