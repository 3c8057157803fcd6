"""A canonical (OpenAI Chat Completions) request as a Gemini
``generateContent`` body, and an Embeddings request as an ``embedContent`` /
``batchEmbedContents`` body.

Field names and shapes follow python-genai's ``_GenerateContentParameters_to_mldev``
and ``types.py`` (camelCase on the wire).  What has no Gemini form is refused
with a 400 naming the field, or dropped by the rule the plugin README lists.
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import urlsplit

from portway.errors import PortwayError
from portway.formats.anthropic.common import parse_arguments
from portway_gemini.schema import to_gemini_schema

#: Gemini-native top-level keys a client may send (``extra_body``); they go as they are.
PASSTHROUGH = ("safetySettings", "cachedContent", "labels")
#: OpenAI's reasoning_effort as Gemini's thinkingLevel (python-genai ``types.ThinkingLevel``).
THINKING_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
#: input_audio formats (OpenAI) as media types.
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


def bad_request(message: str, param: str | None = None) -> PortwayError:
    return PortwayError(message, kind="bad_request", param=param)


# -- content ----------------------------------------------------------------------------


def _media(url: Any, param: str) -> dict[str, Any]:
    """An image (or file) reference as an ``inlineData`` or ``fileData`` part."""
    if not isinstance(url, str) or not url:
        raise bad_request("the image has no url", param)
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64" or not data or not media_type:
            raise bad_request("a data URI must name its media type and be base64 encoded", param)
        return {"inlineData": {"mimeType": media_type, "data": data}}
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https", "gs"):
        raise bad_request(f"the URL scheme {scheme!r} is not supported by Gemini (http, https, gs or a data URI)",
                          param)
    # Gemini fetches public and signed URLs itself (fileData), but wants the media type said.
    media_type, _ = mimetypes.guess_type(urlsplit(url).path)
    if media_type is None:
        raise bad_request("Gemini needs the media type of a file given by URL, and this URL's name does not tell it "
                          "(send the image inline as a base64 data URI, or use a URL ending in .png, .jpg, ...)",
                          param)
    return {"fileData": {"mimeType": media_type, "fileUri": url}}


def _part(part: Any, param: str) -> dict[str, Any] | None:
    if not isinstance(part, dict):
        raise bad_request("a content part is not an object", param)
    kind = part.get("type")
    if kind in ("text", "refusal"):
        text = part.get(kind)
        return {"text": text} if isinstance(text, str) and text else None
    if kind == "image_url":
        image = part.get("image_url")
        return _media(image if isinstance(image, str) else (image or {}).get("url"), param)
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        media_type = AUDIO_TYPES.get(audio.get("format"))
        if media_type is None or not audio.get("data"):
            raise bad_request("input_audio needs base64 data and a format of wav or mp3", param)
        return {"inlineData": {"mimeType": media_type, "data": audio["data"]}}
    if kind == "file":
        file = part.get("file") or {}
        if not isinstance(file.get("file_data"), str):
            raise bad_request("only inline file_data (a base64 data URI) is supported for Gemini, not file_id", param)
        return _media(file["file_data"], param)
    raise bad_request(f"content part type {kind!r} is not supported by Gemini", param)


def _parts(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request("content is not a string or a list of parts", param)
    return [p for j, part in enumerate(content) if (p := _part(part, f"{param}[{j}]")) is not None]


def _system_parts(content: Any, param: str) -> list[dict[str, Any]]:
    parts = _parts(content, param)
    if any("text" not in p for p in parts):
        raise bad_request("a system message can only hold text for Gemini (systemInstruction)", param)
    return parts


def _model_parts(message: dict[str, Any], param: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """An assistant message as a ``model`` turn: its text, then its function
    calls, with the thought signatures it carries (``thinking_blocks``) put
    back where Gemini put them: on the function calls in order (Gemini signs
    the first call of each step), or else on the text."""
    content = message.get("content")
    parts = [{"text": p["text"]} for p in _parts(content, f"{param}.content") if "text" in p]
    if len(parts) > 1:
        parts = [{"text": "".join(p["text"] for p in parts)}]
    calls = []
    for k, call in enumerate(message.get("tool_calls") or []):
        if not isinstance(call, dict):
            raise bad_request("a tool call is not an object", f"{param}.tool_calls[{k}]")
        function = call.get("function") or {}
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("a tool call has no function name", f"{param}.tool_calls[{k}].function.name")
        args = parse_arguments(function.get("arguments"), f"{param}.tool_calls[{k}].function.arguments")
        calls.append({"functionCall": {"name": name, "args": args}})
        if isinstance(call.get("id"), str):
            names[call["id"]] = name
    signatures = [b["signature"] for b in message.get("thinking_blocks") or ()
                  if isinstance(b, dict) and b.get("type") == "thinking" and isinstance(b.get("signature"), str)
                  and b["signature"]]
    for part, signature in zip(calls, signatures, strict=False):
        part["thoughtSignature"] = signature
    rest = signatures[len(calls):]
    if rest:
        if not parts:
            parts = [{"text": ""}]  # Gemini streams a text turn's signature on an empty text part
        parts[-1]["thoughtSignature"] = rest[-1]
    return parts + calls


def _tool_response(message: dict[str, Any], param: str, names: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        raise bad_request(f"tool_call_id {call_id!r} answers no tool call of an earlier assistant message "
                          "(Gemini matches a result to its call by the function's name)", f"{param}.tool_call_id")
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    # Gemini's response is an object; "output" is the key its docs give for a function's output.
    return {"functionResponse": {"name": name, "response": {"output": content or ""}}}


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    """Add a turn, merging it into the previous one of the same role (a
    step's function responses must arrive together, in the user turn after
    the calls)."""
    if not parts:
        return  # Gemini refuses a content without parts
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": list(parts)})


def to_contents(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Canonical messages as (systemInstruction parts, contents).  Every
    system or developer message, wherever it is, folds into the system
    instruction, in order."""
    if not isinstance(messages, list):
        raise bad_request("messages is not a list", "messages")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the results that answer it
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request("a message is not an object", param)
        role = message.get("role")
        if role in ("system", "developer"):
            system += _system_parts(message.get("content"), f"{param}.content")
        elif role == "user":
            _append(contents, "user", _parts(message.get("content"), f"{param}.content"))
        elif role == "assistant":
            _append(contents, "model", _model_parts(message, param, names))
        elif role == "tool":
            _append(contents, "user", [_tool_response(message, param, names)])
        else:
            raise bad_request(f"message role {role!r} is not supported by Gemini", f"{param}.role")
    return system, contents


