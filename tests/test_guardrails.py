"""The guardrail contract in the core: redactions applied to spans, verdict
records, the remote checks' timeout and failure policy, and the stream
window that holds text back until a match split across pieces is whole."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from portway.guardrails import (
    Check,
    CheckConfig,
    Match,
    RemoteCheck,
    RemoteConfig,
    RemoteFailure,
    StreamWindow,
    apply_redactions,
    header,
    verdict,
)


class Word(Check):
    """Finds a regular expression (a test double for a span check type)."""

    type = "word"

    def __init__(self, pattern: str, name: str = "w", action: str = "redact") -> None:
        super().__init__(name, CheckConfig(type="word", action=action))
        self.pattern = re.compile(pattern)

    def scan(self, text: str) -> list[Match]:
        return [Match(m.start(), m.end(), "word") for m in self.pattern.finditer(text)]


@pytest.mark.parametrize(("text", "spans", "expected"), [
    ("abc", [], "abc"),
    ("my mail", [(3, 7)], "my [REDACTED:word]"),
    ("a b c", [(0, 1), (4, 5)], "[REDACTED:word] b [REDACTED:word]"),
    ("abcdef", [(1, 4), (2, 5)], "a[REDACTED:word]f"),          # overlapping: one replacement
    ("abcdef", [(2, 5), (1, 3)], "a[REDACTED:word]f"),          # in any order
    ("abcdef", [(1, 5), (2, 3)], "a[REDACTED:word]f"),          # nested
])
def test_apply_redactions(text: str, spans: list[tuple[int, int]], expected: str) -> None:
    assert apply_redactions(text, [Match(s, e, "word") for s, e in spans]) == expected


def test_a_replacement_of_its_own() -> None:
    assert apply_redactions("key=abc", [Match(4, 7, "k", replacement="***")]) == "key=***"


def test_verdicts_carry_categories_never_text() -> None:
    check = Word("secret", name="s", action="deny")
    record = verdict(check, "input", [Match(0, 6, "b"), Match(7, 13, "a"), Match(14, 20, "a")], 0.0012)
    assert record == {"check": "s", "type": "word", "action": "deny", "category": "a,b", "stage": "input",
                      "count": 3, "duration_ms": 1.2}
    assert header([record, {**record, "check": "t", "stage": "output"}]) == "s=deny:a,b@input; t=deny:a,b@output"


def feed(window: StreamWindow, pieces: list[str]) -> list[str]:
    out = [window.feed(p) for p in pieces]
    out.append(window.feed("", final=True))
    return out


def redact_all(check: Check, matches: list[Match]) -> bool:
    return True


@pytest.mark.parametrize("pieces", [
    ["say jane@x.io now"],
    ["say ja", "ne@x.", "io now"],
    ["say jane@", "x.io", " now"],
    list("say jane@x.io now"),                          # a character at a time
])
def test_a_match_split_across_pieces_is_redacted_before_it_leaves(pieces: list[str]) -> None:
    window = StreamWindow([Word(r"\w+@\w+\.\w+")], 8, redact_all)
    out = feed(window, pieces)
    assert "".join(out) == "say [REDACTED:word] now"
    for i in range(len(out)):
        assert "jane" not in "".join(out[: i + 1]) or "[REDACTED" in "".join(out[: i + 1])


def test_only_the_window_is_held() -> None:
    window = StreamWindow([Word("zzz")], 10, redact_all)
    assert window.feed("a" * 25) == "a" * 15
    assert window.feed("b" * 5) == "a" * 5
    assert window.feed("", final=True) == "a" * 5 + "b" * 5


def test_a_match_touching_the_end_is_held_even_beyond_the_window() -> None:
    # A key block grows until its end line; nothing of it leaves until then.
    window = StreamWindow([Word(r"BEGIN[^E]*(?:END|\Z)")], 4, redact_all)
    out = [window.feed("text BEGIN"), window.feed(" aaaaaaaaaaaaaaa"), window.feed(" bbbbbbbbbbbbb"),
           window.feed(" END tail tail")]
    out.append(window.feed("", final=True))
    assert "".join(out) == "text [REDACTED:word] tail tail"
    assert out[1] == "" and out[2] == ""


def test_the_hold_has_a_limit() -> None:
    window = StreamWindow([Word(r"BEGIN.*")], 4, redact_all, limit=20)
    released = window.feed("BEGIN" + "x" * 40)
    assert released == "[REDACTED:word]"  # the part past the limit is released, redacted as far as it is known
    assert len(window.held) == 20


def test_deny_raises_before_anything_of_the_match_leaves() -> None:
    class Denied(Exception):
        pass

    def deny(check: Check, matches: list[Match]) -> bool:
        raise Denied

    window = StreamWindow([Word("forbidden")], 4, deny)
    released = window.feed("this is forb")
    with pytest.raises(Denied):
        window.feed("idden text and more text after")
    assert "forb" not in released


def test_flag_lets_the_text_pass_and_reports_each_match_once() -> None:
    seen: list[tuple[str, int]] = []

    def flag(check: Check, matches: list[Match]) -> bool:
        seen.extend((check.name, len(matches)) for _ in [0])
        return False

    window = StreamWindow([Word("cat")], 4, flag)
    out = feed(window, ["a cat", " and a c", "at and a dog and more and more"])
    assert "".join(out) == "a cat and a cat and a dog and more and more"
    assert sum(n for _, n in seen) == 2


def test_word_boundaries_see_released_text() -> None:
    # "\bcat" must not match inside "tomcat", even when "tom" left in an earlier piece.
    window = StreamWindow([Word(r"\bcat\b")], 3, redact_all)
    assert "".join(feed(window, ["I use tom", "cat daily, cat."])) == "I use tomcat daily, [REDACTED:word]."


class Remote(RemoteCheck):
    type = "remote"

    def __init__(self, behaviour: Any, **config: Any) -> None:
        super().__init__("r", RemoteConfig(type="remote", action="deny", **config))
        self.behaviour = behaviour

    async def call(self, text: str, ctx: Any, stage: str) -> list[Match]:
        return await self.behaviour()


async def _hang() -> list[Match]:
    await asyncio.Event().wait()
    return []


async def _broken() -> list[Match]:
    raise RemoteFailure("status 500")


async def _clean() -> list[Match]:
    return []


@pytest.mark.parametrize(("behaviour", "policy", "categories"), [
    (_hang, "closed", ["unavailable"]),
    (_hang, "open", []),
    (_broken, "closed", ["unavailable"]),
    (_broken, "open", []),
    (_clean, "closed", []),
])
def test_remote_checks_obey_timeout_and_policy(behaviour: Any, policy: str, categories: list[str]) -> None:
    check = Remote(behaviour, timeout=0.05, on_failure=policy)
    found = asyncio.run(check.check("text", None, "input"))
    assert [m.category for m in found] == categories
    if found:
        assert "fail-closed" in found[0].reason


def test_register_request_hooks_adds_hooks_only_when_a_plugin_asks() -> None:
    """A plugin whose request-path hooks depend on its config registers them at
    start-up; unconfigured, it adds nothing to the request path."""
    from pydantic import BaseModel

    from portway import hookimpl
    from portway.testing.gateway import GatewayServer

    class Section(BaseModel):
        answer: str | None = None

    class Answering:
        def __init__(self, text: str) -> None:
            self.text = text

        @hookimpl
        def pre_request(self, ctx: Any) -> Any:
            return {"id": "x", "object": "chat.completion", "created": 1, "model": ctx.model, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": self.text}, "finish_reason": "stop"}]}

    class Plugin:
        @hookimpl
        def register_config(self, register: Any) -> None:
            register("answering", Section)

        @hookimpl
        def register_request_hooks(self, gateway: Any, register: Any) -> None:
            text = gateway.plugin_config["answering"].answer
            if text is not None:
                register("answering.hooks", Answering(text))

    providers = {"providers": {"mock": {"type": "mock"}}}
    with GatewayServer(providers, plugins=[("answering", Plugin())]) as server:
        assert "answering.hooks" not in server.gateway.hooks.implementers("pre_request")
        reply = server.openai_client().chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Mock reply to: hi"
    with GatewayServer({**providers, "answering": {"answer": "from the hook"}}, plugins=[("answering", Plugin())]) as server:
        assert "answering.hooks" in server.gateway.hooks.implementers("pre_request")
        reply = server.openai_client().chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "from the hook"


def test_any_split_gives_what_the_whole_text_gives() -> None:
    """However a text is cut into pieces, the window releases what redacting
    the whole text at once gives (for matches no longer than the window), and
    no release ever holds a match whole."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    words = st.sampled_from(["hello", "a@b.io", "mail", "jane.doe@example.com", ",", "x@y.org.", "\n"])
    email = r"[\w.]+@\w+\.\w+(?:\.\w+)*"

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.lists(words, max_size=30), st.lists(st.integers(min_value=0, max_value=400), max_size=12),
           st.integers(min_value=24, max_value=40))
    def check(parts: list[str], cuts: list[int], size: int) -> None:
        text = " ".join(parts)
        bounds = sorted({c for c in cuts if c < len(text)} | {0, len(text)})
        pieces = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        window = StreamWindow([Word(email)], size, redact_all)
        out = feed(window, pieces)
        assert "".join(out) == apply_redactions(text, Word(email).scan(text))
        released = ""
        for piece in out:
            released += piece
            assert not re.search(r"\w@\w+\.\w", released.replace("[REDACTED:word]", " "))

    check()
