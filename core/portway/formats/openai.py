"""The OpenAI Chat Completions wire format, which is also Portway's
canonical format.

:class:`OpenAICompatibleProvider` is the base for every upstream that speaks
it (OpenAI itself, and the many "OpenAI-compatible" servers): a subclass
sets a type, a default base URL and an env var, and overrides a hook or two
for quirks.  :class:`StreamAssembler` and :func:`completion_to_chunks`
convert between a stream and a whole response.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from portway import serialization, sse
from portway.errors import PortwayError, ProviderError, kind_for_type
from portway.formats import MalformedAnswer
from portway.formats.responses import ResponsesStreamToOpenAI, check_response
from portway.native import NativeEvent
from portway.providers import Provider, StreamEnd
from portway.quirks import Quirks, check_capabilities
from portway.upstream import UpstreamResponse


class OpenAICompatibleProvider(Provider):
    chat_path: ClassVar[str] = "/chat/completions"
    embeddings_path: ClassVar[str] = "/embeddings"
    #: Where the Responses API lives, for an upstream that lists
    #: ``"responses"`` in ``native_formats`` (OpenAI does).
    responses_path: ClassVar[str] = "/responses"
    #: How this upstream differs from OpenAI's Chat Completions (see :mod:`portway.quirks`).
    quirks: ClassVar[Quirks] = Quirks()
    #: Whether Anthropic-only keys (``top_k``, ``thinking``, ``cache_control``)
    #: that a ``/v1/messages`` client sent may go upstream (vLLM accepts ``top_k``).
    accepts_anthropic_extras: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._quirky_requests = cls.quirks.changes_requests
        base = OpenAICompatibleProvider
        cls._maps_answers = (cls.quirks.reasoning_field != "reasoning_content"
                             or cls.to_completion is not base.to_completion or cls.to_chunk is not base.to_chunk)

    _quirky_requests: ClassVar[bool] = False
    _maps_answers: ClassVar[bool] = False

    # -- the three places an upstream's differences go (besides quirks) ---------------

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """Last chance to adapt the canonical body to this upstream, after
        :attr:`quirks` were applied (return a copy to change it)."""
        return body

    def to_completion(self, data: Any) -> Any:
        """The upstream's (non-streamed) answer as an OpenAI
        ``chat.completion`` dict.  It is checked afterwards
        (:func:`check_completion`), so it may meet any JSON: leave what it
        does not expect as it is.  The default applies :attr:`quirks`."""
        return self.quirks.completion(data)

    def to_chunk(self, data: Any) -> Any:
        """One streamed event's JSON as a ``chat.completion.chunk`` dict, or
        None to skip the event.  Checked afterwards (:func:`check_chunk`),
        like :meth:`to_completion`.  The default applies :attr:`quirks`."""
        return self.quirks.chunk(data)

    def _wire_body(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        if not self.accepts_anthropic_extras and getattr(ctx, "client_format", None) == "anthropic":
            if self.quirks.thinking_as_reasoning:
                body = with_reasoning_from_thinking(body)
            body = strip_anthropic_extras(body, self.name)
        if self.capabilities:
            model = body.get("model")
            capabilities = self.model_capabilities(model) if isinstance(model, str) else None
            if capabilities is not None:
                check_capabilities(body, capabilities, self.name, model)  # type: ignore[arg-type]
        if self._quirky_requests:
            body = self.quirks.request(body, self.name)
        return self.prepare(body)

    def chat_url(self, body: dict[str, Any]) -> str:
        """Where the prepared chat ``body`` goes: a path under ``base_url``
        (a query string included).  Override it for an upstream whose path
        depends on the request (Azure puts the deployment in it)."""
        return self.chat_path

    def embeddings_url(self, body: dict[str, Any]) -> str:
        """Where an embeddings ``body`` goes (see :meth:`chat_url`)."""
        return self.embeddings_path

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        wire = self._wire_body(body, ctx)
        response = await self.http.request("POST", self.chat_url(wire), json=wire)
        if response.status >= 300:
            raise self.error_from_response(response)
        return self._completion(self.answer_json(response))

    def _completion(self, data: Any) -> dict[str, Any]:
        if self._maps_answers:
            data = self.to_completion(data)
        try:
            return check_completion(data)
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """The upstream's SSE chunks, checked: a stream counts as finished
        only with ``[DONE]`` or a ``finish_reason``.  One that stops short is
        a ``connection`` failure (retried or fallen back from when it sent
        nothing yet; an error event for the client otherwise), never a
        clean end."""
        wire = self._wire_body(body, ctx)
        async with self.http.stream("POST", self.chat_url(wire), json=wire) as response:
            await self.refuse_failed_stream(response)
            if is_json(response.headers):
                # A JSON answer to a stream request: an error, or a server that ignores `stream`.
                data = self.answer_json(UpstreamResponse(response.status, response.headers, await response.aread()))
                yield completion_to_chunks(self._completion(data))
                return
            ended = False  # [DONE], or a finish_reason
            maps = self._maps_answers

            def convert(event: sse.Event) -> dict[str, Any] | None:
                nonlocal ended
                raw = event.raw
                if raw.startswith(b"[DONE]"):
                    ended = True
                    raise StreamEnd
                if not raw:
                    return None
                chunk = serialization.loads(raw)
                if type(chunk) is dict and "error" in chunk and "choices" not in chunk:
                    raise self.stream_error(chunk["error"])
                if maps:
                    chunk = self.to_chunk(chunk)
                    if chunk is None:
                        return None
                if check_chunk(chunk):
                    ended = True
                return chunk

            # Unmapped chunks are the upstream's own JSON: relayed as its bytes unless changed.
            async for batch in self.stream_items(response, convert, as_sent=not maps):
                yield batch
            if not ended:
                raise self.make_error("the stream ended before it finished (no [DONE] and no finish_reason)",
                                      kind="connection")

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        response = await self.http.request("POST", self.embeddings_url(body), json=body)
        if response.status >= 300:
            raise self.error_from_response(response)
        data = self.answer_json(response)
        try:
            return check_embeddings(data)
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    # -- the Responses API as it is (pass-through, for upstreams that speak it) ----------

    async def native(self, fmt: str, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        if fmt not in self.native_formats:
            raise self.unsupported(f"{fmt} requests as they are")
        response = await self.http.request("POST", self.responses_path, json={**body, "stream": False})
        if response.status >= 300:
            raise self.error_from_response(response)
        try:
            return check_response(self.answer_json(response))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def native_stream(self, fmt: str, body: dict[str, Any], ctx: Any, *,
                            chunks: bool = True) -> AsyncIterator[list[NativeEvent]]:
        """Responses stream events as they came, each with the canonical
        chunks it converts to (which is how each is checked)."""
        if fmt not in self.native_formats:
            raise self.unsupported(f"{fmt} streams as they are")
        async with self.http.stream("POST", self.responses_path, json={**body, "stream": True}) as response:
            await self.refuse_failed_stream(response)
            if is_json(response.headers):
                self.answer_json(UpstreamResponse(response.status, response.headers, await response.aread()))
                raise self.malformed("a stream request was answered with JSON")
            converter = ResponsesStreamToOpenAI()

            def convert(event: sse.Event) -> NativeEvent | None:
                if not event.raw or event.raw.startswith(b"[DONE]"):
                    return None
                data = serialization.loads(event.raw)
                return NativeEvent(event.event, data, event.raw, converter.feed(event.event, data))

            async for batch in self.stream_items(response, convert):
                yield batch
            if not converter.done:
                raise self.make_error("the stream ended before the response completed", kind="connection")

    def stream_error(self, error: Any) -> ProviderError:
        """An ``{"error": {...}}`` event inside a 200 stream."""
        if not isinstance(error, dict):
            return self.make_error(str(error), kind="server_error", status=502)
        code = error.get("code") if isinstance(error.get("code"), str) else None
        error_type = error.get("type") if isinstance(error.get("type"), str) else None
        kind = kind_for_type(code or error_type)
        return self.make_error(str(error.get("message") or "stream error"), kind=kind, code=code)


def is_json(headers: Any) -> bool:
    return headers.get("content-type", "").startswith("application/json")


# -- shape checks on upstream answers --------------------------------------------------
#
# An upstream's answer is untrusted input: the gateway reads these fields
# (the relay, the Anthropic converters, usage accounting), so each is checked
# for the type the code relies on before anything uses it.  Unknown fields
# pass through untouched.  The per-chunk check runs on every streamed chunk:
# it is kept to exact type tests.

_OPTIONAL_STR = (str, type(None))


def _fail(reason: str) -> MalformedAnswer:
    return MalformedAnswer(reason)


def check_usage(usage: Any, where: str = "usage") -> None:
    if usage is None:
        return
    if type(usage) is not dict:
        raise _fail(f"{where} is not an object")
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(key)
        if value is not None and type(value) is not int:
            raise _fail(f"{where}.{key} is not an integer")
    for key in ("prompt_tokens_details", "completion_tokens_details"):
        details = usage.get(key)
        if details is None:
            continue
        if type(details) is not dict:
            raise _fail(f"{where}.{key} is not an object")
        for name, value in details.items():
            if value is not None and type(value) is not int:
                raise _fail(f"{where}.{key}.{name} is not an integer")


def _check_tool_calls(calls: Any, where: str, streamed: bool) -> None:
    if calls is None:
        return
    if type(calls) is not list:
        raise _fail(f"{where} is not a list")
    for k, call in enumerate(calls):
        if type(call) is not dict:
            raise _fail(f"{where}[{k}] is not an object")
        if streamed and type(call.get("index", 0)) is not int:
            raise _fail(f"{where}[{k}].index is not an integer")
        if not isinstance(call.get("id"), _OPTIONAL_STR):
            raise _fail(f"{where}[{k}].id is not a string")
        function = call.get("function")
        if function is None and streamed:
            continue
        if type(function) is not dict:
            raise _fail(f"{where}[{k}].function is not an object")
        for key in ("name", "arguments"):
            if not isinstance(function.get(key), _OPTIONAL_STR):
                raise _fail(f"{where}[{k}].function.{key} is not a string")


def _check_content(content: Any, where: str) -> None:
    if content is None or type(content) is str:
        return
    if type(content) is not list or not all(type(part) is dict for part in content):
        raise _fail(f"{where} is not a string or a list of parts")
    for j, part in enumerate(content):
        if not isinstance(part.get("text"), _OPTIONAL_STR):
            raise _fail(f"{where}[{j}].text is not a string")


def _check_message(message: Any, where: str, streamed: bool) -> None:
    if type(message) is not dict:
        raise _fail(f"{where} is not an object")
    _check_content(message.get("content"), f"{where}.content")
    for key in ("reasoning_content", "reasoning", "refusal", "role"):
        if not isinstance(message.get(key), _OPTIONAL_STR):
            raise _fail(f"{where}.{key} is not a string")
    _check_tool_calls(message.get("tool_calls"), f"{where}.tool_calls", streamed)
    blocks = message.get("thinking_blocks")
    if blocks is not None and (type(blocks) is not list or not all(type(b) is dict for b in blocks)):
        raise _fail(f"{where}.thinking_blocks is not a list of objects")


def check_completion(data: Any) -> dict[str, Any]:
    """``data`` if it is a well-formed ``chat.completion``; else
    :class:`MalformedAnswer` naming the first bad field."""
    if type(data) is not dict:
        raise _fail("the answer is not a JSON object")
    for key in ("id", "model"):
        if not isinstance(data.get(key), _OPTIONAL_STR):
            raise _fail(f"{key} is not a string")
    choices = data.get("choices")
    if type(choices) is not list:
        raise _fail("choices is missing or not a list")
    for i, choice in enumerate(choices):
        if type(choice) is not dict:
            raise _fail(f"choices[{i}] is not an object")
        if type(choice.get("index", 0)) is not int:
            raise _fail(f"choices[{i}].index is not an integer")
        if not isinstance(choice.get("finish_reason"), _OPTIONAL_STR):
            raise _fail(f"choices[{i}].finish_reason is not a string")
        _check_message(choice.get("message"), f"choices[{i}].message", streamed=False)
    check_usage(data.get("usage"))
    return data


def check_chunk(chunk: Any) -> bool:
    """Check one ``chat.completion.chunk``; return whether it carries a
    ``finish_reason`` (the stream has reached its end)."""
    if type(chunk) is not dict:
        raise _fail("a stream chunk is not a JSON object")
    finished = False
    choices = chunk.get("choices")
    if choices is not None:
        if type(choices) is not list:
            raise _fail("a stream chunk's choices is not a list")
        for choice in choices:
            if type(choice) is not dict:
                raise _fail("a stream chunk's choice is not an object")
            if type(choice.get("index", 0)) is not int:
                raise _fail("a stream chunk's choices[].index is not an integer")
            finish = choice.get("finish_reason")
            if finish is not None:
                if type(finish) is not str:
                    raise _fail("a stream chunk's finish_reason is not a string")
                finished = True
            delta = choice.get("delta")
            if delta is not None:
                if type(delta) is not dict:
                    raise _fail("a stream chunk's delta is not an object")
                if len(delta) > 1 or "content" not in delta or type(delta["content"]) is not str:
                    _check_message(delta, "a stream chunk's delta", streamed=True)
    if "id" in chunk and not isinstance(chunk["id"], _OPTIONAL_STR):
        raise _fail("a stream chunk's id is not a string")
    usage = chunk.get("usage")
    if usage is not None:
        check_usage(usage, "a stream chunk's usage")
    return finished


def check_embeddings(data: Any) -> dict[str, Any]:
    """``data`` if it is a well-formed embeddings ``list``."""
    if type(data) is not dict:
        raise _fail("the answer is not a JSON object")
    items = data.get("data")
    if type(items) is not list:
        raise _fail("data is missing or not a list")
    for i, item in enumerate(items):
        if type(item) is not dict:
            raise _fail(f"data[{i}] is not an object")
        if type(item.get("index", 0)) is not int:
            raise _fail(f"data[{i}].index is not an integer")
        # The vector itself is passed on, not read: its elements are the client's to check.
        if type(item.get("embedding")) not in (list, str):
            raise _fail(f"data[{i}].embedding is not a list or a base64 string")
    check_usage(data.get("usage"))
    return data


#: Opaque Anthropic blocks (see ``formats.anthropic.ingress``) that carry
#: what the model must read: dropping them would change the question, so a
#: provider that cannot take them refuses the request instead.
_CONTENT_THE_MODEL_READS = frozenset({"document", "image"})


def content_text(content: Any, where: str, only: str) -> str:
    """A canonical message's text, for an upstream that takes only text
    there: a string, or its text (and refusal) parts joined.  Any other part
    is a 400 (code ``unsupported``) naming it, at ``where`` (``messages[2]``),
    saying ``only`` (what the upstream takes) and what the part was."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            texts.append(part.get("text") or "")
        elif kind == "refusal":
            texts.append(part.get("refusal") or "")
        else:
            raise PortwayError(f"{only}, not a {kind!r} part", kind="bad_request", code="unsupported",
                               param=f"{where}.content[{j}]")
    return "".join(texts)


