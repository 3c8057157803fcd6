"""portway.quirks: an OpenAI-compatible server's differences applied as data,
each exactly (what is sent, what is refused with which param), and through a
running gateway with the openai SDK against a fake that refuses what the
server refuses."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import openai
import pytest

import portway
from portway.errors import PortwayError
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks, check_capabilities, lookup_capabilities
from portway.testing import FakeUpstream
from portway.testing.conformance import FEATURES, Conformance, check_provider, conformance_tests
from portway.testing.gateway import GatewayServer
from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import say

BODY: dict[str, Any] = {
    "model": "m", "stream": True, "stream_options": {"include_usage": True}, "n": 1, "user": "u-1",
    "max_completion_tokens": 50, "tool_choice": "auto",
    "messages": [
        {"role": "developer", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
        {"role": "user", "name": "ada", "content": [{"type": "text", "text": "hi"},
                                                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "assistant", "content": "hello", "reasoning_content": "greet back"},
        {"role": "user", "content": "and?"},
    ],
}


def refusal(quirks: Quirks, body: dict[str, Any]) -> tuple[str | None, str, str | None]:
    with pytest.raises(PortwayError) as caught:
        quirks.request(body, "acme")
    error = caught.value
    assert error.kind == "bad_request" and error.status == 400
    return error.param, error.message, error.code


def test_no_quirks_change_nothing() -> None:
    assert not Quirks().changes_requests
    assert Quirks().request(BODY, "acme") == BODY


def test_every_request_quirk_at_once_and_the_input_is_left_as_it_was() -> None:
    before = copy.deepcopy(BODY)
    quirks = Quirks(drop={"user"}, rename={"max_completion_tokens": "max_tokens"}, max_n=1, stream_options=False,
                    developer_role=False, message_names=False, reasoning_in_history=False, text_as_string=True)
    assert quirks.changes_requests
    out = quirks.request(BODY, "acme")
    assert BODY == before  # a fallback target may need the body as it was
    assert out == {
        "model": "m", "stream": True, "tool_choice": "auto", "max_tokens": 50,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                                         {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and?"},
        ],
    }


def test_each_message_quirk_alone() -> None:
    def messages(**options: Any) -> list[Any]:
        return Quirks(**options).request(BODY, "acme")["messages"]

    assert [m["role"] for m in messages(developer_role=False)] == ["system", "user", "assistant", "user"]
    assert [("name" in m) for m in messages(message_names=False)] == [False] * 4
    assert [("name" in m) for m in messages(developer_role=False)] == [False, True, False, False]
    assert [m.get("reasoning_content") for m in messages(reasoning_in_history=False)] == [None] * 4
    assert messages(developer_role=False)[2]["reasoning_content"] == "greet back"
    assert [m["content"] for m in messages(text_as_string=True)][::2] == ["Be brief.", "hello"]
    assert isinstance(messages(text_as_string=True)[1]["content"], list)  # an image part: sent as it is
    assert messages(developer_role=False)[0]["content"] == BODY["messages"][0]["content"]


def test_a_rename_prefers_the_canonical_key() -> None:
    quirks = Quirks(rename={"max_completion_tokens": "max_tokens"})
    out = quirks.request({"model": "m", "messages": [], "max_tokens": 10, "max_completion_tokens": 20}, "acme")
    assert out == {"model": "m", "messages": [], "max_tokens": 20}


def test_n() -> None:
    assert Quirks(max_n=1).request({"n": 1}, "acme") == {}
    assert Quirks(max_n=4).request({"n": 4}, "acme") == {"n": 4}
    assert Quirks(max_n=4).request({"n": 1}, "acme") == {"n": 1}
    param, message, code = refusal(Quirks(max_n=4), {"n": 5})
    assert (param, code) == ("n", "unsupported")
    assert message == "provider 'acme' cannot take n: it returns at most 4 choice(s)"


def test_refused_keys_name_themselves_and_what_asks_for_nothing_passes() -> None:
    quirks = Quirks(refuse={"logprobs": "it returns no logprobs"})
    assert refusal(quirks, {"logprobs": True}) == ("logprobs", "provider 'acme' cannot take logprobs: it returns "
                                                   "no logprobs", "unsupported")
    assert refusal(quirks, {"logprobs": 0})[0] == "logprobs"
    for nothing in (None, False, [], {}, ""):
        assert quirks.request({"logprobs": nothing}, "acme") == {"logprobs": nothing}


def test_json_modes_and_tool_choice_forms() -> None:
    schema = {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}
    obj = {"response_format": {"type": "json_object"}}
    assert refusal(Quirks(json_schema=False), schema)[:2] == (
        "response_format", "provider 'acme' cannot take response_format: it has no json_schema mode (use json_object)")
    assert refusal(Quirks(json_schema=False, json_object=False), schema)[1].endswith("it has no json_schema mode")
    assert refusal(Quirks(json_object=False), obj)[1].endswith("it has no json_object mode")
    assert Quirks(json_schema=False).request(obj, "acme") == obj
    assert Quirks(json_object=False).request(schema, "acme") == schema
    assert Quirks(json_object=False).request({"response_format": {"type": "text"}}, "acme")["response_format"]
    named = {"tool_choice": {"type": "function", "function": {"name": "f"}}}
    assert refusal(Quirks(tool_choice_required=False), {"tool_choice": "required"})[:2] == (
        "tool_choice", "provider 'acme' cannot take tool_choice: it has no tool_choice \"required\"")
    assert Quirks(tool_choice_required=False).request(named, "acme") == named
    assert refusal(Quirks(tool_choice_named=False), named)[0] == "tool_choice"
    assert Quirks(tool_choice_named=False).request({"tool_choice": "required"}, "acme") == {"tool_choice": "required"}


def test_reasoning_under_another_name_is_mapped_back() -> None:
    quirks = Quirks(reasoning_field="reasoning")
    completion = {"choices": [{"message": {"content": "4", "reasoning": "2+2"}}, {"message": {"content": "x"}}]}
    assert quirks.completion(completion) == {"choices": [{"message": {"content": "4", "reasoning_content": "2+2"}},
                                                         {"message": {"content": "x"}}]}
    chunk = {"choices": [{"delta": {"reasoning": "hm"}}, {"delta": {"reasoning": None}}]}
    assert quirks.chunk(chunk) == {"choices": [{"delta": {"reasoning_content": "hm"}}, {"delta": {}}]}
    both = {"choices": [{"delta": {"reasoning": "a", "reasoning_content": "b"}}]}
    assert quirks.chunk(both) == {"choices": [{"delta": {"reasoning_content": "b"}}]}  # the canonical one wins
    untouched = {"choices": [{"message": {"reasoning": "kept"}}]}
    assert Quirks().completion(copy.deepcopy(untouched)) == untouched
    for odd in ([1], {"choices": 5}, {"choices": [5, {"message": 3}]}, None):  # left for the check to name
        assert quirks.completion(copy.deepcopy(odd)) == odd and quirks.chunk(copy.deepcopy(odd)) == odd


CAPABILITIES = {"vision-*": {"tools", "vision", "json"}, "plain-*": set(), "*-tools": {"tools"}}


def test_capability_lookup() -> None:
    assert lookup_capabilities(CAPABILITIES, "Vision-Large") == frozenset({"tools", "vision", "json"})
    assert lookup_capabilities(CAPABILITIES, "plain-tools") == frozenset()  # the first pattern that matches
    assert lookup_capabilities(CAPABILITIES, "small-tools") == frozenset({"tools"})
    assert lookup_capabilities(CAPABILITIES, "unknown") is None


def test_capability_checks_name_the_field() -> None:
    def problem(body: dict[str, Any], capabilities: set[str]) -> str | None:
        try:
            check_capabilities(body, frozenset(capabilities), "acme", "small")
        except PortwayError as error:
            assert error.code == "unsupported" and error.status == 400
            return error.param
        return None

    image = {"messages": [{"role": "user", "content": "x"},
                          {"role": "user", "content": [{"type": "text", "text": "a"},
                                                       {"type": "image_url", "image_url": {"url": "u"}}]}]}
    assert problem(image, set()) == "messages[1].content[1]"
    assert problem(image, {"vision"}) is None
    assert problem({"tools": [{"type": "function"}]}, {"json"}) == "tools"
    assert problem({"tools": []}, set()) is None
    assert problem({"response_format": {"type": "json_schema"}}, {"tools"}) == "response_format"
    assert problem({"response_format": {"type": "json_object"}}, set()) == "response_format"
    assert problem({"response_format": {"type": "text"}}, set()) is None


# -- through a running gateway --------------------------------------------------------------------------


class Strict(OpenAIChatAPI):
    """A server that refuses what Acme refuses."""

    refused_params = frozenset({"max_completion_tokens", "user", "n"})

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        if any(m.get("role") == "developer" for m in body.get("messages") or ()):
            return "unknown role developer", "messages"
        return super().check(body)

    def completion(self, turn: Any, model: str) -> dict[str, Any]:
        out = super().completion(turn, model)
        out["choices"][0]["message"]["reasoning"] = "thought"
        return out


class AcmeProvider(OpenAICompatibleProvider):
    type = "acme-quirks"
    default_base_url = "http://127.0.0.1:9/v1"
    quirks = Quirks(drop={"user"}, rename={"max_completion_tokens": "max_tokens"}, max_n=1, developer_role=False,
                    reasoning_field="reasoning")
    capabilities: ClassVar[dict[str, set[str]]] = {"text-*": {"tools", "json"}}


class AcmePlugin:
    @portway.hookimpl
    def register_providers(self, register: Any) -> None:
        register(AcmeProvider)


def gateway(config: dict[str, Any]) -> GatewayServer:
    return GatewayServer(config, plugins=[("acme", AcmePlugin())])


def test_a_quirky_server_through_the_gateway() -> None:
    api = Strict([say("Hi."), say("Hi again.")], api_key="sk-acme-000000000000")
    with FakeUpstream() as upstream:
        api.install(upstream)
        config = {"providers": {"acme": {"type": "acme-quirks", "api_key": "sk-acme-000000000000",
                                         "base_url": upstream.url + "/v1"}}}
        with gateway(config) as server, server.openai_client() as client:
            reply = client.chat.completions.create(
                model="acme/text-1", messages=[{"role": "developer", "content": "Be brief."},
                                               {"role": "user", "content": "hi"}],
                max_completion_tokens=20, user="u-1", n=1)
            assert reply.choices[0].message.content == "Hi."
            assert reply.choices[0].message.model_extra["reasoning_content"] == "thought"
            assert "reasoning" not in reply.choices[0].message.model_extra
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(model="acme/text-1", messages=[{"role": "user", "content": "x"}], n=2)
            assert caught.value.body["param"] == "n"
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(model="acme/text-1", messages=[{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}])
            assert caught.value.body["param"] == "messages[0].content[0]"
    assert api.refusals == []
    [sent] = [c.body for c in api.calls]
    assert sent["max_tokens"] == 20 and "max_completion_tokens" not in sent and "user" not in sent
    assert "n" not in sent and sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_an_alias_falls_back_from_a_target_that_cannot_serve_the_request() -> None:
    """A capability a target lacks is said before anything is sent, so an
    alias tries its next target rather than failing."""
    api = Strict([say("From the small one.")], api_key="sk-acme-000000000000")
    vision = OpenAIChatAPI([say("I see a cat.")], api_key="sk-other-00000000000")
    with FakeUpstream() as upstream, FakeUpstream() as other:
        api.install(upstream)
        vision.install(other)
        config = {
            "providers": {"acme": {"type": "acme-quirks", "api_key": "sk-acme-000000000000",
                                   "base_url": upstream.url + "/v1"},
                          "big": {"type": "openai", "api_key": "sk-other-00000000000", "base_url": other.url + "/v1"}},
            "models": {"assistant": {"targets": [{"provider": "acme", "model": "text-1"},
                                                 {"provider": "big", "model": "gpt-4o"}]}},
        }
        with gateway(config) as server, server.openai_client() as client:
            reply = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}])
    assert reply.choices[0].message.content == "I see a cat."
    assert api.calls == [] and len(vision.calls) == 1


# -- the conformance kit on a quirky server ----------------------------------------------------------------


class ReasoningServer(Strict):
    """Acme's server as the kit sees it: it returns reasoning as ``reasoning``,
    refuses the keys Acme refuses, and refuses reasoning sent back."""

    reasoning_field = "reasoning"
    refuses_reasoning_in_history = True
    max_n = 1

    def completion(self, turn: Any, model: str) -> dict[str, Any]:
        return OpenAIChatAPI.completion(self, turn, model)


class ReasoningAcme(AcmeProvider):
    type = "acme-reasoning"
    quirks = Quirks(drop={"user"}, rename={"max_completion_tokens": "max_tokens"}, max_n=1, developer_role=False,
                    reasoning_field="reasoning", reasoning_in_history=False)
    capabilities: ClassVar[dict[str, set[str]]] = {}


class ReasoningPlugin:
    @portway.hookimpl
    def register_providers(self, register: Any) -> None:
        register(ReasoningAcme)


KEY = "sk-acme-000000000000"
CONFORMANCE = Conformance(
    provider="acme-reasoning",
    config=lambda url: {"type": "acme-reasoning", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: ReasoningServer(script, api_key=KEY),
    features=FEATURES - {"embeddings"} | {"reasoning"},
    params={"max_completion_tokens": "as:max_tokens", "n": "refused", "user": "dropped", "logprobs": "mapped"},
    plugins=[("acme-reasoning", ReasoningPlugin())],
)

test_conformance = conformance_tests(CONFORMANCE)


def test_the_kit_fails_an_adapter_that_forgets_a_quirk() -> None:
    """The same server behind an adapter that does not know it refuses
    reasoning sent back: the reasoning check must fail, naming the refusal."""

    class Forgetful(ReasoningAcme):
        type = "acme-forgetful"
        quirks = Quirks(drop={"user"}, rename={"max_completion_tokens": "max_tokens"}, max_n=1,
                        developer_role=False, reasoning_field="reasoning")

    class Plugin:
        @portway.hookimpl
        def register_providers(self, register: Any) -> None:
            register(Forgetful)

    forgetful = Conformance(
        provider="acme-forgetful", config=lambda url: {"type": "acme-forgetful", "api_key": KEY, "base_url": url + "/v1"},
        fake=lambda script: ReasoningServer(script, api_key=KEY), features=frozenset({"reasoning"}),
        plugins=[("acme-forgetful", Plugin())])
    with pytest.raises(AssertionError, match="reasoning_content is not allowed in input messages"):
        check_provider(forgetful, checks=["reasoning"])


def test_to_completion_and_to_chunk_are_where_an_answer_is_mapped() -> None:
    """A subclass's mapping methods are used for whole answers, JSON answers
    to stream requests and every streamed event (one it maps to None is skipped)."""

    class Shouting(OpenAICompatibleProvider):
        type = "acme-shouting"
        default_base_url = "http://127.0.0.1:9/v1"

        def to_completion(self, data: Any) -> Any:
            data["choices"][0]["message"]["content"] = data["choices"][0]["message"]["content"].upper()
            return data

        def to_chunk(self, data: Any) -> Any:
            delta = data["choices"][0]["delta"] if data.get("choices") else {}
            if delta.get("content") == "":
                return None  # skipped
            if delta.get("content"):
                delta["content"] = delta["content"].upper()
            return data

    class Plugin:
        @portway.hookimpl
        def register_providers(self, register: Any) -> None:
            register(Shouting)

    api = OpenAIChatAPI([say("hello there"), say("hello there")], api_key="sk-acme-000000000000")
    with FakeUpstream() as upstream:
        api.install(upstream)
        config = {"providers": {"acme": {"type": "acme-shouting", "api_key": "sk-acme-000000000000",
                                         "base_url": upstream.url + "/v1"}}}
        with GatewayServer(config, plugins=[("acme", Plugin())]) as server, server.openai_client() as client:
            whole = client.chat.completions.create(model="acme/m", messages=[{"role": "user", "content": "hi"}])
            chunks = list(client.chat.completions.create(model="acme/m", messages=[{"role": "user", "content": "hi"}],
                                                         stream=True))
    assert whole.choices[0].message.content == "HELLO THERE"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices]
    assert "".join(d or "" for d in deltas) == "HELLO THERE"
    assert "" not in deltas  # the role chunk (content "") was skipped by to_chunk
