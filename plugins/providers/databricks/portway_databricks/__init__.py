"""Databricks Model Serving: the Foundation Model APIs' OpenAI-compatible
Chat Completions and Embeddings under a workspace's ``/serving-endpoints``.

The model a client names is the serving endpoint (``databricks-claude-sonnet-4``,
``databricks-meta-llama-3-3-70b-instruct``, or one's own), sent as ``model``
to ``<workspace>/serving-endpoints/chat/completions``, as the ``openai`` SDK
does with ``base_url=<workspace>/serving-endpoints``.  There is no default
URL: the workspace comes from ``host`` (or ``base_url``) in the config, or
``$DATABRICKS_HOST``; the token from ``$DATABRICKS_TOKEN``.

Databricks's differences from OpenAI (each with its source in the README):

- the token limit is ``max_tokens``: ``max_completion_tokens`` is sent under that name;
- messages are ``system``, ``user``, ``assistant`` and ``tool``: a
  ``developer`` message is sent as ``system``;
- a reasoning model's answer ``content`` is a list of parts, ``{"type":
  "reasoning", "summary": [{"type": "summary_text", "text": ...}]}`` and
  ``{"type": "text", "text": ...}``, whole and in stream deltas: the text
  parts become ``content``, the summaries ``reasoning_content``;
- an assistant message's ``reasoning_content`` is not sent back (Databricks
  carries reasoning as signed content parts, which a client's text cannot rebuild);
- errors are ``{"error_code": "...", "message": "..."}``: the code is kept.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from pydantic import field_validator

from portway import hookimpl, serialization
from portway.config import ProviderConfig
from portway.errors import PortwayError
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"

SERVING = "/serving-endpoints"


class DatabricksConfig(ProviderConfig):
    #: The workspace URL (``https://adb-1234567890123456.7.azuredatabricks.net``,
    #: ``https://dbc-a1b2c3d4-e5f6.cloud.databricks.com``); ``/serving-endpoints``
    #: is added.  Unset: ``base_url``, else ``$DATABRICKS_HOST``.
    host: str | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in "?# ")):
            raise ValueError("must be a workspace URL such as https://dbc-a1b2c3d4-e5f6.cloud.databricks.com")
        return value


def serving_url(workspace: str) -> str:
    """``workspace``'s serving-endpoints URL: ``https://`` is assumed when no
    scheme is given (as the Databricks SDK does for ``DATABRICKS_HOST``), and
    ``/serving-endpoints`` is added to a URL that has no path."""
    workspace = workspace.strip().rstrip("/")
    if "://" not in workspace:
        workspace = "https://" + workspace
    return workspace if urlsplit(workspace).path else workspace + SERVING


class DatabricksProvider(OpenAICompatibleProvider):
    type = "databricks"
    config_model = DatabricksConfig
    env_key = "DATABRICKS_TOKEN"
    env_base_url = "DATABRICKS_HOST"
    default_models = ("databricks-claude-sonnet-4", "databricks-meta-llama-3-3-70b-instruct",
                      "databricks-llama-4-maverick", "databricks-gpt-oss-120b", "databricks-gte-large-en",
                      "databricks-bge-large-en")
    quirks = Quirks(rename={"max_completion_tokens": "max_tokens"}, developer_role=False,
                    reasoning_in_history=False)

    def __init__(self, name: str, config: ProviderConfig) -> None:
        settings: DatabricksConfig = config  # type: ignore[assignment]
        workspace = settings.host or config.base_url or os.environ.get(self.env_base_url or "")
        if not workspace:
            raise PortwayError(f"provider {name!r} needs a Databricks workspace: set host (or base_url) in its "
                               f"config, or DATABRICKS_HOST", kind="bad_request")
        config = config.model_copy(update={"base_url": serving_url(workspace)})
        super().__init__(name, config)

    # -- answers ------------------------------------------------------------------

    def to_completion(self, data: Any) -> Any:
        for choice in _choices(data):
            _flatten(choice.get("message"))
        return data

    def to_chunk(self, data: Any) -> Any:
        for choice in _choices(data):
            _flatten(choice.get("delta"))
        return data

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        """Databricks's ``{"error_code", "message"}``; other shapes as the base reads them."""
        try:
            data = serialization.loads(content)
        except serialization.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error_code"), str) and "error" not in data:
            return data["error_code"], str(data.get("message") or data["error_code"])
        return OpenAICompatibleProvider.parse_error_body(content)


def _choices(data: Any) -> list[dict[str, Any]]:
    choices = data.get("choices") if isinstance(data, dict) else None
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def _flatten(message: Any) -> None:
    """A message (or delta) whose ``content`` is a list of text and reasoning
    parts, as plain ``content`` and ``reasoning_content`` (in place).  A list
    with any other part is left for the answer check to name."""
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return
    texts: list[str] = []
    reasoning: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "reasoning" and isinstance(part.get("summary"), list):
            reasoning.extend(s["text"] for s in part["summary"] if isinstance(s, dict) and isinstance(s.get("text"), str))
        else:
            return
    message["content"] = "".join(texts) if texts or not reasoning else None
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)


@hookimpl
def register_providers(register: Any) -> None:
    register(DatabricksProvider)
