"""The replicate provider behind a real gateway, with the official SDKs as clients:
what the client sees of Replicate's limits, and of a prediction that takes its time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from portway_replicate.testing import ReplicateAPI

from portway.testing import FakeUpstream
from portway.testing.script import say

KEY = "r8_gateway-test-0123456789"
LLAMA = "meta/meta-llama-3-70b-instruct"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture
def gateway(gateway_server: Callable[..., Any], fake_upstream: FakeUpstream) -> Any:
    return gateway_server({"providers": {"rep": {"type": "replicate", "api_key": KEY, "poll_interval": 0.02,
                                                 "base_url": fake_upstream.url + "/v1"}}})


@pytest.mark.parametrize(("extra", "param"), [({"tools": TOOLS}, "tools"),
                                              ({"response_format": {"type": "json_object"}}, "response_format")])
def test_what_no_replicate_model_can_do_is_a_400_naming_it(gateway: Any, fake_upstream: FakeUpstream,
                                                           extra: dict[str, Any], param: str) -> None:
    api = ReplicateAPI([say("Hi.")], api_key=KEY).install(fake_upstream)
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai_client().chat.completions.create(
            model=f"rep/{LLAMA}", messages=[{"role": "user", "content": "Hi"}], **extra)
    error = caught.value.response.json()["error"]
    assert error["param"] == param and error["code"] == "unsupported"
    assert api.calls == [] and fake_upstream.requests == []


def test_a_slow_prediction_is_polled_to_its_answer(gateway: Any, fake_upstream: FakeUpstream) -> None:
    api = ReplicateAPI([say("Slow but sure.", input_tokens=8, output_tokens=4)], api_key=KEY,
                       polls=3).install(fake_upstream)
    reply = gateway.openai_client().chat.completions.create(
        model=f"rep/{LLAMA}", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == "Slow but sure."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (8, 4)
    assert [r.method for r in fake_upstream.requests] == ["POST", "GET", "GET", "GET"]
    assert not api.refusals
