"""OpenAI Responses API <-> canonical OpenAI Chat Completions.

Pure functions and stream state machines, shared by the ``/v1/responses``
endpoint (a Responses request runs the canonical chat pipeline on any
provider) and by the native pass-through to OpenAI (the upstream speaks
Responses; hooks still see the canonical view).

How a Responses request becomes a Chat Completions request
(:func:`responses_request_to_openai`):

* ``instructions`` is a ``system`` message, first.  The items of earlier
  turns (``history``, which the caller resolves from
  ``previous_response_id``) come next, then ``input``, in order.
* ``message`` items (and easy ``{role, content}`` messages) are messages;
  ``system`` and ``developer`` ones stay where they are.  ``input_text`` and
  ``output_text`` parts are ``text`` parts, ``input_image`` an ``image_url``
  part, ``input_file`` with inline ``file_data`` a ``file`` part.
* Consecutive ``function_call`` items (and an assistant message right
  before them) become one assistant message with ``tool_calls``; each
  ``function_call_output`` is a ``tool`` message.  Images or files in a
  tool output follow the run of tool messages as a user message (a
  Chat Completions tool message carries text only).
* ``text.format`` is ``response_format``, ``reasoning.effort`` is
  ``reasoning_effort``, ``max_output_tokens`` is ``max_tokens``; function
  tools are Chat Completions function tools; ``tool_choice``,
  ``parallel_tool_calls`` (both only with tools), ``temperature``,
  ``top_p``, ``user`` and ``metadata`` are kept; ``stream`` asks for usage
  in the stream too.  ``tool_choice: allowed_tools`` keeps only the allowed
  tools and uses its ``mode``.

The drop-or-400 rule.  What another provider cannot do is either dropped,
when it only steers OpenAI or asks for something optional, or refused with
a 400 naming the field, when dropping it would silently change the answer:

* dropped: ``reasoning`` items (their content is OpenAI's, often
  encrypted, and no other model can read it), ``reasoning.summary``,
  ``text.verbosity``, ``include``, ``store`` (Portway's own store honours
  it), ``truncation``, and parameters Chat Completions has no field for;
* 400: built-in tools (``web_search``, ``file_search``, ``computer_use``,
  ``code_interpreter``, ``mcp``, ``image_generation``, ``local_shell``,
  ``custom``, ...) with ``param: tools[i]``, a ``tool_choice`` naming one,
  input items of their kinds or of kinds Portway does not know
  (``input[i]``), files and images given by OpenAI ``file_id`` or by
  ``file_url``, and ``conversation``, ``prompt`` and ``background``, which
  name state kept on OpenAI's side.

A target that speaks Responses natively (OpenAI) gets the request unchanged
instead, so all of these work there.

Back (:func:`openai_response_to_responses`, :class:`OpenAIStreamToResponses`):
``reasoning_content`` is a ``reasoning`` item with a ``summary_text``, the
text a ``message`` item with one ``output_text`` part, each tool call a
``function_call`` item; ``finish_reason: length`` is ``status: incomplete``
with ``reason: max_output_tokens``, ``content_filter`` the same with reason
``content_filter``.  A stream ends with ``response.completed``, or
``response.incomplete`` for an incomplete answer, as OpenAI's does.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from portway.errors import PortwayError, ProviderError, ValidationFailed, kind_for_type
from portway.formats import MalformedAnswer

#: Request keys that name state kept on OpenAI's side: no other provider can serve them.
NATIVE_ONLY_PARAMS = ("conversation", "prompt", "background")

_TEXT_PARTS = frozenset({"input_text", "output_text"})
_IMAGE_DETAILS = frozenset({"low", "high", "auto"})  # what Chat Completions' image_url.detail accepts
_FINISH_TO_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_INCOMPLETE_TO_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# =============================================================================
# Responses request -> canonical Chat Completions request
# =============================================================================


def _part(part: dict[str, Any], param: str) -> dict[str, Any]:
    """A user content part as a Chat Completions part."""
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image":
        if not part.get("image_url"):
            raise ValidationFailed("input_image needs image_url (a URL or a data URI) with this provider; "
                                   "a file_id names a file stored on OpenAI", param=param)
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in _IMAGE_DETAILS:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if not part.get("file_data"):
            raise ValidationFailed("input_file needs inline file_data with this provider; file_id and file_url "
                                   "name files only OpenAI fetches", param=param)
        file = {"file_data": part["file_data"]}
        if part.get("filename"):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise ValidationFailed(f"content part type {kind!r} cannot be sent to this provider", param=param)


def _compact(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """One text part as a plain string: the form every Chat Completions server accepts."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _text_only(content: Any, param: str, role: str) -> str:
    """The text of a system, developer or assistant message's content."""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part.get("type") not in _TEXT_PARTS:
            raise ValidationFailed(f"a {role} message carries text parts only here", param=f"{param}.content[{j}]")
        texts.append(part.get("text", ""))
    return "".join(texts)


