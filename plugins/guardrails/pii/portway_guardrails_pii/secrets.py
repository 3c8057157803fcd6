"""Credentials in text: the API keys of well-known providers by their
documented prefixes, private key blocks and JSON Web Tokens."""

from __future__ import annotations

import base64
import json
import re
from typing import Literal

from pydantic import Field

from portway.guardrails import Check, CheckConfig, Match

Kind = Literal["openai_key", "anthropic_key", "aws_key", "github_token", "google_key", "slack_token", "stripe_key",
               "private_key", "jwt"]

_B = r"(?<![A-Za-z0-9_-])"  # a token starts here
_A = r"(?![A-Za-z0-9_-])"   # and ends here
PATTERNS: dict[str, re.Pattern[str]] = {
    "anthropic_key": re.compile(rf"{_B}sk-ant-(?:api|admin|oat)\d\d-[A-Za-z0-9_-]{{20,}}{_A}"),
    "openai_key": re.compile(rf"{_B}sk-(?!ant-)(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{{20,}}{_A}"),
    "aws_key": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])|"
                          r"(?i:aws_?secret_?access_?key)\W{0,4}[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"),
    "github_token": re.compile(rf"{_B}(?:gh[pousr]_[A-Za-z0-9]{{36,255}}|github_pat_[A-Za-z0-9_]{{22,255}}){_A}"),
    "google_key": re.compile(rf"{_B}AIza[0-9A-Za-z_-]{{35}}{_A}"),
    "slack_token": re.compile(rf"{_B}xox[abposre]-[A-Za-z0-9-]{{10,}}{_A}"),
    "stripe_key": re.compile(rf"{_B}(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{{20,}}{_A}"),
    # To its END line, or to the end of the text: on a stream the window holds a block until it ends.
    "private_key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
                              r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*\Z)", re.DOTALL),
    "jwt": re.compile(rf"{_B}eyJ[A-Za-z0-9_-]{{8,}}\.eyJ[A-Za-z0-9_-]{{8,}}\.[A-Za-z0-9_-]{{16,}}{_A}"),
}
KINDS: tuple[str, ...] = tuple(PATTERNS)
REASONS = {"openai_key": "an OpenAI API key", "anthropic_key": "an Anthropic API key", "aws_key": "an AWS credential",
           "github_token": "a GitHub token", "google_key": "a Google API key", "slack_token": "a Slack token",
           "stripe_key": "a Stripe key", "private_key": "a private key", "jwt": "a JSON Web Token"}


def jwt_header_ok(token: str) -> bool:
    """Whether a JWT-shaped token's header decodes to JSON naming ``alg``."""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:
        return False
    return isinstance(header, dict) and "alg" in header


class SecretsConfig(CheckConfig):
    #: What to look for (default all): openai_key, anthropic_key, aws_key, github_token, google_key,
    #: slack_token, stripe_key, private_key, jwt.
    kinds: list[Kind] = Field(default_factory=lambda: list(KINDS), min_length=1)


class SecretsCheck(Check):
    """Credentials: provider API keys (OpenAI ``sk-``, Anthropic ``sk-ant-``,
    AWS ``AKIA``, GitHub ``ghp_``, Google ``AIza``, Slack ``xox``, Stripe),
    private key blocks and JWTs."""

    type = "secrets"
    config_model = SecretsConfig

    def __init__(self, name: str, config: SecretsConfig) -> None:
        super().__init__(name, config)
        self.patterns = [(kind, PATTERNS[kind]) for kind in KINDS if kind in config.kinds]

    def scan(self, text: str) -> list[Match]:
        out: list[Match] = []
        for kind, pattern in self.patterns:
            for m in pattern.finditer(text):
                if kind == "jwt" and not jwt_header_ok(m.group(0)):
                    continue
                if any(m.start() < f.end and f.start < m.end() for f in out):
                    continue
                out.append(Match(m.start(), m.end(), kind, f"contains {REASONS[kind]}"))
        return out
