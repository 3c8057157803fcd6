"""Canonical (OpenAI Chat Completions) <-> Bedrock ``Converse`` /
``ConverseStream``, as botocore's ``bedrock-runtime`` service model
(2023-09-30) defines them.  Every choice is listed in the plugin's README.

Request: ``system`` blocks, ``messages`` of user/assistant turns (tool
results in a user turn, same-role neighbours merged, as Converse wants them
alternating), content blocks that are unions (``text``, ``image`` with base64
``bytes``, ``document``, ``toolUse``, ``toolResult``, ``reasoningContent``,
``cachePoint``), ``inferenceConfig``, ``toolConfig``, ``outputConfig`` for
JSON schema, and ``additionalModelRequestFields`` for what only some model
families take (``top_k``, Claude's ``thinking``).

Answer: ``output.message`` and ``stopReason`` and ``usage``, or the stream's
events, each checked for the types the converter reads (an upstream's answer
is untrusted input).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from portway import serialization
from portway.errors import PortwayError
from portway.formats import MalformedAnswer
from portway.formats.anthropic import JSON_OBJECT_INSTRUCTION
from portway_bedrock.models import family

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
#: Stop reasons that mean the model's output is unusable: a retryable failure, not an answer.
MALFORMED_STOPS = frozenset({"malformed_model_output", "malformed_tool_use"})

IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf", "text/csv": "csv", "text/plain": "txt", "text/html": "html", "text/markdown": "md",
    "application/msword": "doc", "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
#: Top-level Converse fields a client (or a target's ``params``) may send as
#: they are; ``additionalModelRequestFields`` is merged with what the
#: adapter puts there.
NATIVE_FIELDS = ("additionalModelRequestFields", "additionalModelResponseFieldPaths", "guardrailConfig",
                 "performanceConfig", "promptVariables", "requestMetadata", "serviceTier")
#: How each model family takes ``top_k`` in ``additionalModelRequestFields``
#: (the families' parameter pages in the Bedrock user guide).
TOP_K_FIELDS = {"anthropic": ("top_k",), "mistral": ("top_k",), "cohere": ("k",),
                "amazon": ("inferenceConfig", "topK")}
CACHE_POINT = {"cachePoint": {"type": "default"}}


def bad_request(message: str, param: str | None = None) -> PortwayError:
    return PortwayError(message, kind="bad_request", param=param)


# -- the request -------------------------------------------------------------------------


def _data_uri(url: str, param: str) -> tuple[str, str]:
    """(media type, base64 data) of a ``data:`` URI."""
    header, _, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64" or not data:
        raise bad_request("data URIs must be base64 encoded", param)
    return media_type.lower(), data


def _image(url: str, param: str) -> dict[str, Any]:
    if not url.startswith("data:"):
        # Converse takes image bytes (or S3), never a URL; fetching it here
        # would block on a third party inside the request (and let clients
        # make the gateway fetch any address).
        raise bad_request("Bedrock takes images as bytes, not URLs: send the image as a base64 data URI "
                          "(data:image/png;base64,...)", param)
    media_type, data = _data_uri(url, param)
    if media_type not in IMAGE_FORMATS:
        raise bad_request(f"image type {media_type!r} is not supported by Bedrock (png, jpeg, gif, webp)", param)
    return {"image": {"format": IMAGE_FORMATS[media_type], "source": {"bytes": data}}}


def _document_name(name: str) -> str:
    """A document name Bedrock accepts: letters, digits, single spaces,
    hyphens, parentheses and square brackets, at most 200 characters."""
    cleaned = "".join(c if c.isalnum() or c in " -()[]" else "-" for c in name.rpartition(".")[0] or name)
    return " ".join(cleaned.split())[:200] or "document"


def _file(file: dict[str, Any], param: str) -> dict[str, Any]:
    data_uri = file.get("file_data")
    if not isinstance(data_uri, str) or not data_uri.startswith("data:"):
        raise bad_request("Bedrock takes files inline only: send file_data as a base64 data URI", param)
    media_type, data = _data_uri(data_uri, param)
    if media_type in IMAGE_FORMATS:
        return _image(data_uri, param)
    if media_type not in DOCUMENT_FORMATS:
        raise bad_request(f"file type {media_type!r} is not supported by Bedrock", param)
    return {"document": {"format": DOCUMENT_FORMATS[media_type], "name": _document_name(file.get("filename") or ""),
                         "source": {"bytes": data}}}


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    """A message's content as Converse blocks.  Empty text is left out (Converse
    rejects blank text blocks); ``cache_control`` becomes a cache point after
    its block."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{param}.{j}"
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get(kind) or ""
            if not text:
                continue
            blocks.append({"text": text})
        elif kind == "image_url":
            image = part.get("image_url")
            blocks.append(_image(image if isinstance(image, str) else (image or {}).get("url", ""), where))
        elif kind == "file":
            blocks.append(_file(part.get("file") or {}, where))
        else:
            raise bad_request(f"content part type {kind!r} is not supported by Bedrock", where)
        if part.get("cache_control"):
            blocks.append(dict(CACHE_POINT))
    return blocks