class _Conversation:
    """Turns input items, in order, into Chat Completions messages."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self._tool_parts: list[dict[str, Any]] = []  # images/files of the current run of tool outputs

    def flush(self) -> None:
        if self._tool_parts:
            self.messages.append({"role": "user", "content": self._tool_parts})
            self._tool_parts = []

    def add(self, item: dict[str, Any], param: str) -> None:
        kind = item.get("type")
        if kind == "function_call_output":
            self._tool_output(item, param)
            return
        self.flush()
        if kind is None or kind == "message":
            self._message(item, param)
        elif kind == "function_call":
            previous = self.messages[-1] if self.messages else None
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if previous is not None and previous["role"] == "assistant":
                previous.setdefault("tool_calls", []).append(call)
            else:
                self.messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "reasoning":
            return  # no Chat Completions form: dropped (see the module docstring)
        else:
            raise ValidationFailed(f"input item type {kind!r} cannot be sent to this provider (only OpenAI "
                                   "runs built-in tools)", param=param)

    def _message(self, item: dict[str, Any], param: str) -> None:
        role, content = item["role"], item["content"]
        if role == "user":
            if not isinstance(content, str):
                content = _compact([_part(p, f"{param}.content[{j}]") for j, p in enumerate(content)])
            self.messages.append({"role": "user", "content": content})
        elif role == "assistant":
            texts, refusals = [], []
            for j, part in enumerate([] if isinstance(content, str) else content):
                if part.get("type") == "refusal":
                    refusals.append(part.get("refusal", ""))
                elif part.get("type") in _TEXT_PARTS:
                    texts.append(part.get("text", ""))
                else:
                    raise ValidationFailed("an assistant message carries text and refusal parts only",
                                           param=f"{param}.content[{j}]")
            message: dict[str, Any] = {"role": "assistant",
                                       "content": content if isinstance(content, str) else "".join(texts) or None}
            if refusals:
                message["refusal"] = "".join(refusals)
            self.messages.append(message)
        else:  # system, developer: in place
            self.messages.append({"role": role, "content": _text_only(content, param, role)})

    def _tool_output(self, item: dict[str, Any], param: str) -> None:
        output = item["output"]
        if isinstance(output, str):
            text = output
        else:
            texts = []
            for j, part in enumerate(output):
                converted = _part(part, f"{param}.output[{j}]")
                if converted["type"] == "text":
                    texts.append(converted["text"])
                else:
                    self._tool_parts.append(converted)
            text = "\n".join(texts)
        self.messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})


def _tools(tools: list[dict[str, Any]], first: int = 0) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools, first):
        kind = tool.get("type")
        if kind != "function":
            raise ValidationFailed(f"tool type {kind!r} is a built-in tool that only OpenAI runs; it cannot be "
                                   "used with this provider", param=f"tools[{i}]")
        function: dict[str, Any] = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, tools: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """The Chat Completions ``tool_choice`` and the tools it leaves."""
    if isinstance(choice, str):
        return choice, tools
    kind = choice.get("type")
    if kind == "function":
        return {"type": "function", "function": {"name": choice["name"]}}, tools
    if kind == "allowed_tools":
        names = set()
        for allowed in choice["tools"]:
            if allowed.get("type") != "function" or not isinstance(allowed.get("name"), str):
                raise ValidationFailed("allowed_tools may list only function tools with this provider",
                                       param="tool_choice")
            names.add(allowed["name"])
        return choice["mode"], [tool for tool in tools if tool["function"]["name"] in names]
    raise ValidationFailed(f"tool_choice type {kind!r} names a built-in tool that only OpenAI runs",
                           param="tool_choice")


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format") or {}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema: dict[str, Any] = {"name": fmt["name"], "schema": fmt["schema"]}
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    return None


def responses_request_to_openai(body: dict[str, Any], history: list[dict[str, Any]] | None = None,
                                skipped: list[ValidationFailed] | None = None) -> dict[str, Any]:
    """A validated Responses request as a canonical Chat Completions body.

    ``history`` holds the items of the earlier turns of the conversation
    (each turn's input items, then its output items), which the caller
    resolved from ``previous_response_id``.  Raises :class:`ValidationFailed`
    (a 400 naming the field) for what this provider cannot do — or, when
    ``skipped`` is a list, leaves each such thing out of the canonical view
    and adds its error there (the endpoint does, because a target that
    speaks Responses itself can do all of it: the error only matters if the
    request takes the canonical path)."""

    def attempt(action: Any, *args: Any) -> Any:
        if skipped is None:
            return action(*args)
        try:
            return action(*args)
        except ValidationFailed as error:
            skipped.append(error)
            return None

    def refuse_native_only(key: str) -> None:
        if body.get(key):
            raise ValidationFailed(f"{key} refers to state kept by OpenAI; it works only with an OpenAI target",
                                   param=key)

    for key in NATIVE_ONLY_PARAMS:
        attempt(refuse_native_only, key)
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    conversation = _Conversation(messages)
    for item in history or ():
        attempt(conversation.add, item, "previous_response_id")
    items = body.get("input")
    if isinstance(items, str):
        conversation.add({"role": "user", "content": items}, "input")
    else:
        for i, item in enumerate(items or ()):
            attempt(conversation.add, item, f"input[{i}]")
    conversation.flush()
    if not history and not items:
        raise ValidationFailed("input is required", param="input")

    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    tools = [tool for i, tool in enumerate(body.get("tools") or [])
             if attempt(_tools, [tool], i) is not None] if skipped is not None else body.get("tools") or []
    tools = _tools(tools)
    if tools:
        if body.get("tool_choice") is not None:
            chosen = attempt(_tool_choice, body["tool_choice"], tools)
            if chosen is not None:
                out["tool_choice"], tools = chosen
        if body.get("parallel_tool_calls") is not None:
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
        out["tools"] = tools
    elif isinstance(body.get("tool_choice"), dict):
        attempt(_tool_choice, body["tool_choice"], [])  # a built-in tool choice is refused even without tools
    response_format = _response_format(body.get("text"))
    if response_format:
        out["response_format"] = response_format
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        out["reasoning_effort"] = effort
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "user", "metadata"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # else OpenAI-style upstreams send no usage
    return out


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``input`` as full items with ids: what
    ``GET /v1/responses/{id}/input_items`` lists, and what a later
    ``previous_response_id`` replays.  Items that have an id keep it;
    items of kinds Portway does not know are kept as they are."""
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    items = []
    for item in value:
        kind = item.get("type")
        if kind is None or kind == "message":
            items.append(_message_item(item))
        elif kind == "function_call":
            items.append({"id": item.get("id") or _new_id("fc"), "type": "function_call",
                          "call_id": item["call_id"], "name": item["name"], "arguments": item["arguments"],
                          "status": item.get("status") or "completed"})
        elif kind == "function_call_output":
            items.append({"id": item.get("id") or _new_id("fco"), "type": "function_call_output",
                          "call_id": item["call_id"], "output": item["output"],
                          "status": item.get("status") or "completed"})
        else:
            items.append(dict(item))
    return items


def _message_item(item: dict[str, Any]) -> dict[str, Any]:
    role, content = item["role"], item["content"]
    if role == "assistant":
        # An assistant message in the input is an output message (ResponseOutputMessage).
        if isinstance(content, str):
            parts = [_output_text(content)]
        else:
            parts = [{**p, "annotations": p.get("annotations") or []} if p.get("type") == "output_text"
                     else _output_text(p.get("text", "")) if p.get("type") == "input_text" else dict(p)
                     for p in content]
    elif isinstance(content, str):
        parts = [{"type": "input_text", "text": content}]
    else:
        # ResponseInputImage's detail is required when listed; the API's default is "auto".
        parts = [{**p, "detail": p.get("detail") or "auto"} if p.get("type") == "input_image" else dict(p)
                 for p in content]
    out = {"id": item.get("id") or _new_id("msg"), "type": "message", "role": role,
           "status": item.get("status") or "completed", "content": parts}
    if item.get("phase") is not None:
        out["phase"] = item["phase"]
    return out


# =============================================================================
# canonical Chat Completions response -> Responses response
# =============================================================================


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def _item_id(prefix: str, response_id: str, index: int) -> str:
    """Output item ids follow from the response id and the item's place,
    so a streamed answer and a whole one name their items alike."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def responses_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat Completions usage as Responses usage."""
    if not usage:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": prompt_details.get("cached_tokens") or 0,
                                 "cache_write_tokens": prompt_details.get("cache_write_tokens") or 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": completion_details.get("reasoning_tokens") or 0},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def _response(request: dict[str, Any], *, response_id: str, created_at: float, model: str | None, status: str,
              output: list[dict[str, Any]], usage: dict[str, Any] | None = None, finish_reason: str | None = None,
              error: dict[str, Any] | None = None, completed_at: float | None = None) -> dict[str, Any]:
    """A Response object: the answer's part plus the request's echo."""
    reason = _FINISH_TO_INCOMPLETE.get(finish_reason or "") if status == "incomplete" else None
    parallel = request.get("parallel_tool_calls")
    store = request.get("store")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": completed_at if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": reason} if status == "incomplete" else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "model": model or request.get("model") or "",
        "output": output,
        "parallel_tool_calls": True if parallel is None else parallel,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": request.get("reasoning") or {"effort": None, "summary": None},
        "store": True if store is None else store,
        "temperature": request.get("temperature"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": request.get("truncation") or "disabled",
        "usage": usage,
        "user": request.get("user"),
    }


