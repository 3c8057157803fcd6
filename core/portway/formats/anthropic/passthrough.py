"""The Anthropic Messages format as a pass-through (see :mod:`portway.native`):
an Anthropic client's request to an Anthropic-format upstream goes as it was
sent, and the upstream's answer comes back as it was answered, with what
hooks changed in the canonical view carried over.

What a hook can change, and how it reaches the native request or answer:

* a canonical message (redacted text, a rewritten tool result, …): the
  client message it came from is translated again from the canonical form
  (its Anthropic-only blocks that have no canonical form, such as server
  tool results in an assistant turn, are not kept in that one message);
  every other message goes exactly as the client wrote it;
* a top-level field (``max_tokens``, ``temperature``, ``stop``, ``tools``,
  ``tool_choice``, ``response_format``, ``user``/``metadata``, the
  Anthropic-only keys): the Anthropic field it maps to is rewritten;
* added, removed or reordered messages: the whole body is translated from
  the canonical form, keeping the client's top-level fields that have no
  canonical form;
* the answer's text, tool arguments, reasoning and finish reason (and, for
  a stream, each delta's text, arguments or reasoning, or the delta itself
  when a hook drops it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from portway import serialization, sse
from portway.formats import MalformedAnswer
from portway.formats.anthropic.checks import check_message
from portway.formats.anthropic.common import FINISH_TO_STOP, parse_arguments
from portway.formats.anthropic.upstream import (
    AnthropicStreamToOpenAI,
    anthropic_response_to_openai,
    messages_to_anthropic,
    openai_to_anthropic_request,
)
from portway.native import NativeEvent, NativeFormat, NativeRequest
from portway.upstream import UpstreamResponse

if TYPE_CHECKING:
    from portway.providers import Provider
    from portway.upstream import UpstreamStream

#: The stream events the gateway itself reads (usage, the end, errors); the
#: rest carry content, relayed unread when no hook needs the canonical view.
LIFECYCLE_EVENTS = frozenset({"message_start", "message_delta", "message_stop", "error"})
#: Content events that do not start the answer yet (a fallback is still invisible after them).
ANNOUNCING_EVENTS = frozenset({"ping", "content_block_start", "content_block_stop"})

# Canonical top-level key -> the Anthropic keys it is translated into.
_TOP_LEVEL = {
    "max_tokens": ("max_tokens",), "max_completion_tokens": ("max_tokens",), "temperature": ("temperature",),
    "top_p": ("top_p",), "stop": ("stop_sequences",), "stop_sequences": ("stop_sequences",),
    "tools": ("tools", "tool_choice"), "tool_choice": ("tool_choice",), "parallel_tool_calls": ("tool_choice",),
    "response_format": ("output_config", "system"), "reasoning_effort": ("output_config",),
    "user": ("metadata",), "safety_identifier": ("metadata",), "metadata": ("metadata",),
}
# Canonical keys that are the gateway's own business, not the client's request.
_NOT_FORWARDED = frozenset({"model", "stream", "stream_options", "messages"})


def _mapped(keys: set[str] | Any) -> set[str]:
    """The Anthropic keys that canonical ``keys`` are translated into."""
    out: set[str] = set()
    for key in keys:
        if key not in _NOT_FORWARDED:
            out.update(_TOP_LEVEL.get(key, (key,)))
    return out


class AnthropicNative(NativeFormat):
    name = "anthropic"

    # -- the request --------------------------------------------------------------------

    def upstream_body(self, request: NativeRequest, ctx: Any, target: Any) -> dict[str, Any]:
        changes = request.changes(ctx)
        if changes is None:  # messages added, removed or reordered: translate it all
            canonical = ctx.body
            body = openai_to_anthropic_request(canonical, system_in_place=True)
            body.pop("stream", None)
            for key, value in request.body.items():  # what has no canonical form stays as sent
                if key not in body and key not in _mapped(canonical):
                    body[key] = value
        else:
            changed_messages, changed_keys = changes
            body = dict(request.body)
            if changed_messages:
                self._patch_messages(body, request, ctx.body, changed_messages)
            if changed_keys:
                self._patch_top_level(body, ctx.body, changed_keys)
        body["model"] = target.model
        if target.params:
            params = dict(target.params)
            translated = openai_to_anthropic_request({"messages": [], **params})
            for key in _mapped(params):
                if key in translated:
                    body.setdefault(key, translated[key])
        if request.body.get("stream"):
            body["stream"] = True
        return body

    @staticmethod
    def _patch_messages(body: dict[str, Any], request: NativeRequest, canonical: dict[str, Any],
                        changed: set[int]) -> None:
        messages = list(body.get("messages") or [])
        groups: dict[int, list[dict[str, Any]]] = {}
        for i, origin in enumerate(request.origin):
            groups.setdefault(origin, []).append(canonical["messages"][i])
        for origin in sorted({request.origin[i] for i in changed}):
            group = groups[origin]
            if origin < 0:  # the top-level system prompt
                system, _ = messages_to_anthropic(group)
                body["system"] = system if any("cache_control" in b for b in system) else \
                    "\n\n".join(b["text"] for b in system)
                continue
            native_role = messages[origin].get("role")
            system, turns = messages_to_anthropic(group, first=origin)
            if native_role == "system":
                turns = [{"role": "system", "content": system}] if system else []
            if len(turns) == 1:
                messages[origin] = turns[0]
            else:  # a hook emptied the message (or split it): keep the client's turn structure valid
                messages[origin] = {"role": native_role, "content": turns[0]["content"] if turns else ""}
        body["messages"] = messages

    @staticmethod
    def _patch_top_level(body: dict[str, Any], canonical: dict[str, Any], changed: set[str]) -> None:
        translated = openai_to_anthropic_request({**canonical, "messages": []})
        for key in _mapped(changed):
            if key == "system":
                continue  # a json_object instruction: only in a full translation
            if key in translated:
                body[key] = translated[key]
            else:
                body.pop(key, None)

    # -- the answer ---------------------------------------------------------------------

    def canonical_response(self, native: dict[str, Any]) -> dict[str, Any]:
        return anthropic_response_to_openai(native)

    def patch_response(self, native: dict[str, Any], canonical: dict[str, Any]) -> dict[str, Any]:
        choice = (canonical.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        original = anthropic_response_to_openai(native)["choices"][0]
        before = original["message"]
        content: list[dict[str, Any]] = [dict(block) for block in native.get("content") or []]
        if message.get("content") != before.get("content"):
            content = _replace_texts(content, "text", "text", message.get("content") or "")
        if message.get("reasoning_content") != before.get("reasoning_content"):
            content = _replace_texts(content, "thinking", "thinking", message.get("reasoning_content") or "")
        calls = {call.get("id"): call for call in message.get("tool_calls") or []}
        kept = []
        for block in content:
            if block.get("type") == "tool_use":
                call = calls.get(block.get("id"))
                if call is None:
                    continue  # a hook removed the call
                function = call.get("function") or {}
                block["name"] = function.get("name", block.get("name"))
                block["input"] = parse_arguments(function.get("arguments"), "tool_calls")
            kept.append(block)
        patched = {**native, "content": kept}
        if choice.get("finish_reason") != original["finish_reason"]:
            patched["stop_reason"] = FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn")
        return patched

    def patch_event(self, event: NativeEvent, chunks: list[dict[str, Any] | None]) -> NativeEvent | None:
        data = event.data
        if data.get("type") != "content_block_delta" or not event.chunks:
            return event  # only the deltas carry what hooks may change
        if chunks[0] is None:
            return None  # a hook dropped the delta
        delta = dict(data.get("delta") or {})
        choice = (chunks[0].get("choices") or [{}])[0]
        changed = choice.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            delta["text"] = changed.get("content") or ""
        elif kind == "thinking_delta":
            delta["thinking"] = changed.get("reasoning_content") or ""
        elif kind == "input_json_delta":
            calls = changed.get("tool_calls") or [{}]
            delta["partial_json"] = (calls[0].get("function") or {}).get("arguments") or ""
        else:
            return event
        if delta == data.get("delta"):
            return event
        return event.replaced({**data, "delta": delta})


def _replace_texts(content: list[dict[str, Any]], kind: str, field: str, text: str) -> list[dict[str, Any]]:
    """The blocks with the text of the ``kind`` blocks replaced by ``text``:
    the first such block gets it all, the others go."""
    out: list[dict[str, Any]] = []
    placed = not text  # no text left: every block of the kind goes
    for block in content:
        if block.get("type") != kind:
            out.append(block)
        elif not placed:
            out.append({**block, field: text})
            placed = True
    if not placed and text:
        out.append({"type": kind, field: text})
    return out


def message_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A whole ``message`` as the stream of events Anthropic would have sent
    for it (an upstream that answered a stream request with JSON)."""
    usage = dict(message.get("usage") or {})
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 0}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type")
        if kind == "text":
            first, delta = {**block, "text": ""}, {"type": "text_delta", "text": block.get("text", "")}
        elif kind == "tool_use":
            first = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": serialization.dumps_str(block.get("input") or {})}
        elif kind == "thinking":
            first, delta = {**block, "thinking": "", "signature": ""}, {"type": "thinking_delta",
                                                                      "thinking": block.get("thinking", "")}
        else:
            first, delta = block, None
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": first}))
        if delta is not None:
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        if kind == "thinking" and block.get("signature"):
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": "signature_delta", "signature": block["signature"]}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta", "delta": {
        "stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")},
        "usage": {"output_tokens": usage.get("output_tokens") or 0}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


