"""{{ cookiecutter.description }}

A guardrail.  As generated it:

- blocks a request whose messages contain a banned word (the client gets a
  400 with code ``guardrail_blocked``; no provider is called);
- redacts text matching the ``redact`` patterns (by default, e-mail
  addresses) in the model's output, streamed or not.

Configure it with its own top-level section::

    {{ cookiecutter.name }}:
      banned: [secret-project]
      redact: ['\\b\\d{3}-\\d{2}-\\d{4}\\b']
      replacement: "[redacted]"

Replace the checks in :func:`pre_request` (input) and :func:`redact`
(output) with your own: call your policy service, run a classifier, ...
"""

from __future__ import annotations

import re
from typing import Any

from portway import hookimpl
from portway.errors import PortwayError
from pydantic import BaseModel, ConfigDict, PrivateAttr

PORTWAY_PLUGIN_KIND = "guardrail"
NAME = "{{ cookiecutter.name }}"

EMAIL = r"[\w.+-]+@[\w-]+(\.[\w-]+)+"


class Settings(BaseModel):
    """The ``{{ cookiecutter.name }}:`` config section (unknown keys are errors).

    Each gateway validates its own instance when it starts.  Keep what is
    derived from the config here too (compiled patterns), not in module
    globals: two gateways in one process (tests, an app embedding Portway)
    then never see each other's settings.
    """

    model_config = ConfigDict(extra="forbid")

    #: Words that get a request refused (whole words, any case).
    banned: list[str] = []
    #: Regular expressions whose matches are replaced in the output.
    redact: list[re.Pattern[str]] = [re.compile(EMAIL)]
    replacement: str = "[redacted]"

    _banned_words: re.Pattern[str] | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        # Compiled once, when the section is validated, not on every request.
        words = "|".join(re.escape(word) for word in self.banned)
        self._banned_words = re.compile(rf"\b(?:{words})\b", re.IGNORECASE) if words else None

    def is_banned(self, text: str) -> bool:
        return self._banned_words is not None and self._banned_words.search(text) is not None


@hookimpl
def register_config(register: Any) -> None:
    register(NAME, Settings)


def settings_of(ctx: Any) -> Settings:
    """The settings of the gateway serving this request, looked up per
    request (a dict lookup) rather than copied at start-up, because one
    process may run several gateways."""
    return ctx.gateway.plugin_config[NAME]


def texts(body: dict[str, Any]) -> list[str]:
    """The text a client sent: every message's content (chat) or ``input``
    (embeddings)."""
    found = []
    for message in body.get("messages") or ():
        content = message.get("content")
        if isinstance(content, str):
            found.append(content)
        elif isinstance(content, list):
            found += [part["text"] for part in content if isinstance(part, dict) and part.get("type") == "text"]
    inputs = body.get("input")
    if isinstance(inputs, str):
        found.append(inputs)
    elif isinstance(inputs, list):
        found += [item for item in inputs if isinstance(item, str)]
    return found


def redact(settings: Settings, text: str) -> str:
    """The output check: replace every match of the ``redact`` patterns."""
    for pattern in settings.redact:
        text = pattern.sub(settings.replacement, text)
    return text


@hookimpl
def pre_request(ctx: Any) -> None:
    """The input check: refuse the request before any provider sees it.

    Raising :class:`~portway.errors.PortwayError` ends the request with that
    error (in the client's API shape).  Returning ``None`` lets it through;
    you may also change ``ctx.body`` in place (e.g. redact the input).
    """
    settings = settings_of(ctx)
    if any(settings.is_banned(text) for text in texts(ctx.body)):
        raise PortwayError(
            f"request blocked by {NAME}: it contains a banned word",
            kind="bad_request",
            code="guardrail_blocked",
        )
    return None


@hookimpl
def post_chunk(ctx: Any, chunk: dict[str, Any]) -> None:
    """Redact streamed output, chunk by chunk, before the client sees it.

    A match split across two chunks is not caught: to catch those, hold
    text back in ``ctx.metadata[NAME]`` until a word boundary.
    """
    settings = settings_of(ctx)
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content"):
            delta["content"] = redact(settings, delta["content"])


@hookimpl
def post_response(ctx: Any, response: dict[str, Any]) -> None:
    """Redact a whole (non-streamed) answer before the client sees it.  For
    a stream this runs after the client has everything, so post_chunk did
    the work."""
    if ctx.stream:
        return
    settings = settings_of(ctx)
    for choice in response.get("choices") or ():
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            message["content"] = redact(settings, message["content"])
