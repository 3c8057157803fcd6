"""Running the configured checks on one request.

One :class:`Guardrails` per gateway, made at start-up from the validated
``guardrails:`` section and registered as a plugin object (so its hooks
exist only when checks are configured).  Per request, the checks that apply
are the section's ``default``, the alias's ``guardrails`` and the client's
``x-portway-guardrails`` header, in that order, each once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from portway import hookimpl
from portway.config import ConfigError, validate_section
from portway.errors import PortwayError
from portway.guardrails import Check, Match, Stage, StreamWindow, apply_redactions, header, verdict

HEADER = "x-portway-guardrails"
#: Where a request's guardrail state is kept in ``ctx.metadata``.
STATE = "guardrails"


def denied(check: Check, stage: Stage, matches: list[Match]) -> PortwayError:
    """The client's error: names the check and says why, never quoting the text."""
    first = matches[0]
    why = first.reason or f"found {','.join(sorted({m.category for m in matches}))}"
    return PortwayError(f"guardrail {check.name!r} ({check.type}) denied the {stage}: {why}",
                        kind="content_filter", code="guardrail_denied")


@dataclass(slots=True)
class _Request:
    """What one request's output checks need."""

    span: list[Check]
    text: list[Check]
    #: One window per choice index (streams).
    windows: dict[int, StreamWindow] = field(default_factory=dict)
    #: Whole streamed text per choice, for text checks at the end.
    texts: dict[int, list[str]] = field(default_factory=dict)
    #: Verdicts of streamed output, per check name (updated as matches settle).
    stream_verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)


