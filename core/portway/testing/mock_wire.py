"""The conformance kit's view of the ``mock`` provider, which has no wire.

The mock answers in-process, so there is nothing on a fake upstream to
script or to record.  :class:`MockWire` takes the place of a wire fake: the
kit hands it the started provider (``attach``), and it becomes the provider's
script (the ``portway_mock.Script`` seam: ``next_turn(body)`` and
``stream_closed(finished)``).  Each canonical request the mock gets is then
recorded as a :class:`~portway.testing.script.Call` and answered with the
next turn, converted to the mock's own script form (``say``, ``call``,
``usage``, ``finish_reason``), so the mock's rendering of turns is what is
checked.  A canonical request is a Chat Completions body, so :meth:`seen`
decodes it as :class:`~portway.testing.openai_chat.OpenAIChatAPI` does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from portway import serialization
from portway.testing.conformance import Seen
from portway.testing.openai_chat import chat_seen, tool_results
from portway.testing.script import Call, RerankCall, Script, Step, ToolCall, Turn, relevance
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply


class MockWire:
    """A wire fake for the mock provider: see the module docstring."""

    def __init__(self, script: Sequence[Step]) -> None:
        self.script = Script(script)
        self.calls: list[Call] = []
        #: The rerank requests the mock got, with the scores this fake gave.
        self.rerank_calls: list[RerankCall] = []
        self.disconnected = threading.Event()
        #: Seconds before each streamed word (handed to the provider when attached).
        self.stream_delay = 0.0
        self._failure: dict[str, Any] | None = None

    def install(self, upstream: FakeUpstream) -> MockWire:
        return self  # no wire: the mock is reached through attach()

    def attach(self, provider: Any) -> None:
        provider.script = self
        provider.chunk_delay = self.stream_delay

    def seen(self, call: Call) -> Seen:
        return chat_seen(call.body)

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        """From now on the mock fails so (a scripted ``error`` turn); the
        reply returned is what a wire would carry, for the protocol's sake."""
        self._failure = {"error": {"status": status, "message": message, "retry_after": retry_after}}
        return json_reply({"error": {"message": message}}, status)

    # -- the mock provider's script seam ------------------------------------------------

    def next_turn(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._failure is not None:
            return self._failure
        seen = Call(RecordedRequest("POST", "mock://in-process", "", {}, serialization.dumps(body)), body,
                    tool_results(body.get("messages") or []))
        turn = self.script.next_turn(seen)
        if turn is None:
            return {"error": {"status": 400, "message": f"MockWire: the script has no turn left for call "
                                                        f"{len(self.calls) + 1}"}}
        seen.answer = turn
        self.calls.append(seen)
        return mock_turn(turn)

    def stream_closed(self, finished: bool) -> None:
        if not finished:
            self.disconnected.set()

    def rank(self, body: dict[str, Any], documents: list[str]) -> list[float] | dict[str, Any]:
        """The mock's rerank seam: the score of each document (or a scripted failure)."""
        if self._failure is not None:
            return self._failure
        scores = [relevance(body["query"], document) for document in documents]
        self.rerank_calls.append(RerankCall(body["model"], body["query"], documents, body.get("top_n"), scores))
        return scores


def mock_turn(turn: Turn) -> dict[str, Any]:
    """``turn`` in the mock's script form (one entry of its ``script`` config)."""
    texts = [part for part in turn.parts if isinstance(part, str)]
    calls = [{"name": part.name, "arguments": part.arguments, "id": part.id}
             for part in turn.parts if isinstance(part, ToolCall)]
    scripted: dict[str, Any] = {"usage": {"prompt_tokens": turn.input_tokens, "completion_tokens": turn.output_tokens}}
    if texts:
        scripted["say"] = "".join(texts)
    if calls:
        scripted["call"] = calls
    if turn.truncated:
        scripted["finish_reason"] = "length"
    return scripted


__all__ = ["MockWire", "mock_turn"]