def with_reasoning_from_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with each assistant message that carries Anthropic thinking
    blocks but no ``reasoning_content`` given their text as its
    ``reasoning_content`` (a copy; ``body`` itself is left as it was)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(_thinking_text(m) for m in messages):
        return body
    return {**body, "messages": [{**m, "reasoning_content": _thinking_text(m)} if _thinking_text(m) else m
                                 for m in messages]}


def _thinking_text(message: Any) -> str:
    if not isinstance(message, dict) or message.get("reasoning_content"):
        return ""
    blocks = message.get("thinking_blocks")
    return "".join(b["thinking"] for b in blocks if isinstance(b, dict) and isinstance(b.get("thinking"), str)) \
        if isinstance(blocks, list) else ""


def strip_anthropic_extras(body: dict[str, Any], provider: str = "this provider") -> dict[str, Any]:
    """A copy of ``body`` for an OpenAI-format upstream, without what only
    Anthropic understands: the Anthropic-only keys that ``/v1/messages``
    keeps in the canonical form (see
    :data:`portway.formats.anthropic.ANTHROPIC_PASSTHROUGH`; OpenAI rejects
    unknown parameters), ``cache_control`` and signed thinking blocks, and
    the opaque blocks an Anthropic client may send.  The rule for those:
    a document or image with no OpenAI form (from a URL or a file id) is a
    400 naming it; a search result becomes text; anything else (server tool
    results, container uploads, block types Portway does not know) is
    dropped, and so are server tools
    (``tools`` entries with no ``function``), which only Anthropic can run."""
    from portway.formats.anthropic import ANTHROPIC_PASSTHROUGH, OPENAI_PART_TYPES

    out = {k: v for k, v in body.items() if k not in ANTHROPIC_PASSTHROUGH}
    messages = []
    for i, message in enumerate(body.get("messages") or ()):
        message = {k: v for k, v in message.items() if k != "thinking_blocks"}
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for j, part in enumerate(content):
                kind = part.get("type")
                if kind in OPENAI_PART_TYPES:
                    parts.append({k: v for k, v in part.items() if k != "cache_control"})
                elif kind == "search_result":  # text the model must read, with a title
                    texts = [b.get("text", "") for b in part.get("content") or () if b.get("type") == "text"]
                    parts.append({"type": "text", "text": "\n\n".join([part.get("title", ""), *texts]).strip()})
                elif kind in _CONTENT_THE_MODEL_READS:
                    source = (part.get("source") or {}).get("type")
                    raise PortwayError(
                        f"a {kind} block with a {source!r} source cannot be sent to provider {provider!r}: "
                        "send it inline (base64)", kind="bad_request", param=f"messages[{i}].content[{j}]")
            message["content"] = parts
        messages.append(message)
    out["messages"] = messages
    if body.get("tools"):
        out["tools"] = [{k: v for k, v in tool.items() if k != "cache_control"} for tool in body["tools"]
                        if tool.get("type") == "function" and "function" in tool]
        if not out["tools"]:
            del out["tools"]
            out.pop("tool_choice", None)
            out.pop("parallel_tool_calls", None)
    return out