def _status(finish_reason: str | None) -> str:
    return "incomplete" if finish_reason in _FINISH_TO_INCOMPLETE else "completed"


def openai_response_to_responses(completion: dict[str, Any], request: dict[str, Any], *, response_id: str,
                                 created_at: float, completed_at: float | None = None) -> dict[str, Any]:
    """A ``chat.completion`` (its first choice) as a Response object for
    ``request`` (the client's Responses body, echoed as OpenAI does)."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    finish = choice.get("finish_reason")
    status = _status(finish)
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append({"id": _item_id("rs", response_id, 0), "type": "reasoning",
                       "summary": [{"type": "summary_text", "text": reasoning}]})
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text") or "" for p in content if p.get("type") == "text")
    parts = [_output_text(content)] if content else []
    if message.get("refusal"):
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    calls = message.get("tool_calls") or []
    if parts or not (output or calls):
        output.append({"id": _item_id("msg", response_id, len(output)), "type": "message", "role": "assistant",
                       "status": "completed", "content": parts or [_output_text("")]})
    for call in calls:
        function = call.get("function") or {}
        index = len(output)
        output.append({"id": _item_id("fc", response_id, index), "type": "function_call",
                       "call_id": call.get("id") or _item_id("call", response_id, index),
                       "name": function.get("name") or "", "arguments": function.get("arguments") or "",
                       "status": "completed"})
    if status == "incomplete" and "status" in output[-1]:
        output[-1]["status"] = "incomplete"  # the item the limit cut
    return _response(request, response_id=response_id, created_at=created_at, model=completion.get("model"),
                     status=status, output=output, usage=responses_usage(completion.get("usage")),
                     finish_reason=finish, completed_at=time.time() if completed_at is None else completed_at)


def _error_code(error: BaseException) -> str:
    # response.failed's error.code is a closed set (openai ResponseError.code).
    return "rate_limit_exceeded" if getattr(error, "kind", None) == "rate_limit" else "server_error"


def _error_message(error: BaseException) -> str:
    # A PortwayError's message is client-safe (redacted); anything else may not be.
    return error.message if isinstance(error, PortwayError) else "the response failed"


def error_event(error: BaseException, sequence_number: int = 0) -> tuple[str, dict[str, Any]]:
    """The ``error`` stream event, for a failure before any response exists."""
    code = None
    if isinstance(error, PortwayError):
        code = error.code or error.openai_body()["error"]["type"]
    return ("error", {"type": "error", "code": code, "message": _error_message(error),
                      "param": getattr(error, "param", None), "sequence_number": sequence_number})


class OpenAIStreamToResponses:
    """``chat.completion.chunk`` dicts in, Responses stream events out, as
    ``(type, data)`` pairs whose ``sequence_number`` counts from 0.

    :meth:`feed` takes each chunk, :meth:`finish` closes the open items and
    ends with ``response.completed`` (``response.incomplete`` for an
    answer cut by a limit) carrying the same Response as
    :func:`openai_response_to_responses` would; :meth:`fail` ends a stream
    that broke after it started with ``response.failed``.  A text or
    reasoning item is closed when another item starts; function calls stay
    open until the end, so their argument deltas may interleave.
    """

    def __init__(self, request: dict[str, Any], *, response_id: str, created_at: float) -> None:
        self.request = request
        self.id = response_id
        self.created_at = created_at
        self.model: str | None = None
        self.done = False
        self._sequence = 0
        self._started = False
        self._items: list[dict[str, Any]] = []  # per output index: the item's state
        self._open: int | None = None  # output index of the open reasoning or message item
        self._tools: dict[int, int] = {}  # chat tool_calls index -> output index
        self._usage: dict[str, Any] | None = None
        self._finish: str | None = None

    # -- events ------------------------------------------------------------

    def _event(self, kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
        event = {"type": kind, "sequence_number": self._sequence, **data}
        self._sequence += 1
        return kind, event

    def _envelope(self, status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return _response(self.request, response_id=self.id, created_at=self.created_at, model=self.model,
                         status=status, output=output, **extra)

    def _start(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        self._started = True
        self.model = chunk.get("model") or self.request.get("model")
        return [self._event("response.created", response=self._envelope("in_progress", [])),
                self._event("response.in_progress", response=self._envelope("in_progress", []))]

    # -- items -------------------------------------------------------------

    def _render(self, index: int) -> dict[str, Any]:
        """The item at ``index`` as it stands (or as it was closed)."""
        state = self._items[index]
        if state.get("final") is not None:
            return state["final"]
        kind = state["type"]
        if kind == "reasoning":
            text = "".join(state["text"])
            return {"id": state["id"], "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": text}] if state["text"] else []}
        if kind == "message":
            return {"id": state["id"], "type": "message", "role": "assistant", "status": state["status"],
                    "content": [_part_of(kind_, "".join(texts)) for kind_, texts in state["parts"]]}
        return {"id": state["id"], "type": "function_call", "call_id": state["call_id"], "name": state["name"],
                "arguments": "".join(state["arguments"]), "status": state["status"]}

    def _add(self, state: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        index = len(self._items)
        prefix = {"reasoning": "rs", "message": "msg", "function_call": "fc"}[state["type"]]
        state.update(id=_item_id(prefix, self.id, index), status="in_progress", final=None)
        self._items.append(state)
        return [self._event("response.output_item.added", output_index=index, item=self._render(index))]

    def _close(self, index: int) -> list[tuple[str, dict[str, Any]]]:
        state = self._items[index]
        if state["final"] is not None:
            return []
        events = []
        kind, item_id = state["type"], state["id"]
        if kind == "reasoning":
            text = "".join(state["text"])
            events += [
                self._event("response.reasoning_summary_text.done", item_id=item_id, output_index=index,
                            summary_index=0, text=text),
                self._event("response.reasoning_summary_part.done", item_id=item_id, output_index=index,
                            summary_index=0, part={"type": "summary_text", "text": text}),
            ]
        elif kind == "message":
            events += self._close_part(index)
        else:
            events.append(self._event("response.function_call_arguments.done", item_id=item_id, output_index=index,
                                      arguments="".join(state["arguments"])))
        last = index == len(self._items) - 1
        state["status"] = "incomplete" if last and self.done and _status(self._finish) == "incomplete" \
            else "completed"
        state["final"] = self._render(index)
        events.append(self._event("response.output_item.done", output_index=index, item=state["final"]))
        if self._open == index:
            self._open = None
        return events

    def _close_part(self, index: int) -> list[tuple[str, dict[str, Any]]]:
        state = self._items[index]
        if not state["parts"] or state["part_closed"]:
            return []
        state["part_closed"] = True
        content_index = len(state["parts"]) - 1
        kind, texts = state["parts"][-1]
        text = "".join(texts)
        where = {"item_id": state["id"], "output_index": index, "content_index": content_index}
        if kind == "output_text":
            done = self._event("response.output_text.done", **where, text=text, logprobs=[])
        else:
            done = self._event("response.refusal.done", **where, refusal=text)
        return [done, self._event("response.content_part.done", **where, part=_part_of(kind, text))]

    def _open_item(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """Make the open item one of ``kind`` (reasoning or message)."""
        if self._open is not None and self._items[self._open]["type"] == kind:
            return []
        events = self._close(self._open) if self._open is not None else []
        state: dict[str, Any] = {"type": kind}
        if kind == "reasoning":
            state["text"] = []
        else:
            state.update(parts=[], part_closed=False)
        events += self._add(state)
        self._open = len(self._items) - 1
        if kind == "reasoning":
            events.append(self._event("response.reasoning_summary_part.added", item_id=state["id"],
                                      output_index=self._open, summary_index=0,
                                      part={"type": "summary_text", "text": ""}))
        return events

    def _reasoning(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        events = self._open_item("reasoning")
        index = len(self._items) - 1
        state = self._items[index]
        state["text"].append(text)
        events.append(self._event("response.reasoning_summary_text.delta", item_id=state["id"],
                                  output_index=index, summary_index=0, delta=text))
        return events

    def _text(self, kind: str, text: str) -> list[tuple[str, dict[str, Any]]]:
        events = self._open_item("message")
        index = len(self._items) - 1
        state = self._items[index]
        if not state["parts"] or state["parts"][-1][0] != kind:
            events += self._close_part(index)
            state["parts"].append((kind, []))
            state["part_closed"] = False
            events.append(self._event("response.content_part.added", item_id=state["id"], output_index=index,
                                      content_index=len(state["parts"]) - 1, part=_part_of(kind, "")))
        if not text:
            return events
        state["parts"][-1][1].append(text)
        where = {"item_id": state["id"], "output_index": index, "content_index": len(state["parts"]) - 1}
        if kind == "output_text":
            events.append(self._event("response.output_text.delta", **where, delta=text, logprobs=[]))
        else:
            events.append(self._event("response.refusal.delta", **where, delta=text))
        return events

    def _tool(self, call: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        k = call.get("index", 0)
        function = call.get("function") or {}
        events = []
        if k not in self._tools:
            if self._open is not None:
                events += self._close(self._open)
            index = len(self._items)
            events += self._add({"type": "function_call", "call_id": call.get("id") or _item_id("call", self.id, index),
                                 "name": function.get("name") or "", "arguments": []})
            self._tools[k] = index
        elif function.get("name"):
            self._items[self._tools[k]]["name"] += function["name"]  # a name sent in pieces
        index = self._tools[k]
        if function.get("arguments"):
            state = self._items[index]
            state["arguments"].append(function["arguments"])
            events.append(self._event("response.function_call_arguments.delta", item_id=state["id"],
                                      output_index=index, delta=function["arguments"]))
        return events

    # -- the contract --------------------------------------------------------

    def feed(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        events = [] if self._started else self._start(chunk)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # a Response has one answer
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                events += self._reasoning(reasoning)
            if delta.get("content"):
                events += self._text("output_text", delta["content"])
            if delta.get("refusal"):
                events += self._text("refusal", delta["refusal"])
            for call in delta.get("tool_calls") or ():
                events += self._tool(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def finish(self, completed_at: float | None = None) -> list[tuple[str, dict[str, Any]]]:
        """After the upstream stream ended: close every item, then the
        response's last event."""
        events = [] if self._started else self._start({})
        if not self._items:
            events += self._text("output_text", "")  # as the whole answer: one message, even if empty
        self.done = True
        for index in range(len(self._items)):
            events += self._close(index)
        status = _status(self._finish)
        response = self._envelope(status, [self._render(i) for i in range(len(self._items))],
                                  usage=responses_usage(self._usage), finish_reason=self._finish,
                                  completed_at=time.time() if completed_at is None else completed_at)
        events.append(self._event("response.completed" if status == "completed" else "response.incomplete",
                                  response=response))
        return events

    def fail(self, error: BaseException) -> list[tuple[str, dict[str, Any]]]:
        """End a stream that broke after it started: ``response.failed``
        with what was produced so far (unfinished items as ``incomplete``)."""
        events = [] if self._started else self._start({})
        self.done = True
        output = []
        for index, state in enumerate(self._items):
            item = self._render(index)
            if state["final"] is None and "status" in item:
                item["status"] = "incomplete"
            output.append(item)
        error_body = {"code": _error_code(error), "message": _error_message(error)}
        events.append(self._event("response.failed", response=self._envelope("failed", output, error=error_body,
                                                                             usage=responses_usage(self._usage))))
        return events


