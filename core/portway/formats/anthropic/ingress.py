"""What the gateway's ``/v1/messages`` endpoint needs: a Messages API
request as the canonical (OpenAI Chat Completions) one, and a canonical
answer (whole or streamed) back as a Messages API answer, for clients of
the Anthropic SDK in front of any provider."""

from __future__ import annotations

import uuid
from typing import Any

from portway.errors import PortwayError
from portway.formats.anthropic.common import (
    ANTHROPIC_PASSTHROUGH,
    FINISH_TO_STOP,
    anthropic_usage,
    as_blocks,
    bad_request,
    message_id,
    parse_arguments,
    text_of,
    tool_call,
)


def _block_to_part(block: dict[str, Any], param: str) -> dict[str, Any]:
    """A content block as an OpenAI content part.  A block with no OpenAI
    form (a document from a URL, a container upload, a type Portway does not
    know yet) travels as it is, an *opaque* part: an Anthropic-format upstream
    gets it back unchanged, and another upstream drops it or refuses it (see
    :func:`portway.formats.openai.strip_anthropic_extras`)."""
    kind = block.get("type")
    if kind == "text":
        part: dict[str, Any] = {"type": "text", "text": block.get("text", "")}
    elif kind in ("image", "document"):
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        elif source.get("type") == "url" and kind == "image":
            url = source.get("url", "")
        elif source.get("type") == "text":
            return {"type": "text", "text": source.get("data", "")}
        else:
            return dict(block)
        if kind == "image":
            part = {"type": "image_url", "image_url": {"url": url}}
        else:
            part = {"type": "file", "file": {"file_data": url, **({"filename": block["title"]} if block.get("title") else {})}}
    else:
        return dict(block)
    if block.get("cache_control"):
        part["cache_control"] = block["cache_control"]
    return part


