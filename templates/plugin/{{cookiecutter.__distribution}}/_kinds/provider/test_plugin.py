"""The {{ cookiecutter.name }} provider end to end: the openai and anthropic SDKs talk to
a real Portway gateway, which talks to a fake of the upstream's wire format on
a real socket (``fake_upstream``, a :class:`portway.testing.FakeUpstream`).

``test_conformance`` is Portway's provider conformance kit
(:mod:`portway.testing.conformance`): one test per common check (chat,
streams, system prompts, tools, images, JSON mode, parameters, usage, errors,
embeddings, ``/v1/messages``, client disconnects), each through its own
gateway.  Declare what your upstream cannot do in ``CONFORMANCE``, and the
checks for it are skipped; a failing check says what differed.
"""

from typing import Any

from portway.testing.conformance import FEATURES, Conformance, conformance_tests
from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import say

PROVIDER_TYPE = "{{ cookiecutter.name }}"
KEY = "sk-test-conformance-0123456789"  # 12 characters or more: the kit checks it is never echoed

CONFORMANCE = Conformance(
    provider=PROVIDER_TYPE,
    config=lambda url: {"type": PROVIDER_TYPE, "base_url": url + "/v1", "api_key": KEY},
    # A fake of the upstream's wire format, driven by a script of model turns.  OpenAIChatAPI
    # speaks Chat Completions, as this provider does as generated; subclass it for your server's
    # quirks (refused_params, authorize(), check()), or write a fake of another wire format with
    # the same members (see "Checking a provider with the conformance kit" in Portway's
    # docs/plugins.md).
    fake=lambda script: OpenAIChatAPI(script, api_key=KEY),
    model="my-model",
    # What the upstream maps; take out what it cannot do, e.g. FEATURES - {"vision_url"}.
    features=FEATURES,
    # max_tokens, stop, temperature, top_p, seed: "mapped" (the default), "dropped" or "refused".
    params={},
)

test_conformance = conformance_tests(CONFORMANCE)

MESSAGES = [{"role": "user", "content": "Hi"}]


def test_the_request_it_sends(fake_upstream: Any, gateway_server: Any) -> None:
    """What the conformance kit leaves to you: the exact request on the wire."""
    api = OpenAIChatAPI([say("Hello from upstream")], api_key=KEY).install(fake_upstream)
    client = gateway_server({"providers": {"upstream": CONFORMANCE.config(fake_upstream.url)}}).openai_client()

    reply = client.chat.completions.create(model="upstream/my-model", messages=MESSAGES)

    assert reply.choices[0].message.content == "Hello from upstream"
    [sent] = api.calls
    assert sent.request.path == "/v1/chat/completions"
    assert sent.request.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["model"] == "my-model"
    assert sent.body["messages"] == MESSAGES
