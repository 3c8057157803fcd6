"""portway.formats.openai: replaying a whole answer as a stream, folding a
stream back into a whole answer, and the shape checks on untrusted answers,
each checked exactly (and against the openai SDK's own types)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from portway.formats import MalformedAnswer
from portway.formats.openai import (
    StreamAssembler,
    check_chunk,
    check_completion,
    check_embeddings,
    check_usage,
    completion_to_chunks,
)

USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
CALLS = [{"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
         {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-9", "object": "chat.completion", "created": 1735689600, "model": "gpt-4o",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking.", "reasoning_content": "Think first.", "tool_calls": CALLS}}],
    "usage": USAGE,
}


def test_a_whole_answer_replays_as_exact_chunks() -> None:
    chunks = completion_to_chunks(COMPLETION)
    base = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1735689600, "model": "gpt-4o"}
    assert chunks == [
        {**base, "choices": [{"index": 0, "finish_reason": None, "delta": {
            "role": "assistant", "content": "Checking.", "reasoning_content": "Think first.",
            "tool_calls": [{"index": 0, **CALLS[0]}, {"index": 1, **CALLS[1]}]}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {**base, "choices": [], "usage": USAGE},
    ]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)


def test_a_replay_without_usage_and_with_several_choices() -> None:
    two = {**COMPLETION, "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "a"}},
        {"index": 1, "finish_reason": "length", "message": {"role": "assistant", "content": "b"}}]}
    chunks = completion_to_chunks(two, include_usage=False)
    assert [(c["choices"][0]["index"], c["choices"][0]["finish_reason"], c["choices"][0]["delta"].get("content"))
            for c in chunks] == [(0, None, "a"), (0, "stop", None), (1, None, "b"), (1, "length", None)]
    assert all("usage" not in c for c in chunks)


def test_a_replay_of_a_sparse_answer_fills_what_a_chunk_needs() -> None:
    chunks = completion_to_chunks({"choices": [{"message": {"content": "x"}}]})
    assert chunks[0]["id"] == "chatcmpl-portway" and chunks[0]["model"] == ""
    assert isinstance(chunks[0]["created"], int) and chunks[0]["created"] > 1_700_000_000
    assert chunks[0]["choices"][0]["index"] == 0 and chunks[1]["choices"][0]["finish_reason"] == "stop"
    assert completion_to_chunks({}) == []


def test_folding_the_replay_gives_the_answer_back() -> None:
    assembler = StreamAssembler()
    for chunk in completion_to_chunks(COMPLETION):
        assembler.add(chunk)
    whole = assembler.result()
    expected = copy.deepcopy(COMPLETION)
    assert whole == expected
    ChatCompletion.model_validate(whole)


def test_folding_interleaved_deltas() -> None:
    def chunk(delta: dict[str, Any], index: int = 0, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
                "choices": [{"index": index, "delta": delta, "finish_reason": finish}], **extra}

    assembler = StreamAssembler()
    for part in [
        chunk({"role": "assistant", "content": ""}),
        chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                               "function": {"name": "second", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "fir", "arguments": "{\"a\""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "st", "arguments": ": 1}"}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        chunk({"content": "other"}, index=1),
        chunk({"refusal": "no"}, index=1, finish="stop"),
        chunk({}, finish="tool_calls"),
        {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m", "choices": [], "usage": USAGE},
    ]:
        assembler.add(part)
    whole = assembler.result()
    assert whole["id"] == "c1" and whole["created"] == 7 and whole["model"] == "m" and whole["usage"] == USAGE
    first, second = whole["choices"]
    assert first == {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
                     "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "first",
                                                                                      "arguments": "{\"a\": 1}"}},
                                    {"id": "call_2", "type": "function", "function": {"name": "second",
                                                                                      "arguments": "{}"}}]}}
    assert second == {"index": 1, "finish_reason": "stop",
                      "message": {"role": "assistant", "content": "other", "refusal": "no"}}


# -- shape checks, with their exact reasons ---------------------------------------------------------

GOOD_MESSAGE = {"role": "assistant", "content": "hi"}

BAD_COMPLETIONS: list[tuple[Any, str]] = [
    (None, "the answer is not a JSON object"),
    ({"id": 5, "choices": []}, "id is not a string"),
    ({"model": ["m"], "choices": []}, "model is not a string"),
    ({}, "choices is missing or not a list"),
    ({"choices": ["x"]}, "choices[0] is not an object"),
    ({"choices": [{"index": "0", "message": GOOD_MESSAGE}]}, "choices[0].index is not an integer"),
    ({"choices": [{"finish_reason": 1, "message": GOOD_MESSAGE}]}, "choices[0].finish_reason is not a string"),
    ({"choices": [{"message": "hi"}]}, "choices[0].message is not an object"),
    ({"choices": [{"message": {"content": 5}}]}, "choices[0].message.content is not a string or a list of parts"),
    ({"choices": [{"message": {"content": [{"text": 5}]}}]}, "choices[0].message.content[0].text is not a string"),
    ({"choices": [{"message": {"reasoning_content": 1}}]}, "choices[0].message.reasoning_content is not a string"),
    ({"choices": [{"message": {"tool_calls": {}}}]}, "choices[0].message.tool_calls is not a list"),
    ({"choices": [{"message": {"tool_calls": [1]}}]}, "choices[0].message.tool_calls[0] is not an object"),
    ({"choices": [{"message": {"tool_calls": [{"id": 1, "function": {}}]}}]},
     "choices[0].message.tool_calls[0].id is not a string"),
    ({"choices": [{"message": {"tool_calls": [{"id": "c"}]}}]},
     "choices[0].message.tool_calls[0].function is not an object"),
    ({"choices": [{"message": {"tool_calls": [{"id": "c", "function": {"name": 1}}]}}]},
     "choices[0].message.tool_calls[0].function.name is not a string"),
    ({"choices": [{"message": {"thinking_blocks": [1]}}]},
     "choices[0].message.thinking_blocks is not a list of objects"),
    ({"choices": [], "usage": "x"}, "usage is not an object"),
    ({"choices": [], "usage": {"total_tokens": "3"}}, "usage.total_tokens is not an integer"),
    ({"choices": [], "usage": {"prompt_tokens_details": []}}, "usage.prompt_tokens_details is not an object"),
    ({"choices": [], "usage": {"completion_tokens_details": {"reasoning_tokens": 1.5}}},
     "usage.completion_tokens_details.reasoning_tokens is not an integer"),
]


@pytest.mark.parametrize(("answer", "reason"), BAD_COMPLETIONS, ids=[r for _, r in BAD_COMPLETIONS])
def test_a_malformed_completion_is_named_exactly(answer: Any, reason: str) -> None:
    with pytest.raises(MalformedAnswer) as caught:
        check_completion(answer)
    assert str(caught.value) == reason


def test_a_well_formed_completion_passes_as_it_is() -> None:
    assert check_completion(COMPLETION) is COMPLETION
    check_usage(None)
    check_usage({"prompt_tokens": None, "prompt_tokens_details": None})


BAD_CHUNKS: list[tuple[Any, str]] = [
    ([1], "a stream chunk is not a JSON object"),
    ({"choices": {}}, "a stream chunk's choices is not a list"),
    ({"choices": [1]}, "a stream chunk's choice is not an object"),
    ({"choices": [{"index": None}]}, "a stream chunk's choices[].index is not an integer"),
    ({"choices": [{"finish_reason": ["stop"]}]}, "a stream chunk's finish_reason is not a string"),
    ({"choices": [{"delta": "x"}]}, "a stream chunk's delta is not an object"),
    ({"choices": [{"delta": {"content": 3}}]}, "a stream chunk's delta.content is not a string or a list of parts"),
    ({"choices": [{"delta": {"tool_calls": [{"index": "0"}]}}]},
     "a stream chunk's delta.tool_calls[0].index is not an integer"),
    ({"choices": [], "id": 3}, "a stream chunk's id is not a string"),
    ({"choices": [], "usage": []}, "a stream chunk's usage is not an object"),
]


@pytest.mark.parametrize(("chunk", "reason"), BAD_CHUNKS, ids=[r for _, r in BAD_CHUNKS])
def test_a_malformed_chunk_is_named_exactly(chunk: Any, reason: str) -> None:
    with pytest.raises(MalformedAnswer) as caught:
        check_chunk(chunk)
    assert str(caught.value) == reason


def test_check_chunk_says_when_the_stream_finished() -> None:
    assert check_chunk({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}) is False
    assert check_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) is True
    assert check_chunk({"choices": [], "usage": USAGE}) is False
    # A streamed tool call may come without its function (an id first, the name later).
    assert check_chunk({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c"}]}}]}) is False


BAD_EMBEDDINGS: list[tuple[Any, str]] = [
    ("x", "the answer is not a JSON object"),
    ({"data": {}}, "data is missing or not a list"),
    ({"data": [1]}, "data[0] is not an object"),
    ({"data": [{"index": "0", "embedding": []}]}, "data[0].index is not an integer"),
    ({"data": [{"embedding": 5}]}, "data[0].embedding is not a list or a base64 string"),
    ({"data": [], "usage": {"prompt_tokens": "1"}}, "usage.prompt_tokens is not an integer"),
]


@pytest.mark.parametrize(("answer", "reason"), BAD_EMBEDDINGS, ids=[r for _, r in BAD_EMBEDDINGS])
def test_malformed_embeddings_are_named_exactly(answer: Any, reason: str) -> None:
    with pytest.raises(MalformedAnswer) as caught:
        check_embeddings(answer)
    assert str(caught.value) == reason


def test_well_formed_embeddings_pass() -> None:
    good = {"object": "list", "data": [{"index": 0, "embedding": [0.1]}, {"index": 1, "embedding": "AAAA"}],
            "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    assert check_embeddings(good) is good
