"""Guardrail types ``pii`` and ``secrets``: personal data and credentials,
found by pattern and confirmed by checksum where the format has one (card
numbers: Luhn; IBANs: ISO 7064 mod 97; IP addresses: parsed).  See
docs/guardrails.md."""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway_guardrails_pii.pii import PIICheck
from portway_guardrails_pii.secrets import SecretsCheck

PORTWAY_PLUGIN_KIND = "guardrail"


@hookimpl
def register_guardrails(register: Any) -> None:
    register(PIICheck)
    register(SecretsCheck)
