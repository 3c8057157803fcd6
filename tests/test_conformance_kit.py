"""The conformance kit itself (:mod:`portway.testing.conformance`): each
check fails, naming what differed, when an adapter does the wrong thing.

Each test plants one bug in an installed adapter (the gateway runs in this
process, so a monkeypatched method is what it calls) and runs the one check
that must catch it; the same checks pass on the unpatched adapters in each
provider package's ``tests/test_conformance.py``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

import portway_mock
import portway_openai
from portway.errors import ProviderError
from portway.formats.anthropic import upstream as anthropic_format
from portway.formats.openai import OpenAICompatibleProvider
from portway.testing import conformance
from portway.testing.anthropic_api import AnthropicAPI
from portway.testing.conformance import FEATURES, Conformance, check_provider, conformance_tests, run_check
from portway.testing.mock_wire import MockWire
from portway.testing.openai_chat import OpenAIChatAPI

OPENAI_KEY = "sk-openai-conformance-0123456789"
ANTHROPIC_KEY = "sk-ant-conformance-0123456789"

OPENAI = Conformance(provider="openai", config=lambda url: {"type": "openai", "api_key": OPENAI_KEY,
                                                            "base_url": url + "/v1"},
                     fake=lambda script: OpenAIChatAPI(script, api_key=OPENAI_KEY), model="gpt-4o-mini")
ANTHROPIC = Conformance(provider="anthropic", config=lambda url: {"type": "anthropic", "api_key": ANTHROPIC_KEY,
                                                                  "base_url": url},
                        fake=lambda script: AnthropicAPI(script, api_key=ANTHROPIC_KEY), model="claude-sonnet-4-5",
                        features=FEATURES - {"embeddings"}, params={"seed": "dropped"})
MOCK = Conformance(provider="mock", config=lambda url: {"type": "mock", "api_key": "mock-conformance-key-0123456789"},
                   fake=MockWire)


def fails(c: Conformance, check: str) -> str:
    """The failure message of ``check``, which must fail."""
    with pytest.raises(AssertionError) as failed:
        run_check(c, check)
    conformance.wait_for_stopped()
    return str(failed.value)


def dropping(*keys: str) -> Any:
    def prepare(self: Any, body: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in body.items() if key not in keys}

    return prepare


# -- planted bugs ---------------------------------------------------------------------------------


def test_a_system_prompt_that_never_arrives_fails_system(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_system(self: Any, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "messages": [m for m in body["messages"] if m["role"] != "system"]}

    monkeypatch.setattr(portway_openai.OpenAIProvider, "prepare", no_system)
    assert fails(OPENAI, "system") == ("openai conformance, system: the system prompt the upstream saw: got None, "
                                       "expected 'You answer in one short sentence.'")


def test_tools_that_never_arrive_fail_the_tool_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portway_openai.OpenAIProvider, "prepare", dropping("tools", "tool_choice"))
    assert fails(OPENAI, "tool_round_trip").endswith("the tools the upstream saw declared: got [], "
                                                     "expected ['get_weather']")


def test_a_parameter_dropped_though_declared_mapped_fails_its_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portway_openai.OpenAIProvider, "prepare", dropping("seed"))
    assert fails(OPENAI, "param_seed").endswith("the seed the upstream saw: got None, expected 42")
    run_check(OPENAI, "param_top_p")  # the others still pass


def test_a_declaration_that_does_not_match_the_adapter_fails() -> None:
    assert fails(dataclasses.replace(OPENAI, params={"seed": "refused"}), "param_seed").endswith(
        "seed=42 was declared refused, but the request succeeded")
    assert fails(dataclasses.replace(ANTHROPIC, params={}), "param_seed").endswith(
        "the seed the upstream saw: got None, expected 42")


def test_streamed_tool_arguments_that_go_missing_fail_stream_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    delta = anthropic_format.AnthropicStreamToOpenAI._delta

    def without_arguments(self: Any, data: dict[str, Any]) -> list[dict[str, Any]]:
        return [] if (data.get("delta") or {}).get("type") == "input_json_delta" else delta(self, data)

    monkeypatch.setattr(anthropic_format.AnthropicStreamToOpenAI, "_delta", without_arguments)
    assert "the tool calls the SDK's stream helper assembled: got [('get_weather', \"<not JSON: ''>\")]" in fails(
        ANTHROPIC, "stream_tools")


def test_a_truncated_answer_reported_as_stop_fails_finish_length(monkeypatch: pytest.MonkeyPatch) -> None:
    from portway.formats.anthropic.common import STOP_TO_FINISH

    monkeypatch.setitem(STOP_TO_FINISH, "max_tokens", "stop")
    assert fails(ANTHROPIC, "finish_length").endswith(
        "the finish_reason of an answer cut at the token limit: got 'stop', expected 'length'")


def test_an_undeclared_credential_fails_the_error_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portway_openai.OpenAIProvider, "secrets", lambda self: [])
    assert fails(OPENAI, "error_401").endswith("a credential reached the client (not streamed): sk-o…")


def test_a_credential_in_the_log_fails_the_error_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's copy is redacted; an adapter that logs the upstream's raw answer is caught all the same."""

    def logging_raw(self: Any, response: Any) -> ProviderError:
        logging.getLogger("portway_openai").debug("upstream answered %s", response.content)
        return OpenAICompatibleProvider.error_from_response(self, response)

    monkeypatch.setattr(portway_openai.OpenAIProvider, "error_from_response", logging_raw)
    assert fails(OPENAI, "error_500").endswith("a credential reached the gateway's log: sk-o…")


