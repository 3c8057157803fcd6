"""Anthropic Messages <-> canonical OpenAI Chat Completions.

Pure functions and two small stream state machines, shared by the
``anthropic`` provider (OpenAI in, Anthropic on the wire) and the gateway's
``/v1/messages`` endpoint (Anthropic in, any provider behind it).

Choices worth knowing (the plugin README lists them for users):

* ``response_format: json_object`` has no Anthropic equivalent: an
  instruction to answer with one JSON object is appended to ``system``.
* Anthropic thinking travels in the OpenAI shape as ``reasoning_content``
  (the de-facto field of DeepSeek, vLLM, LiteLLM) plus ``thinking_blocks``
  (the full blocks with their ``signature``), because Anthropic rejects a
  tool-use turn replayed without its signed thinking block.
* Cache writes travel as ``prompt_tokens_details.cache_write_tokens`` (an
  OpenAI SDK field) so cost accounting can price them.
* Anthropic-only request keys (``top_k``, ``thinking``, ``cache_control`` on
  parts and tools, ...) stay in the canonical body as extra keys, so an
  Anthropic client going through the gateway to Anthropic loses nothing;
  other providers must ignore keys they do not know.
"""

from portway.formats.anthropic.checks import check_message
from portway.formats.anthropic.common import (
    ANTHROPIC_PASSTHROUGH,
    JSON_OBJECT_INSTRUCTION,
    OPENAI_PART_TYPES,
    SAMPLING_PARAMS,
)
from portway.formats.anthropic.ingress import (
    OpenAIStreamToAnthropic,
    anthropic_request_to_openai,
    openai_response_to_anthropic,
)
from portway.formats.anthropic.upstream import (
    AnthropicStreamToOpenAI,
    anthropic_response_to_openai,
    openai_to_anthropic_request,
)

__all__ = [
    "ANTHROPIC_PASSTHROUGH",
    "JSON_OBJECT_INSTRUCTION",
    "OPENAI_PART_TYPES",
    "SAMPLING_PARAMS",
    "AnthropicStreamToOpenAI",
    "OpenAIStreamToAnthropic",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "check_message",
    "openai_response_to_anthropic",
    "openai_to_anthropic_request",
]