ANTHROPIC = AnthropicNative()


async def read_stream(provider: Provider, response: UpstreamStream, *,
                      chunks: bool = True) -> AsyncIterator[list[NativeEvent]]:
    """An Anthropic Messages stream from an upstream, as the pass-through
    relays it: each event as it came, with the canonical chunks it converts
    to (which is how each is checked).  With ``chunks=False`` only the events
    that start, end or fail the answer are read (usage, the end, errors); the
    content events go to the client as the upstream sent them, unread.  A
    JSON answer to the stream request (an error, or a whole message) is
    replayed as the events Anthropic would have sent; a stream that ends
    before ``message_stop`` is a ``connection`` failure.  Shared by every
    provider that serves Claude in Anthropic's own format (Anthropic, Vertex)."""
    await provider.refuse_failed_stream(response)
    converter = AnthropicStreamToOpenAI()
    if response.headers.get("content-type", "").startswith("application/json"):
        data = provider.answer_json(UpstreamResponse(response.status, response.headers, await response.aread()))
        try:
            events = [NativeEvent(name, item, serialization.dumps(item), converter.feed(name, item))
                      for name, item in message_events(check_message(data))]
        except MalformedAnswer as exc:
            raise provider.malformed(str(exc)) from None
        yield events
        return

    def convert(event: sse.Event) -> NativeEvent | None:
        if not event.raw:
            return None
        name = event.event
        if not chunks and name is not None and name not in LIFECYCLE_EVENTS:
            return NativeEvent(name, None, event.raw, preamble=name in ANNOUNCING_EVENTS)
        data = serialization.loads(event.raw)
        return NativeEvent(name, data, event.raw, converter.feed(name, data))

    async for batch in provider.stream_items(response, convert):
        yield batch
    if not converter.done:
        raise provider.make_error("upstream stream ended before message_stop", kind="connection")


#: Keys of a Messages request that a token count does not take (the anthropic
#: SDK's ``MessageCountTokensParams`` has none of them): dropped before a
#: ``/v1/messages/count_tokens`` request goes to an Anthropic-format upstream.
NOT_COUNTED = frozenset({"max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata",
                         "service_tier"})


def count_tokens_body(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages body as a token count takes it."""
    return {key: value for key, value in body.items() if key not in NOT_COUNTED}
