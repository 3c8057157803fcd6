"""Canonical requests (OpenAI Chat Completions and Embeddings bodies, and
rerank requests) as Cohere v2 ``/v2/chat``, ``/v2/embed`` and ``/v2/rerank``
bodies.

The shapes are cohere-python's v2 types (``ChatMessageV2``, ``Content``,
``ToolV2``, ``ToolCallV2``, ``ResponseFormatV2``, ``Thinking``, and the
parameters of ``V2Client.chat`` / ``embed`` / ``rerank``).  What the canonical request
can say and Cohere cannot is dropped or refused by the rules in the README;
a refusal is a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

from portway.errors import PortwayError
from portway.formats.rerank import document_texts

#: Cohere's own chat keys, sent as the client gave them (extra body keys).
COHERE_CHAT_KEYS = ("k", "safety_mode", "documents", "citation_options", "thinking", "priority", "strict_tools")
#: Cohere's own embed keys, sent as the client gave them.
COHERE_EMBED_KEYS = ("truncate", "max_tokens", "priority")
#: Cohere's own rerank keys, sent as the client gave them.
COHERE_RERANK_KEYS = ("priority",)
#: Cohere takes ``p`` in [0.01, 0.99]; OpenAI's ``top_p`` is in [0, 1].
P_RANGE = (0.01, 0.99)
#: The ``input_type`` values of cohere-python's ``EmbedInputType``.
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
#: ``embedding_types`` a client may ask for (``base64`` is the OpenAI ``encoding_format``).
EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary")


def bad_request(message: str, param: str) -> PortwayError:
    return PortwayError(message, kind="bad_request", param=param)


# -- chat --------------------------------------------------------------------------------


def chat_request(body: dict[str, Any], *, top_k: Any = None, anthropic_thinking: Any = None) -> dict[str, Any]:
    """``body`` (canonical, validated) as a ``/v2/chat`` body.  ``top_k`` and
    ``anthropic_thinking``: what a ``/v1/messages`` client sent as Anthropic's
    ``top_k`` and ``thinking`` (taken out of ``body`` before the Anthropic-only
    keys were removed)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("Cohere returns one choice per request: n must be 1", "n")
    if body.get("audio") is not None or "audio" in (body.get("modalities") or ()):
        raise bad_request("Cohere has no audio output", "audio" if body.get("audio") is not None else "modalities")
    out: dict[str, Any] = {"model": body["model"], "messages": chat_messages(body.get("messages") or [])}
    for key in ("temperature", "seed", "frequency_penalty", "presence_penalty"):
        if body.get(key) is not None:
            out[key] = body[key]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("top_p") is not None:
        out["p"] = min(max(body["top_p"], P_RANGE[0]), P_RANGE[1])
    if top_k is not None:
        out["k"] = top_k
    if isinstance(anthropic_thinking, dict) and anthropic_thinking.get("type") in ("enabled", "disabled"):
        out["thinking"] = {"type": anthropic_thinking["type"]}
        if anthropic_thinking.get("budget_tokens") is not None:
            out["thinking"]["token_budget"] = anthropic_thinking["budget_tokens"]
    if body.get("tools"):  # a tool_choice without tools has nothing to choose from: left out
        out.update(chat_tools(body["tools"], body.get("tool_choice")))
    response_format = chat_response_format(body.get("response_format"))
    if response_format is not None:
        out["response_format"] = response_format
    for key in COHERE_CHAT_KEYS:
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stream"):
        out["stream"] = True
    return out


def chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": text_of(content, f"messages[{i}]", ("text",))})
        elif role == "user":
            out.append({"role": "user", "content": user_content(content, i)})
        elif role == "assistant":
            out.append(assistant_message(message, i))
        elif role == "tool":
            out.append({"role": "tool", "tool_call_id": message.get("tool_call_id"),
                        "content": text_of(content, f"messages[{i}]", ("text",))})
        else:
            raise bad_request(f"Cohere has no {role!r} messages (use tools and role 'tool')", f"messages[{i}].role")
    return out


