"""What the ``anthropic`` provider needs: a canonical (OpenAI Chat
Completions) request as a Messages API request, and a Messages API answer
(whole or streamed) as the canonical one."""

from __future__ import annotations

import time
import uuid
from typing import Any

from portway import serialization
from portway.errors import ProviderError, kind_for_type
from portway.formats import MalformedAnswer
from portway.formats.anthropic.checks import check_event, check_message
from portway.formats.anthropic.common import (
    ANTHROPIC_PASSTHROUGH,
    JSON_OBJECT_INSTRUCTION,
    OPENAI_PART_TYPES,
    STOP_TO_FINISH,
    as_blocks,
    bad_request,
    message_id,
    openai_usage,
    parse_arguments,
    tool_call,
)


def _image_block(url: str, param: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64" or not data:
            raise bad_request("image data URIs must be base64 encoded", param)
        kind = "document" if media_type == "application/pdf" else "image"
        return {"type": kind, "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _part_to_block(part: dict[str, Any], param: str) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind not in OPENAI_PART_TYPES:
        return dict(part)  # already Anthropic-shaped: an opaque block from a /v1/messages client
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
            raise bad_request("only inline file_data (a base64 data URI) is supported for Anthropic", param)
        block = _image_block(file["file_data"], param)
        if file.get("filename") and block["type"] == "document":
            block["title"] = file["filename"]
    else:  # input_audio
        raise bad_request(f"content part type {kind!r} is not supported by Anthropic", param)
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



def _assistant_blocks(msg: dict[str, Any], param: str) -> str | list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [dict(b) for b in msg.get("thinking_blocks") or []]
    content = _content_to_blocks(msg.get("content"), f"{param}.content")
    if not blocks and not msg.get("tool_calls"):
        return content
    blocks += as_blocks(content)
    for j, call in enumerate(msg.get("tool_calls") or []):
        fn = call.get("function") or {}
        blocks.append({
            "type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}", "name": fn.get("name", ""),
            "input": parse_arguments(fn.get("arguments"), f"{param}.tool_calls.{j}.function.arguments"),
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
            previous["content"] = as_blocks(previous["content"])
        # Extend in place: the turn's list is the converter's own (every caller
        # builds a fresh one), and a long run of same-role messages stays linear.
        previous["content"].extend(as_blocks(content))
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
        raise bad_request(f"tool_choice {choice!r} is not supported by Anthropic", "tool_choice")
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def messages_to_anthropic(messages: list[dict[str, Any]], *, system_in_place: bool = False,
                          first: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Canonical messages as (system blocks, Messages API turns).  System
    messages go to the top-level ``system``, except, with
    ``system_in_place``, one that follows a conversation turn: it stays a
    ``system`` message where it is (Anthropic's mid-conversation system
    messages, which Claude Code sends).  ``first`` numbers the messages for
    error parameters."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages, first):
        role, param = msg.get("role"), f"messages.{i}"
        if role in ("system", "developer"):
            blocks = [b for b in as_blocks(_content_to_blocks(msg.get("content"), f"{param}.content"))
                      if b.get("type") == "text"]
            if system_in_place and out:
                if blocks:
                    out.append({"role": "system", "content": blocks})
            else:
                system += blocks
        elif role == "user":
            _append(out, "user", _content_to_blocks(msg.get("content"), f"{param}.content"))
        elif role == "assistant":
            _append(out, "assistant", _assistant_blocks(msg, param))
        elif role == "tool":
            _append(out, "user", [_tool_result(msg, param)])
        else:
            raise bad_request(f"message role {role!r} is not supported by Anthropic", f"{param}.role")
    return system, out


def openai_to_anthropic_request(body: dict[str, Any], *, default_max_tokens: int = 4096,
                                system_in_place: bool = False) -> dict[str, Any]:
    """A canonical Chat Completions body as a Messages API body."""
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("Anthropic models return one choice; n must be 1", "n")

    system = [dict(block) for block in as_blocks(body.get("system"))]
    more, messages = messages_to_anthropic(body.get("messages") or [], system_in_place=system_in_place)
    system += more

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
            calls.append(tool_call(block))
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
        "id": data.get("id") or message_id(None),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model") or "",
        "choices": [{
            "index": 0, "message": message, "logprobs": None,
            "finish_reason": STOP_TO_FINISH.get(data.get("stop_reason") or "end_turn", "stop"),
        }],
        "usage": openai_usage(data.get("usage") or {}),
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
        check_event(kind, data)
        if kind == "content_block_delta":  # the hot path first
            return self._delta(data)
        if kind == "message_start":
            message = data.get("message") or {}
            self.id = message.get("id") or message_id(None)
            self.model = self.model or message.get("model") or ""
            self._usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(data.get("index", 0), data.get("content_block") or {})
        if kind == "message_delta":
            # Counts here are cumulative totals: overwrite, and keep message_start's when absent.
            self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            stop = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, STOP_TO_FINISH.get(stop or "end_turn", "stop"))]
        if kind == "message_stop":
            self.done = True
            return [{"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                     "choices": [], "usage": openai_usage(self._usage)}]
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


