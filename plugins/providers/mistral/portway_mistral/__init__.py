"""Mistral AI provider: Chat Completions (streamed or not) and Embeddings.

Mistral's API is OpenAI-shaped, so this adapter is the shared
:class:`~portway.formats.openai.OpenAICompatibleProvider` with Mistral's
differences as :class:`~portway.quirks.Quirks` and three small overrides:
the request (:meth:`MistralProvider.prepare`: tool-call ids, ``tool_choice``,
what each message may carry), the answer (:mod:`portway_mistral.answer`:
thinking chunks, ``model_length``, usage on the last chunk) and the error
bodies (:mod:`portway_mistral.errors`).

Mistral validates every request against its schema and refuses (a 422,
``extra_forbidden``) any key it does not know, at the top level and inside
messages (``mistralai/client-python``, ``src/mistralai/client/models/
chatcompletionrequest.py`` lists the keys; the README cites each rule).
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.config import ProviderConfig
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks
from portway_mistral import answer
from portway_mistral.errors import parse_error_body
from portway_mistral.ids import map_tool_call_ids

PORTWAY_PLUGIN_KIND = "provider"

#: What each message may carry, by role (the SDK's ``SystemMessage``,
#: ``UserMessage``, ``AssistantMessage``, ``ToolMessage``); anything else is
#: a 422.  What OpenAI clients echo back in an assistant message
#: (``refusal``, ``annotations``, ``audio``) is left out.
MESSAGE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
#: What a tool call in the history may carry (the SDK's ``ToolCall``).
TOOL_CALL_KEYS = frozenset({"id", "type", "function", "index"})

#: Keys OpenAI's embeddings take under another name at Mistral
#: (``embeddingrequest.py``), and those that only steer OpenAI.
EMBEDDINGS_RENAME = {"dimensions": "output_dimension"}
EMBEDDINGS_DROP = frozenset({"user"})


class MistralConfig(ProviderConfig):
    #: Sent as ``safe_prompt`` with every chat request that does not set it:
    #: Mistral then prepends its safety system prompt.
    safe_prompt: bool | None = None
    #: Sent as ``prompt_mode`` with every chat request that does not set it
    #: (``"reasoning"``: the reasoning models' system prompt).
    prompt_mode: str | None = None


class MistralProvider(OpenAICompatibleProvider):
    type = "mistral"
    config_model = MistralConfig
    default_base_url = "https://api.mistral.ai/v1"
    env_key = "MISTRAL_API_KEY"
    default_models = ("mistral-large-latest", "mistral-medium-latest", "mistral-small-latest",
                      "magistral-medium-latest", "magistral-small-latest", "codestral-latest",
                      "devstral-medium-latest", "pixtral-large-latest", "ministral-8b-latest", "open-mistral-nemo",
                      "mistral-embed", "codestral-embed")
    quirks = Quirks(
        # Mistral's names for OpenAI's parameters.
        rename={"max_completion_tokens": "max_tokens", "seed": "random_seed"},
        # An end-user id and OpenAI's serving options: nothing at Mistral, and a 422 if sent.
        drop=frozenset({"user", "service_tier", "store"}),
        # Mistral returns no log probabilities and has no logit bias: the client would miss them.
        refuse={"logprobs": "Mistral returns no log probabilities",
                "top_logprobs": "Mistral returns no log probabilities",
                "logit_bias": "Mistral has no logit_bias"},
        stream_options=False,  # a 422; the usage comes on the last chunk anyway
        developer_role=False,  # roles: system, user, assistant, tool
        message_names=False,   # `name` is a 422 on system, user and assistant messages
        reasoning_in_history=False,  # `reasoning_content` is a 422 on an assistant message
    )
    #: Only the model families whose abilities are certain (Pixtral and the
    #: Medium 3 / Small 3.x models read images; the code models and Nemo do not;
    #: embedding models do nothing of the kind); other models are not checked.
    capabilities = {
        "mistral-embed*": (),
        "codestral-embed*": (),
        "pixtral-*": ("tools", "vision", "json"),
        "mistral-medium-latest": ("tools", "vision", "json"),
        "mistral-medium-25*": ("tools", "vision", "json"),
        "mistral-small-latest": ("tools", "vision", "json"),
        "codestral-*": ("tools", "json"),
        "devstral-*": ("tools", "json"),
        "open-mistral-nemo*": ("tools", "json"),
        "ministral-*-2410": ("tools", "json"),
    }

    @property
    def settings(self) -> MistralConfig:
        return self.config  # type: ignore[return-value]

    # -- the request ---------------------------------------------------------------

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """After the quirks (``body`` is already a copy): Mistral's name for
        ``tool_choice: "required"``, the configured defaults, and messages
        as Mistral's schema takes them."""
        if body.get("tool_choice") == "required":
            body["tool_choice"] = "any"  # Mistral's own name, taken by every API version
        if self.settings.safe_prompt is not None:
            body.setdefault("safe_prompt", self.settings.safe_prompt)
        if self.settings.prompt_mode is not None:
            body.setdefault("prompt_mode", self.settings.prompt_mode)
        messages = body.get("messages")
        if isinstance(messages, list):
            body["messages"] = map_tool_call_ids([_message(m) for m in messages])
        return body

    # -- the answer ------------------------------------------------------------------

    def to_completion(self, data: Any) -> Any:
        return answer.completion(data)

    def to_chunk(self, data: Any) -> Any:
        if isinstance(data, dict) and data.get("object") == "error" and "choices" not in data:
            raise self.stream_error(data)
        return answer.chunk(data)

    # -- embeddings ------------------------------------------------------------------

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        wire = {EMBEDDINGS_RENAME.get(key, key): value for key, value in body.items() if key not in EMBEDDINGS_DROP}
        return await super().embeddings(wire, ctx)

    # -- errors ------------------------------------------------------------------------

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        return parse_error_body(content)


def _message(message: Any) -> Any:
    """One message with only the keys Mistral's schema has for its role
    (an unknown role is left for Mistral to refuse)."""
    if not isinstance(message, dict):
        return message
    allowed = MESSAGE_KEYS.get(message.get("role"))  # type: ignore[arg-type]
    if allowed is None:
        return message
    out = {key: value for key, value in message.items() if key in allowed}
    calls = out.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [{k: v for k, v in call.items() if k in TOOL_CALL_KEYS} if isinstance(call, dict)
                             else call for call in calls]
    return out


@hookimpl
def register_providers(register: Any) -> None:
    register(MistralProvider)