# -- tools --------------------------------------------------------------------------------


def _declaration(tool: Any, param: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        raise bad_request("only function tools can be sent to Gemini", param)
    function = tool["function"]
    declaration: dict[str, Any] = {"name": function.get("name")}
    if function.get("description"):
        declaration["description"] = function["description"]
    parameters = function.get("parameters")
    if parameters:
        converted = to_gemini_schema(parameters, f"{param}.function.parameters")
        if converted.get("properties"):  # Gemini refuses an OBJECT without properties: a function of no arguments
            declaration["parameters"] = converted
    return declaration


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return {"functionCallingConfig": {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("tool_choice names no function", "tool_choice")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = [(t.get("function") or {}).get("name") for t in allowed.get("tools") or () if isinstance(t, dict)]
        # VALIDATED: calls limited to the allowed names, or a text answer (OpenAI's "auto" over a subset).
        mode = "ANY" if allowed.get("mode") == "required" else "VALIDATED"
        return {"functionCallingConfig": {"mode": mode, "allowedFunctionNames": names}}
    raise bad_request(f"tool_choice {choice!r} is not supported by Gemini", "tool_choice")


# -- generation config ----------------------------------------------------------------------


def _thinking(body: dict[str, Any]) -> dict[str, Any] | None:
    effort = body.get("reasoning_effort")
    thinking = body.get("thinking")  # Anthropic's, from a /v1/messages client
    if effort is not None:
        if effort == "none":
            return {"thinkingBudget": 0}
        if effort not in THINKING_LEVELS:
            raise bad_request(f"reasoning_effort {effort!r} has no Gemini thinking level", "reasoning_effort")
        return {"thinkingLevel": THINKING_LEVELS[effort]}
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return {"thinkingBudget": 0}
        config: dict[str, Any] = {"includeThoughts": True}
        if isinstance(thinking.get("budget_tokens"), int):
            config["thinkingBudget"] = thinking["budget_tokens"]
        return config
    return None


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    for key, value in (("maxOutputTokens", max_tokens), ("temperature", body.get("temperature")),
                       ("topP", body.get("top_p")), ("topK", body.get("top_k")), ("seed", body.get("seed")),
                       ("presencePenalty", body.get("presence_penalty")),
                       ("frequencyPenalty", body.get("frequency_penalty"))):
        if value is not None:
            config[key] = value
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    n = body.get("n")
    if n is not None and n != 1:
        config["candidateCount"] = n
    if body.get("logprobs") or body.get("top_logprobs") is not None:
        raise bad_request("logprobs are not mapped for Gemini", "logprobs")
    if body.get("logit_bias"):
        raise bad_request("Gemini has no logit_bias", "logit_bias")
    modalities = body.get("modalities")
    if modalities and any(m != "text" for m in modalities):
        raise bad_request("only text output is mapped for Gemini", "modalities")
    response_format = body.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = to_gemini_schema(schema, "response_format.json_schema.schema")
    elif kind not in (None, "text", "json_object"):
        raise bad_request(f"response_format {kind!r} is not supported by Gemini", "response_format")
    thinking = _thinking(body)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def to_gemini_request(body: dict[str, Any]) -> dict[str, Any]:
    """A canonical Chat Completions body as a ``generateContent`` body
    (the model and the streaming choice go in the URL)."""
    system, contents = to_contents(body.get("messages"))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    tools = body.get("tools")
    if tools:
        declarations = [_declaration(tool, f"tools[{k}]") for k, tool in enumerate(tools)]
        out["tools"] = [{"functionDeclarations": declarations}]  # all functions in one tool object
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config:
            out["toolConfig"] = tool_config
    for key in PASSTHROUGH:
        if body.get(key) is not None:
            out[key] = body[key]
    return out


# -- embeddings ---------------------------------------------------------------------------


def embed_inputs(body: dict[str, Any]) -> list[str]:
    """The texts of an Embeddings request (Gemini embeds text, not token ids)."""
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise bad_request("Gemini embeds text: input must be a string or a list of strings (not token ids)", "input")
    return texts


def embed_request(body: dict[str, Any], text: str, model: str | None = None) -> dict[str, Any]:
    """One ``EmbedContentRequest``: ``model`` is set inside a batch."""
    request: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
    if model is not None:
        request = {"model": model, **request}
    if body.get("dimensions") is not None:
        request["outputDimensionality"] = body["dimensions"]
    for ours, theirs in (("task_type", "taskType"), ("title", "title")):
        if body.get(ours) is not None:
            request[theirs] = body[ours]
    return request
