"""No credential, whole or masked, reaches a client in an upstream's error.

Providers echo a key they reject in a masked form.  The formats below are
OpenAI's as its API returns them (seen in users' reports of
``invalid_api_key`` errors): legacy keys as the first 8 characters, a run
of asterisks and the last 4 (``sk-WRQsP****…****xQBt``), project keys the
same with a longer run (``sk-proj-****…****MxYA``), and since 2026 the
short form ``sk-...1JMA``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import openai
import pytest

from portway.config import ProviderConfig
from portway.errors import ProviderError, redact
from portway.formats.openai import OpenAICompatibleProvider
from portway.testing import FakeUpstream, run_provider
from portway.testing.gateway import GatewayServer

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
LEGACY = "sk-WRQsPa1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8xQBt"
PROJECT = "sk-proj-" + "Ab3dE_f-9" * 17 + "MxYA"


def incorrect_key(shown: str) -> dict[str, Any]:
    """OpenAI's 401 for a key it does not know, echoing it as ``shown``."""
    return {"error": {"message": f"Incorrect API key provided: {shown}. You can find your API key at "
                                 "https://platform.openai.com/account/api-keys.",
                      "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}


def openai_masked(key: str) -> str:
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


MASKED_ECHOES = [
    pytest.param(LEGACY, openai_masked(LEGACY), id="legacy-key-asterisks"),
    pytest.param(PROJECT, openai_masked(PROJECT), id="project-key-asterisks"),
    pytest.param(PROJECT, "sk-...MxYA", id="short-form"),
    pytest.param(PROJECT, "sk-proj-****...****MxYA", id="asterisks-and-dots"),
    pytest.param(PROJECT, "sk-proj-Ab3\u2026MxYA", id="ellipsis-character"),
]


# -- the rule --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "shown"), MASKED_ECHOES)
def test_masked_echoes_are_redacted(key: str, shown: str) -> None:
    text = incorrect_key(shown)["error"]["message"]
    assert redact(text, [key]) == ("Incorrect API key provided: [redacted]. You can find your API key at "
                                   "https://platform.openai.com/account/api-keys.")


@pytest.mark.parametrize("text", [
    "Limit 3456 reached; 1...MxYA",          # a fragment alone, or with a start that is not the key's
    "keys look like sk-... or sk-proj-...",  # the public prefix alone
    "sk-proj-****MxYB",                       # another key's echo
    "xsk-proj-****MxYA",                      # the echo must start where a token starts
    "sk-***YA",                               # shows too little to be this key's (5 of at least 6)
])
def test_fragments_and_other_keys_are_left_alone(text: str) -> None:
    assert redact(text, [PROJECT]) == text


def test_exact_secrets_longest_first_and_short_values_ignored() -> None:
    text = "sent Authorization: Bearer sk-abcdefgh12 and the key sk-abcdefgh12; version 2023"
    assert redact(text, ["Bearer sk-abcdefgh12", "sk-abcdefgh12", "2023", ""]) == \
        "sent Authorization: [redacted] and the key [redacted]; version 2023"


def test_a_limit_never_leaves_part_of_a_secret() -> None:
    key = "sk-" + "q" * 40
    for cut in range(1, 60):
        text = "x" * cut + key + " " + key * 3 + key[:20] + "." * 5000
        out = redact(text, [key], limit=100)
        assert len(out) <= 100 and "qqqqqqq" not in out, cut


# -- through a gateway --------------------------------------------------------------------------------------

GOOGLE_KEY = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
HEADER_BEARER = "sk-configured-as-a-header-0001"
PROVIDERS: dict[str, dict[str, Any]] = {
    "legacy": {"api_key": LEGACY},
    "project": {"api_key": PROJECT},
    "goog": {"headers": {"x-goog-api-key": GOOGLE_KEY}},
    "bearer": {"headers": {"Authorization": f"Bearer {HEADER_BEARER}"}},
}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeUpstream, GatewayServer]]:
    """One gateway, one provider per way of holding a credential, each at
    its own path of one fake upstream."""
    with FakeUpstream() as upstream:
        providers = {name: {"type": "openai", "base_url": f"{upstream.url}/{name}/v1", **settings}
                     for name, settings in PROVIDERS.items()}
        with GatewayServer({"providers": providers}) as gateway:
            yield upstream, gateway


