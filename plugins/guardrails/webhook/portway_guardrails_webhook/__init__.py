"""Guardrail type ``webhook``: the text goes to a team's own service, which
says whether it matches.  A timeout and a fail-open or fail-closed policy
decide what a slow or broken service means.  See docs/guardrails.md.

The request (``POST url``, JSON)::

    {"check": "acme", "stage": "input", "text": "...", "model": "support-bot",
     "request_id": "req_...", "key_id": "key_..."}

The answer (``200``, JSON): ``{"match": false}``, or ``{"match": true,
"category": "off_topic", "reason": "asks about a competitor"}`` (both
optional; the category defaults to ``webhook``).  Anything else (another
status, no JSON, no boolean ``match``) is a failure, and the policy applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import AnyHttpUrl, Field, SecretStr

from portway import hookimpl
from portway.guardrails import Match, RemoteCheck, RemoteConfig, RemoteFailure, Stage

if TYPE_CHECKING:
    import httpx

PORTWAY_PLUGIN_KIND = "guardrail"


class WebhookConfig(RemoteConfig):
    url: AnyHttpUrl
    #: Headers sent with each call (an authorization token: never logged).
    headers: dict[str, SecretStr] = Field(default_factory=dict)


class WebhookCheck(RemoteCheck):
    """POST the text to ``url``; its answer says whether it matches."""

    type = "webhook"
    config_model = WebhookConfig

    def __init__(self, name: str, config: WebhookConfig) -> None:
        super().__init__(name, config)
        self.url = str(config.url)
        self.client: httpx.AsyncClient | None = None

    async def start(self, gateway: Any) -> None:
        config: WebhookConfig = self.config  # type: ignore[assignment]
        import httpx  # here, not at every start-up: only a configured webhook check needs it

        # One pooled client per check, for the gateway's life: never one per request.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout), follow_redirects=False,
            headers={k: v.get_secret_value() for k, v in config.headers.items()})

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def call(self, text: str, ctx: Any, stage: Stage) -> list[Match]:
        if self.client is None:
            raise RemoteFailure("not started")
        payload = {"check": self.name, "stage": stage, "text": text, "model": ctx.model,
                   "request_id": ctx.request_id, "key_id": ctx.key_id}
        response = await self.client.post(self.url, json=payload)
        if response.status_code != 200:
            raise RemoteFailure(f"status {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise RemoteFailure("an answer that is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("match"), bool):
            raise RemoteFailure("an answer without a boolean 'match'")
        if not answer["match"]:
            return []
        category = answer.get("category") if isinstance(answer.get("category"), str) else "webhook"
        reason = answer.get("reason") if isinstance(answer.get("reason"), str) else f"the {self.name} service said so"
        return [Match(0, len(text), category[:64], reason[:300])]


@hookimpl
def register_guardrails(register: Any) -> None:
    register(WebhookCheck)
