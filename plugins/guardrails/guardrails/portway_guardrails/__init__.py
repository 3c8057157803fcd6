"""The guardrail framework: the ``guardrails:`` config section, and the
checks it names run on every request's input (``pre_request``) and output
(``post_chunk`` for streams, ``post_response`` otherwise).

Check types come from other plugins through ``register_guardrails`` (the
built-ins: ``portway-guardrails-basic``, ``-pii``, ``-webhook``,
``-moderation``).  With no check configured, this plugin adds no hook to
the request path at all (see ``register_request_hooks``).  See
docs/guardrails.md.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from portway import hookimpl

PORTWAY_PLUGIN_KIND = "guardrail"


class GuardrailsConfig(BaseModel):
    """The ``guardrails:`` section."""

    model_config = ConfigDict(extra="forbid")

    #: Named checks: ``{name: {type: ..., action: ..., on: [...], <the type's parameters>}}``.
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Checks run on every request.
    default: list[str] = Field(default_factory=list)
    #: Characters of streamed output held back so a match split across chunks is seen whole.
    stream_window: int = Field(default=64, ge=1, le=65536)
    #: Start the upstream call while remote input checks (webhook, moderation) run; cancel it on a deny.
    parallel: bool = False


@hookimpl
def register_config(register: Any) -> None:
    register("guardrails", GuardrailsConfig)


@hookimpl
def register_alias_keys(register: Any) -> None:
    # models.<alias>.guardrails: names of configured checks added for the alias.
    register("guardrails", list[str])


@hookimpl
def register_request_hooks(gateway: Any, register: Any) -> None:
    from portway_guardrails.runner import Guardrails

    config: GuardrailsConfig = gateway.plugin_config["guardrails"]
    if config.checks:
        register("guardrails.runner", Guardrails.from_config(gateway, config))
