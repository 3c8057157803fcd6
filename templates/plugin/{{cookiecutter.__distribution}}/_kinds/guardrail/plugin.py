"""{{ cookiecutter.description }}

A guardrail type for Portway's guardrail framework (``portway-guardrails``,
installed with ``portway``).  As generated, type ``{{ cookiecutter.name }}`` finds
the words and phrases of its ``words`` list (whole words, any case); the
framework then denies, redacts or flags them as the config says, on the
input, the output, or both, streams included (a match split across chunks
is caught by the framework's window)::

    guardrails:
      checks:
        no-project-x: {type: {{ cookiecutter.name }}, words: [project x], action: deny, on: [input]}
        hide-codes:   {type: {{ cookiecutter.name }}, words: [alpha-7, beta-9], action: redact}
      default: [no-project-x, hide-codes]

Replace :meth:`WordsCheck.scan` with your own check.  Return a
:class:`~portway.guardrails.Match` per part of the text it finds (with a
category, and a reason a client may read: never the matched text).  A check
of the whole text sets ``scope = "text"``; one that calls a service
subclasses :class:`~portway.guardrails.RemoteCheck` and implements ``call``
(the framework applies its timeout and fail-open/closed policy).  See
docs/guardrails.md, "Writing a guardrail type".
"""

from __future__ import annotations

import re
from typing import Any

from portway import hookimpl
from portway.guardrails import Check, CheckConfig, Match
from pydantic import Field

PORTWAY_PLUGIN_KIND = "guardrail"
NAME = "{{ cookiecutter.name }}"


class Settings(CheckConfig):
    """One configured check of this type: ``type``, ``action`` and ``on``
    come from :class:`CheckConfig`; add your parameters (unknown keys are
    errors, naming the file and the key)."""

    #: Words and phrases to find (whole words, any case).
    words: list[str] = Field(min_length=1)
    #: The category verdicts and redactions show (``[REDACTED:<category>]``).
    category: str = "word"


class WordsCheck(Check):
    """Made once per configured check when the gateway starts: compile what
    the request path needs here, not in :meth:`scan`."""

    type = NAME
    config_model = Settings
    scope = "span"  # finds parts of a text: redactable, windowed on streams

    def __init__(self, name: str, config: Settings) -> None:
        super().__init__(name, config)
        alternatives = "|".join(r"\s+".join(map(re.escape, word.split())) for word in config.words)
        self.pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        self.category = config.category

    def scan(self, text: str) -> list[Match]:
        """Synchronous and cheap: on a stream it runs on the held window at
        every chunk."""
        return [Match(m.start(), m.end(), self.category, f"mentions a listed {self.category}")
                for m in self.pattern.finditer(text)]


@hookimpl
def register_guardrails(register: Any) -> None:
    register(WordsCheck)
