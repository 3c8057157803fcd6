"""Guardrail type ``moderation``: the text through a configured provider's
moderation endpoint, in OpenAI's ``POST /moderations`` format (OpenAI, and
the providers that copy it), over that provider's own pooled connection
and credentials.  See docs/guardrails.md."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from portway import hookimpl
from portway.config import ConfigError
from portway.guardrails import Match, RemoteCheck, RemoteConfig, RemoteFailure, Stage

PORTWAY_PLUGIN_KIND = "guardrail"


class ModerationConfig(RemoteConfig):
    #: The configured provider instance (``providers:`` name) whose moderation endpoint is asked.
    provider: str
    model: str = "omni-moderation-latest"
    #: Only these categories count (``harassment``, ``self-harm/intent``, ...); default all.
    categories: list[str] | None = None
    #: Count a category when its score reaches this, instead of the endpoint's own ``flagged``.
    threshold: float | None = Field(default=None, ge=0, le=1)


class ModerationCheck(RemoteCheck):
    """Asks ``provider``'s ``/moderations``; a flagged category is a match."""

    type = "moderation"
    config_model = ModerationConfig

    def __init__(self, name: str, config: ModerationConfig) -> None:
        super().__init__(name, config)
        self.provider: Any = None

    def configure(self, gateway: Any) -> None:
        config: ModerationConfig = self.config  # type: ignore[assignment]
        self.provider = gateway.providers.get(config.provider)
        if self.provider is None:
            raise ConfigError(f"{gateway.config.source}: guardrails.checks.{self.name}.provider: no provider named "
                              f"{config.provider!r} (configured: {', '.join(sorted(gateway.providers)) or 'none'})")

    async def call(self, text: str, ctx: Any, stage: Stage) -> list[Match]:
        config: ModerationConfig = self.config  # type: ignore[assignment]
        response = await self.provider.http.request("POST", "/moderations",
                                                    json={"model": config.model, "input": text})
        if response.status != 200:
            raise RemoteFailure(f"status {response.status} from provider {config.provider!r}")
        try:
            result = response.json()["results"][0]
            categories: dict[str, Any] = result.get("categories") or {}
            scores: dict[str, Any] = result.get("category_scores") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise RemoteFailure(f"an answer from provider {config.provider!r} that is no moderation result") from None
        wanted = set(config.categories) if config.categories is not None else None
        if config.threshold is not None:
            hits = [c for c, s in scores.items() if isinstance(s, (int, float)) and s >= config.threshold]
        else:
            hits = [c for c, flagged in categories.items() if flagged is True]
        hits = sorted(c for c in hits if wanted is None or c in wanted)
        if not hits:
            return []
        return [Match(0, len(text), f"moderation:{c}", f"flagged by moderation ({', '.join(hits)})") for c in hits]


@hookimpl
def register_guardrails(register: Any) -> None:
    register(ModerationCheck)
