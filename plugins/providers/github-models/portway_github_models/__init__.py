"""GitHub Models provider: ``POST https://models.github.ai/inference/chat/completions``.

GitHub's REST reference ("REST API endpoints for models inference",
docs.github.com/en/rest/models/inference) documents the request body:
``model`` (``{publisher}/{model_name}``, e.g. ``openai/gpt-4.1``),
``messages`` (roles assistant, developer, system, user), ``frequency_penalty``,
``max_tokens``, ``modalities``, ``presence_penalty``, ``response_format``,
``seed``, ``stop``, ``stream``, ``stream_options``, ``temperature``,
``tool_choice`` ("auto", "required", "none"), ``tools``, ``top_p``.  The
key is a GitHub token with the ``models: read`` scope, as a bearer token;
``org`` attributes the requests to an organization
(``/orgs/{org}/inference/chat/completions``).  There is no embeddings
endpoint.

So ``max_completion_tokens`` is sent as ``max_tokens``; ``n``,
``logprobs``, ``logit_bias`` and a named ``tool_choice`` are refused;
``user`` and ``parallel_tool_calls`` are dropped.  A prompt over the
model's token limit on GitHub's tier is a 413 ``tokens_limit_reached``:
it is classified ``context_length`` (a model with a larger window can serve
it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from portway import hookimpl
from portway.config import ProviderConfig
from portway.formats.openai import OpenAICompatibleProvider
from portway.providers import retry_after
from portway.quirks import Quirks
from portway.upstream import UpstreamResponse

PORTWAY_PLUGIN_KIND = "provider"

HOST = "https://models.github.ai"
#: The REST API version GitHub's examples send.
API_VERSION = "2022-11-28"


class GitHubModelsConfig(ProviderConfig):
    #: An organization login: requests are attributed to (and billed to) it.
    org: str | None = None


class GitHubModelsProvider(OpenAICompatibleProvider):
    type = "github-models"
    config_model = GitHubModelsConfig
    default_base_url = HOST + "/inference"
    #: The variable GitHub's own examples and the ``gh models`` tooling read.
    env_key = "GITHUB_TOKEN"
    default_models = ("openai/gpt-4.1", "openai/gpt-4.1-mini", "openai/gpt-4.1-nano", "openai/gpt-4o",
                      "openai/gpt-4o-mini", "meta/Llama-4-Scout-17B-16E-Instruct", "deepseek/DeepSeek-V3-0324",
                      "mistral-ai/mistral-small-2503", "microsoft/Phi-4")
    capabilities = {
        "openai/gpt-4.1*": {"tools", "vision", "json"},
        "openai/gpt-4o*": {"tools", "vision", "json"},
        "meta/llama-4-*": {"tools", "vision", "json"},
        "microsoft/phi-4": {"json"},
        "deepseek/deepseek-r1*": {"json"},
    }
    quirks = Quirks(
        rename={"max_completion_tokens": "max_tokens"},
        max_n=1,
        refuse={"logprobs": "GitHub Models returns no logprobs",
                "logit_bias": "GitHub Models takes no logit_bias"},
        drop=frozenset({"user", "parallel_tool_calls"}),
        tool_choice_named=False,
    )

    def __init__(self, name: str, config: ProviderConfig) -> None:
        org = getattr(config, "org", None)
        if org and not config.base_url:
            config = config.model_copy(update={"base_url": f"{HOST}/orgs/{quote(org, safe='')}/inference"})
        super().__init__(name, config)

    def default_headers(self) -> dict[str, str]:
        return {"x-github-api-version": API_VERSION}

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings (GitHub Models serves chat completions only)")

    def error_from_response(self, response: UpstreamResponse) -> Any:
        code, message = self.parse_error_body(response.content)
        if response.status == 413 and code == "tokens_limit_reached":
            return self.make_error(message, kind="context_length", status=413, code=code,
                                   retry_after=retry_after(response.headers))
        return super().error_from_response(response)


@hookimpl
def register_providers(register: Any) -> None:
    register(GitHubModelsProvider)
