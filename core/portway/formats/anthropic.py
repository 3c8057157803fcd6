"""Anthropic Messages <-> canonical OpenAI Chat Completions.

Pure functions and two small stream state machines, shared by the
``anthropic`` provider (OpenAI in, Anthropic on the wire) and the gateway's
``/v1/messages`` endpoint (Anthropic in, any provider behind it).

Choices worth knowing (the plugin README lists them for users):

* ``response_format: json_object`` has no Anthropic equivalent: an
  instruction to answer with one JSON object is appended to ``system``.
* Anthropic thinking travels in the OpenAI shape as ``reasoning_content``
  (the de-facto field of DeepSeek, vLLM, LiteLLM) plus ``thinking_blocks``
  (the full blocks with their ``signature``), because Anthropic rejects a
  tool-use turn replayed without its signed thinking block.
* Cache writes travel as ``prompt_tokens_details.cache_write_tokens`` (an
  OpenAI SDK field) so cost accounting can price them.
* Anthropic-only request keys (``top_k``, ``thinking``, ``cache_control`` on
  parts and tools, ...) stay in the canonical body as extra keys, so an
  Anthropic client going through the gateway to Anthropic loses nothing;
  other providers must ignore keys they do not know.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from portway import serialization
from portway.errors import PortwayError, ProviderError, kind_for_type
from portway.formats import MalformedAnswer

_STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Top-level Messages params a client may send through the OpenAI endpoint;
# they pass through untouched.  Everything else that is not an OpenAI field
# handled below is dropped, because Anthropic rejects unknown keys.
# (context_management and mcp_servers need an anthropic-beta flag.)
ANTHROPIC_PASSTHROUGH = frozenset({
    "top_k", "thinking", "cache_control", "container", "diagnostics", "inference_geo", "speed",
    "context_management", "mcp_servers",
})
# Sampling params of API version 2023-06-01.  The anthropic SDK 2.x (API
# version 2026-10-21) no longer has them, so the provider can drop them.
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
# Content blocks that are already in Anthropic's shape.
_ANTHROPIC_BLOCKS = frozenset({"image", "document", "search_result", "tool_result", "tool_use", "thinking", "redacted_thinking"})

JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."


def _bad(message: str, param: str | None = None) -> PortwayError:
    return PortwayError(message, kind="bad_request", param=param)


def _message_id(openai_id: str | None) -> str:
    if openai_id and openai_id.startswith("msg_"):
        return openai_id
    if openai_id:
        return "msg_" + openai_id.removeprefix("chatcmpl-")
    return "msg_" + uuid.uuid4().hex[:24]


def _text_of(content: Any) -> str:
    """The text of a string or of a list of text parts/blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def _as_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content or [])


# =============================================================================
# OpenAI request -> Anthropic request (the anthropic provider)
# =============================================================================


