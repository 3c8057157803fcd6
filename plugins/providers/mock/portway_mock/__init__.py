"""The mock provider: deterministic answers with no keys and no network.

It is what ``portway serve`` runs with no config, and what demos and
client-side tests use.  Behaviour by model name (``mock/<model>``):

- any name: echoes the last user message (``"Mock reply to: ..."``);
  with ``tools`` (and ``tool_choice`` not ``none``) it calls the named or
  first tool, with arguments built from the tool's JSON schema, until a
  tool result comes back;
- ``error-<status>`` (e.g. ``mock/error-429``): fails with that status;
- ``response_format`` json_object / json_schema: answers a JSON object;
- rerank (``POST /v1/rerank``): scores each document by the share of the
  query's words it contains.

With a ``script`` in its config it plays those turns instead (text, tool
calls, errors), in order, the last one repeating; see :class:`ScriptTurn`.

Streams arrive word by word; ``chunk_delay_ms`` paces them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import struct
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from portway import hookimpl, serialization
from portway.config import ProviderConfig
from portway.errors import PortwayError, kind_for_status
from portway.formats.rerank import document_texts
from portway.providers import Provider

PORTWAY_PLUGIN_KIND = "provider"


class ScriptedCall(BaseModel):
    """A tool call the model makes: ``{name, arguments}`` (and an ``id``;
    one is made up when not given)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class ScriptedError(BaseModel):
    """A failure as a provider reports it: its HTTP status (kind as for any
    provider), its message, and a ``Retry-After`` hint."""

    model_config = ConfigDict(extra="forbid")
    status: int = Field(ge=400, le=599)
    message: str = "scripted failure"
    retry_after: str | None = None

    @field_validator("retry_after", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class ScriptedUsage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class ScriptTurn(BaseModel):
    """One scripted answer: ``say`` (text) and/or ``call`` (a tool call or a
    list of them), or ``error``; optionally its ``finish_reason`` (default
    ``tool_calls`` with calls, else ``stop``) and ``usage`` (default: words
    counted, as for unscripted answers)."""

    model_config = ConfigDict(extra="forbid")
    say: str | None = None
    call: ScriptedCall | list[ScriptedCall] | None = None
    error: ScriptedError | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"] | None = None
    usage: ScriptedUsage | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ScriptTurn:
        if self.error is not None and (self.say is not None or self.call is not None or self.finish_reason
                                       or self.usage):
            raise ValueError("an error turn has only 'error'")
        if self.error is None and self.say is None and self.call is None:
            raise ValueError("a turn needs 'say', 'call' or 'error'")
        return self

    @property
    def calls(self) -> list[ScriptedCall]:
        return [] if self.call is None else self.call if isinstance(self.call, list) else [self.call]


class MockConfig(ProviderConfig):
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    embedding_dimensions: int = Field(8, ge=1, le=4096)
    #: Turns played in order instead of the echo (the last one repeats).
    script: list[ScriptTurn] | None = Field(None, min_length=1)


class Script(Protocol):
    """What the provider plays when it has a script: the configured one, or
    any object a test puts in ``provider.script`` (``portway.testing``'s
    ``MockWire`` does, to see what the mock was sent)."""

    def next_turn(self, body: dict[str, Any]) -> ScriptTurn | dict[str, Any]:
        """The answer to the canonical request ``body``."""
        ...

    def stream_closed(self, finished: bool) -> None:
        """A streamed answer ended: sent whole, or cut short by its client."""
        ...


class ConfiguredScript:
    """The ``script`` of the config: its turns in order, the last repeating
    (one sequence for every request to this provider instance)."""

    def __init__(self, turns: list[ScriptTurn]) -> None:
        self.turns = turns
        self.played = 0

    def next_turn(self, body: dict[str, Any]) -> ScriptTurn:
        turn = self.turns[min(self.played, len(self.turns) - 1)]
        self.played += 1
        return turn

    def stream_closed(self, finished: bool) -> None:
        pass


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p["text"] for p in content
                 if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)]
        images = sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
        return " ".join(parts) + (f" [{images} image(s)]" if images else "")
    return ""


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


#: Embedding vectors are computed in Python on the event loop: keep them small.
MAX_DIMENSIONS = 4096