def _compact(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """One plain text part as a string: the form every OpenAI-compatible server accepts."""
    if len(parts) == 1 and parts[0]["type"] == "text" and "cache_control" not in parts[0]:
        return parts[0]["text"]
    return parts


def _user_to_openai(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content or []):
        if block.get("type") != "tool_result":
            parts.append(_block_to_part(block, f"{param}.{j}"))
            continue
        result = block.get("content")
        texts: list[str] = []
        for k, item in enumerate(as_blocks(result)):
            part = _block_to_part(item, f"{param}.{j}.content.{k}")
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                parts.append(part)  # OpenAI tool messages carry text only: images follow as user content
        text = "\n".join(texts)
        if block.get("is_error"):
            text = "Error: " + text  # OpenAI has no error flag; tell the model in words
        out.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": text})
    if parts:
        out.append({"role": "user", "content": _compact(parts)})
    return out


def _assistant_to_openai(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for block in content or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(tool_call(block))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["thinking_blocks"] = thinking
    return message


def _system_to_openai(content: Any, param: str) -> dict[str, Any]:
    blocks = as_blocks(content)
    if any(b.get("cache_control") for b in blocks):
        return {"role": "system", "content": [_block_to_part(b, param) for b in blocks]}
    return {"role": "system", "content": "\n\n".join(b.get("text", "") for b in blocks)}


def anthropic_request_to_openai(body: dict[str, Any], origin: list[int] | None = None) -> dict[str, Any]:
    """A Messages API body as a canonical Chat Completions body.

    ``origin``, when given, is filled with the index of the client message
    each canonical message came from (-1 for the top-level ``system``): how
    the pass-through finds what hooks changed (see :mod:`portway.native`).
    System messages inside ``messages`` (Claude Code sends them) stay system
    messages, in place."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append(_system_to_openai(system, "system"))
    if origin is not None:
        origin[:] = [-1] * len(messages)
    for i, msg in enumerate(body.get("messages") or []):
        role = msg.get("role")
        if role == "user":
            messages.extend(_user_to_openai(msg.get("content"), f"messages.{i}.content"))
        elif role == "assistant":
            messages.append(_assistant_to_openai(msg.get("content")))
        elif role == "system":
            messages.append(_system_to_openai(msg.get("content"), f"messages.{i}.content"))
        else:
            raise bad_request(f"message role {role!r} is not valid", f"messages.{i}.role")
        if origin is not None:
            origin.extend([i] * (len(messages) - len(origin)))

    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id:
        out["user"] = user_id

    tools = body.get("tools")
    if tools:
        out["tools"] = []
        for tool in tools:
            if "input_schema" not in tool:
                out["tools"].append(tool)  # a server tool: only Anthropic can run it
                continue
            fn: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
            if tool.get("description"):
                fn["description"] = tool["description"]
            converted: dict[str, Any] = {"type": "function", "function": fn}
            if tool.get("cache_control"):
                converted["cache_control"] = tool["cache_control"]
            out["tools"].append(converted)
        choice = body.get("tool_choice") or {}
        kind = choice.get("type")
        if kind in ("auto", "any", "none"):
            out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False  # OpenAI rejects this without tools, hence inside

    output_config = body.get("output_config") or {}
    output_format = output_config.get("format") or {}
    if output_format.get("type") == "json_schema":
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "response", "schema": output_format.get("schema") or {}}}
    if output_config.get("effort"):
        effort = output_config["effort"]
        out["reasoning_effort"] = effort if effort in ("low", "medium", "high") else "high"

    for key in ANTHROPIC_PASSTHROUGH:
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # else OpenAI-style upstreams send no usage
    return out



def _tool_input(arguments: Any) -> dict[str, Any]:
    """Tool arguments from an upstream model; malformed JSON is kept, not lost."""
    try:
        return parse_arguments(arguments, "")
    except PortwayError:
        return {"_raw_arguments": arguments}


def openai_response_to_anthropic(resp: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` as a Messages API ``message``."""
    choice = (resp.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = [dict(b) for b in message.get("thinking_blocks") or []]
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if not content and isinstance(reasoning, str) and reasoning:
        # No signature exists for another provider's reasoning; "" keeps the block valid to read.
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = text_of(message.get("content")) or message.get("refusal") or ""
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                        "name": fn.get("name", ""), "input": _tool_input(fn.get("arguments"))})
    return {
        "id": message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model") or "",
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,  # OpenAI does not say which stop sequence matched
        "usage": anthropic_usage(resp.get("usage") or {}),
    }


class OpenAIStreamToAnthropic:
    """``chat.completion.chunk`` dicts in, Anthropic ``(event, data)`` pairs out.

    OpenAI streams send usage in a last chunk after the finish chunk, so
    ``message_delta``/``message_stop`` come from :meth:`finish`, called when
    the upstream stream has ended.
    """

    def __init__(self, *, model: str | None = None, message_id: str | None = None) -> None:
        self.model = model
        self.id = message_id
        self._started = False
        self._open: str | None = None  # type of the open content block
        self._index = -1  # Anthropic index of the open (or last) block
        self._tools: dict[int, int] = {}  # OpenAI tool_calls index -> Anthropic block index
        self._usage: dict[str, Any] = {}
        self._finish: str | None = None

    def _start(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        self._started = True
        self.id = self.id or message_id(chunk.get("id"))
        self.model = self.model or chunk.get("model") or ""
        input_tokens = anthropic_usage(chunk["usage"])["input_tokens"] if chunk.get("usage") else 0
        return [("message_start", {"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 0},
        }})]

    def _close(self) -> list[tuple[str, dict[str, Any]]]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _begin(self, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        events = self._close()
        self._index += 1
        self._open = block["type"]
        events.append(("content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block}))
        return events

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> tuple[str, dict[str, Any]]:
        return ("content_block_delta", {"type": "content_block_delta",
                                        "index": self._index if index is None else index, "delta": delta})

    def feed(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        events = [] if self._started else self._start(chunk)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # the Messages format has one answer
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                if self._open != "thinking":
                    events += self._begin({"type": "thinking", "thinking": "", "signature": ""})
                events.append(self._delta({"type": "thinking_delta", "thinking": reasoning}))
            for block in delta.get("thinking_blocks") or []:
                if block.get("type") == "redacted_thinking":
                    events += self._begin(dict(block)) + self._close()
                elif block.get("signature"):
                    if self._open != "thinking":
                        events += self._begin({"type": "thinking", "thinking": "", "signature": ""})
                    events.append(self._delta({"type": "signature_delta", "signature": block["signature"]}))
            text = delta.get("content")
            if text:
                if self._open != "text":
                    events += self._begin({"type": "text", "text": ""})
                events.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or []:
                k = call.get("index", 0)
                fn = call.get("function") or {}
                if k not in self._tools:
                    events += self._begin({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                                           "name": fn.get("name") or "", "input": {}})
                    self._tools[k] = self._index
                if fn.get("arguments"):
                    events.append(self._delta({"type": "input_json_delta", "partial_json": fn["arguments"]},
                                              self._tools[k]))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        events = [] if self._started else self._start({})
        events += self._close()
        usage: dict[str, Any] = {"output_tokens": self._usage.get("completion_tokens") or 0}
        if self._usage:
            # message_delta usage is cumulative and may carry input counts (anthropic
            # types/message_delta_usage.py): OpenAI only reports prompt tokens at the end.
            full = anthropic_usage(self._usage)
            usage = {"input_tokens": full["input_tokens"], "cache_creation_input_tokens": full["cache_creation_input_tokens"],
                     "cache_read_input_tokens": full["cache_read_input_tokens"], "output_tokens": full["output_tokens"]}
        stop = FINISH_TO_STOP.get(self._finish or "stop", "end_turn")
        events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                         "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events
