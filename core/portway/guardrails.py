"""The guardrail framework's contract: what a check type is, what it finds,
what a verdict records, and how streamed text is scanned through a window.

Check types come from plugins (``register_guardrails``); the framework
plugin ``portway-guardrails`` owns the ``guardrails:`` config section and
runs the configured checks on the request path (see docs/guardrails.md).
This module holds only what both sides must agree on, so that a check type
needs nothing but the core to be written and tested.

A check looks at text and answers with :class:`Match` es: spans of the text
with a category (``email``, ``forbidden``), never the matched text in
anything that is logged or sent.  What happens then (deny, redact, flag) is
the configuration's business, not the check's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("portway.guardrails")

Action = Literal["deny", "redact", "flag"]
Stage = Literal["input", "output"]

#: What a check judges.  ``span``: parts of a text, each a :class:`Match`
#: that redact can replace, found in streamed output through the window;
#: ``text``: a whole text at once (its length, whether it is JSON), so on a
#: stream only when it ends, and never redacted; ``request``: the request
#: itself (its model, its metadata), input only.
Scope = Literal["span", "text", "request"]


@dataclass(frozen=True, slots=True)
class Match:
    """What a check found: ``text[start:end]`` is of ``category``.  ``reason``
    says why in words a client may read (never quoting the text);
    ``replacement`` is what redact puts in its place (default
    ``[REDACTED:<category>]``)."""

    start: int
    end: int
    category: str
    reason: str | None = None
    replacement: str | None = None

    def shifted(self, offset: int) -> Match:
        return Match(self.start + offset, self.end + offset, self.category, self.reason, self.replacement)


class CheckConfig(BaseModel):
    """The keys every configured check has; a check type's own model
    extends it with its parameters (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    type: str
    action: Action = "flag"
    on: list[Stage] = Field(default_factory=lambda: ["input", "output"], min_length=1)


class Check:
    """A guardrail type.  One instance per configured check, made at start-up
    with the check's name and validated config.

    Local checks implement :meth:`scan` (synchronous, cheap: it runs on every
    streamed chunk's window); checks that call out (a webhook, a moderation
    endpoint) override :meth:`check` instead and set ``remote``."""

    #: The name used as ``type:`` in config.
    type: ClassVar[str] = ""
    config_model: ClassVar[type[CheckConfig]] = CheckConfig
    scope: ClassVar[Scope] = "span"
    #: Slow (network) checks: what ``parallel: true`` overlaps with the upstream call.
    remote: ClassVar[bool] = False
    #: Stages the type can judge (``request`` checks: input only).
    stages: ClassVar[tuple[Stage, ...]] = ("input", "output")

    def __init__(self, name: str, config: CheckConfig) -> None:
        self.name = name
        self.config = config

    def scan(self, text: str) -> list[Match]:
        """The matches in ``text`` (span and text checks)."""
        raise NotImplementedError

    async def check(self, text: str, ctx: Any, stage: Stage) -> list[Match]:
        """What the check finds in ``text`` at ``stage`` (``text`` is empty for
        request checks, which read ``ctx``).  Default: :meth:`scan`."""
        return self.scan(text)

    def configure(self, gateway: Any) -> None:
        """Once at start-up, with the gateway built: look up what the check
        uses (a configured provider: ``gateway.providers[name]``), and raise
        :class:`portway.config.ConfigError` naming the key if it cannot work."""

    async def start(self, gateway: Any) -> None:
        """Open what the check needs (an HTTP client), once, when the server starts."""

    async def close(self) -> None:
        """Close what :meth:`start` opened."""


class RemoteConfig(CheckConfig):
    """The keys of a check that calls out: how long it may take, and what a
    failure (a timeout, an error, an answer it cannot read) counts as."""

    #: Seconds the call may take, connecting included.
    timeout: float = Field(default=2.0, gt=0, le=120)
    #: ``closed``: a failed call counts as a match (the check's action applies, category
    #: ``unavailable``); ``open``: as no match (logged).
    on_failure: Literal["open", "closed"] = "closed"


class RemoteCheck(Check):
    """A check that asks a service over the network: implement :meth:`call`;
    the timeout and the failure policy are applied here."""

    config_model = RemoteConfig
    scope = "text"
    remote = True

    async def call(self, text: str, ctx: Any, stage: Stage) -> list[Match]:
        raise NotImplementedError

    async def check(self, text: str, ctx: Any, stage: Stage) -> list[Match]:
        config: RemoteConfig = self.config  # type: ignore[assignment]
        try:
            async with asyncio.timeout(config.timeout):
                return await self.call(text, ctx, stage)
        except TimeoutError:
            why = f"did not answer within {config.timeout:g} s"
        except Exception as exc:  # whatever the service did, the policy decides
            why = f"failed ({exc if isinstance(exc, RemoteFailure) else type(exc).__name__})"
        log.warning("guardrail %s (%s) %s: failing %s", self.name, self.type, why, config.on_failure)
        if config.on_failure == "open":
            return []
        return [Match(0, len(text), "unavailable", f"the {self.type} check {why} (fail-closed)")]


class RemoteFailure(Exception):
    """A remote check's service answered something it cannot use (the
    message is safe to show: no text, no credential)."""


def luhn(digits: str) -> bool:
    """Whether a string of decimal digits passes the Luhn check (card numbers):
    what tells a card number from any other long number, for the ``pii``
    check and the request log's redaction alike."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def redacted(match: Match) -> str:
    return match.replacement if match.replacement is not None else f"[REDACTED:{match.category}]"


def apply_redactions(text: str, matches: list[Match]) -> str:
    """``text`` with each match replaced; overlapping matches are merged
    into one replacement (the first one's), so nothing of either survives."""
    if not matches:
        return text
    ordered = sorted(matches, key=lambda m: (m.start, -m.end))
    out: list[str] = []
    position = 0
    current: Match | None = None
    end = 0
    for match in ordered:
        if current is not None and match.start < end:
            end = max(end, match.end)
            continue
        if current is not None:
            out.append(redacted(current))
            position = end
        out.append(text[position:match.start])
        current, end = match, match.end
    if current is not None:
        out.append(redacted(current))
        position = end
    out.append(text[position:])
    return "".join(out)


def verdict(check: Check, stage: Stage, matches: list[Match], seconds: float) -> dict[str, Any]:
    """The record of a check that found something: what ``ctx.verdicts``
    holds and the ``x-portway-guardrails`` header shows.  Categories and
    the count, never the matched text."""
    return {
        "check": check.name,
        "type": check.type,
        "action": check.config.action,
        "category": ",".join(sorted({m.category for m in matches})),
        "stage": stage,
        "count": len(matches),
        "duration_ms": round(seconds * 1000, 3),
    }


def header(verdicts: list[dict[str, Any]]) -> str:
    """``name=action:category@stage`` per verdict, ``; ``-separated."""
    return "; ".join(f"{v['check']}={v['action']}:{v['category']}@{v['stage']}" for v in verdicts)


class StreamWindow:
    """Streamed text, scanned through a sliding window before it is released.

    Text arrives in pieces (:meth:`feed`); the last ``size`` characters are
    held back, so that a match split across pieces is seen whole before any
    of it leaves.  A match that touches the end of what is held may still
    grow, so it is held too (up to ``limit`` characters in all, then
    released as far as it is known).  Released text has every settled match
    already dealt with: ``on_match(check, matches)`` decides (raise to deny,
    return True to redact, False to let them pass, recorded).

    ``context`` characters of already released text are scanned again with
    what is held, so word boundaries and look-behinds see what came before;
    a match ending inside them was dealt with already and is ignored.
    """

    __slots__ = ("checks", "size", "limit", "on_match", "held", "before", "context", "seconds")

    def __init__(self, checks: list[Check], size: int, on_match: Any, *, limit: int | None = None,
                 context: int = 16) -> None:
        self.checks = checks
        self.size = size
        self.limit = limit if limit is not None else max(16 * size, 8192)
        self.on_match = on_match
        self.held = ""
        self.before = ""
        self.context = context
        #: Time spent scanning, per check name.
        self.seconds: dict[str, float] = {check.name: 0.0 for check in checks}

    def feed(self, piece: str, final: bool = False) -> str:
        """Add ``piece``; return the text that may leave now (redacted as
        the callback said).  ``final``: the text has ended, release it all."""
        held = self.held + piece
        if not held:
            return ""
        prefix = self.before
        text = prefix + held
        skip = len(prefix)
        found: list[tuple[Check, Match]] = []
        for check in self.checks:
            started = time.perf_counter()
            matches = check.scan(text)
            self.seconds[check.name] += time.perf_counter() - started
            for match in matches:
                if match.end <= skip:
                    continue  # released already, dealt with then
                start = max(match.start, skip) - skip
                found.append((check, Match(start, match.end - skip, match.category, match.reason,
                                           match.replacement)))
        cut = len(held) if final else max(0, len(held) - self.size)
        if not final:
            moved = True
            while moved:  # a match across the cut, or still growing at the end, is held whole
                moved = False
                for _, match in found:
                    if match.start < cut and (match.end > cut or match.end == len(held)):
                        cut = match.start
                        moved = True
            if len(held) - cut > self.limit:
                cut = len(held) - self.limit
        settled = [(check, match) for check, match in found if match.end <= cut or match.start < cut]
        redact: list[Match] = []
        by_check: dict[int, tuple[Check, list[Match]]] = {}
        for check, match in settled:
            by_check.setdefault(id(check), (check, []))[1].append(Match(
                match.start, min(match.end, cut), match.category, match.reason, match.replacement))
        for check, matches in by_check.values():
            if self.on_match(check, matches):
                redact += matches
        out = apply_redactions(held[:cut], redact)
        self.held = held[cut:]
        released = prefix + held[:cut]
        self.before = released[-self.context:] if self.context else ""
        return out