def _example(schema: Any, depth: int = 0) -> Any:
    """A value that satisfies a (simple) JSON schema.  Any schema, however
    odd, gives some value: the mock must never fail on a client's tools."""
    if not isinstance(schema, dict) or depth > 32:
        return "mock"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]
        kind = next((k for k in kind if k != "null"), "null")
    props = schema.get("properties")
    if kind == "object" or isinstance(props, dict):
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else list(props)
        return {name: _example(props.get(name), depth + 1) for name in names}
    if kind == "array":
        return [_example(schema.get("items"), depth + 1)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, "mock") \
        if isinstance(kind, str) else "mock"


def _functions(tools: list[Any]) -> list[dict[str, Any]]:
    """The function tools among ``tools`` (server tools that only Anthropic
    runs, passed through from /v1/messages, are not the mock's to call)."""
    return [t["function"] for t in tools
            if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
            and isinstance(t["function"].get("name"), str)]


class MockProvider(Provider):
    type = "mock"
    config_model = MockConfig
    default_base_url = "mock://in-process"
    default_models = ("echo", "tools", "error-429", "error-500")

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        settings: MockConfig = config  # type: ignore[assignment]
        self.script: Script | None = ConfiguredScript(settings.script) if settings.script else None
        #: Seconds before each streamed word.
        self.chunk_delay = settings.chunk_delay_ms / 1000

    async def start(self) -> None:  # nothing to connect to
        pass

    async def close(self) -> None:
        pass

    def _fail_if_asked(self, model: str) -> None:
        if model.startswith("error-") and model[6:].isdigit():
            status = int(model[6:])
            raise self.make_error(f"mock failure {status} (asked for by model {model!r})", kind=kind_for_status(status),
                                  status=status, retry_after="1" if status == 429 else None)

    def _scripted(self, body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]], str,
                                                       dict[str, Any] | None] | None:
        """The script's next answer as (text, tool calls, finish reason,
        usage), None without a script; an error turn raises its error."""
        if self.script is None:
            return None
        turn = ScriptTurn.model_validate(self.script.next_turn(body))
        if turn.error is not None:
            raise self._scripted_error(turn.error)
        digest = hashlib.sha256(serialization.dumps(body.get("messages") or [])).hexdigest()[:20]
        calls = [{"id": scripted.id or f"call_{digest}{index:04d}", "type": "function",
                  "function": {"name": scripted.name, "arguments": serialization.dumps_str(scripted.arguments)}}
                 for index, scripted in enumerate(turn.calls)]
        finish = turn.finish_reason or ("tool_calls" if calls else "stop")
        usage = None
        if turn.usage is not None:
            usage = {**turn.usage.model_dump(),
                     "total_tokens": turn.usage.prompt_tokens + turn.usage.completion_tokens}
        return turn.say, calls, finish, usage

    def _scripted_error(self, error: ScriptedError) -> PortwayError:
        return self.make_error(error.message, kind=kind_for_status(error.status), status=error.status,
                               retry_after=error.retry_after)

    def _answer(self, body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]], str, dict[str, Any] | None]:
        """(text, tool calls, finish reason, usage or None to count words)."""
        scripted = self._scripted(body)
        if scripted is not None:
            return scripted
        text, calls, finish = self._echo(body)
        return text, calls, finish, None

    def _echo(self, body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]], str]:
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        functions = _functions(body.get("tools") or [])
        choice = body.get("tool_choice", "auto")
        if functions and choice != "none" and last.get("role") != "tool":
            function = functions[0]
            if isinstance(choice, dict):
                wanted = (choice.get("function") or {}).get("name")
                function = next((f for f in functions if f["name"] == wanted), function)
            digest = hashlib.sha256(serialization.dumps(messages)).hexdigest()[:24]
            call = {"id": f"call_{digest}", "type": "function",
                    "function": {"name": function["name"],
                                 "arguments": serialization.dumps_str(_example(function.get("parameters") or {}))}}
            return None, [call], "tool_calls"
        user = next((m for m in reversed(messages) if m.get("role") in ("user", "tool")), {})
        said = _text_of(user.get("content"))
        fmt = (body.get("response_format") or {}).get("type")
        if fmt == "json_schema":
            schema = ((body["response_format"].get("json_schema") or {}).get("schema")) or {}
            return serialization.dumps_str(_example(schema)), [], "stop"
        if fmt == "json_object":
            return serialization.dumps_str({"reply": said}), [], "stop"
        prefix = "Mock result for: " if user.get("role") == "tool" else "Mock reply to: "
        text = prefix + said
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit and _tokens(text) > limit:
            return " ".join(text.split()[:limit]), [], "length"
        return text, [], "stop"

    def _usage(self, body: dict[str, Any], text: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
        prompt = sum(_tokens(_text_of(m.get("content"))) for m in body.get("messages") or [])
        completion = _tokens(text or "") + sum(_tokens(c["function"]["arguments"]) for c in calls)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        model = body["model"]
        self._fail_if_asked(model)
        if self.config.latency_ms:  # type: ignore[attr-defined]
            await asyncio.sleep(self.config.latency_ms / 1000)  # type: ignore[attr-defined]
        text, calls, finish, usage = self._answer(body)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": "chatcmpl-mock-" + hashlib.sha256(serialization.dumps(body)).hexdigest()[:16],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage or self._usage(body, text, calls),
        }

    async def chat_stream(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[dict[str, Any]]:
        model = body["model"]
        self._fail_if_asked(model)
        text, calls, finish, usage = self._answer(body)
        finished = False
        try:
            async with aclosing(self._chunks(body, text, calls, finish, usage)) as chunks:
                async for chunk in chunks:
                    yield chunk
            finished = True
        finally:
            if self.script is not None:
                self.script.stream_closed(finished)

    async def _chunks(self, body: dict[str, Any], text: str | None, calls: list[dict[str, Any]], finish: str,
                      usage: dict[str, Any] | None) -> AsyncIterator[dict[str, Any]]:
        model = body["model"]
        base = {"id": "chatcmpl-mock-" + hashlib.sha256(serialization.dumps(body)).hexdigest()[:16],
                "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        delay = self.chunk_delay

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

        yield chunk({"role": "assistant", "content": ""})
        words = (text or "").split(" ") if text else []
        for i, word in enumerate(words):
            if delay:
                await asyncio.sleep(delay)
            yield chunk({"content": word if i == 0 else " " + word})
        for i, call in enumerate(calls):
            yield chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"], "arguments": ""}}]})
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
        yield chunk({}, finish)
        yield {**base, "choices": [], "usage": usage or self._usage(body, text, calls)}

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        self._fail_if_asked(body["model"])
        inputs = body["input"]
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dims = body.get("dimensions") or self.config.embedding_dimensions  # type: ignore[attr-defined]
        if dims > MAX_DIMENSIONS:
            raise PortwayError(f"the mock provider makes embeddings of at most {MAX_DIMENSIONS} dimensions",
                               kind="bad_request", param="dimensions", code="unsupported")
        data = []
        for index, item in enumerate(inputs):
            seed = hashlib.sha256(serialization.dumps(item)).digest()
            raw = [struct.unpack_from(">H", hashlib.sha256(seed + i.to_bytes(2, "little")).digest())[0] - 32768
                   for i in range(dims)]
            norm = math.sqrt(sum(v * v for v in raw)) or 1.0
            vector = [v / norm for v in raw]
            if body.get("encoding_format") == "base64":  # the openai SDK asks for this by default
                data.append({"object": "embedding", "index": index,
                             "embedding": base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()})
            else:
                data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(_tokens(item) if isinstance(item, str) else len(item) for item in inputs)
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


    async def rerank(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        self._fail_if_asked(body["model"])
        documents = document_texts(body)
        rank = getattr(self.script, "rank", None)
        scores = rank(body, documents) if rank is not None else [_relevance(body["query"], d) for d in documents]
        if isinstance(scores, dict):  # a scripted failure
            raise self._scripted_error(ScriptedError.model_validate(scores["error"]))
        tokens = _tokens(body["query"]) * len(documents) + sum(_tokens(d) for d in documents)
        return {"id": "rerank-mock", "results": [{"index": i, "relevance_score": s} for i, s in enumerate(scores)],
                "usage": {"total_tokens": tokens}}


def _relevance(query: str, document: str) -> float:
    """The share of the query's words (case and punctuation aside) found in
    the document, nudged by its length so that scores rarely tie."""
    words = {word.strip(".,?!").lower() for word in query.split()}
    found = {word.strip(".,?!").lower() for word in document.split()}
    share = len(words & found) / len(words) if words else 0.0
    return round(0.9 * share + 0.1 / (1 + len(document)), 6)


@hookimpl
def register_providers(register: Any) -> None:
    register(MockProvider)
