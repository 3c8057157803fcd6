"""The {{ cookiecutter.name }} plugin, through a real gateway in front of the mock provider."""

from typing import Any

import httpx
from portway import hookimpl

NAME = "{{ cookiecutter.name }}"
CONFIG = {"providers": {"mock": {"type": "mock"}}}


def test_the_hello_endpoint(gateway_server: Any) -> None:
    server = gateway_server(CONFIG)

    response = httpx.get(f"{server.url}/{NAME}/hello")

    assert response.status_code == 200
    assert response.json() == {"plugin": NAME, "hello": "world", "providers": ["mock"]}


def test_pre_request_tags_every_request(gateway_server: Any) -> None:
    seen: list[Any] = []

    class Probe:
        """A throwaway plugin, registered just for this test, that reads
        what the plugin under test left in ctx.metadata."""

        @hookimpl
        def request_finished(self, ctx: Any) -> None:
            seen.append(ctx.metadata.get(NAME))

    server = gateway_server(CONFIG, plugins=[("probe", Probe())])
    reply = server.openai_client().chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "hello"}]
    )

    assert reply.choices[0].message.content == "Mock reply to: hello"
    [tag] = seen
    assert tag["received_at"] > 0
    assert tag["user_agent"].startswith("OpenAI/Python")
