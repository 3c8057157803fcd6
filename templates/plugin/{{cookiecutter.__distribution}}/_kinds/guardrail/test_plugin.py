"""The {{ cookiecutter.name }} guardrail type, through a real gateway in front of the
mock provider (model ``mock/echo`` answers "Mock reply to: <last user message>")."""

from typing import Any

import openai
import pytest
from portway.config import ConfigError

NAME = "{{ cookiecutter.name }}"


def config(**checks: dict[str, Any]) -> dict[str, Any]:
    return {"providers": {"mock": {"type": "mock"}},
            "guardrails": {"checks": {name: {"type": NAME, **check} for name, check in checks.items()},
                           "default": list(checks)}}


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_a_clean_request_goes_through(gateway_server: Any) -> None:
    client = gateway_server(config(block={"words": ["project x"], "action": "deny"})).openai_client()
    reply = client.chat.completions.create(model="mock/echo", messages=ask("hello there"))
    assert reply.choices[0].message.content == "Mock reply to: hello there"


@pytest.mark.parametrize("stream", [False, True])
def test_deny_refuses_the_request(gateway_server: Any, stream: bool) -> None:
    client = gateway_server(config(block={"words": ["project x"], "action": "deny", "on": ["input"]})).openai_client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="mock/echo", messages=ask("tell me about Project  X"), stream=stream)
    assert caught.value.code == "guardrail_denied" and "'block'" in caught.value.message


@pytest.mark.parametrize("stream", [False, True])
def test_redact_replaces_the_words(gateway_server: Any, stream: bool) -> None:
    client = gateway_server(config(hide={"words": ["alpha-7"], "category": "code", "action": "redact",
                                         "on": ["output"]})).openai_client()
    answer = client.chat.completions.create(model="mock/echo", messages=ask("the code is alpha-7, ok"),
                                            stream=stream)
    text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices) if stream \
        else answer.choices[0].message.content
    assert text == "Mock reply to: the code is [REDACTED:code], ok"


def test_flag_passes_and_is_recorded(gateway_server: Any) -> None:
    client = gateway_server(config(watch={"words": ["alpha-7"], "action": "flag", "on": ["input"]})).openai_client()
    raw = client.chat.completions.with_raw_response.create(model="mock/echo", messages=ask("alpha-7 please"))
    assert raw.parse().choices[0].message.content == "Mock reply to: alpha-7 please"
    assert raw.headers["x-portway-guardrails"] == "watch=flag:word@input"


def test_bad_config_is_refused_at_start_up(gateway_server: Any) -> None:
    with pytest.raises(ConfigError, match="words"):
        gateway_server(config(block={"words": [], "action": "deny"}))