def _reasoning(block: dict[str, Any]) -> dict[str, Any] | None:
    """A signed thinking block sent back (``thinking_blocks``) as Converse reasoning."""
    if block.get("type") == "thinking" and block.get("signature"):
        return {"reasoningContent": {"reasoningText": {"text": block.get("thinking") or "",
                                                       "signature": block["signature"]}}}
    if block.get("type") == "redacted_thinking" and block.get("data"):
        return {"reasoningContent": {"redactedContent": block["data"]}}
    return None


def _assistant(message: dict[str, Any], param: str) -> list[dict[str, Any]]:
    blocks = [b for b in map(_reasoning, message.get("thinking_blocks") or []) if b is not None]
    blocks += _blocks(message.get("content"), f"{param}.content")
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        blocks.append({"toolUse": {"toolUseId": call.get("id") or f"tooluse_{uuid.uuid4().hex[:22]}",
                                   "name": function.get("name", ""),
                                   "input": _arguments(function.get("arguments"),
                                                       f"{param}.tool_calls.{j}.function.arguments")}})
    return blocks


def _arguments(arguments: Any, param: str) -> Any:
    if isinstance(arguments, dict):
        return arguments
    if not arguments or not str(arguments).strip():
        return {}
    try:
        value = serialization.loads(arguments)
    except serialization.JSONDecodeError:
        raise bad_request("tool call arguments are not valid JSON", param) from None
    if not isinstance(value, dict):
        raise bad_request("tool call arguments must be a JSON object", param)
    return value


def _tool_result(message: dict[str, Any], param: str) -> dict[str, Any]:
    content = [block for block in _blocks(message.get("content"), f"{param}.content") if "cachePoint" not in block]
    return {"toolResult": {"toolUseId": message.get("tool_call_id", ""), "content": content, "status": "success"}}


def convert_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, turns).  System and developer messages, wherever they
    are, go to ``system`` in order (Converse has no system turn)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role, param = message.get("role"), f"messages.{i}"
        if role in ("system", "developer"):
            system += _blocks(message.get("content"), f"{param}.content")
            continue
        if role == "user":
            turn_role, blocks = "user", _blocks(message.get("content"), f"{param}.content")
        elif role == "assistant":
            turn_role, blocks = "assistant", _assistant(message, param)
        elif role == "tool":
            turn_role, blocks = "user", [_tool_result(message, param)]
        else:
            raise bad_request(f"message role {role!r} is not supported by Bedrock", f"{param}.role")
        if not blocks:
            continue  # an empty turn: Converse rejects it
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    return system, turns


def _has_tool_blocks(turns: list[dict[str, Any]]) -> bool:
    return any("toolUse" in block or "toolResult" in block for turn in turns for block in turn["content"])


