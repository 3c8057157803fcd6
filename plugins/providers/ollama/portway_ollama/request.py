"""Canonical requests (OpenAI Chat Completions and Embeddings bodies) as
Ollama's native ``/api/chat`` and ``/api/embed`` bodies.

The shapes are Ollama's ``api.ChatRequest`` / ``api.Message`` /
``api.ToolCall`` / ``api.EmbedRequest`` (``api/types.go``) and
ollama-python's ``ChatRequest`` / ``Options`` (``ollama/_types.py``).  What
the canonical request can say and Ollama cannot is dropped or refused by the
rules in the README; a refusal is a 400 naming the field.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from portway import serialization
from portway.errors import PortwayError
from portway.formats.openai import content_text

#: Canonical sampling keys that are Ollama ``options`` of the same name.
SAME_NAME_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")
#: Ollama's ``think`` levels (``api.ThinkValue``); ``true``/``false`` too.
THINK_LEVELS = ("low", "medium", "high", "max")


#: What a 400 for a non-text part says the upstream takes.
ONLY_TEXT = "Ollama takes only text in this message"


def bad_request(message: str, param: str) -> PortwayError:
    return PortwayError(message, kind="bad_request", code="unsupported", param=param)


# -- chat ----------------------------------------------------------------------------------


def chat_request(body: dict[str, Any], *, stream: bool, keep_alive: Any = None, num_ctx: int | None = None,
                 anthropic: dict[str, Any] | None = None) -> dict[str, Any]:
    """``body`` (canonical, validated) as an ``/api/chat`` body.  ``stream``
    is always sent, as Ollama streams when it is absent.  ``anthropic``: the
    Anthropic-only keys a ``/v1/messages`` client sent (``top_k``,
    ``thinking``), taken out before they were stripped."""
    anthropic = anthropic or {}
    refuse_unsupported(body)
    out: dict[str, Any] = {"model": body["model"], "messages": chat_messages(body.get("messages") or []),
                           "stream": stream}
    tools = chat_tools(body.get("tools"), body.get("tool_choice"))
    if tools:
        out["tools"] = tools
    fmt = response_format(body.get("response_format"))
    if fmt is not None:
        out["format"] = fmt
    options = chat_options(body, anthropic.get("top_k"), num_ctx)
    if options:
        out["options"] = options
    think = think_value(body, anthropic.get("thinking"))
    if think is not None:
        out["think"] = think
    keep = body.get("keep_alive", keep_alive)
    if keep is not None:
        out["keep_alive"] = keep
    return out


def refuse_unsupported(body: dict[str, Any]) -> None:
    """What Ollama's chat has no form for, and whose loss would change the answer."""
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("Ollama returns one choice per request: n must be 1", "n")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise bad_request("this adapter does not map Ollama's logprobs", "logprobs" if body.get("logprobs")
                          else "top_logprobs")
    if body.get("logit_bias"):
        raise bad_request("Ollama has no logit_bias", "logit_bias")
    if body.get("audio") is not None or "audio" in (body.get("modalities") or ()):
        raise bad_request("Ollama has no audio output", "audio" if body.get("audio") is not None else "modalities")
    if body.get("prediction") is not None:
        raise bad_request("Ollama has no predicted outputs", "prediction")


def chat_options(body: dict[str, Any], top_k: Any, num_ctx: int | None) -> dict[str, Any]:
    """Ollama's ``options``: the canonical sampling keys, ``num_predict`` for
    the token limit, ``stop`` as a list; then any ``options`` the client gave
    (an extra body key, or an alias's ``params``), which win."""
    options: dict[str, Any] = {}
    if num_ctx is not None:
        options["num_ctx"] = num_ctx
    for key in SAME_NAME_OPTIONS:
        if body.get(key) is not None:
            options[key] = body[key]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        options["num_predict"] = limit
    stop = body.get("stop")
    if stop is not None:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    top_k = body.get("top_k", top_k)
    if top_k is not None:
        options["top_k"] = top_k
    extra = body.get("options")
    if extra is not None:
        if not isinstance(extra, dict):
            raise bad_request("options must be an object of Ollama model options", "options")
        options.update(extra)
    return options


def think_value(body: dict[str, Any], anthropic_thinking: Any) -> bool | str | None:
    """Ollama's ``think``: the client's own ``think`` (an extra key), else
    ``reasoning_effort`` (``low``/``medium``/``high`` as levels, ``none`` and
    ``minimal`` as ``false``), else Anthropic's ``thinking`` from a
    ``/v1/messages`` client."""
    think = body.get("think")
    if think is not None:
        if not isinstance(think, bool) and think not in THINK_LEVELS:
            raise bad_request(f"think must be true, false or one of {', '.join(THINK_LEVELS)}", "think")
        return think
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort in ("none", "minimal"):
            return False
        if effort in THINK_LEVELS:
            return effort
        if effort == "xhigh":
            return "max"
        raise bad_request(f"reasoning_effort {effort!r} has no Ollama think level", "reasoning_effort")
    if isinstance(anthropic_thinking, dict) and anthropic_thinking.get("type") in ("enabled", "disabled"):
        return anthropic_thinking["type"] == "enabled"
    return None


def chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    names: dict[str, str] = {}  # tool call id -> function name, for tool messages' tool_name
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": content_text(message.get("content"), f"messages[{i}]", ONLY_TEXT)})
        elif role == "user":
            out.append(user_message(message.get("content"), i))
        elif role == "assistant":
            out.append(assistant_message(message, i, names))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            tool: dict[str, Any] = {"role": "tool", "content": content_text(message.get("content"), f"messages[{i}]", ONLY_TEXT)}
            if isinstance(call_id, str) and call_id:
                tool["tool_call_id"] = call_id
                if call_id in names:
                    tool["tool_name"] = names[call_id]
            out.append(tool)
        else:
            raise bad_request(f"Ollama has no {role!r} messages (use tools and role 'tool')", f"messages[{i}].role")
    return out


def user_message(content: Any, i: int) -> dict[str, Any]:
    """A user message: its text as ``content``, its images (``data:`` URIs)
    as raw base64 in ``images``.  Ollama takes no image URL and the gateway
    fetches nothing, so an image by URL is a 400 naming it."""
    if content is None or isinstance(content, str):
        return {"role": "user", "content": content or ""}
    texts, images = [], []
    for j, part in enumerate(content):
        kind = part.get("type")
        where = f"messages[{i}].content[{j}]"
        if kind == "text":
            texts.append(part.get("text") or "")
        elif kind == "image_url":
            images.append(image_data((part.get("image_url") or {}).get("url"), where))
        else:
            raise bad_request(f"Ollama takes text and images in user messages, not {kind!r} parts", where)
    out: dict[str, Any] = {"role": "user", "content": "".join(texts)}
    if images:
        out["images"] = images
    return out


def image_data(url: Any, where: str) -> str:
    """The base64 of a ``data:<type>;base64,<data>`` URI, checked."""
    if not isinstance(url, str) or not url.startswith("data:"):
        raise bad_request("Ollama takes images inline only: give a data: URI (base64), not a URL", where)
    header, _, data = url.partition(",")
    if not header.endswith(";base64") or not data:
        raise bad_request("an image data: URI must be base64-encoded", where)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("the image's data: URI is not valid base64", where) from None
    return data


def assistant_message(message: dict[str, Any], i: int, names: dict[str, str]) -> dict[str, Any]:
    """An assistant turn: its text, the reasoning it carried as ``thinking``,
    and its tool calls with their arguments as objects (Ollama's form)."""
    out: dict[str, Any] = {"role": "assistant", "content": content_text(message.get("content"), f"messages[{i}]", ONLY_TEXT)}
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        out["thinking"] = reasoning
    calls = []
    for k, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        name = function.get("name")
        calls.append({**({"id": call["id"]} if isinstance(call.get("id"), str) and call["id"] else {}),
                      "function": {"name": name, "arguments": arguments_object(
                          function.get("arguments"), f"messages[{i}].tool_calls[{k}].function.arguments")}})
        if isinstance(call.get("id"), str):
            names[call["id"]] = name
    if calls:
        out["tool_calls"] = calls
    return out


def arguments_object(arguments: Any, where: str) -> dict[str, Any]:
    """OpenAI's arguments (a JSON string) as the object Ollama wants."""
    if arguments is None or arguments == "":
        return {}
    try:
        value = serialization.loads(arguments) if isinstance(arguments, str | bytes) else arguments
    except serialization.JSONDecodeError:
        raise bad_request("tool call arguments are not JSON", where) from None
    if not isinstance(value, dict):
        raise bad_request("Ollama takes tool call arguments as a JSON object", where)
    return value


def chat_tools(tools: Any, choice: Any) -> list[dict[str, Any]]:
    """Function tools in Ollama's (OpenAI's) shape.  Ollama has no
    ``tool_choice``: ``auto`` is its behaviour, ``none`` is the same as
    offering no tools, and ``required`` or a named function (which it cannot
    promise) is a 400."""
    if not tools or choice == "none":
        return []
    if choice not in (None, "auto"):
        raise bad_request("Ollama cannot be made to call a tool: tool_choice must be auto or none", "tool_choice")
    out = []
    for j, tool in enumerate(tools):
        function = tool.get("function")
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise bad_request("Ollama takes function tools only", f"tools[{j}]")
        definition: dict[str, Any] = {"name": function.get("name"),
                                      "parameters": function.get("parameters") or {"type": "object", "properties": {}}}
        if function.get("description"):
            definition["description"] = function["description"]
        out.append({"type": "function", "function": definition})
    return out


def response_format(value: Any) -> str | dict[str, Any] | None:
    """Ollama's ``format``: ``"json"`` for JSON mode, the schema object for
    structured outputs."""
    if not value:
        return None
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else "json"
    raise bad_request(f"Ollama has no {kind!r} response format", "response_format")


# -- embeddings ------------------------------------------------------------------------------


def embed_request(body: dict[str, Any], keep_alive: Any = None) -> dict[str, Any]:
    """``body`` (an OpenAI embeddings request) as an ``/api/embed`` body."""
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise bad_request("Ollama embeds text: give input as a string or a list of strings, not token ids", "input")
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise bad_request("encoding_format must be float or base64", "encoding_format")
    out: dict[str, Any] = {"model": body["model"], "input": texts}
    if body.get("dimensions") is not None:
        out["dimensions"] = body["dimensions"]
    for key in ("truncate", "options"):
        if body.get(key) is not None:
            out[key] = body[key]
    keep = body.get("keep_alive", keep_alive)
    if keep is not None:
        out["keep_alive"] = keep
    return out
