"""The moderation check through a running gateway: the text goes to the
configured provider's ``/moderations`` (a fake OpenAI upstream on a real
socket), with the provider's own credentials, and its answer decides."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from portway.config import ConfigError
from portway.testing import FakeUpstream, json_reply
from portway.testing.gateway import GatewayServer

KEY = "sk-moderation-test-0123456789"
CATEGORIES = ["harassment", "harassment/threatening", "hate", "self-harm", "self-harm/intent", "sexual", "violence"]


def result(flagged: list[str], scores: dict[str, float] | None = None) -> Any:
    return json_reply({"id": "modr-1", "model": "omni-moderation-latest", "results": [{
        "flagged": bool(flagged),
        "categories": {c: c in flagged for c in CATEGORIES},
        "category_scores": {c: (scores or {}).get(c, 0.9 if c in flagged else 0.01) for c in CATEGORIES},
        "category_applied_input_types": {c: ["text"] for c in CATEGORIES}}]})


def completion() -> Any:
    return json_reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}]})


def config(upstream: FakeUpstream, **check: Any) -> dict[str, Any]:
    mod = {"type": "moderation", "provider": "oai", "action": "deny", **check}
    return {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}},
            "models": {"plain": {"target": {"provider": "oai", "model": "m"}}},
            "guardrails": {"checks": {"mod": mod}, "default": ["mod"]}}


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        up.add("/v1/chat/completions", completion())
        yield up


def ask(server: GatewayServer, text: str = "hello") -> Any:
    return server.openai_client().chat.completions.with_raw_response.create(
        model="plain", messages=[{"role": "user", "content": text}])


def moderation_calls(upstream: FakeUpstream) -> list[Any]:
    return [r for r in upstream.requests if r.path == "/v1/moderations"]


def test_clean_text_passes_and_the_provider_is_asked_with_its_key(upstream: FakeUpstream) -> None:
    upstream.add("/v1/moderations", result([]))
    with GatewayServer(config(upstream, on=["input"])) as server:
        assert ask(server, "a kind word").parse().choices[0].message.content == "fine"
    [call] = moderation_calls(upstream)
    assert call.json() == {"model": "omni-moderation-latest", "input": "a kind word"}
    assert call.headers["authorization"] == f"Bearer {KEY}"


def test_flagged_input_is_denied_with_the_categories(upstream: FakeUpstream) -> None:
    upstream.add("/v1/moderations", result(["harassment", "violence"]))
    with GatewayServer(config(upstream, on=["input"])) as server:
        with pytest.raises(openai.BadRequestError) as caught:
            ask(server)
    assert "flagged by moderation (harassment, violence)" in caught.value.message
    assert caught.value.response.headers["x-portway-guardrails"] == \
        "mod=deny:moderation:harassment,moderation:violence@input"
    assert [r.path for r in upstream.requests] == ["/v1/moderations"]  # and no chat call


def test_output_is_moderated_too(upstream: FakeUpstream) -> None:
    upstream.add("/v1/moderations", result(["hate"]))
    with GatewayServer(config(upstream, on=["output"])) as server:
        with pytest.raises(openai.BadRequestError, match="hate"):
            ask(server)
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions", "/v1/moderations"]
    assert moderation_calls(upstream)[0].json()["input"] == "fine"


@pytest.mark.parametrize(("check", "flagged", "scores", "denied"), [
    ({"categories": ["violence"]}, ["harassment"], None, False),       # only the categories asked for count
    ({"categories": ["violence"]}, ["violence"], None, True),
    ({"threshold": 0.5}, [], {"sexual": 0.6}, True),                 # a score at the threshold counts
    ({"threshold": 0.5}, ["hate"], {"hate": 0.4}, False),             # flagged, but under the threshold
])
def test_categories_and_threshold(upstream: FakeUpstream, check: dict, flagged: list[str],
                                  scores: dict | None, denied: bool) -> None:
    upstream.add("/v1/moderations", result(flagged, scores))
    with GatewayServer(config(upstream, on=["input"], **check)) as server:
        if denied:
            with pytest.raises(openai.BadRequestError):
                ask(server)
        else:
            assert ask(server).parse().choices[0].message.content == "fine"


@pytest.mark.parametrize(("policy", "passes"), [("closed", False), ("open", True)])
def test_a_failing_endpoint_follows_the_policy(upstream: FakeUpstream, policy: str, passes: bool) -> None:
    upstream.add("/v1/moderations", json_reply({"error": {"message": "down", "type": "server_error"}}, 503))
    with GatewayServer(config(upstream, on=["input"], on_failure=policy)) as server:
        if passes:
            assert ask(server).parse().choices[0].message.content == "fine"
        else:
            with pytest.raises(openai.BadRequestError, match="status 503.*fail-closed"):
                ask(server)


def test_an_unknown_provider_stops_the_start(upstream: FakeUpstream) -> None:
    cfg = config(upstream, provider="nope")
    with pytest.raises(ConfigError, match=r"guardrails\.checks\.mod\.provider: no provider named 'nope'"):
        GatewayServer(cfg)