class Guardrails:
    """The request-path hooks of the guardrail framework."""

    def __init__(self, checks: dict[str, Check], default: list[str], window: int, parallel: bool) -> None:
        self.checks = checks
        self.default = default
        self.window = window
        self.parallel = parallel

    @classmethod
    def from_config(cls, gateway: Any, config: Any) -> Guardrails:
        source = gateway.config.source
        types: dict[str, type[Check]] = {}

        def register(check_type: type[Check]) -> None:
            if not check_type.type:
                raise ConfigError(f"guardrail class {check_type.__qualname__} has no 'type'")
            types[check_type.type] = check_type

        gateway.hooks.each_sync("register_guardrails", contain=False, register=register)
        checks: dict[str, Check] = {}
        problems: list[str] = []
        for name, raw in config.checks.items():
            where = f"guardrails.checks.{name}"
            kind = raw.get("type") if isinstance(raw, dict) else None
            if not isinstance(kind, str):
                problems.append(f"{source}: {where}.type: required (one of {', '.join(sorted(types)) or 'none'})")
                continue
            check_type = types.get(kind)
            if check_type is None:
                problems.append(f"{source}: {where}.type: unknown guardrail type {kind!r} (installed: "
                                f"{', '.join(sorted(types)) or 'none'}; the built-ins come with "
                                f"portway-guardrails-basic, -pii, -webhook and -moderation)")
                continue
            try:
                settings = validate_section(check_type.config_model, raw, source, where)
            except ConfigError as exc:
                problems.append(str(exc))
                continue
            if settings.action == "redact" and check_type.scope != "span":  # type: ignore[attr-defined]
                problems.append(f"{source}: {where}.action: a {kind} check judges the whole "
                                f"{'request' if check_type.scope == 'request' else 'text'}; it can deny or "
                                f"flag, not redact")
            wrong = [stage for stage in settings.on if stage not in check_type.stages]  # type: ignore[attr-defined]
            if wrong:
                problems.append(f"{source}: {where}.on: a {kind} check runs on {', '.join(check_type.stages)} only")
            check = check_type(name, settings)
            try:
                check.configure(gateway)
            except ConfigError as exc:
                problems.append(str(exc))
            checks[name] = check
        for i, name in enumerate(config.default):
            if name not in config.checks:
                problems.append(f"{source}: guardrails.default[{i}]: no check named {name!r} "
                                f"(configured: {', '.join(config.checks) or 'none'})")
        for alias, names in _alias_guardrails(gateway):
            for name in names:
                if name not in config.checks:
                    problems.append(f"{source}: models.{alias}.guardrails: no check named {name!r} "
                                    f"(configured: {', '.join(config.checks) or 'none'})")
        if problems:
            raise ConfigError(*problems)
        return cls(checks, list(dict.fromkeys(config.default)), config.stream_window, config.parallel)

    # -- lifecycle ---------------------------------------------------------------

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        for check in self.checks.values():
            await check.start(gateway)

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        for check in self.checks.values():
            await check.close()

    # -- which checks ------------------------------------------------------------------

    def selected(self, ctx: Any) -> list[Check]:
        names = list(self.default)
        ctx.alias_option("guardrails")  # resolves ctx.route (before routing) when the model names one
        if ctx.route is not None:
            for name in alias_guardrails(ctx.route.group):
                if name not in self.checks:  # only a client's x-portway-config can name one
                    raise PortwayError(f"x-portway-config names guardrail {name!r}, which is not configured "
                                       f"(configured: {', '.join(self.checks)})", kind="bad_request",
                                       code="unknown_guardrail")
                names.append(name)
        asked = ctx.headers.get(HEADER)
        if asked:
            for name in (n.strip() for n in asked.split(",")):
                if not name:
                    continue
                if name not in self.checks:
                    raise PortwayError(f"{HEADER} names {name[:64]!r}, which is not a configured guardrail "
                                       f"(configured: {', '.join(self.checks)})", kind="bad_request",
                                       code="unknown_guardrail")
                names.append(name)
        return [self.checks[name] for name in dict.fromkeys(names)]

    # -- input -------------------------------------------------------------------

    @hookimpl(tryfirst=True)
    async def pre_request(self, ctx: Any) -> None:
        checks = self.selected(ctx)
        if not checks:
            return
        inputs = [c for c in checks if "input" in c.config.on]
        outputs = [c for c in checks if "output" in c.config.on]
        if outputs:
            state = _Request([c for c in outputs if c.scope == "span"], [c for c in outputs if c.scope == "text"])
            ctx.metadata[STATE] = state
            if ctx.stream and state.span:
                ctx.canonical_stream = True  # text is held and released in later chunks
        if inputs:
            await self._input(ctx, inputs)

    async def _input(self, ctx: Any, checks: list[Check]) -> None:
        segments = input_segments(ctx.body)
        texts = [holder[key] for holder, key in segments]
        # Local checks first: synchronous and cheap (a task each would cost more than the scan), and
        # what they redact is gone before any remote check (a webhook, a moderation endpoint) sees
        # the text.  The remote checks then run concurrently with each other.
        denial: PortwayError | None = None
        redactions: list[list[Match]] = [[] for _ in segments]
        for check in checks:
            if check.remote:
                continue
            started = time.perf_counter()
            if check.scope == "span":
                per_segment = [check.scan(text) for text in texts]
                found = [m for ms in per_segment for m in ms]
            else:
                per_segment = None
                found = await check.check("" if check.scope == "request" else "\n".join(texts), ctx, "input")
            if not found:
                continue
            self._record(ctx, verdict(check, "input", found, time.perf_counter() - started))
            action = check.config.action
            if action == "deny" and denial is None:
                denial = denied(check, "input", found)
            elif action == "redact" and per_segment is not None:
                for i, matches in enumerate(per_segment):
                    redactions[i] += matches
        if denial is not None:
            raise denial
        for (holder, key), matches in zip(segments, redactions, strict=True):
            if matches:
                holder[key] = apply_redactions(holder[key], matches)
        remote = [c for c in checks if c.remote]
        if not remote:
            return
        whole = "\n".join(holder[key] for holder, key in segments)
        calls = [asyncio.ensure_future(_timed(c.check(whole, ctx, "input"))) for c in remote]
        if self.parallel:
            # The upstream call starts now; the gateway releases its answer only once this passes,
            # and cancels it if this raises (ctx.gates).
            ctx.gates.append(asyncio.ensure_future(self._remote_input(ctx, remote, calls)))
        else:
            await self._remote_input(ctx, remote, calls)

    async def _remote_input(self, ctx: Any, checks: list[Check], calls: list[Any]) -> None:
        try:
            results = await asyncio.gather(*calls)
        finally:
            for call in calls:
                call.cancel()
        denial: PortwayError | None = None
        for check, (found, seconds) in zip(checks, results, strict=True):
            if found:
                self._record(ctx, verdict(check, "input", found, seconds))
                if check.config.action == "deny" and denial is None:
                    denial = denied(check, "input", found)
        if denial is not None:
            raise denial

    def _record(self, ctx: Any, record: dict[str, Any]) -> None:
        ctx.verdicts.append(record)
        ctx.response_headers[HEADER] = header(ctx.verdicts)

    # -- output, not streamed ------------------------------------------------------

    @hookimpl(tryfirst=True)
    async def post_response(self, ctx: Any, response: dict[str, Any]) -> None:
        state: _Request | None = ctx.metadata.get(STATE)
        if state is None or ctx.stream:
            return  # a stream's output was checked as it went
        denial: PortwayError | None = None
        for choice in response.get("choices") or ():
            message = choice.get("message") or {}
            text = message.get("content")
            if not isinstance(text, str):
                continue
            redact: list[Match] = []
            for check in state.span + state.text:
                started = time.perf_counter()
                found = await check.check(text, ctx, "output")
                if found and check.config.action == "deny" and getattr(check.config, "reask", False):
                    self._record(ctx, {**verdict(check, "output", found, time.perf_counter() - started),
                                       "action": "reask"})
                    started = time.perf_counter()
                    text = await self._reask(ctx, response, text, found)
                    message["content"] = text
                    found = await check.check(text, ctx, "output")
                if not found:
                    continue
                self._record(ctx, verdict(check, "output", found, time.perf_counter() - started))
                if check.config.action == "deny" and denial is None:
                    denial = denied(check, "output", found)
                elif check.config.action == "redact":
                    redact += found
            if redact:
                message["content"] = apply_redactions(text, redact)
        if denial is not None:
            raise denial

    @staticmethod
    async def _reask(ctx: Any, response: dict[str, Any], text: str, found: list[Match]) -> str:
        """Ask the model once more, on the same target, with its answer and
        why it does not do; its usage is added to the response's."""
        target = ctx.target
        if target is None:
            return text  # an answer no upstream gave (a cache hit): nothing to ask
        body = ctx.gateway.upstream_body(ctx, target)
        body["messages"] = [*body.get("messages", []), {"role": "assistant", "content": text}, {
            "role": "user", "content": f"Your answer {found[0].reason}. Answer again with only the corrected JSON, "
                                       "nothing else."}]
        answer = await target.provider.chat(body, ctx)
        usage, more = response.get("usage"), answer.get("usage")
        if isinstance(usage, dict) and isinstance(more, dict):
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                if isinstance(usage.get(key), int) and isinstance(more.get(key), int):
                    usage[key] += more[key]
            ctx.usage = usage
            ctx.gateway.price(ctx)
        content = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content")
        return content if isinstance(content, str) else ""

    # -- output, streamed ---------------------------------------------------------------

    @hookimpl(tryfirst=True)
    async def post_chunk(self, ctx: Any, chunk: dict[str, Any]) -> Any:
        state: _Request | None = ctx.metadata.get(STATE)
        if state is None:
            return None
        keep = False
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                keep = True
                continue
            piece = delta.get("content")
            piece = piece if isinstance(piece, str) else ""
            # The end, or a tool call, releases what is held first (the text comes before them).
            final = bool(choice.get("finish_reason") or delta.get("tool_calls") or delta.get("function_call"))
            if state.text and piece:
                state.texts.setdefault(index, []).append(piece)
            out = self._window(ctx, state, index).feed(piece, final) if state.span else piece
            if choice.get("finish_reason"):
                self._stream_durations(state, index)
                if state.text:
                    await self._whole_text(ctx, state, "".join(state.texts.pop(index, [])))
            if out:
                delta["content"] = out
                keep = True
            else:
                delta.pop("content", None)
                if delta or choice.get("finish_reason") or choice.get("logprobs"):
                    keep = True
                    if "role" in delta:
                        delta["content"] = ""
        if choice_less(chunk):
            return None
        return None if keep else False

    @staticmethod
    def _stream_durations(state: _Request, index: int) -> None:
        """A streamed verdict's duration: all the scanning its check did, to the end."""
        window = state.windows.get(index)
        if window is not None:
            for name, record in state.stream_verdicts.items():
                record["duration_ms"] = round(window.seconds.get(name, 0.0) * 1000, 3)

    def _window(self, ctx: Any, state: _Request, index: int) -> StreamWindow:
        window = state.windows.get(index)
        if window is None:
            window = StreamWindow(state.span, self.window, lambda check, matches: self._stream_match(
                ctx, state, window, check, matches))
            state.windows[index] = window
        return window

    def _stream_match(self, ctx: Any, state: _Request, window: StreamWindow | None, check: Check,
                      matches: list[Match]) -> bool:
        seconds = window.seconds.get(check.name, 0.0) if window is not None else 0.0
        record = state.stream_verdicts.get(check.name)
        if record is None:
            record = verdict(check, "output", matches, seconds)
            state.stream_verdicts[check.name] = record
            ctx.verdicts.append(record)
        else:
            categories = set(record["category"].split(",")) | {m.category for m in matches}
            record.update(category=",".join(sorted(categories)), count=record["count"] + len(matches),
                          duration_ms=round(seconds * 1000, 3))
        if check.config.action == "deny":
            raise denied(check, "output", matches)
        return check.config.action == "redact"

    async def _whole_text(self, ctx: Any, state: _Request, text: str) -> None:
        for check in state.text:
            started = time.perf_counter()
            found = await check.check(text, ctx, "output")
            if found:
                ctx.verdicts.append(verdict(check, "output", found, time.perf_counter() - started))
                if check.config.action == "deny":
                    raise denied(check, "output", found)


