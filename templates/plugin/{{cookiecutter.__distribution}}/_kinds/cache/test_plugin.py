"""The {{ cookiecutter.name }} cache, through a real gateway in front of the mock
provider.  The ``x-portway-provider`` response header says who answered:
``mock`` (the provider) or ``cache``."""

from typing import Any

import openai

NAME = "{{ cookiecutter.name }}"
MOCK = {"mock": {"type": "mock"}}


def ask(client: openai.OpenAI, text: str) -> tuple[str, str | None]:
    """(who answered, the answer) for one chat request."""
    raw = client.chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": text}]
    )
    return raw.headers["x-portway-provider"], raw.parse().choices[0].message.content


def test_an_identical_request_is_served_from_the_cache(gateway_server: Any) -> None:
    client = gateway_server({"providers": MOCK}).openai_client()

    assert ask(client, "hello") == ("mock", "Mock reply to: hello")
    assert ask(client, "hello") == ("cache", "Mock reply to: hello")
    assert ask(client, "something else") == ("mock", "Mock reply to: something else")


def test_a_streamed_request_is_served_from_a_cached_answer(gateway_server: Any) -> None:
    client = gateway_server({"providers": MOCK}).openai_client()
    ask(client, "hello")

    with client.chat.completions.with_streaming_response.create(
        model="mock/echo", messages=[{"role": "user", "content": "hello"}], stream=True
    ) as raw:
        assert raw.headers["x-portway-provider"] == "cache"
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)

    assert text == "Mock reply to: hello"


def test_the_least_recently_used_entry_is_evicted(gateway_server: Any) -> None:
    client = gateway_server({"providers": MOCK, NAME: {"max_entries": 1}}).openai_client()

    ask(client, "one")
    ask(client, "two")  # evicts "one"

    assert ask(client, "two")[0] == "cache"
    assert ask(client, "one")[0] == "mock"
