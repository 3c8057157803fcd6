"""Scripted model turns for the fake provider APIs (:mod:`portway.testing.anthropic_api`,
:mod:`portway.testing.openai_api`).

A script is a list of steps, one per model call: a :class:`Turn`, or a
function that looks at the :class:`Call` (the request, the tool results it
carries) and returns one.  A turn is written once in a neutral form (text and
tool calls) and each fake renders it in its own wire format, so the same
script drives an agent directly against a fake and through the gateway::

    script = [
        call("Write", {"file_path": path, "content": "hi"}),
        lambda seen: say(f"done: {seen.last_tool_result}"),
    ]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from portway.testing.upstream import RecordedRequest


@dataclass(frozen=True)
class ToolCall:
    """The model calls ``name`` with ``arguments``.  ``id`` defaults to a
    fresh one in the fake's own style (``toolu_…``, ``call_…``)."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class Turn:
    """One model answer: its text and tool-call parts in order, and its usage.
    ``truncated``: the answer was cut at the token limit (each fake renders
    it as its API's reason: ``max_tokens``, ``length``, ``MAX_TOKENS``...).
    ``reasoning``: the model's reasoning text before the answer, for fakes of
    APIs that return it (each renders it its own way, or not at all)."""

    parts: tuple[str | ToolCall, ...]
    input_tokens: int = 10
    output_tokens: int = 5
    truncated: bool = False
    reasoning: str | None = None

    @property
    def calls_tools(self) -> bool:
        return any(isinstance(part, ToolCall) for part in self.parts)


def say(text: str, *, input_tokens: int = 10, output_tokens: int = 5, truncated: bool = False,
        reasoning: str | None = None) -> Turn:
    """A final text answer (``truncated``: cut at the token limit), after ``reasoning``."""
    return Turn((text,), input_tokens, output_tokens, truncated, reasoning)


def call(name: str, arguments: dict[str, Any], *, text: str | None = None, id: str | None = None,
         input_tokens: int = 10, output_tokens: int = 5) -> Turn:
    """A tool call, optionally preceded by some text."""
    parts: tuple[str | ToolCall, ...] = (ToolCall(name, arguments, id),)
    return Turn(((text,) if text else ()) + parts, input_tokens, output_tokens)


@dataclass(frozen=True)
class ToolResult:
    """A tool's output as the client sent it back, flattened to text."""

    call_id: str
    text: str
    is_error: bool = False


@dataclass
class Call:
    """One accepted model call, as a script step sees it."""

    request: RecordedRequest
    body: dict[str, Any]
    #: Every tool result in the request, in conversation order.
    tool_results: list[ToolResult] = field(default_factory=list)
    #: The turn the fake answered with (set once it is chosen).
    answer: Turn | None = None

    @property
    def last_tool_result(self) -> ToolResult | None:
        return self.tool_results[-1] if self.tool_results else None


Step = Turn | Callable[[Call], Turn]


class Script:
    """The steps of a fake's conversation, consumed one per accepted call."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self._steps = list(steps)
        self._next = 0

    def next_turn(self, seen: Call) -> Turn | None:
        """The answer to ``seen``, or None when the script is used up."""
        if self._next >= len(self._steps):
            return None
        step = self._steps[self._next]
        self._next += 1
        return step(seen) if callable(step) else step

    @property
    def remaining(self) -> int:
        return len(self._steps) - self._next


@dataclass
class RerankCall:
    """One rerank request a fake accepted: what it was asked, and the score
    it gave each document (by position)."""

    model: str
    query: str
    documents: list[str]
    top_n: int | None
    scores: list[float]
    request: RecordedRequest | None = None


def relevance(query: str, document: str) -> float:
    """A fake reranker's score for ``document``, between 0 and 1: how many
    of the query's words it contains, shorter documents first among equals.
    Fakes of rerank APIs use it, so a test knows the order to expect."""
    def words(text: str) -> set[str]:
        return {word.strip(".,;:?!\"'").casefold() for word in text.split()} - {""}

    asked = words(query)
    return round((len(asked & words(document)) + 1 / (2 + len(document))) / (len(asked) + 1), 6)


def halves(text: str) -> list[str]:
    """``text`` in two pieces (one if it is shorter than 2), so a client
    reading a stream must put deltas together."""
    middle = math.ceil(len(text) / 2)
    return [piece for piece in (text[:middle], text[middle:]) if piece] or [""]


def id_maker(prefix: str) -> Callable[[], str]:
    """Fresh ids in one fake's style: ``prefix`` + a counter, zero-padded."""
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):024d}"


__all__ = ["Call", "RerankCall", "Script", "Step", "ToolCall", "ToolResult", "Turn", "call", "halves", "id_maker",
           "relevance", "say"]