def text_of(content: Any, where: str, allowed: tuple[str, ...]) -> str:
    """A message's text: a string, or its parts' text joined (refusal parts
    count as text).  Any other part is a 400 naming it."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind not in allowed:
            raise bad_request(f"Cohere cannot take a {kind!r} part in this message", f"{where}.content[{j}]")
        texts.append(part.get("refusal") if kind == "refusal" else part.get("text") or "")
    return "".join(t for t in texts if t)


def user_content(content: Any, i: int) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            url: dict[str, Any] = {"url": image.get("url")}
            if image.get("detail") in ("auto", "low", "high"):
                url["detail"] = image["detail"]
            parts.append({"type": "image_url", "image_url": url})
        else:
            raise bad_request(f"Cohere takes text and images in user messages, not {kind!r} parts",
                              f"messages[{i}].content[{j}]")
    return parts


def assistant_message(message: dict[str, Any], i: int) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    calls = message.get("tool_calls") or []
    if calls:
        out["tool_calls"] = [{"id": call.get("id"), "type": "function", "function": {
            "name": (call.get("function") or {}).get("name"),
            "arguments": (call.get("function") or {}).get("arguments") or "{}"}} for call in calls]
        plan = message.get("reasoning_content")
        if isinstance(plan, str) and plan:
            out["tool_plan"] = plan  # the plan Cohere wrote before these calls (see answer.py)
    text = text_of(message.get("content"), f"messages[{i}]", ("text", "refusal"))
    if text or not calls:
        out["content"] = text
    return out


def chat_tools(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
    """``tools``, ``strict_tools`` and ``tool_choice``.  Cohere names no
    tool in ``tool_choice``: a named choice is ``REQUIRED`` with that tool
    alone offered, which means the same."""
    out_tools = []
    strict = False
    for j, tool in enumerate(tools):
        function = tool.get("function")
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise bad_request("Cohere takes function tools only", f"tools[{j}]")
        definition: dict[str, Any] = {"name": function.get("name"),
                                      "parameters": function.get("parameters") or {"type": "object", "properties": {}}}
        if function.get("description"):
            definition["description"] = function["description"]
        strict = strict or function.get("strict") is True
        out_tools.append({"type": "function", "function": definition})
    out: dict[str, Any] = {"tools": out_tools}
    if strict:
        out["strict_tools"] = True
    if choice in (None, "auto"):
        return out
    if choice == "required":
        out["tool_choice"] = "REQUIRED"
    elif choice == "none":
        out["tool_choice"] = "NONE"
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        named = [tool for tool in out_tools if tool["function"]["name"] == name]
        if not named:
            raise bad_request(f"tool_choice names {name!r}, which is not among the tools", "tool_choice")
        out["tools"], out["tool_choice"] = named, "REQUIRED"
    else:
        raise bad_request("Cohere's tool_choice is auto, required, none or one named function", "tool_choice")
    return out


def chat_response_format(response_format: Any) -> dict[str, Any] | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return {"type": "json_object", **({"json_schema": schema} if schema is not None else {})}
    raise bad_request(f"Cohere has no {kind!r} response format", "response_format")


# -- embeddings ------------------------------------------------------------------------------


def embed_request(body: dict[str, Any], default_input_type: str) -> dict[str, Any]:
    """``body`` (an OpenAI embeddings request) as a ``/v2/embed`` body.
    ``input_type`` comes from the body (an extra key, or an alias's
    ``params``), else ``default_input_type``; one ``embedding_types`` entry
    may be asked for the same way.  Floats are always what is asked when the
    client wants base64 (the provider encodes them, as OpenAI does)."""
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise bad_request("Cohere embeds text: give input as a string or a list of strings, not token ids", "input")
    input_type = body.get("input_type", default_input_type)
    if input_type not in INPUT_TYPES:
        raise bad_request(f"input_type must be one of {', '.join(INPUT_TYPES)}", "input_type")
    kind = embedding_type(body)
    out: dict[str, Any] = {"model": body["model"], "texts": texts, "input_type": input_type,
                           "embedding_types": [kind]}
    if body.get("dimensions") is not None:
        out["output_dimension"] = body["dimensions"]
    for key in COHERE_EMBED_KEYS:
        if body.get(key) is not None:
            out[key] = body[key]
    return out


def embedding_type(body: dict[str, Any]) -> str:
    """The one Cohere embedding type the answer is built from."""
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise bad_request("encoding_format must be float or base64", "encoding_format")
    asked = body.get("embedding_types")
    if asked is None:
        return "float"
    if not isinstance(asked, list) or len(asked) != 1 or asked[0] not in EMBEDDING_TYPES:
        raise bad_request(f"embedding_types must be one of {', '.join(EMBEDDING_TYPES)}, in a list of one",
                          "embedding_types")
    if encoding == "base64" and asked[0] != "float":
        raise bad_request("encoding_format base64 encodes float embeddings only", "encoding_format")
    return asked[0]


# -- rerank ----------------------------------------------------------------------------------


def rerank_request(body: dict[str, Any]) -> dict[str, Any]:
    """A canonical rerank ``body`` as a ``/v2/rerank`` body: the documents as
    strings (v2 takes no objects), ``top_n`` and ``max_tokens_per_doc`` as
    they are.  ``return_documents`` is not sent: v2 never returns documents,
    and the gateway fills them in from the request."""
    out: dict[str, Any] = {"model": body["model"], "query": body["query"], "documents": document_texts(body)}
    for key in ("top_n", "max_tokens_per_doc", *COHERE_RERANK_KEYS):
        if body.get(key) is not None:
            out[key] = body[key]
    return out