def choice_less(chunk: dict[str, Any]) -> bool:
    """A chunk with no choices (the usage chunk): never held or dropped here."""
    return not chunk.get("choices")


async def _timed(work: Any) -> tuple[list[Match], float]:
    started = time.perf_counter()
    found = await work
    return found, time.perf_counter() - started


def input_segments(body: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Every text of the request a check reads, as (holder, key) so that a
    redaction can write it back: the content of system, developer, user and
    tool messages (a string, or the text parts of a list), and an embeddings
    request's ``input``.  The assistant's own earlier turns are not input."""
    out: list[tuple[Any, Any]] = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") == "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append((message, "content"))
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    out.append((part, "text"))
    given = body.get("input")
    if isinstance(given, str):
        out.append((body, "input"))
    elif isinstance(given, list):
        out += [(given, i) for i, item in enumerate(given) if isinstance(item, str)]
    return out


def alias_guardrails(group: Any) -> list[str]:
    """The ``guardrails`` of an alias and of every alias nested in it (an
    alias's checks apply wherever its targets serve, also as a member of
    another alias or of a client's ``x-portway-config``)."""
    names = list(group.options.get("guardrails") or ())
    for member in group.members:
        if hasattr(member, "members"):
            names += alias_guardrails(member)
    return names


def _alias_guardrails(gateway: Any) -> list[tuple[str, list[str]]]:
    """(alias, check names) for every alias that sets ``guardrails``."""
    return [(alias, list(route.options["guardrails"])) for alias, route in gateway.aliases.items()
            if route.options.get("guardrails") is not None]
