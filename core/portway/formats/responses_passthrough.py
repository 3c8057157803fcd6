"""The Responses API as a pass-through (see :mod:`portway.native`): a
Responses client's request to an upstream that speaks Responses (OpenAI)
goes as it was sent, so reasoning items, built-in tools and every field
Portway does not translate keep working, and the answer comes back as
OpenAI gave it.

What hooks change is never bypassed, by a simpler rule than Anthropic's:
a request whose canonical view a ``pre_request`` hook changed takes the
canonical path (Chat Completions) to the same target, and so does a stream
that ``post_chunk`` hooks watch; ``post_response`` hooks' changes to the
text, tool arguments and reasoning of a whole answer are written back into
it.

``previous_response_id``: when the turn it names was answered natively by
the same provider instance, the upstream has the conversation and the id
goes as it is; otherwise the earlier turns' items are put before ``input``
and the id is dropped (the upstream never saw it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portway.formats.responses import responses_to_openai_response
from portway.native import NativeFormat, NativeRequest


@dataclass(frozen=True)
class Previous:
    """The turn ``previous_response_id`` names (the request's
    :attr:`~portway.native.NativeRequest.context`): the items of the whole
    conversation so far, and who answered that turn."""

    items: list[dict[str, Any]]
    native: bool
    provider: str | None


class ResponsesNative(NativeFormat):
    name = "responses"
    patches_streams = False

    def upstream_body(self, request: NativeRequest, ctx: Any, target: Any) -> dict[str, Any] | None:
        if request.changes(ctx) != (set(), set()):
            return None
        body = dict(request.body)
        body["model"] = target.model
        previous = request.context
        if previous is not None and not (previous.native and previous.provider == target.provider.name):
            body.pop("previous_response_id", None)
            body["input"] = [*_replayable(previous.items), *_as_items(request.body.get("input"))]
        return body

    def canonical_response(self, native: dict[str, Any]) -> dict[str, Any]:
        return responses_to_openai_response(native)

    def patch_response(self, native: dict[str, Any], canonical: dict[str, Any]) -> dict[str, Any]:
        message = ((canonical.get("choices") or [{}])[0]).get("message") or {}
        before = ((responses_to_openai_response(native).get("choices") or [{}])[0]).get("message") or {}
        output = [dict(item) for item in native.get("output") or []]
        if message.get("content") != before.get("content"):
            output = _replace_text(output, message.get("content") or "")
        if message.get("reasoning_content") != before.get("reasoning_content"):
            for item in output:
                if item.get("type") == "reasoning":
                    item["summary"] = [{"type": "summary_text", "text": message.get("reasoning_content") or ""}]
                    break
        calls = {call.get("id"): call for call in message.get("tool_calls") or []}
        patched = []
        for item in output:
            if item.get("type") == "function_call":
                call = calls.get(item.get("call_id"))
                if call is None:
                    continue  # a hook removed the call
                function = call.get("function") or {}
                item = {**item, "name": function.get("name", item.get("name")),
                        "arguments": function.get("arguments", item.get("arguments"))}
            patched.append(item)
        return {**native, "output": patched}


def _replace_text(output: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The first ``output_text`` part gets all of ``text``; the others go."""
    placed = False
    out = []
    for item in output:
        if item.get("type") == "message":
            parts = []
            for part in item.get("content") or []:
                if part.get("type") != "output_text":
                    parts.append(part)
                elif not placed:
                    parts.append({**part, "text": text})
                    placed = True
            item = {**item, "content": parts}
        out.append(item)
    return out


def _as_items(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value)


def _replayable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier turns' items as input for an upstream that never saw them:
    without the ids Portway gave them, and without reasoning items (their
    content is opaque to any account but the one that made them)."""
    out = []
    for item in items:
        if item.get("type") == "reasoning":
            continue
        item = {k: v for k, v in item.items() if k not in ("id", "status")}
        if item.get("type") == "message" and item.get("role") == "assistant":
            item["content"] = [{k: v for k, v in part.items() if k != "annotations" or v}
                               for part in item.get("content") or []]
        out.append(item)
    return out


RESPONSES = ResponsesNative()