def _tool_config(body: dict[str, Any], turns: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = []
    for tool in body.get("tools") or []:
        function = tool.get("function") or {}
        spec: dict[str, Any] = {"name": function.get("name", ""),
                                "inputSchema": {"json": function.get("parameters") or
                                                {"type": "object", "properties": {}}}}
        if function.get("description"):
            spec["description"] = function["description"]
        if function.get("strict") is not None:
            spec["strict"] = function["strict"]
        tools.append({"toolSpec": spec})
        if tool.get("cache_control"):
            tools.append(dict(CACHE_POINT))
    choice = body.get("tool_choice")
    if choice == "none":
        if _has_tool_blocks(turns):
            # Converse wants the tools declared whenever the history holds tool
            # blocks, and has no choice that forbids calling them.
            raise bad_request("tool_choice 'none' cannot be expressed on Bedrock for a conversation that already "
                              "has tool calls (Converse has no 'none' choice)", "tool_choice")
        return None
    if not tools:
        return None
    config: dict[str, Any] = {"tools": tools}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("tool_choice names no function", "tool_choice")
        config["toolChoice"] = {"tool": {"name": name}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def _output_config(response_format: dict[str, Any]) -> dict[str, Any] | None:
    if response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    definition: dict[str, Any] = {"schema": serialization.dumps_str(spec.get("schema") or {"type": "object"})}
    if spec.get("name"):
        definition["name"] = spec["name"]
    if spec.get("description"):
        definition["description"] = spec["description"]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}


def _additional_fields(body: dict[str, Any], model: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    top_k = body.get("top_k")
    if top_k is not None:
        path = TOP_K_FIELDS.get(family(model))
        if path is None:
            raise bad_request(f"top_k is not supported for Bedrock model {model!r} (only Anthropic, Mistral, "
                              "Cohere and Amazon models take it)", "top_k")
        node = fields
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = top_k
    if body.get("thinking") is not None and family(model) == "anthropic":
        fields["thinking"] = body["thinking"]  # Claude's extended thinking, as Anthropic spells it
    given = body.get("additionalModelRequestFields")
    if isinstance(given, dict):
        fields.update(given)
    return fields


def converse_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A canonical Chat Completions body as a Converse body (``model`` goes
    in the path, not here)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("Bedrock returns one choice; n must be 1", "n")
    top_system = body.get("system")  # the Anthropic-only top-level key
    system = _blocks(top_system, "system") if top_system else []
    more, turns = convert_messages(body.get("messages") or [])
    system += more
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        system.append({"text": JSON_OBJECT_INSTRUCTION})  # Converse has no JSON mode of its own
    out: dict[str, Any] = {"messages": turns}
    if system:
        out["system"] = system

    inference: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    temperature = body.get("temperature")
    if temperature is not None:
        if temperature > 1:
            raise bad_request("Bedrock takes a temperature from 0 to 1", "temperature")
        inference["temperature"] = temperature
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    stop = body.get("stop") if body.get("stop") is not None else body.get("stop_sequences")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        out["inferenceConfig"] = inference

    tool_config = _tool_config(body, turns)
    if tool_config is not None:
        out["toolConfig"] = tool_config
    output_config = _output_config(response_format)
    if output_config is not None:
        out["outputConfig"] = output_config
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata:
        out["requestMetadata"] = dict(metadata)
    for key in NATIVE_FIELDS:
        if body.get(key) is not None:
            out[key] = body[key]
    fields = _additional_fields(body, model)
    if fields:
        out["additionalModelRequestFields"] = fields
    return out


# -- the answer ----------------------------------------------------------------------------


def _fail(reason: str) -> MalformedAnswer:
    return MalformedAnswer(reason)


def _int(value: Any, where: str) -> int:
    if value is None:
        return 0
    if type(value) is not int:
        raise _fail(f"{where} is not an integer")
    return value


def openai_usage(usage: Any) -> dict[str, Any]:
    """Converse ``usage`` in the OpenAI shape.  ``inputTokens`` counts only
    the tokens not read from or written to the cache (as Anthropic's
    ``input_tokens`` does), so the prompt total adds both back."""
    if type(usage) is not dict:
        raise _fail("usage is not an object")
    fresh = _int(usage.get("inputTokens"), "usage.inputTokens")
    output = _int(usage.get("outputTokens"), "usage.outputTokens")
    read = _int(usage.get("cacheReadInputTokens"), "usage.cacheReadInputTokens")
    written = _int(usage.get("cacheWriteInputTokens"), "usage.cacheWriteInputTokens")
    prompt = fresh + read + written
    details: dict[str, Any] = {"cached_tokens": read}
    if written:
        details["cache_write_tokens"] = written
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output,
            "prompt_tokens_details": details}


def finish_reason(stop_reason: Any) -> str:
    if not isinstance(stop_reason, str):
        raise _fail("stopReason is not a string")
    if stop_reason in MALFORMED_STOPS:
        raise _fail(f"the model's output was unusable (stopReason {stop_reason})")
    return STOP_TO_FINISH.get(stop_reason, "stop")


def _string(value: Any, where: str) -> str:
    if type(value) is not str:
        raise _fail(f"{where} is not a string")
    return value


def converse_response_to_openai(data: Any, model: str, request_id: str | None) -> dict[str, Any]:
    """A Converse answer as a ``chat.completion`` (:class:`MalformedAnswer`
    when it lacks the shape)."""
    if type(data) is not dict:
        raise _fail("the answer is not a JSON object")
    message = (data.get("output") or {}).get("message") if type(data.get("output")) is dict else None
    if type(message) is not dict or type(message.get("content")) is not list:
        raise _fail("output.message.content is missing or not a list")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    for i, block in enumerate(message["content"]):
        where = f"output.message.content[{i}]"
        if type(block) is not dict:
            raise _fail(f"{where} is not an object")
        if "text" in block:
            texts.append(_string(block["text"], f"{where}.text"))
        elif "toolUse" in block:
            use = block["toolUse"]
            if type(use) is not dict or type(use.get("input", {})) is not dict:
                raise _fail(f"{where}.toolUse is malformed")
            calls.append({"id": _string(use.get("toolUseId"), f"{where}.toolUse.toolUseId"), "type": "function",
                          "function": {"name": _string(use.get("name"), f"{where}.toolUse.name"),
                                       "arguments": serialization.dumps_str(use.get("input") or {})}})
        elif "reasoningContent" in block:
            content = block["reasoningContent"]
            if type(content) is not dict:
                raise _fail(f"{where}.reasoningContent is not an object")
            text_block = content.get("reasoningText")
            if type(text_block) is dict:
                text = _string(text_block.get("text", ""), f"{where}.reasoningContent.reasoningText.text")
                reasoning.append(text)
                thinking: dict[str, Any] = {"type": "thinking", "thinking": text}
                if text_block.get("signature") is not None:
                    thinking["signature"] = _string(text_block["signature"], f"{where}.reasoningContent.signature")
                thinking_blocks.append(thinking)
            elif content.get("redactedContent") is not None:
                data_ = _string(content["redactedContent"], f"{where}.reasoningContent.redactedContent")
                thinking_blocks.append({"type": "redacted_thinking", "data": data_})
        # Other blocks (citations, images, server tool results) have no OpenAI shape.
    out_message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        out_message["tool_calls"] = calls
    if reasoning:
        out_message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        out_message["thinking_blocks"] = thinking_blocks
    return {
        "id": completion_id(request_id), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": out_message, "logprobs": None,
                     "finish_reason": finish_reason(data.get("stopReason"))}],
        "usage": openai_usage(data.get("usage") or {}),
    }