def _part_of(kind: str, text: str) -> dict[str, Any]:
    return _output_text(text) if kind == "output_text" else {"type": "refusal", "refusal": text}


# =============================================================================
# native Responses (an OpenAI upstream) -> canonical Chat Completions
# =============================================================================

# Shape checks on what a Responses upstream sends: the fields the converters
# read must have the types they rely on (an upstream's answer is untrusted
# input).  Unknown items, parts and fields pass.

_OPTIONAL_STR = (str, type(None))
_ITEM_STRINGS = {"function_call": ("call_id", "name", "arguments")}
_PART_STRINGS: dict[Any, str] = {"output_text": "text", "refusal": "refusal"}


def _check_usage(usage: Any, where: str) -> None:
    if usage is None:
        return
    if type(usage) is not dict:
        raise MalformedAnswer(f"{where} is not an object")
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        value = usage.get(key)
        if value is not None and type(value) is not int:
            raise MalformedAnswer(f"{where}.{key} is not an integer")
    for key in ("input_tokens_details", "output_tokens_details"):
        details = usage.get(key)
        if details is None:
            continue
        if type(details) is not dict:
            raise MalformedAnswer(f"{where}.{key} is not an object")
        for name, value in details.items():
            if value is not None and type(value) is not int and type(value) is not dict:
                raise MalformedAnswer(f"{where}.{key}.{name} is not an integer")