def test_a_lost_retry_hint_fails_error_429(monkeypatch: pytest.MonkeyPatch) -> None:
    def without_retry_after(self: Any, response: Any) -> ProviderError:
        error = OpenAICompatibleProvider.error_from_response(self, response)
        error.retry_after = None
        return error

    monkeypatch.setattr(portway_openai.OpenAIProvider, "error_from_response", without_retry_after)
    assert fails(OPENAI, "error_429").endswith("the Retry-After the client got (not streamed): got None, expected '7'")


def test_a_misclassified_status_fails_its_error_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden_as_bad_request(self: Any, response: Any) -> ProviderError:
        error = OpenAICompatibleProvider.error_from_response(self, response)
        error.kind = "bad_request"
        return error

    monkeypatch.setattr(portway_openai.OpenAIProvider, "error_from_response", forbidden_as_bad_request)
    assert fails(OPENAI, "error_403").endswith("the error type the client got (not streamed; the kind permission): "
                                               "got 'invalid_request_error', expected 'permission_error'")


def test_embeddings_out_of_order_fail_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    embeddings = OpenAICompatibleProvider.embeddings

    async def reversed_order(self: Any, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        answer = await embeddings(self, body, ctx)
        answer["data"] = [{**item, "index": i} for i, item in enumerate(reversed(answer["data"]))]
        return answer

    monkeypatch.setattr(portway_openai.OpenAIProvider, "embeddings", reversed_order)
    assert "the vectors are not in the order of the inputs" in fails(OPENAI, "embeddings")


def test_usage_that_is_not_the_providers_fails_chat(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = portway_mock.MockProvider._answer

    def counted(self: Any, body: dict[str, Any]) -> Any:
        text, calls, finish, _ = answer(self, body)
        return text, calls, finish, None  # words counted instead of the scripted usage

    monkeypatch.setattr(portway_mock.MockProvider, "_answer", counted)
    assert fails(MOCK, "chat").endswith("the usage (prompt, completion, total tokens): got (6, 6, 12), "
                                        "expected (17, 4, 21)")


def test_a_stream_read_whole_before_it_is_relayed_fails_disconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = portway_mock.MockProvider.chat_stream

    async def buffered(self: Any, body: dict[str, Any], ctx: Any) -> AsyncIterator[dict[str, Any]]:
        for chunk in [chunk async for chunk in stream(self, body, ctx)]:
            yield chunk

    monkeypatch.setattr(portway_mock.MockProvider, "chat_stream", buffered)
    # The cancellation never comes: a shorter stream and less patience than 10 s do to show it.
    monkeypatch.setattr(conformance, "DISCONNECT_PACE", 0.01)
    monkeypatch.setattr(conformance, "DISCONNECT_PATIENCE", 0.5)
    assert "the client left mid-stream, but the upstream request went on to its end" in fails(MOCK, "disconnect")


# -- the kit's own contract --------------------------------------------------------------------------


def test_a_declaration_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="unknown feature.s. vison_url"):
        dataclasses.replace(OPENAI, features=frozenset({"vison_url"}))
    with pytest.raises(ValueError, match="unknown parameter 'max_token'"):
        dataclasses.replace(OPENAI, params={"max_token": "mapped"})
    with pytest.raises(ValueError, match="params\\['seed'\\] is 'ignored'"):
        dataclasses.replace(OPENAI, params={"seed": "ignored"})
    assert ANTHROPIC.params == {"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped",
                                "seed": "dropped"}


def test_what_is_not_claimed_is_skipped_by_name() -> None:
    test = conformance_tests(dataclasses.replace(OPENAI, features=frozenset({"chat", "tools"})))
    [parametrize] = [mark for mark in test.pytestmark if mark.name == "parametrize"]  # type: ignore[attr-defined]
    skipped = {case.id: case.marks[0].kwargs["reason"] for case in parametrize.args[1] if case.marks}
    assert skipped["vision_url"] == "openai does not claim vision_url"
    assert "tool_round_trip" not in skipped and "chat" not in skipped and "error_429" not in skipped
    optional = {name for name, check in conformance.CHECKS.items()
                if check.needs in conformance.OPTIONAL_FEATURES or check.needs in conformance.EXTRA_PARAMS}
    assert optional == {"reasoning", "rerank", *(f"param_{name}" for name in conformance.EXTRA_PARAMS)}
    # Optional features and extra parameters appear only where claimed: not as skips.
    assert [case.id for case in parametrize.args[1]] == [name for name in conformance.CHECKS if name not in optional]
    claimed = conformance_tests(dataclasses.replace(OPENAI, features=frozenset({"chat", "rerank"}),
                                                    params={"n": "refused"}))
    [parametrize] = [mark for mark in claimed.pytestmark if mark.name == "parametrize"]  # type: ignore[attr-defined]
    ids = [case.id for case in parametrize.args[1]]
    assert "rerank" in ids and "param_n" in ids and "reasoning" not in ids and "param_user" not in ids
    # No chat, no chat parameters: the five skipped, the extra one not listed at all.
    no_chat = conformance_tests(dataclasses.replace(OPENAI, features=frozenset({"rerank"}), params={"n": "refused"}))
    [parametrize] = [mark for mark in no_chat.pytestmark if mark.name == "parametrize"]  # type: ignore[attr-defined]
    skipped = {case.id: case.marks[0].kwargs["reason"] for case in parametrize.args[1] if case.marks}
    assert skipped["param_max_tokens"] == "openai does not claim chat, whose parameter this is"
    assert "param_n" not in [case.id for case in parametrize.args[1]] and "rerank" not in skipped


def test_check_provider_runs_the_named_checks_and_reports_the_first_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    check_provider(MOCK, checks=["chat", "tool_round_trip"])
    monkeypatch.setattr(portway_openai.OpenAIProvider, "prepare", dropping("tools", "tool_choice"))
    with pytest.raises(AssertionError, match="openai conformance, tool_round_trip: "):
        check_provider(OPENAI, checks=["chat", "tool_round_trip", "stream_tools"])


def test_a_provider_without_chat_skips_the_chat_checks_and_fails_through_what_it_serves() -> None:
    """An embeddings- or rerank-only provider: its error checks go through
    rerank (here), and the chat checks are not run at all."""
    ranker = dataclasses.replace(MOCK, features=frozenset({"rerank"}))
    check_provider(ranker, checks=["error_429", "error_503", "rerank"])
    skipped = {name for name, check in conformance.CHECKS.items() if check.skip_reason(ranker)}
    assert {"chat", "chat_stream", "finish_length", "disconnect", "tool_round_trip"} <= skipped
    assert "error_429" not in skipped and "rerank" not in skipped
