"""Portway provider plugin for Amazon Bedrock Runtime: ``Converse`` and
``ConverseStream`` for every model family, Claude's own Messages body through
``InvokeModel`` for Anthropic clients, and Titan / Cohere embeddings; SigV4
or a Bedrock API key.  See the README for the mapping rules."""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway_bedrock.provider import BedrockConfig, BedrockProvider

PORTWAY_PLUGIN_KIND = "provider"


@hookimpl
def register_providers(register: Any) -> None:
    register(BedrockProvider)


__all__ = ["PORTWAY_PLUGIN_KIND", "BedrockConfig", "BedrockProvider", "register_providers"]