def _check_item(item: Any, where: str) -> None:
    if type(item) is not dict:
        raise MalformedAnswer(f"{where} is not an object")
    kind = item.get("type")
    if type(kind) is not str:
        raise MalformedAnswer(f"{where}.type is not a string")
    for key in _ITEM_STRINGS.get(kind, ()):
        if type(item.get(key)) is not str:
            raise MalformedAnswer(f"{where}.{key} is not a string")
    if kind == "message":
        content = item.get("content")
        if type(content) is not list:
            raise MalformedAnswer(f"{where}.content is not a list")
        for j, part in enumerate(content):
            if type(part) is not dict:
                raise MalformedAnswer(f"{where}.content[{j}] is not an object")
            key = _PART_STRINGS.get(part.get("type"))
            if key is not None and type(part.get(key)) is not str:
                raise MalformedAnswer(f"{where}.content[{j}].{key} is not a string")
    elif kind == "reasoning":
        for key in ("summary", "content"):
            parts = item.get(key)
            if parts is None:
                continue
            if type(parts) is not list or not all(type(p) is dict and type(p.get("text")) is str for p in parts):
                raise MalformedAnswer(f"{where}.{key} is not a list of text parts")


def check_response(data: Any) -> dict[str, Any]:
    """``data`` if it is a well-formed Response object; else
    :class:`MalformedAnswer` naming the first bad field."""
    if type(data) is not dict:
        raise MalformedAnswer("the answer is not a JSON object")
    for key in ("id", "model", "status"):
        if not isinstance(data.get(key), _OPTIONAL_STR):
            raise MalformedAnswer(f"{key} is not a string")
    created = data.get("created_at")
    if created is not None and type(created) not in (int, float):
        raise MalformedAnswer("created_at is not a number")
    output = data.get("output")
    if type(output) is not list:
        raise MalformedAnswer("output is missing or not a list")
    for i, item in enumerate(output):
        _check_item(item, f"output[{i}]")
    for key in ("incomplete_details", "error"):
        value = data.get(key)
        if value is not None and type(value) is not dict:
            raise MalformedAnswer(f"{key} is not an object")
    reason = (data.get("incomplete_details") or {}).get("reason")
    if not isinstance(reason, _OPTIONAL_STR):
        raise MalformedAnswer("incomplete_details.reason is not a string")
    error = data.get("error") or {}
    for key in ("code", "message"):
        if not isinstance(error.get(key), _OPTIONAL_STR):
            raise MalformedAnswer(f"error.{key} is not a string")
    _check_usage(data.get("usage"), "usage")
    return data