def client_error(served: tuple[FakeUpstream, GatewayServer], provider: str, status: int,
                 error: dict[str, Any]) -> dict[str, Any]:
    upstream, gateway = served
    upstream.json(f"/{provider}{CHAT}", {"error": error}, status=status)
    with pytest.raises(openai.APIStatusError) as info:
        gateway.openai_client().chat.completions.create(model=f"{provider}/gpt-4o", messages=HI)
    assert info.value.status_code == status
    return info.value.body  # type: ignore[return-value]


@pytest.mark.parametrize(("key", "shown"), MASKED_ECHOES[:3])
def test_openai_masked_echo_never_reaches_the_client(served: tuple[FakeUpstream, GatewayServer], key: str,
                                                     shown: str) -> None:
    body = client_error(served, "legacy" if key == LEGACY else "project", 401, incorrect_key(shown)["error"])
    assert body["message"] == ("provider '{}' rejected the gateway's credentials: Incorrect API key provided: "
                               "[redacted]. You can find your API key at https://platform.openai.com/account/api-keys."
                               .format("legacy" if key == LEGACY else "project"))


@pytest.mark.parametrize(("provider", "header", "secret"), [
    ("goog", "x-goog-api-key", GOOGLE_KEY),
    ("bearer", "authorization", HEADER_BEARER),  # the token inside "Bearer <token>" counts on its own
])
def test_credentials_in_configured_headers_are_redacted(served: tuple[FakeUpstream, GatewayServer], provider: str,
                                                        header: str, secret: str) -> None:
    masked = secret[:6] + "..." + secret[-4:]
    body = client_error(served, provider, 400, {"message": f"API key not valid: {secret} ({masked})",
                                                "type": "invalid_request_error"})
    assert secret in served[0].last.headers[header]  # it was sent, as configured
    assert body["message"] == f"provider '{provider}': API key not valid: [redacted] ([redacted])"


# -- what a provider declares ----------------------------------------------------------------------------------


class SignedProvider(OpenAICompatibleProvider):
    """A provider that signs each request: its credentials are an auth
    header of its own, a configured header it declares secret, and a token
    minted at run time."""

    type = "signed-test"
    secret_headers: ClassVar[frozenset[str]] = OpenAICompatibleProvider.secret_headers | {"x-acme-session"}
    minted = "tok-minted-at-run-time-777"

    def auth_headers(self) -> dict[str, str]:
        return {"x-acme-signature": "sig-0123456789abcdef"}

    def secrets(self) -> list[str]:
        return [*super().secrets(), self.minted]


def test_a_provider_declares_its_secrets(fake_upstream: FakeUpstream) -> None:
    echo = "sig-0123456789abcdef sess-abcdefghijkl tok-minted-at-run-time-777 tok-mi...-777 sig-01***cdef"
    fake_upstream.json(CHAT, {"error": {"message": echo, "type": "invalid_request_error"}}, status=403)
    config = ProviderConfig(type="signed-test", base_url=fake_upstream.url + "/v1",
                            headers={"X-Acme-Session": "sess-abcdefghijkl", "x-trace": "trace-visible-1"})
    provider = SignedProvider("signed", config)
    with pytest.raises(ProviderError) as info:
        run_provider(provider, lambda p: p.chat({"model": "m", "messages": HI}, None))
    assert info.value.message == "provider 'signed': " + " ".join(["[redacted]"] * 5)
    assert fake_upstream.last.headers["x-acme-signature"] == "sig-0123456789abcdef"
    assert "trace-visible-1" in provider.config.headers.values() and "trace-visible-1" not in provider.secrets()