def completion_id(request_id: str | None) -> str:
    return f"chatcmpl-{request_id}" if request_id else f"chatcmpl-{uuid.uuid4().hex}"


class ConverseStreamToOpenAI:
    """ConverseStream events (``:event-type`` and JSON payload) in,
    ``chat.completion.chunk`` dicts out.  ``done`` tells whether the stream
    reached its end (the ``metadata`` event, after ``messageStop``)."""

    def __init__(self, model: str, request_id: str | None) -> None:
        self.id = completion_id(request_id)
        self.model = model
        self.created = int(time.time())
        self.done = False
        self._started = False
        self._tools: dict[int, int] = {}  # contentBlockIndex -> tool_calls index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def feed(self, event: str, data: Any) -> list[dict[str, Any]]:
        if type(data) is not dict:
            raise _fail(f"a {event} event is not a JSON object")
        if event == "contentBlockDelta":  # the hot path first
            return self._delta(data)
        if event == "messageStart":
            self._started = True
            return [self._chunk({"role": "assistant", "content": ""})]
        if event == "contentBlockStart":
            start = data.get("start")
            use = start.get("toolUse") if type(start) is dict else None
            if use is None:
                return []
            if type(use) is not dict:
                raise _fail("a contentBlockStart's toolUse is not an object")
            index = self._index(data)
            k = self._tools[index] = len(self._tools)
            return [self._chunk({"tool_calls": [{
                "index": k, "id": _string(use.get("toolUseId"), "a contentBlockStart's toolUseId"), "type": "function",
                "function": {"name": _string(use.get("name"), "a contentBlockStart's tool name"), "arguments": ""}}]})]
        if event == "messageStop":
            return [self._chunk({}, finish_reason(data.get("stopReason")))]
        if event == "metadata":
            self.done = True
            return [{"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                     "choices": [], "usage": openai_usage(data.get("usage") or {})}]
        return []  # contentBlockStop, and event types added later

    @staticmethod
    def _index(data: dict[str, Any]) -> int:
        index = data.get("contentBlockIndex")
        if type(index) is not int:
            raise _fail("an event's contentBlockIndex is not an integer")
        return index

    def _delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta")
        if type(delta) is not dict:
            raise _fail("a contentBlockDelta has no delta object")
        if "text" in delta:
            return [self._chunk({"content": _string(delta["text"], "a text delta")})]
        if "toolUse" in delta:
            use = delta["toolUse"]
            fragment = _string(use.get("input") if type(use) is dict else None, "a toolUse delta's input")
            k = self._tools.get(self._index(data))
            if k is None:
                raise _fail("a toolUse delta for a block that did not start as a tool use")
            return [self._chunk({"tool_calls": [{"index": k, "function": {"arguments": fragment}}]})] if fragment \
                else []
        if "reasoningContent" in delta:
            content = delta["reasoningContent"]
            if type(content) is not dict:
                raise _fail("a reasoningContent delta is not an object")
            if "text" in content:
                return [self._chunk({"reasoning_content": _string(content["text"], "a reasoning delta's text")})]
            if "signature" in content:
                signature = _string(content["signature"], "a reasoning delta's signature")
                return [self._chunk({"thinking_blocks": [{"type": "thinking", "thinking": "",
                                                          "signature": signature}]})]
            if "redactedContent" in content:
                data_ = _string(content["redactedContent"], "a reasoning delta's redactedContent")
                return [self._chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": data_}]})]
        return []  # citations, images: no OpenAI shape
