"""{{ cookiecutter.description }}

Adds the Portway provider type ``{{ cookiecutter.name }}``::

    providers:
      internal:
        type: {{ cookiecutter.name }}
        base_url: http://models.internal:8000/v1
        # api_key: ...   (or set {{ cookiecutter.__env_key }})

    models:
      chat:
        target: {provider: internal, model: my-model}

As generated it already serves an upstream that speaks the OpenAI Chat
Completions wire format (vLLM, TGI, llama.cpp's server, Ollama's ``/v1``
and most model servers do) end to end: chat, streamed chat, embeddings,
errors classified for retries and fallbacks.  Where your server differs
from OpenAI's API (a parameter it refuses or names otherwise, no
``developer`` role, reasoning under another field), say so in ``quirks``
(:class:`portway.quirks.Quirks`); for an upstream that speaks something
else, fill in the three mapping methods of
:class:`{{ cookiecutter.__class }}Provider` (``prepare``, ``to_completion``,
``to_chunk``) and the paths.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.config import ProviderConfig
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"


class {{ cookiecutter.__class }}Config(ProviderConfig):
    """The keys of a ``type: {{ cookiecutter.name }}`` entry under ``providers:``.

    Inherited from :class:`~portway.config.ProviderConfig`: ``base_url``,
    ``api_key``, ``timeout``, ``connect_timeout``, ``max_connections``,
    ``headers`` and ``models``.  Add your server's own settings here as typed
    fields (e.g. ``deployment: str | None = None``): they are validated when
    the gateway starts and read as ``self.config.<field>`` in the provider.
    """


class {{ cookiecutter.__class }}Provider(OpenAICompatibleProvider):
    """One configured ``{{ cookiecutter.name }}`` upstream.  The gateway makes one
    instance per entry under ``providers:``; ``self.http`` is its pooled
    HTTP client, already pointed at ``base_url`` with the auth headers."""

    type = "{{ cookiecutter.name }}"
    config_model = {{ cookiecutter.__class }}Config
    #: Used when the config gives no ``base_url`` (None: ``base_url`` is required).
    default_base_url = None
    #: Read for the key when the config gives no ``api_key``.
    env_key = "{{ cookiecutter.__env_key }}"
    #: Listed by ``GET /v1/models`` when the config lists no ``models``.
    default_models = ()
    #: Paths under ``base_url``; change them if your server uses others.
    chat_path = "/chat/completions"
    embeddings_path = "/embeddings"
    #: How your server differs from OpenAI's Chat Completions, as data, e.g.
    #: ``Quirks(refuse={"logprobs": "it returns none"}, rename={"max_completion_tokens": "max_tokens"},
    #: developer_role=False)``.  ``Quirks()`` is OpenAI's own behaviour.
    quirks = Quirks()
    #: What each model can do, for the models you know: shell-style patterns ->
    #: {"tools", "vision", "json"}.  A request that needs what its model lacks
    #: is refused (a 400 naming the field) before anything is sent.
    capabilities: dict[str, set[str]] = {}

    # Credentials go out as ``Authorization: Bearer <api_key>``; override
    # ``auth_headers()`` if your server wants another header.  Error answers
    # are classified by HTTP status (429 -> rate_limit, 5xx -> server_error,
    # ...) and by an OpenAI-style ``{"error": {...}}`` body; override
    # ``parse_error_body()`` if your server reports errors differently.

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """Turn the canonical request into your server's request body.

        ``body`` is an OpenAI Chat Completions body (already validated,
        ``model`` set to the upstream model name, ``quirks`` applied).  Add
        what ``quirks`` cannot say.  Return a new dict; do not change ``body``.
        """
        return body

    def to_completion(self, data: Any) -> Any:
        """Turn your server's (non-streamed) answer into an OpenAI
        ``chat.completion`` dict: ``id``, ``object``, ``created``, ``model``,
        ``choices[].message``, ``choices[].finish_reason`` and ``usage``.
        The result is checked afterwards, so ``data`` may be anything: leave
        what you do not expect as it is."""
        return super().to_completion(data)

    def to_chunk(self, data: Any) -> Any:
        """Turn one streamed event (one SSE ``data:`` payload) into an OpenAI
        ``chat.completion.chunk`` dict, or return ``None`` to skip it.  Send
        ``usage`` on a last chunk with ``choices: []`` if your server reports it."""
        return super().to_chunk(data)


@hookimpl
def register_providers(register: Any) -> None:
    register({{ cookiecutter.__class }}Provider)
