"""Guardrail types that need nothing but the text and the request:
``regex``, ``deny-list``, ``prompt-injection``, ``url``, ``code`` (parts of
a text, redactable), ``length``, ``json``, ``json-schema``, ``language``
(the whole text) and ``models``, ``metadata`` (the request).  See
docs/guardrails.md."""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway_guardrails_basic.spans import CodeCheck, DenyListCheck, PromptInjectionCheck, RegexCheck, URLCheck
from portway_guardrails_basic.whole import (
    JSONCheck,
    JSONSchemaCheck,
    LanguageCheck,
    LengthCheck,
    MetadataCheck,
    ModelsCheck,
)

PORTWAY_PLUGIN_KIND = "guardrail"

CHECKS = (RegexCheck, DenyListCheck, PromptInjectionCheck, URLCheck, CodeCheck, LengthCheck, JSONCheck,
          JSONSchemaCheck, LanguageCheck, ModelsCheck, MetadataCheck)


@hookimpl
def register_guardrails(register: Any) -> None:
    for check in CHECKS:
        register(check)