def completion_to_chunks(response: dict[str, Any], include_usage: bool = True) -> list[dict[str, Any]]:
    """Replay a whole ``chat.completion`` as stream chunks (e.g. a cache hit
    answering a streamed request)."""
    base = {
        "id": response.get("id", "chatcmpl-portway"),
        "object": "chat.completion.chunk",
        "created": response.get("created", int(time.time())),
        "model": response.get("model", ""),
    }
    chunks: list[dict[str, Any]] = []
    for choice in response.get("choices", []):
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        for key in ("reasoning_content", "refusal"):
            if message.get(key):
                delta[key] = message[key]
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        index = choice.get("index", 0)
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}]})
    if include_usage and response.get("usage"):
        chunks.append({**base, "choices": [], "usage": response["usage"]})
    return chunks


class StreamAssembler:
    """Folds ``chat.completion.chunk`` dicts into one ``chat.completion``."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.usage: dict[str, Any] | None = None
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        self.id = self.id or chunk.get("id")
        self.model = self.model or chunk.get("model")
        self.created = self.created or chunk.get("created")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            state = self._choices.setdefault(
                choice.get("index", 0), {"content": [], "reasoning": [], "refusal": [], "tool_calls": {},
                                         "finish_reason": None})
            delta = choice.get("delta") or {}
            if delta.get("content"):
                state["content"].append(delta["content"])
            if delta.get("reasoning_content"):
                state["reasoning"].append(delta["reasoning_content"])
            if delta.get("refusal"):
                state["refusal"].append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                slot = state["tool_calls"].setdefault(
                    call.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    slot["function"]["name"] += function["name"]
                if function.get("arguments"):
                    slot["function"]["arguments"] += function["arguments"]
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]

    def result(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: dict[str, Any] = {"role": "assistant", "content": "".join(state["content"]) or None}
            if state["reasoning"]:
                message["reasoning_content"] = "".join(state["reasoning"])
            if state["refusal"]:
                message["refusal"] = "".join(state["refusal"])
            if state["tool_calls"]:
                message["tool_calls"] = [state["tool_calls"][i] for i in sorted(state["tool_calls"])]
            choices.append({"index": index, "message": message, "finish_reason": state["finish_reason"]})
        return {
            "id": self.id or "chatcmpl-portway",
            "object": "chat.completion",
            "created": self.created or int(time.time()),
            "model": self.model or "",
            "choices": choices,
            "usage": self.usage,
        }