def openai_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Responses usage as Chat Completions usage."""
    if not usage:
        return None
    prompt = usage.get("input_tokens") or 0
    completion = usage.get("output_tokens") or 0
    input_details = usage.get("input_tokens_details") or {}
    prompt_details: dict[str, Any] = {"cached_tokens": input_details.get("cached_tokens") or 0}
    if input_details.get("cache_write_tokens"):
        prompt_details["cache_write_tokens"] = input_details["cache_write_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.get("total_tokens") or prompt + completion,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0},
    }


def _finish_reason(response: dict[str, Any], has_calls: bool) -> str:
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return _INCOMPLETE_TO_FINISH.get(reason or "", "length")
    return "tool_calls" if has_calls else "stop"


def _failure(error: Any, default: str) -> ProviderError:
    """A ``response.failed``'s or an ``error`` event's error as a ProviderError."""
    error = error if type(error) is dict else {}
    code = error.get("code") if type(error.get("code")) is str else None
    return ProviderError(str(error.get("message") or default), kind=kind_for_type(code), code=code)


def responses_to_openai_response(response: Any) -> dict[str, Any]:
    """A Response object as a ``chat.completion`` (checked first:
    :class:`MalformedAnswer` when it lacks the shape; a ``failed`` one is a
    :class:`ProviderError`).  Output items with no Chat Completions form
    (built-in tool calls) are left out of the canonical view."""
    check_response(response)
    if response.get("status") == "failed":
        raise _failure(response.get("error"), "the response failed")
    texts: list[str] = []
    refusals: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in response["output"]:
        kind = item["type"]
        if kind == "message":
            for part in item["content"]:
                if part.get("type") == "output_text":
                    texts.append(part["text"])
                elif part.get("type") == "refusal":
                    refusals.append(part["refusal"])
        elif kind == "function_call":
            calls.append({"id": item["call_id"], "type": "function",
                          "function": {"name": item["name"], "arguments": item["arguments"]}})
        elif kind == "reasoning":
            parts = item.get("summary") or item.get("content") or []
            reasoning.append("".join(p["text"] for p in parts))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if refusals:
        message["refusal"] = "".join(refusals)
    if calls:
        message["tool_calls"] = calls
    if any(reasoning):
        message["reasoning_content"] = "\n\n".join(r for r in reasoning if r)
    return {
        "id": response.get("id") or _new_id("resp"),
        "object": "chat.completion",
        "created": int(response.get("created_at") or time.time()),
        "model": response.get("model") or "",
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": _finish_reason(response, bool(calls))}],
        "usage": openai_usage(response.get("usage")),
    }


_DELTA_EVENTS = frozenset({
    "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta", "response.reasoning_text.delta",
})
_LIFECYCLE_EVENTS = frozenset({
    "response.created", "response.in_progress", "response.queued", "response.completed", "response.incomplete",
    "response.failed",
})


def _check_event(kind: str, data: dict[str, Any]) -> None:
    """The fields of one stream event that the converter reads."""
    if kind in _DELTA_EVENTS:
        if type(data.get("delta")) is not str:
            raise MalformedAnswer(f"a {kind} event's delta is not a string")
        if type(data.get("output_index")) is not int:
            raise MalformedAnswer(f"a {kind} event's output_index is not an integer")
    elif kind in ("response.output_item.added", "response.output_item.done"):
        if type(data.get("output_index")) is not int:
            raise MalformedAnswer(f"a {kind} event's output_index is not an integer")
        _check_item(data.get("item"), f"a {kind} event's item")
    elif kind in ("response.output_text.done", "response.function_call_arguments.done"):
        key = "text" if kind == "response.output_text.done" else "arguments"
        if type(data.get(key)) is not str:
            raise MalformedAnswer(f"a {kind} event's {key} is not a string")
        if type(data.get("output_index")) is not int:
            raise MalformedAnswer(f"a {kind} event's output_index is not an integer")
    elif kind in ("response.completed", "response.incomplete"):
        check_response(data.get("response"))
    elif kind in _LIFECYCLE_EVENTS:
        response = data.get("response")
        if type(response) is not dict:
            raise MalformedAnswer(f"a {kind} event has no response object")
        for key in ("id", "model"):
            if not isinstance(response.get(key), _OPTIONAL_STR):
                raise MalformedAnswer(f"a {kind} event's response.{key} is not a string")


class ResponsesStreamToOpenAI:
    """Native Responses stream events in, ``chat.completion.chunk`` dicts out.

    ``feed`` raises :class:`MalformedAnswer` for an event without the shape
    the converter relies on, and :class:`ProviderError` for
    ``response.failed`` and ``error`` events (the provider re-raises it with
    its own name and redaction).  ``done`` tells whether the response's last
    event (``response.completed`` or ``response.incomplete``) arrived, so a
    cut stream can be told from a finished one.
    """

    def __init__(self, *, model: str | None = None) -> None:
        self.id = ""
        self.model = model or ""
        self.created = int(time.time())
        self.done = False
        self._tools: dict[int, int] = {}  # output index -> chat tool_calls index
        self._streamed: set[tuple[int, str]] = set()  # (output index, what) that had deltas

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    def _tool_call(self, index: int, item: dict[str, Any], arguments: str) -> dict[str, Any]:
        k = self._tools[index] = len(self._tools)
        return self._chunk({"tool_calls": [{"index": k, "id": item["call_id"], "type": "function",
                                            "function": {"name": item["name"], "arguments": arguments}}]})

    def feed(self, event_name: str | None, data: Any) -> list[dict[str, Any]]:
        if type(data) is not dict:
            raise MalformedAnswer("a stream event is not a JSON object")
        kind = data.get("type") if type(data.get("type")) is str else event_name
        if kind is None:
            raise MalformedAnswer("a stream event has no type")
        _check_event(kind, data)
        if kind == "response.output_text.delta":  # the hot path first
            self._streamed.add((data["output_index"], "text"))
            return [self._chunk({"content": data["delta"]})]
        if kind == "response.function_call_arguments.delta":
            k = self._tools.get(data["output_index"])
            if k is None or not data["delta"]:
                return []
            self._streamed.add((data["output_index"], "arguments"))
            return [self._chunk({"tool_calls": [{"index": k, "function": {"arguments": data["delta"]}}]})]
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return [self._chunk({"reasoning_content": data["delta"]})]
        if kind == "response.refusal.delta":
            return [self._chunk({"refusal": data["delta"]})]
        if kind == "response.output_item.added":
            item = data["item"]
            if item["type"] != "function_call":
                return []
            if item["arguments"]:
                self._streamed.add((data["output_index"], "arguments"))
            return [self._tool_call(data["output_index"], item, item["arguments"])]
        if kind == "response.output_item.done":
            item, index = data["item"], data["output_index"]
            if item["type"] == "function_call" and index not in self._tools:
                return [self._tool_call(index, item, item["arguments"])]  # a call announced only when done
            return []
        if kind == "response.output_text.done" and (data["output_index"], "text") not in self._streamed:
            return [self._chunk({"content": data["text"]})] if data["text"] else []
        if kind == "response.function_call_arguments.done":
            index = data["output_index"]
            if index in self._tools and (index, "arguments") not in self._streamed and data["arguments"]:
                return [self._chunk({"tool_calls": [{"index": self._tools[index],
                                                     "function": {"arguments": data["arguments"]}}]})]
            return []
        if kind == "response.created":
            response = data["response"]
            self.id = response.get("id") or _new_id("resp")
            self.model = self.model or response.get("model") or ""
            if type(response.get("created_at")) in (int, float):
                self.created = int(response["created_at"])
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind in ("response.completed", "response.incomplete"):
            self.done = True
            response = data["response"]
            has_calls = bool(self._tools) or any(i["type"] == "function_call" for i in response["output"])
            chunks = [self._chunk({}, _finish_reason(response, has_calls))]
            usage = openai_usage(response.get("usage"))
            if usage:
                chunks.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                               "model": self.model, "choices": [], "usage": usage})
            return chunks
        if kind == "response.failed":
            raise _failure(data["response"].get("error"), "the response failed")
        if kind == "error":
            raise _failure(data, "the upstream stream failed")
        return []  # in_progress, content parts, built-in tool progress, and event types added later


__all__ = [
    "NATIVE_ONLY_PARAMS",
    "OpenAIStreamToResponses",
    "ResponsesStreamToOpenAI",
    "check_response",
    "error_event",
    "input_items",
    "openai_response_to_responses",
    "openai_usage",
    "responses_request_to_openai",
    "responses_to_openai_response",
    "responses_usage",
]