def _image_block(url: str, param: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64" or not data:
            raise _bad("image data URIs must be base64 encoded", param)
        kind = "document" if media_type == "application/pdf" else "image"
        return {"type": kind, "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _part_to_block(part: dict[str, Any], param: str) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind in _ANTHROPIC_BLOCKS:
        return dict(part)
    if kind in ("text", "refusal"):
        text = part.get(kind) or ""
        if not text:
            return None  # Anthropic rejects empty text blocks
        block: dict[str, Any] = {"type": "text", "text": text}
    elif kind == "image_url":
        image = part.get("image_url")
        url = image if isinstance(image, str) else (image or {}).get("url", "")
        block = _image_block(url, param)
    elif kind == "file":
        file = part.get("file") or {}
        if not str(file.get("file_data", "")).startswith("data:"):
            raise _bad("only inline file_data (a base64 data URI) is supported for Anthropic", param)
        block = _image_block(file["file_data"], param)
        if file.get("filename") and block["type"] == "document":
            block["title"] = file["filename"]
    else:
        raise _bad(f"content part type {kind!r} is not supported by Anthropic", param)
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _content_to_blocks(content: Any, param: str) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    blocks = []
    for j, part in enumerate(content):
        block = _part_to_block(part, f"{param}.{j}")
        if block is not None:
            blocks.append(block)
    return blocks


def _parse_arguments(arguments: Any, param: str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not arguments or not str(arguments).strip():
        return {}
    try:
        value = serialization.loads(arguments)
    except serialization.JSONDecodeError:
        raise _bad("tool call arguments are not valid JSON", param) from None
    if not isinstance(value, dict):
        raise _bad("tool call arguments must be a JSON object", param)
    return value


def _assistant_blocks(msg: dict[str, Any], param: str) -> str | list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [dict(b) for b in msg.get("thinking_blocks") or []]
    content = _content_to_blocks(msg.get("content"), f"{param}.content")
    if not blocks and not msg.get("tool_calls"):
        return content
    blocks += _as_blocks(content)
    for j, call in enumerate(msg.get("tool_calls") or []):
        fn = call.get("function") or {}
        blocks.append({
            "type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}", "name": fn.get("name", ""),
            "input": _parse_arguments(fn.get("arguments"), f"{param}.tool_calls.{j}.function.arguments"),
        })
    return blocks


def _tool_result(msg: dict[str, Any], param: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id", "")}
    content = _content_to_blocks(msg.get("content"), f"{param}.content")
    if content:
        block["content"] = content
    return block


def _append(messages: list[dict[str, Any]], role: str, content: str | list[dict[str, Any]]) -> None:
    """Add a turn, merging into the previous one of the same role: Anthropic
    wants alternation, and tool results must sit in the user turn right
    after the tool_use turn."""
    if not content:
        return  # an empty turn is rejected ("all messages must have non-empty content")
    if messages and messages[-1]["role"] == role:
        previous = messages[-1]
        if isinstance(previous["content"], str):
            previous["content"] = _as_blocks(previous["content"])
        # Extend in place: the turn's list is the converter's own (every caller
        # builds a fresh one), and a long run of same-role messages stays linear.
        previous["content"].extend(_as_blocks(content))
    else:
        messages.append({"role": role, "content": content})


def _convert_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        if tool.get("type") != "function" or "function" not in tool:
            out.append(tool)  # already Anthropic-shaped (a custom or server tool)
            continue
        fn = tool["function"]
        converted: dict[str, Any] = {
            "name": fn["name"],
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
        }
        if fn.get("description"):
            converted["description"] = fn["description"]
        if tool.get("cache_control"):
            converted["cache_control"] = tool["cache_control"]
        out.append(converted)
    return out


def _convert_tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None:
        result = {"type": "auto"} if parallel is False else None
    elif choice in ("auto", "required", "none"):
        result = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        result = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    elif isinstance(choice, dict) and choice.get("type") in ("auto", "any", "tool", "none"):
        result = dict(choice)
    else:
        raise _bad(f"tool_choice {choice!r} is not supported by Anthropic", "tool_choice")
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def openai_to_anthropic_request(body: dict[str, Any], *, default_max_tokens: int = 4096) -> dict[str, Any]:
    """A canonical Chat Completions body as a Messages API body."""
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("Anthropic models return one choice; n must be 1", "n")

    system: list[dict[str, Any]] = []
    for block in _as_blocks(body.get("system")):
        system.append(dict(block))
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(body.get("messages") or []):
        role, param = msg.get("role"), f"messages.{i}"
        if role in ("system", "developer"):
            for block in _as_blocks(_content_to_blocks(msg.get("content"), f"{param}.content")):
                if block.get("type") == "text":
                    system.append(block)
        elif role == "user":
            _append(messages, "user", _content_to_blocks(msg.get("content"), f"{param}.content"))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(msg, param))
        elif role == "tool":
            _append(messages, "user", [_tool_result(msg, param)])
        else:
            raise _bad(f"message role {role!r} is not supported by Anthropic", f"{param}.role")

    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    out["max_tokens"] = max_tokens if max_tokens is not None else default_max_tokens  # required by Anthropic

    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
    if system:
        # A plain string unless a block carries cache_control, which only the list form can hold.
        if any("cache_control" in b for b in system):
            out["system"] = system
        else:
            out["system"] = "\n\n".join(b["text"] for b in system)

    if body.get("temperature") is not None:
        out["temperature"] = min(body["temperature"], 1.0)  # OpenAI allows 0-2, Anthropic 0-1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop") if body.get("stop") is not None else body.get("stop_sequences")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)

    user_id = body.get("user") or body.get("safety_identifier") or (body.get("metadata") or {}).get("user_id")
    if user_id:
        out["metadata"] = {"user_id": user_id}  # the only metadata key Anthropic accepts

    if body.get("tools"):
        out["tools"] = _convert_tools(body["tools"])
        choice = _convert_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice

    output_config = dict(body.get("output_config") or {})
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        output_config["format"] = {"type": "json_schema", "schema": schema}
    if output_config:
        out["output_config"] = output_config

    for key in ANTHROPIC_PASSTHROUGH:
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stream"):
        out["stream"] = True
    return out


# =============================================================================
# Anthropic response -> OpenAI response (the anthropic provider)
# =============================================================================

# Shape checks on what an Anthropic upstream sends: the fields the
# converters read must have the types they rely on (an upstream's answer is
# untrusted input).  Unknown blocks and fields pass the checks.

_BLOCK_STRINGS = {"text": ("text",), "thinking": ("thinking", "signature"), "tool_use": ("id", "name"),
                  "redacted_thinking": ("data",)}
_DELTA_STRINGS = {"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking",
                  "signature_delta": "signature"}


def _check_usage(usage: Any, where: str) -> None:
    if usage is None:
        return
    if type(usage) is not dict:
        raise MalformedAnswer(f"{where} is not an object")
    for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        value = usage.get(key)
        if value is not None and type(value) is not int:
            raise MalformedAnswer(f"{where}.{key} is not an integer")
    details = usage.get("output_tokens_details")
    if details is not None and (type(details) is not dict or not isinstance(details.get("thinking_tokens", 0), int)):
        raise MalformedAnswer(f"{where}.output_tokens_details is malformed")


def _check_block(block: Any, where: str) -> None:
    if type(block) is not dict:
        raise MalformedAnswer(f"{where} is not an object")
    kind = block.get("type")
    if type(kind) is not str:
        raise MalformedAnswer(f"{where}.type is not a string")
    for key in _BLOCK_STRINGS.get(kind, ()):
        if type(block.get(key)) is not str:
            raise MalformedAnswer(f"{where}.{key} is not a string")
    if kind == "tool_use" and not isinstance(block.get("input", {}), dict):
        raise MalformedAnswer(f"{where}.input is not an object")


def check_message(data: Any) -> dict[str, Any]:
    """``data`` if it is a well-formed Messages API ``message``; else
    :class:`MalformedAnswer` naming the first bad field."""
    if type(data) is not dict:
        raise MalformedAnswer("the answer is not a JSON object")
    content = data.get("content")
    if type(content) is not list:
        raise MalformedAnswer("content is missing or not a list")
    for i, block in enumerate(content):
        _check_block(block, f"content[{i}]")
    for key in ("id", "model", "stop_reason", "stop_sequence"):
        if not isinstance(data.get(key), (str, type(None))):
            raise MalformedAnswer(f"{key} is not a string")
    _check_usage(data.get("usage"), "usage")
    return data


def _check_event(kind: str | None, data: dict[str, Any]) -> None:
    """The fields of one stream event that the converter reads."""
    if kind == "content_block_delta":
        delta = data.get("delta")
        if type(delta) is not dict:
            raise MalformedAnswer("a content_block_delta has no delta object")
        delta_type = delta.get("type")
        key = _DELTA_STRINGS.get(delta_type) if type(delta_type) is str else None
        if key is not None and type(delta.get(key)) is not str:
            raise MalformedAnswer(f"a {delta_type}'s {key} is not a string")
        if type(data.get("index", 0)) is not int:
            raise MalformedAnswer("a content_block_delta's index is not an integer")
    elif kind == "content_block_start":
        if type(data.get("index", 0)) is not int:
            raise MalformedAnswer("a content_block_start's index is not an integer")
        _check_block(data.get("content_block"), "a content_block_start's content_block")
    elif kind == "message_start":
        message = data.get("message")
        if type(message) is not dict:
            raise MalformedAnswer("a message_start has no message object")
        for key in ("id", "model"):
            if not isinstance(message.get(key), (str, type(None))):
                raise MalformedAnswer(f"message_start's message.{key} is not a string")
        _check_usage(message.get("usage"), "message_start's usage")
    elif kind == "message_delta":
        delta = data.get("delta")
        if delta is not None and (type(delta) is not dict or not isinstance(delta.get("stop_reason"), (str, type(None)))):
            raise MalformedAnswer("a message_delta's stop_reason is not a string")
        _check_usage(data.get("usage"), "a message_delta's usage")


def _openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    # Anthropic's input_tokens excludes cached tokens; OpenAI's prompt_tokens includes them.
    fresh = usage.get("input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    read = usage.get("cache_read_input_tokens") or 0
    output = usage.get("output_tokens") or 0
    prompt = fresh + written + read
    details: dict[str, Any] = {"cached_tokens": read}
    if written:
        details["cache_write_tokens"] = written
    result: dict[str, Any] = {
        "prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output,
        "prompt_tokens_details": details,
    }
    thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens")
    if thinking:
        result["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return result


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block as an OpenAI ``tool_calls`` entry."""
    return {"id": block.get("id"), "type": "function", "function": {
        "name": block.get("name"), "arguments": serialization.dumps_str(block.get("input") or {})}}


def anthropic_response_to_openai(data: Any) -> dict[str, Any]:
    """A Messages API ``message`` as a ``chat.completion`` (checked first:
    :class:`MalformedAnswer` when it lacks the shape)."""
    check_message(data)
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    for block in data.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(_tool_call(block))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            thinking_blocks.append(block)
        elif kind == "redacted_thinking":
            thinking_blocks.append(block)
        # Server-tool blocks (web search results, ...) have no OpenAI shape: dropped.
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    return {
        "id": data.get("id") or _message_id(None),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model") or "",
        "choices": [{
            "index": 0, "message": message, "logprobs": None,
            "finish_reason": _STOP_TO_FINISH.get(data.get("stop_reason") or "end_turn", "stop"),
        }],
        "usage": _openai_usage(data.get("usage") or {}),
    }


class AnthropicStreamToOpenAI:
    """Anthropic SSE events in, ``chat.completion.chunk`` dicts out.

    ``feed`` raises :class:`ProviderError` for an ``event: error`` (the only
    way Anthropic reports a failure after the 200); the provider re-raises
    it with its own name and redaction.  ``done`` tells whether
    ``message_stop`` arrived, so a cut stream can be told from a finished one.
    """

    def __init__(self, *, model: str | None = None, created: int | None = None) -> None:
        self.id = ""
        self.model = model or ""
        self.created = created if created is not None else int(time.time())
        self.done = False
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self._usage: dict[str, Any] = {}

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def feed(self, event_name: str | None, data: Any) -> list[dict[str, Any]]:
        """Raises :class:`MalformedAnswer` for an event without the shape
        the converter relies on."""
        if type(data) is not dict:
            raise MalformedAnswer("a stream event is not a JSON object")
        kind = event_name or data.get("type")
        _check_event(kind, data)
        if kind == "content_block_delta":  # the hot path first
            return self._delta(data)
        if kind == "message_start":
            message = data.get("message") or {}
            self.id = message.get("id") or _message_id(None)
            self.model = self.model or message.get("model") or ""
            self._usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(data.get("index", 0), data.get("content_block") or {})
        if kind == "message_delta":
            # Counts here are cumulative totals: overwrite, and keep message_start's when absent.
            self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            stop = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, _STOP_TO_FINISH.get(stop or "end_turn", "stop"))]
        if kind == "message_stop":
            self.done = True
            return [{"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                     "choices": [], "usage": _openai_usage(self._usage)}]
        if kind == "error":
            error = data.get("error")
            error = error if type(error) is dict else {}
            error_type = error.get("type") if type(error.get("type")) is str else None
            raise ProviderError(str(error.get("message") or "the upstream stream failed"),
                                kind=kind_for_type(error_type), code=error_type)
        return []  # ping, content_block_stop, and event types added later

    def _block_start(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        kind = block.get("type")
        if kind == "tool_use":
            k = self._tools[index] = len(self._tools)
            initial = block.get("input")
            return [self._chunk({"tool_calls": [{
                "index": k, "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": serialization.dumps_str(initial) if initial else ""},
            }]})]
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if kind == "thinking" and block.get("thinking"):
            return [self._chunk({"reasoning_content": block["thinking"]})]
        if kind == "redacted_thinking":
            return [self._chunk({"thinking_blocks": [block]})]
        return []

    def _delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta":
            fragment = delta.get("partial_json")
            k = self._tools.get(data.get("index", 0))
            if not fragment or k is None:
                return []
            return [self._chunk({"tool_calls": [{"index": k, "function": {"arguments": fragment}}]})]
        if kind == "thinking_delta":
            return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
        if kind == "signature_delta":
            block = {"type": "thinking", "thinking": "", "signature": delta.get("signature", "")}
            return [self._chunk({"thinking_blocks": [block]})]
        return []  # citations_delta and later additions have no OpenAI shape


# =============================================================================
# Anthropic request -> OpenAI request (the /v1/messages endpoint)
# =============================================================================


def _block_to_part(block: dict[str, Any], param: str) -> dict[str, Any]:
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
            raise _bad(f"{kind} source type {source.get('type')!r} is not supported here", param)
        if kind == "image":
            part = {"type": "image_url", "image_url": {"url": url}}
        else:
            part = {"type": "file", "file": {"file_data": url, **({"filename": block["title"]} if block.get("title") else {})}}
    else:
        raise _bad(f"content block type {kind!r} is not supported here", param)
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
        for k, item in enumerate(_as_blocks(result)):
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
            calls.append(_tool_call(block))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["thinking_blocks"] = thinking
    return message


def anthropic_request_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages API body as a canonical Chat Completions body."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        blocks = _as_blocks(system)
        if any(b.get("cache_control") for b in blocks):
            messages.append({"role": "system", "content": [_block_to_part(b, "system") for b in blocks]})
        else:
            messages.append({"role": "system", "content": "\n\n".join(b.get("text", "") for b in blocks)})
    for i, msg in enumerate(body.get("messages") or []):
        role = msg.get("role")
        if role == "user":
            messages.extend(_user_to_openai(msg.get("content"), f"messages.{i}.content"))
        elif role == "assistant":
            messages.append(_assistant_to_openai(msg.get("content")))
        else:
            raise _bad(f"message role {role!r} is not valid", f"messages.{i}.role")

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


# =============================================================================
# OpenAI response -> Anthropic response (the /v1/messages endpoint)
# =============================================================================


def _anthropic_usage(usage: dict[str, Any]) -> dict[str, int]:
    details = usage.get("prompt_tokens_details") or {}
    read = details.get("cached_tokens") or 0
    written = details.get("cache_write_tokens") or 0
    return {
        "input_tokens": max((usage.get("prompt_tokens") or 0) - read - written, 0),
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }


def _tool_input(arguments: Any) -> dict[str, Any]:
    """Tool arguments from an upstream model; malformed JSON is kept, not lost."""
    try:
        return _parse_arguments(arguments, "")
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
    text = _text_of(message.get("content")) or message.get("refusal") or ""
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                        "name": fn.get("name", ""), "input": _tool_input(fn.get("arguments"))})
    return {
        "id": _message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model") or "",
        "content": content,
        "stop_reason": _FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,  # OpenAI does not say which stop sequence matched
        "usage": _anthropic_usage(resp.get("usage") or {}),
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
        self.id = self.id or _message_id(chunk.get("id"))
        self.model = self.model or chunk.get("model") or ""
        input_tokens = _anthropic_usage(chunk["usage"])["input_tokens"] if chunk.get("usage") else 0
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
            full = _anthropic_usage(self._usage)
            usage = {"input_tokens": full["input_tokens"], "cache_creation_input_tokens": full["cache_creation_input_tokens"],
                     "cache_read_input_tokens": full["cache_read_input_tokens"], "output_tokens": full["output_tokens"]}
        stop = _FINISH_TO_STOP.get(self._finish or "stop", "end_turn")
        events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                         "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events


__all__ = [
    "ANTHROPIC_PASSTHROUGH",
    "SAMPLING_PARAMS",
    "AnthropicStreamToOpenAI",
    "OpenAIStreamToAnthropic",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "openai_response_to_anthropic",
    "openai_to_anthropic_request",
]
