"""The {{ cookiecutter.name }} guardrail, through a real gateway in front of the mock
provider (model ``mock/echo`` answers "Mock reply to: <last user message>")."""

from typing import Any

import openai
import pytest
from portway.config import ConfigError

NAME = "{{ cookiecutter.name }}"
CONFIG = {
    "providers": {"mock": {"type": "mock"}},
    NAME: {"banned": ["forbidden"]},
}


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def client(gateway_server: Any) -> openai.OpenAI:
    return gateway_server(CONFIG).openai_client()


def test_a_clean_request_goes_through(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="mock/echo", messages=ask("hello there"))
    assert reply.choices[0].message.content == "Mock reply to: hello there"


@pytest.mark.parametrize("stream", [False, True])
def test_a_banned_word_blocks_the_request(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="mock/echo", messages=ask("tell me the Forbidden thing"), stream=stream)
    assert caught.value.code == "guardrail_blocked"


def test_output_is_redacted(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="mock/echo", messages=ask("write to bob@example.com"))
    assert reply.choices[0].message.content == "Mock reply to: write to [redacted]"


def test_streamed_output_is_redacted(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="mock/echo", messages=ask("write to bob@example.com"), stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Mock reply to: write to [redacted]"


def test_bad_config_is_refused_at_start_up(gateway_server: Any) -> None:
    with pytest.raises(ConfigError, match="redact"):
        gateway_server({"providers": {"mock": {"type": "mock"}}, NAME: {"redact": ["(unclosed"]}})


def test_two_gateways_in_one_process_keep_their_own_config(gateway_server: Any) -> None:
    """Settings live with each gateway, not in the module: starting a second
    gateway must not change what the first one does."""
    strict = gateway_server(CONFIG).openai_client()
    lenient = gateway_server({
        "providers": {"mock": {"type": "mock"}},
        NAME: {"banned": [], "redact": [r"\bsecret\b"], "replacement": "[hidden]"},
    }).openai_client()

    with pytest.raises(openai.BadRequestError):
        strict.chat.completions.create(model="mock/echo", messages=ask("the forbidden secret"))
    reply = lenient.chat.completions.create(model="mock/echo", messages=ask("the forbidden secret"))
    assert reply.choices[0].message.content == "Mock reply to: the forbidden [hidden]"
    reply = strict.chat.completions.create(model="mock/echo", messages=ask("a secret for bob@example.com"))
    assert reply.choices[0].message.content == "Mock reply to: a secret for [redacted]"
