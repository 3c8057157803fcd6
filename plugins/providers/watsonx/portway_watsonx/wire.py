"""The watsonx.ai chat wire format, to and from the canonical (OpenAI) one.

Sources: IBM's generated SDK ``IBM/watsonx-ai-node-sdk`` (``src/vml_v1.ts``
``textChat`` / ``textChatStream``: the body it sends; ``src/types/vml_v1.ts``
``TextChatResponse``, ``TextChatResultChoice``, ``TextChatResponseFormat``,
``TextChatConstants.ToolChoiceOption``, ``ApiErrorResponse``;
``src/types/messages.ts``: the message shapes) and the watsonx.ai REST API
reference (cloud.ibm.com/apidocs/watsonx-ai, "Infer text chat").

The body is OpenAI's with these differences: ``model_id`` for ``model``;
``project_id`` or ``space_id`` in it; ``tool_choice_option`` (``none``,
``auto``, ``required``) for a string ``tool_choice``, which is only the named
form; no ``stream`` (the path says it); ``response_format`` is
``json_object`` only; roles ``system``, ``user``, ``assistant``, ``tool``
(and IBM's ``control``), with string ``content`` except a user's.  The answer
is OpenAI's with ``model_id`` for ``model``, no ``object``, and the
``finish_reason`` values ``time_limit``, ``cancelled`` and ``error`` besides
OpenAI's.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from portway import serialization
from portway.formats import MalformedAnswer
from portway.quirks import Quirks, refused

#: The canonical request's differences that the core's quirks express.
QUIRKS = Quirks(
    # Deprecated in favour of max_completion_tokens at newer API versions, but taken by every version.
    rename={"max_completion_tokens": "max_tokens"},
    # Not in the body: an end-user id, OpenAI's serving options, a parallel-calls switch.
    drop=frozenset({"user", "service_tier", "store", "parallel_tool_calls"}),
    json_schema=False,        # TextChatResponseFormat: json_object only
    stream_options=False,     # no such key; the stream carries the usage anyway
    developer_role=False,     # roles: system, user, assistant, tool, control
    reasoning_in_history=False,  # an assistant message has no reasoning_content (TextChatMessageAssistant)
    text_as_string=True,      # system, assistant and tool content is a string
)
#: ``tool_choice`` strings, sent as ``tool_choice_option``.
TOOL_CHOICE_OPTIONS = frozenset({"none", "auto", "required"})
#: watsonx's finish reasons that OpenAI spells otherwise: the time limit cut the answer short.
FINISH_REASONS = {"time_limit": "length"}


def chat_body(body: dict[str, Any], provider: str, scope: dict[str, str]) -> dict[str, Any]:
    """The canonical ``body`` as a watsonx chat body (a copy), with
    ``scope`` (``{"project_id": ...}`` or ``{"space_id": ...}``) in it."""
    out = QUIRKS.request(body, provider)
    out.pop("stream", None)
    out["model_id"] = out.pop("model", None)
    choice = out.pop("tool_choice", None)
    if isinstance(choice, str):
        if choice not in TOOL_CHOICE_OPTIONS:
            raise refused(provider, "tool_choice", f"{choice!r} is not one of {sorted(TOOL_CHOICE_OPTIONS)}")
        out["tool_choice_option"] = choice
    elif choice is not None:
        out["tool_choice"] = choice
    out.update(scope)
    return out


def completion(data: Any, model: str) -> Any:
    """A watsonx chat answer as a ``chat.completion`` (in place; checked afterwards)."""
    if isinstance(data, dict):
        data.setdefault("object", "chat.completion")
        data["model"] = data.get("model_id") if isinstance(data.get("model_id"), str) else model
        _finish(data)
    return data


def chunk(data: Any, model: str) -> Any:
    """A watsonx stream event's JSON as a ``chat.completion.chunk`` (in place)."""
    if isinstance(data, dict):
        data["object"] = "chat.completion.chunk"
        data["model"] = data.get("model_id") if isinstance(data.get("model_id"), str) else model
        _finish(data)
    return data


def _finish(data: dict[str, Any]) -> None:
    for choice in data.get("choices") if isinstance(data.get("choices"), list) else ():
        if isinstance(choice, dict) and choice.get("finish_reason") in FINISH_REASONS:
            choice["finish_reason"] = FINISH_REASONS[choice["finish_reason"]]


def embeddings_body(body: dict[str, Any], provider: str, scope: dict[str, str]) -> dict[str, Any]:
    """An OpenAI embeddings request as watsonx's ``{model_id, inputs, project_id | space_id}``
    (``textEmbeddings``: ``inputs`` is a list of strings)."""
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        raise refused(provider, "input", "watsonx embeds strings only (not token arrays)")
    if body.get("dimensions") is not None:
        raise refused(provider, "dimensions", "watsonx's embedding models have fixed dimensions")
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise refused(provider, "encoding_format", "it is float or base64")
    return {"model_id": body.get("model"), "inputs": texts, **scope}


def embeddings(data: Any, count: int, as_base64: bool) -> dict[str, Any]:
    """watsonx's ``{model_id, results: [{embedding}], input_token_count}`` as
    OpenAI's embeddings list, one vector per input in order; base64
    little-endian float32 when asked (as OpenAI encodes them)."""
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or len(results) != count:
        raise MalformedAnswer(f"results is not a list of {count} embeddings")
    items = []
    for index, result in enumerate(results):
        vector = result.get("embedding") if isinstance(result, dict) else None
        if not isinstance(vector, list) or not all(type(x) in (int, float) for x in vector):
            raise MalformedAnswer(f"results[{index}].embedding is not a list of numbers")
        encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
        items.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = data.get("input_token_count")
    tokens = tokens if type(tokens) is int else 0
    return {"object": "list", "data": items, "model": data.get("model_id"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def parse_error(content: bytes) -> tuple[str | None, str] | None:
    """(code, message) of watsonx's ``{"errors": [{"code", "message",
    "more_info"}], "trace", "status_code"}``, or None for another shape."""
    try:
        data = serialization.loads(content)
    except serialization.JSONDecodeError:
        return None
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list) or not errors:
        return None
    messages = [str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e) for e in errors]
    first = errors[0] if isinstance(errors[0], dict) else {}
    code = first.get("code") if isinstance(first.get("code"), str) else None
    return code, "; ".join(messages)


def iam_error(content: bytes) -> str:
    """The reason in IAM's error answer (``{"errorCode", "errorMessage"}``)."""
    try:
        data = serialization.loads(content)
    except serialization.JSONDecodeError:
        return content.decode("utf-8", "replace").strip() or "no reason given"
    if isinstance(data, dict):
        parts = [str(data[key]) for key in ("errorCode", "errorMessage") if isinstance(data.get(key), str)]
        if parts:
            return ": ".join(parts)
    parsed = parse_error(content)
    return parsed[1] if parsed is not None else str(data)
