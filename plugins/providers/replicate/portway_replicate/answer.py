"""Replicate predictions as canonical answers.

A prediction (replicate-python's ``Prediction``; the HTTP reference's
``predictions.get``) is ``{id, status, output, error, metrics, urls, ...}``:
``status`` is ``starting``, ``processing``, ``succeeded``, ``failed``,
``canceled`` (or ``aborted``); a language model's ``output`` is the list of
tokens it produced (the model's output schema is an array of strings
displayed concatenated), or a string; ``metrics`` carries
``input_token_count`` and ``output_token_count``.  Everything read here is
checked: a prediction without that shape is a :class:`MalformedAnswer`.
"""

from __future__ import annotations

from typing import Any

from portway.formats import MalformedAnswer

RUNNING = frozenset({"starting", "processing"})
SUCCEEDED = "succeeded"
#: Ends that carry no output: ``aborted`` is a prediction stopped before it started (its deadline passed).
STOPPED = frozenset({"failed", "canceled", "aborted"})


def prediction(data: Any) -> dict[str, Any]:
    """``data`` checked as a prediction: an object with a known status."""
    if not isinstance(data, dict):
        raise MalformedAnswer("the prediction is not a JSON object")
    status = data.get("status")
    if status not in RUNNING | STOPPED | {SUCCEEDED}:
        raise MalformedAnswer(f"the prediction has no known status: {str(status)[:40]!r}")
    if data.get("urls") is not None and not isinstance(data["urls"], dict):
        raise MalformedAnswer("the prediction's urls are not an object")
    return data


def prediction_id(data: dict[str, Any]) -> str:
    """The prediction's id for the answer's ``chatcmpl-`` id (a placeholder when it is not a short string)."""
    value = data.get("id")
    return value if isinstance(value, str) and 0 < len(value) <= 100 else "replicate"


def url(data: dict[str, Any], name: str) -> str | None:
    """One of the prediction's ``urls`` (None when absent or not a string)."""
    link = (data.get("urls") or {}).get(name)
    return link if isinstance(link, str) and link else None


def output_text(data: dict[str, Any]) -> str:
    """A finished prediction's text: its list of tokens joined, or its string."""
    output = data.get("output")
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(token, str) for token in output):
        return "".join(output)
    raise MalformedAnswer("the prediction's output is neither a string nor a list of strings (not a language model?)")


def usage(data: dict[str, Any]) -> dict[str, int] | None:
    """``metrics`` token counts as canonical usage (None when not reported)."""
    metrics = data.get("metrics")
    if metrics is None:
        return None
    if not isinstance(metrics, dict):
        raise MalformedAnswer("the prediction's metrics are not an object")
    prompt, completion = metrics.get("input_token_count"), metrics.get("output_token_count")
    if prompt is None and completion is None:
        return None
    for name, value in (("input_token_count", prompt), ("output_token_count", completion)):
        if value is not None and (type(value) is not int or value < 0):
            raise MalformedAnswer(f"metrics.{name} is not a count")
    prompt, completion = prompt or 0, completion or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(counts: dict[str, int] | None, limit: int | None) -> str:
    """Replicate says nothing of why a model stopped: an answer that used
    every token allowed was cut (``length``); any other ended (``stop``)."""
    if counts is not None and limit is not None and counts["completion_tokens"] >= limit:
        return "length"
    return "stop"


def chat_completion(data: dict[str, Any], *, model: str, created: int, limit: int | None) -> dict[str, Any]:
    counts = usage(data)
    answer: dict[str, Any] = {
        "id": f"chatcmpl-{prediction_id(data)}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": output_text(data)},
                     "finish_reason": finish_reason(counts, limit)}],
    }
    if counts is not None:
        answer["usage"] = counts
    return answer


def failure_message(data: dict[str, Any]) -> str:
    """What a stopped prediction says about why."""
    status = data.get("status")
    error = data.get("error")
    if status == "failed":
        detail = error if isinstance(error, str) and error else "no reason given"
        return f"the prediction failed: {detail}"
    return f"the prediction was {status}" + (f": {error}" if isinstance(error, str) and error else "")


class StreamToChunks:
    """The events of a prediction's SSE stream (the streaming guide's
    ``output`` / ``logs`` / ``error`` / ``done``) as ``chat.completion.chunk``
    dicts.  ``output`` data is raw text (multi-line data joined with ``\\n``
    by the SSE parser); ``done`` data is JSON, ``{}`` or with a ``reason``."""

    def __init__(self, *, id: str, model: str, created: int) -> None:
        self.base = {"id": f"chatcmpl-{id}", "object": "chat.completion.chunk", "created": created, "model": model}
        self.started = False
        self.done = False

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    def text(self, text: str) -> dict[str, Any] | None:
        if not text:
            return None
        delta = {"content": text} if self.started else {"role": "assistant", "content": text}
        self.started = True
        return self.chunk(delta)

    def finish(self, counts: dict[str, int] | None, limit: int | None) -> list[dict[str, Any]]:
        chunks = [] if self.started else [self.chunk({"role": "assistant", "content": ""})]
        chunks.append(self.chunk({}, finish_reason(counts, limit)))
        if counts is not None:
            chunks.append({**self.base, "choices": [], "usage": counts})
        return chunks
