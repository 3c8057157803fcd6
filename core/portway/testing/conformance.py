"""The provider conformance kit: the checks every provider adapter must pass.

A provider package describes itself in a :class:`Conformance` (its type, its
config entry, a fake of its wire format, what it maps), and one call runs the
common checks, each through a real gateway (:class:`GatewayServer`) in front
of the package's fake on a :class:`FakeUpstream`, with the official ``openai``
SDK (and the ``anthropic`` SDK on ``/v1/messages``) as clients::

    from portway.testing.conformance import FEATURES, Conformance, conformance_tests
    from portway.testing.openai_chat import OpenAIChatAPI

    KEY = "sk-acme-conformance-0123456789"
    CONFORMANCE = Conformance(
        provider="acme",
        config=lambda url: {"type": "acme", "api_key": KEY, "base_url": url + "/v1"},
        fake=lambda script: OpenAIChatAPI(script, api_key=KEY),
        features=FEATURES - {"vision_url"},
        params={"seed": "dropped"},
    )
    test_conformance = conformance_tests(CONFORMANCE)   # test_conformance[tool_round_trip], ...

(or ``check_provider(CONFORMANCE)`` outside pytest).  Each check starts its
own fake upstream and gateway (the gateway's provider entry is named
:data:`INSTANCE`; clients ask for ``"conf/<model>"``), scripts the fake with
:mod:`portway.testing.script` turns, asserts what the client got and what the
fake received (:meth:`WireFake.seen`, decoded to the neutral :class:`Seen`),
and raises :class:`AssertionError` saying what differed.  The checks:

========================  ==================================================================
``chat``                  a text answer, not streamed: text, ``finish_reason: stop``, usage;
                          (a provider that does not claim ``chat`` — embeddings or rerank only —
                          skips the chat checks, and its error checks go through what it serves)
                          the model, the conversation and no system prompt upstream
``chat_stream``           the same, streamed: the deltas join to the text
``system``                a system prompt reaches the provider as its system text
``developer``             a ``developer`` message reaches the provider as its system text
``multi_turn``            user / assistant / user history, in order
``tool_round_trip``       a tool call (name, arguments, ``finish_reason: tool_calls``), then the
                          tool's result sent back: the call and the result seen upstream
``stream_tools``          a streamed tool call, assembled by the openai SDK's stream helper
``vision_url``            an image by URL, ``vision_base64`` one inline (a ``data:`` URI)
``json_object``           ``response_format`` json_object, ``json_schema`` (the schema seen as sent)
``param_<name>``          ``max_tokens``, ``stop``, ``temperature``, ``top_p``, ``seed``: seen
                          as sent (mapped), not seen (dropped), or a 400 naming it (refused);
                          and, only where the package declares them, the :data:`EXTRA_PARAMS`
                          (``n``, ``user``, ``logprobs``, ``max_completion_tokens``, …), also
                          ``"as:<name>"``: sent under the provider's own name
``usage_in_stream``       ``stream_options.include_usage``: usage on the last chunk only
``finish_length``         an answer cut at the token limit is ``finish_reason: length``
``error_<status>``        400, 401, 403, 404, 429, 500, 503 from the provider: the same status,
                          the error type of the core's kind for it
                          (:func:`portway.errors.kind_for_status`), the message kept, the
                          provider's retry hint as ``Retry-After`` (429), the configured
                          credentials never echoed (exact or masked), streamed and not
``embeddings``            vectors per input, in input order, as floats and as base64
``reasoning``             a model's reasoning text reaches the client as ``reasoning_content``
                          (whole and streamed) and as a thinking block on ``/v1/messages``,
                          and a client that sends it back in the history is served
``rerank``                ``POST /v1/rerank`` (and ``/v2/rerank``): what the provider was asked,
                          results in the order of its scores, ``top_n``, documents returned
``anthropic_messages``    ``/v1/messages`` with the anthropic SDK; ``anthropic_stream`` streamed
                          (and a streamed tool call when ``stream_tools`` is claimed)
``disconnect``            a client that leaves mid-stream cancels the upstream request
========================  ==================================================================

Checks of a feature or parameter the package does not claim are skipped.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
import ssl
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from portway.errors import KINDS, kind_for_status
from portway.providers import Provider
from portway.testing.gateway import GatewayServer
from portway.testing.script import Call, Step, Turn, call, say
from portway.testing.upstream import FakeUpstream, Reply

#: What a package claims unless it says otherwise (a check is skipped for what it does not claim).
FEATURES = frozenset({
    "chat", "system", "developer", "multi_turn", "tools", "stream_tools", "vision_url", "vision_base64", "json_object",
    "json_schema", "embeddings", "anthropic_ingress", "usage_in_stream",
})
#: What a package may claim besides: only where it says so.
OPTIONAL_FEATURES = frozenset({"reasoning", "rerank"})
#: The request parameters the kit checks, and what a package may say of each.
PARAMS = ("max_tokens", "stop", "temperature", "top_p", "seed")
#: Parameters checked only where a package declares a rule for them: the value sent, and what else
#: the request needs for it to make sense (``parallel_tool_calls`` and ``tool_choice`` come with tools).
EXTRA_PARAMS: dict[str, tuple[Any, dict[str, Any]]] = {
    "max_completion_tokens": (77, {}),
    "n": (2, {}),
    "user": ("user-1234", {}),
    "logprobs": (True, {}),
    "frequency_penalty": (0.5, {}),
    "presence_penalty": (0.25, {}),
    "logit_bias": ({"1234": -50}, {}),
    "parallel_tool_calls": (False, {"tools": "weather"}),
    "tool_choice": ("required", {"tools": "weather"}),
    "reasoning_effort": ("low", {}),
}
PARAM_RULES = ("mapped", "dropped", "refused")  # and "as:<name>" for an extra parameter the provider renames
#: The name of the provider entry in each check's gateway config.
INSTANCE = "conf"
#: The upstream statuses the error checks send.
ERROR_STATUSES = (400, 401, 403, 404, 429, 500, 503)


@dataclass
class Seen:
    """The provider-neutral view of one request an adapter sent, decoded from
    the wire by the package's fake (:meth:`WireFake.seen`)."""

    model: str
    stream: bool
    #: All system text, joined with "\n" (None if none).
    system: str | None = None
    #: (role, text) per message in order, the system prompt excluded: role
    #: "user", "assistant", or "tool" for a message that carries only tool
    #: results (text: theirs, joined with "\n"); text "" for a message with no
    #: text (only tool calls, say).  The kit compares only the text turns
    #: (:meth:`text_turns`), so how a provider groups tool results is its own.
    messages: list[tuple[str, str]] = field(default_factory=list)
    #: The names of the tools declared.
    tool_names: list[str] = field(default_factory=list)
    #: (name, arguments) of every assistant tool call in the history.
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: (call id as the provider knows it, text) of every tool result.
    tool_results: list[tuple[str, str]] = field(default_factory=list)
    #: "url:<url>" or "base64:<media type>" per image, in order.
    images: list[str] = field(default_factory=list)
    #: "object", "schema" or None.
    json_mode: str | None = None
    json_schema: dict[str, Any] | None = None
    #: max_tokens, stop (a list), temperature, top_p, seed as sent (absent when not sent), and any
    #: of :data:`EXTRA_PARAMS` the fake decodes (under their canonical names).
    params: dict[str, Any] = field(default_factory=dict)
    #: The request body as the fake received it, for fakes of a JSON wire format (the
    #: ``"as:<name>"`` rule reads it).
    raw: dict[str, Any] | None = None

    def text_turns(self) -> list[tuple[str, str]]:
        """The user and assistant messages that carry text."""
        return [(role, text) for role, text in self.messages if role in ("user", "assistant") and text]


@runtime_checkable
class WireFake(Protocol):
    """What a package's fake of its wire format offers the kit.

    ``AnthropicAPI``, ``OpenAIChatAPI`` and ``MockWire`` in
    :mod:`portway.testing` are examples.  Besides these members, a fake may
    define ``attach(provider)``: the kit calls it with the started provider
    instance (the mock, which has no wire, plays its script through it)."""

    #: The model calls the fake accepted, in order.
    calls: list[Call]
    #: Set when the client of a streamed answer went away before its end.
    disconnected: threading.Event
    #: Seconds between streamed events (the disconnect check sets it before installing).
    stream_delay: float

    def install(self, upstream: FakeUpstream) -> WireFake:
        """Serve the fake's routes on ``upstream``."""
        ...

    def seen(self, call: Call) -> Seen:
        """``call``'s request decoded from the wire format."""
        ...

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        """How this provider answers an error: its status, its body shape, its
        retry hint (a header or a body field) for ``retry_after`` seconds."""
        ...


def _all_mapped() -> dict[str, str]:
    return dict.fromkeys(PARAMS, "mapped")


@dataclass
class Conformance:
    """A provider package's description of itself for the kit."""

    #: The provider type, e.g. "gemini".
    provider: str
    #: The fake upstream's base URL -> the ``providers:`` entry (type, credentials, base_url...).
    #: Give credentials of 12 characters or more: the error checks look for their echoes.
    config: Callable[[str], dict[str, Any]]
    #: A fresh fake of the wire format, driven by a script.
    fake: Callable[[Sequence[Step]], WireFake]
    #: The model clients ask for (as "conf/<model>").
    model: str = "test-model"
    #: What the package maps, of :data:`FEATURES` (all of them unless it says otherwise).
    features: frozenset[str] = FEATURES
    #: For each of :data:`PARAMS`: "mapped", "dropped" or "refused" (a 400 naming it); "mapped" when not given.
    params: Mapping[str, str] = field(default_factory=_all_mapped)
    #: The model for the embeddings check (``model`` when None).
    embeddings_model: str | None = None
    #: The model for the rerank check (``model`` when None).
    rerank_model: str | None = None
    #: Plugins to register in each check's gateway besides the installed ones, as
    #: ``(name, plugin)`` pairs (a provider defined in a test module, not installed).
    plugins: Sequence[tuple[str, Any]] = ()

    def __post_init__(self) -> None:
        self.features = frozenset(self.features)
        known = FEATURES | OPTIONAL_FEATURES
        unknown = sorted(self.features - known)
        if unknown:
            raise ValueError(f"unknown feature(s) {', '.join(unknown)}; the features are: {', '.join(sorted(known))}")
        params = _all_mapped()
        for name, rule in dict(self.params).items():
            if name not in PARAMS and name not in EXTRA_PARAMS:
                raise ValueError(f"unknown parameter {name!r}; the parameters are: "
                                 f"{', '.join([*PARAMS, *EXTRA_PARAMS])}")
            renamed = name in EXTRA_PARAMS and rule.startswith("as:") and len(rule) > 3
            if rule not in PARAM_RULES and not renamed:
                raise ValueError(f"params[{name!r}] is {rule!r}; it must be one of: {', '.join(PARAM_RULES)}"
                                 + (", or 'as:<name>'" if name in EXTRA_PARAMS else ""))
            params[name] = rule
        self.params = params


# -- running one check -----------------------------------------------------------------------------------

#: Servers of finished checks, winding down in the background (uvicorn takes a few tenths of a second,
#: which the next check need not wait for).  check_provider waits for them at its end, and the pytest
#: helper at the end of the test module (fixture ``portway_conformance_servers``).
_stopping: list[Any] = []


def wait_for_stopped() -> None:
    """Wait until the servers of every finished check have stopped."""
    while _stopping:
        _stopping.pop().join()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every check's clients: loading the CA bundle costs more than a check
    (the clients only speak plain HTTP to 127.0.0.1, but an SDK client always makes one)."""
    return ssl.create_default_context()


class _Run:
    """One check's servers: a fake upstream with the package's fake on it,
    and a gateway in front, with an openai and an anthropic client."""

    def __init__(self, conformance: Conformance, steps: Sequence[Step], stream_delay: float) -> None:
        self.conformance = conformance
        self.model = f"{INSTANCE}/{conformance.model}"
        self.upstream = FakeUpstream().start()
        self._clients: list[Any] = []
        try:
            self.fake = conformance.fake(list(steps))
            self.fake.stream_delay = stream_delay
            self.fake.install(self.upstream)
            self.entry = conformance.config(self.upstream.url)
            self.server = GatewayServer({"providers": {INSTANCE: self.entry}},
                                        plugins=list(conformance.plugins) or None).start()
        except BaseException:
            self.upstream.stop()
            raise
        self.provider: Provider | None = self.server.gateway.providers.get(INSTANCE)
        if self.provider is None:
            self.close()
            why = self.server.gateway.unavailable.get(INSTANCE, "not created")
            raise AssertionError(f"the gateway has no provider {INSTANCE!r} of type {conformance.provider!r}: {why}")
        attach = getattr(self.fake, "attach", None)
        if attach is not None:
            attach(self.provider)
        import anthropic
        import openai

        tls = _tls()
        self.openai = self.server.openai_client(timeout=30, http_client=openai.DefaultHttpxClient(verify=tls))
        self.anthropic = self.server.anthropic_client(timeout=30, http_client=anthropic.DefaultHttpxClient(verify=tls))
        self._clients = [self.openai, self.anthropic]

    def seen(self, count: int) -> list[Seen]:
        """What the fake received, when it accepted exactly ``count`` calls."""
        __tracebackhide__ = True
        calls = self.fake.calls
        if len(calls) != count:
            refusals = getattr(self.fake, "refusals", None)
            more = f"; the fake refused: {refusals!r}" if refusals else ""
            raise AssertionError(f"the fake upstream accepted {len(calls)} model call(s), expected {count}{more}")
        return [self.fake.seen(call) for call in calls]

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for server in (self.server, self.upstream):
            server.stop(wait=False)
            _stopping.append(server)
        while len(_stopping) > 8:  # those of checks long finished: stopped by now
            _stopping.pop(0).join()


@contextmanager
def _run(conformance: Conformance, steps: Sequence[Step], *, stream_delay: float = 0.0) -> Iterator[_Run]:
    run = _Run(conformance, steps, stream_delay)
    try:
        yield run
    finally:
        run.close()


def _same(what: str, got: Any, want: Any) -> None:
    __tracebackhide__ = True
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, expected {want!r}")


def _true(condition: bool, message: str) -> None:
    __tracebackhide__ = True
    if not condition:
        raise AssertionError(message)


def _user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _loads(text: Any) -> Any:
    """``text`` parsed as JSON, or a description of what it was (for the failure message)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return f"<not JSON: {text!r}>"


# -- what the checks send and script ------------------------------------------------------------------

QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
INPUT_TOKENS, OUTPUT_TOKENS = 17, 4
SYSTEM = "You answer in one short sentence."
WEATHER_QUESTION = "What is the weather in Paris?"
WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}
WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"},
                                                       "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                      "required": ["city", "unit"]}
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                                 "parameters": WEATHER_PARAMETERS}}
TOOL_OUTPUT = "Sunny, 24 degrees"
IMAGE_URL = "https://example.com/cat.png"
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
       "RU5ErkJggg==")
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"]}
PARAM_VALUES: dict[str, Any] = {"max_tokens": 123, "stop": ["STOP", "END"], "temperature": 0.5, "top_p": 0.9,
                                "seed": 42}
RETRY_AFTER = "7"
#: The disconnect check's stream: seconds between events (60 text parts: several seconds in all, which
#: a client that leaves after the first must not sit through), and how long it waits for the cancellation.
DISCONNECT_PACE = 0.05
DISCONNECT_PATIENCE = 10.0


def _answer(text: str = ANSWER, **options: Any) -> Turn:
    return say(text, input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS, **options)


def _usage(usage: Any) -> tuple[Any, ...] | None:
    return None if usage is None else (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


USAGE = (INPUT_TOKENS, OUTPUT_TOKENS, INPUT_TOKENS + OUTPUT_TOKENS)


def _text_of_stream(chunks: list[Any]) -> tuple[str, list[str]]:
    """The text a stream's deltas join to, and its finish reasons."""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


# -- the checks -----------------------------------------------------------------------------------------


def check_chat(c: Conformance) -> None:
    with _run(c, [_answer()]) as run:
        reply = run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)])
        [seen] = run.seen(1)
    choice = reply.choices[0]
    _same("the answer's text", choice.message.content, ANSWER)
    _same("the finish_reason", choice.finish_reason, "stop")
    _same("the usage (prompt, completion, total tokens)", _usage(reply.usage), USAGE)
    _same("the model the upstream was asked for", seen.model, c.model)
    _same("whether the upstream was asked to stream", seen.stream, False)
    _same("the conversation the upstream saw", seen.text_turns(), [("user", QUESTION)])
    _same("the system prompt the upstream saw", seen.system, None)


def check_chat_stream(c: Conformance) -> None:
    with _run(c, [_answer()]) as run:
        chunks = list(run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)], stream=True))
        [seen] = run.seen(1)
    text, finishes = _text_of_stream(chunks)
    _same("the streamed text", text, ANSWER)
    _same("the finish reasons streamed", finishes, ["stop"])
    _same("the model the upstream was asked for", seen.model, c.model)
    _same("whether the upstream was asked to stream", seen.stream, True)
    _same("the conversation the upstream saw", seen.text_turns(), [("user", QUESTION)])


def check_system(c: Conformance) -> None:
    with _run(c, [_answer()]) as run:
        reply = run.openai.chat.completions.create(
            model=run.model, messages=[{"role": "system", "content": SYSTEM}, _user(QUESTION)])
        [seen] = run.seen(1)
    _same("the answer's text", reply.choices[0].message.content, ANSWER)
    _same("the system prompt the upstream saw", seen.system, SYSTEM)
    _same("the conversation the upstream saw (the system prompt is not a message)", seen.text_turns(),
          [("user", QUESTION)])


def check_developer(c: Conformance) -> None:
    with _run(c, [_answer()]) as run:
        reply = run.openai.chat.completions.create(
            model=run.model, messages=[{"role": "developer", "content": SYSTEM}, _user(QUESTION)])
        [seen] = run.seen(1)
    _same("the answer's text", reply.choices[0].message.content, ANSWER)
    _same("the system prompt the upstream saw (from a developer message)", seen.system, SYSTEM)
    _same("the conversation the upstream saw (the developer message is not a turn)", seen.text_turns(),
          [("user", QUESTION)])


def check_multi_turn(c: Conformance) -> None:
    history = [("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada."), ("user", "What is my name?")]
    with _run(c, [_answer("Your name is Ada.")]) as run:
        reply = run.openai.chat.completions.create(
            model=run.model, messages=[{"role": role, "content": text} for role, text in history])
        [seen] = run.seen(1)
    _same("the answer's text", reply.choices[0].message.content, "Your name is Ada.")
    _same("the conversation the upstream saw", seen.text_turns(), history)


def check_tool_round_trip(c: Conformance) -> None:
    asked = [_user(WEATHER_QUESTION)]
    with _run(c, [call("get_weather", WEATHER_ARGS), _answer("It is sunny in Paris.")]) as run:
        first = run.openai.chat.completions.create(model=run.model, messages=asked, tools=[WEATHER_TOOL])
        choice = first.choices[0]
        _same("the finish_reason of a tool call", choice.finish_reason, "tool_calls")
        calls = choice.message.tool_calls or []
        _same("the tool calls the client got (name, arguments)",
              [(tc.function.name, _loads(tc.function.arguments)) for tc in calls], [("get_weather", WEATHER_ARGS)])
        _true(isinstance(calls[0].id, str) and bool(calls[0].id), f"the tool call has no id: {calls[0].id!r}")
        history = [*asked, choice.message.model_dump(exclude_none=True),
                   {"role": "tool", "tool_call_id": calls[0].id, "content": TOOL_OUTPUT}]
        second = run.openai.chat.completions.create(model=run.model, messages=history, tools=[WEATHER_TOOL])
        seen_first, seen_second = run.seen(2)
    _same("the answer after the tool result", second.choices[0].message.content, "It is sunny in Paris.")
    _same("the finish_reason after the tool result", second.choices[0].finish_reason, "stop")
    _same("the tools the upstream saw declared", seen_first.tool_names, ["get_weather"])
    _same("the tools the upstream saw declared the second time", seen_second.tool_names, ["get_weather"])
    _same("the tool calls the upstream saw in the history", seen_second.tool_calls, [("get_weather", WEATHER_ARGS)])
    _same("the tool results the upstream saw (text)", [text for _, text in seen_second.tool_results], [TOOL_OUTPUT])
    _true(all(isinstance(ref, str) and ref for ref, _ in seen_second.tool_results),
          f"a tool result reached the upstream without the call it answers: {seen_second.tool_results!r}")
    _same("the conversation the upstream saw", seen_second.text_turns(), [("user", WEATHER_QUESTION)])


def check_stream_tools(c: Conformance) -> None:
    with _run(c, [call("get_weather", WEATHER_ARGS)]) as run:
        with run.openai.chat.completions.stream(model=run.model, messages=[_user(WEATHER_QUESTION)],
                                                tools=[WEATHER_TOOL]) as stream:
            events = list(stream)
            final = stream.get_final_completion()
        [seen] = run.seen(1)
    done = [(e.name, _loads(e.arguments)) for e in events if e.type == "tool_calls.function.arguments.done"]
    _same("the tool calls the SDK's stream helper assembled", done, [("get_weather", WEATHER_ARGS)])
    choice = final.choices[0]
    _same("the finish_reason of a streamed tool call", choice.finish_reason, "tool_calls")
    calls = choice.message.tool_calls or []
    _true(len(calls) == 1 and bool(calls[0].id), f"the assembled tool call lacks an id: {calls!r}")
    _true(any(e.type == "tool_calls.function.arguments.delta" for e in events), "no argument delta was streamed")
    _same("whether the upstream was asked to stream", seen.stream, True)
    _same("the tools the upstream saw declared", seen.tool_names, ["get_weather"])


def _check_image(c: Conformance, url: str, expected: str) -> None:
    content = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": url}}]
    with _run(c, [_answer("A cat.")]) as run:
        reply = run.openai.chat.completions.create(model=run.model, messages=[_user(content)])
        [seen] = run.seen(1)
    _same("the answer's text", reply.choices[0].message.content, "A cat.")
    _same("the images the upstream saw", seen.images, [expected])
    _same("the conversation the upstream saw", seen.text_turns(), [("user", "What is in this picture?")])


def check_vision_url(c: Conformance) -> None:
    _check_image(c, IMAGE_URL, "url:" + IMAGE_URL)


def check_vision_base64(c: Conformance) -> None:
    _check_image(c, PNG, "base64:image/png")


def check_json_object(c: Conformance) -> None:
    with _run(c, [_answer('{"city": "Paris"}')]) as run:
        reply = run.openai.chat.completions.create(
            model=run.model, messages=[_user("Answer in JSON: " + QUESTION)], response_format={"type": "json_object"})
        [seen] = run.seen(1)
    _same("the JSON answer", _loads(reply.choices[0].message.content), {"city": "Paris"})
    _same("the JSON mode the upstream was asked for", seen.json_mode, "object")


def check_json_schema(c: Conformance) -> None:
    answer = {"city": "Paris", "population": 2100000}
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}
    with _run(c, [_answer(json.dumps(answer))]) as run:
        reply = run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)],
                                                   response_format=response_format)  # type: ignore[arg-type]
        [seen] = run.seen(1)
    _same("the JSON answer", _loads(reply.choices[0].message.content), answer)
    _same("the JSON mode the upstream was asked for", seen.json_mode, "schema")
    _same("the JSON schema the upstream was given", seen.json_schema, SCHEMA)


def _param_check(name: str) -> Callable[[Conformance], None]:
    def check(c: Conformance) -> None:
        import openai

        rule = c.params[name]
        value, needs = EXTRA_PARAMS.get(name, (PARAM_VALUES.get(name), {}))
        extra: dict[str, Any] = {name: value}
        if needs.get("tools"):
            extra["tools"] = [WEATHER_TOOL]
        with _run(c, [_answer()]) as run:
            try:
                reply = run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)], **extra)
            except openai.BadRequestError as exc:
                if rule != "refused":
                    raise
                body = _loads(exc.response.text)
                error = (body.get("error") if isinstance(body, dict) else None) or {}
                _true(error.get("param") == name or name in str(error.get("message")),
                      f"the 400 for {name} does not name it: {error!r}")
                _same("model calls sent upstream for a refused parameter", len(run.fake.calls), 0)
                return
            _true(rule != "refused", f"{name}={value!r} was declared refused, but the request succeeded")
            [seen] = run.seen(1)
        _same("the answer's text", reply.choices[0].message.content, ANSWER)
        if rule == "mapped":
            _same(f"the {name} the upstream saw", seen.params.get(name), value)
        elif rule.startswith("as:"):
            other = rule[3:]
            _true(seen.raw is not None, "the 'as:' rule needs a fake that records the body it received (Seen.raw)")
            _same(f"the {other} the upstream saw (for {name})", (seen.raw or {}).get(other), value)
            _true(name not in (seen.raw or {}), f"{name} reached the upstream under its own name too")
        else:
            _true(name not in seen.params and name not in (seen.raw or {}),
                  f"{name} was declared dropped, but the upstream saw {seen.params.get(name)!r}")

    check.__doc__ = f"{name}: mapped, dropped or refused as declared"
    return check


def check_usage_in_stream(c: Conformance) -> None:
    with _run(c, [_answer()]) as run:
        chunks = list(run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)], stream=True,
                                                         stream_options={"include_usage": True}))
        run.seen(1)
    text, _ = _text_of_stream(chunks)
    _same("the streamed text", text, ANSWER)
    _true(chunks[-1].choices == [], "the last chunk is not the usage chunk: it has choices "
          f"({chunks[-1].model_dump(exclude_none=True)})")
    _same("the usage on the last chunk (prompt, completion, total tokens)", _usage(chunks[-1].usage), USAGE)
    early = [_usage(chunk.usage) for chunk in chunks[:-1] if chunk.usage is not None]
    _same("usage on chunks before the last", early, [])


def check_finish_length(c: Conformance) -> None:
    with _run(c, [_answer(truncated=True), _answer(truncated=True)]) as run:
        reply = run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)])
        chunks = list(run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)], stream=True))
        run.seen(2)
    _same("the finish_reason of an answer cut at the token limit", reply.choices[0].finish_reason, "length")
    _same("the finish reasons streamed for an answer cut at the token limit", _text_of_stream(chunks)[1],
          ["length"])


_CREDENTIAL_WORDS = ("key", "token", "secret", "password")


def credentials(entry: Mapping[str, Any]) -> list[str]:
    """The credentials in a provider entry: string values of keys named
    like one (``api_key``, ``*_token``, ``*secret*``; not ``*_id``), and the
    configured ``headers`` that carry one."""
    found = [value for key, value in entry.items() if isinstance(value, str) and not key.endswith("_id")
             and any(word in key.lower() for word in _CREDENTIAL_WORDS)]
    found += [value for name, value in (entry.get("headers") or {}).items()
              if name.lower() in Provider.secret_headers and isinstance(value, str)]
    return found


def _masked(secret: str) -> str:
    return f"{secret[:6]}...{secret[-4:]}"  # as providers echo a key they reject


def _leak(text: str, secrets: list[str]) -> str | None:
    """The start of the first secret in ``text``, exact or masked."""
    for secret in secrets:
        for form in (secret, _masked(secret)) if len(secret) >= 12 else (secret,):
            if form in text:
                return form[:4] + "…"
    return None


class _LogLines(logging.Handler):
    """Every line the gateway logs (at any level) while installed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def _logged() -> Iterator[_LogLines]:
    """Every log line, of the gateway and of any plugin, at every level."""
    handler, root, portway = _LogLines(), logging.getLogger(), logging.getLogger("portway")
    levels = root.level, portway.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    portway.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        portway.setLevel(levels[1])


def _error_check(status: int) -> Callable[[Conformance], None]:
    def check(c: Conformance) -> None:
        import httpx
        import openai

        kind = kind_for_status(status)
        chat = "chat" in c.features
        with _run(c, [_answer("Warmed up.")]) as run:
            if chat:
                def attempt(stream: bool) -> None:
                    run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)], stream=stream)
            elif "embeddings" in c.features:  # a provider without chat: its errors through what it serves
                def attempt(stream: bool) -> None:
                    run.openai.embeddings.create(model=f"{INSTANCE}/{c.embeddings_model or c.model}", input="x",
                                                 encoding_format="float")
            else:
                def attempt(stream: bool) -> None:
                    response = httpx.post(run.server.url + "/v1/rerank", timeout=30, json={
                        "model": f"{INSTANCE}/{c.rerank_model or c.model}", "query": "q", "documents": ["d"]})
                    if response.status_code >= 400:
                        raise openai.APIStatusError("rerank failed", response=response, body=None)
            # One call that succeeds first: a provider that fetches something before its model calls
            # (an OAuth token) has it now; from here on every request gets the error.
            if chat:
                run.openai.chat.completions.create(model=run.model, messages=[_user("Hello")])
            else:
                attempt(False)
            secrets = credentials(run.entry)
            short = [s for s in secrets if len(s) < 12]
            _true(not short, "give the config credentials of 12 characters or more, so the kit can check that they "
                  "are never echoed")
            marker = f"conformance error {status}"
            message = f"{marker}: " + " ".join(f"key {s} ({_masked(s)}) refused" for s in secrets)
            run.upstream.answer_all(run.fake.error(status, message, RETRY_AFTER if status == 429 else None))
            answers = []
            with _logged() as log:
                for stream in (False, True) if chat else (False,):
                    try:
                        attempt(stream)
                    except openai.APIStatusError as exc:
                        answers.append((stream, exc.response))
                    else:
                        raise AssertionError(f"an upstream {status} became a successful answer (stream={stream})")
            secrets += run.provider.secrets() if run.provider is not None else []
        for stream, response in answers:
            where = "streamed" if stream else "not streamed"
            _same(f"the status the client got ({where})", response.status_code, status)
            body = _loads(response.text)
            error = (body.get("error") if isinstance(body, dict) else None) or {}
            _same(f"the error type the client got ({where}; the kind {kind})", error.get("type"), KINDS[kind][1])
            _true(marker in str(error.get("message")),
                  f"the provider's message was not kept ({where}): {error.get('message')!r}")
            if status == 429:
                _same(f"the Retry-After the client got ({where})", response.headers.get("retry-after"), RETRY_AFTER)
            leaked = _leak(response.text + json.dumps(dict(response.headers)), secrets)
            _true(leaked is None, f"a credential reached the client ({where}): {leaked}")
        leaked = _leak("\n".join(log.lines), secrets)
        _true(leaked is None, f"a credential reached the gateway's log: {leaked}")

    check.__doc__ = f"an upstream {status}: mapped, message kept, no credential echoed"
    return check


def _vectors(data: list[Any]) -> list[list[float]]:
    vectors = []
    for item in sorted(data, key=lambda item: item.index):
        vector = item.embedding
        if isinstance(vector, str):
            raw = base64.b64decode(vector)
            vector = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        vectors.append(vector)
    return vectors


def _close(first: list[list[float]], second: list[list[float]]) -> bool:
    return len(first) == len(second) and all(
        len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6) for x, y in zip(a, b, strict=True))
        for a, b in zip(first, second, strict=True))


def check_embeddings(c: Conformance) -> None:
    model = f"{INSTANCE}/{c.embeddings_model or c.model}"
    with _run(c, []) as run:
        default = run.openai.embeddings.create(model=model, input=["alpha", "beta"])  # the SDK asks for base64
        alone = run.openai.embeddings.create(model=model, input="alpha", encoding_format="float")
        swapped = run.openai.embeddings.create(model=model, input=["beta", "alpha"], encoding_format="float")
        encoded = run.openai.embeddings.create(model=model, input="alpha", encoding_format="base64")
    _same("the number of vectors for two inputs", len(default.data), 2)
    _same("the indexes of the answer", [item.index for item in default.data], [0, 1])
    alpha, beta = _vectors(default.data)
    _true(bool(alpha) and all(isinstance(x, float) for x in alpha), f"not a vector of floats: {alpha!r}")
    _true(len(alpha) == len(beta) and alpha != beta, "two different inputs got the same vector, or different sizes")
    _true(all(isinstance(item.embedding, list) for item in alone.data + swapped.data),
          "encoding_format=float was not answered with float lists")
    _true(_close(_vectors(alone.data), [alpha]), "the vector of 'alpha' alone differs from that of 'alpha' first of "
          "two: the vectors are not in the order of the inputs")
    _true(_close(_vectors(swapped.data), [beta, alpha]), "the vectors do not follow the order of the inputs")
    _true(all(isinstance(item.embedding, str) for item in encoded.data),
          "encoding_format=base64 was not answered with base64 strings")
    _true(_close(_vectors(encoded.data), [alpha]), "the base64 vector differs from the float one")
    _true(isinstance(default.usage.prompt_tokens, int), "no usage")


ANTHROPIC_WEATHER_TOOL = {"name": "get_weather", "description": "The weather in a city",
                          "input_schema": WEATHER_PARAMETERS}


def check_anthropic_messages(c: Conformance) -> None:
    system = {"system": SYSTEM} if "system" in c.features else {}
    with _run(c, [_answer()]) as run:
        reply = run.anthropic.messages.create(model=run.model, max_tokens=300, messages=[_user(QUESTION)], **system)
        [seen] = run.seen(1)
    _same("the answer's text blocks", [block.text for block in reply.content if block.type == "text"], [ANSWER])
    _same("the stop_reason", reply.stop_reason, "end_turn")
    _same("the usage (input, output tokens)", (reply.usage.input_tokens, reply.usage.output_tokens),
          (INPUT_TOKENS, OUTPUT_TOKENS))
    _same("the conversation the upstream saw", seen.text_turns(), [("user", QUESTION)])
    _same("the system prompt the upstream saw", seen.system, SYSTEM if system else None)
    if c.params["max_tokens"] == "mapped":
        _same("the max_tokens the upstream saw", seen.params.get("max_tokens"), 300)


def check_anthropic_stream(c: Conformance) -> None:
    tools = "stream_tools" in c.features
    steps = [_answer(), *([call("get_weather", WEATHER_ARGS)] if tools else [])]
    with _run(c, steps) as run:
        with run.anthropic.messages.stream(model=run.model, max_tokens=300, messages=[_user(QUESTION)]) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        _same("the streamed text", "".join(pieces), ANSWER)
        _same("the stop_reason", final.stop_reason, "end_turn")
        _same("the output tokens", final.usage.output_tokens, OUTPUT_TOKENS)
        if tools:
            with run.anthropic.messages.stream(model=run.model, max_tokens=300, messages=[_user(WEATHER_QUESTION)],
                                               tools=[ANTHROPIC_WEATHER_TOOL]) as stream:  # type: ignore[list-item]
                final = stream.get_final_message()
            _same("the tool_use blocks the SDK assembled",
                  [(block.name, block.input) for block in final.content if block.type == "tool_use"],
                  [("get_weather", WEATHER_ARGS)])
            _same("the stop_reason of a tool call", final.stop_reason, "tool_use")
        seen = run.seen(len(steps))
    _same("whether the upstream was asked to stream", [s.stream for s in seen], [True] * len(steps))
    _same("the conversation the upstream saw", seen[0].text_turns(), [("user", QUESTION)])
    if tools:
        _same("the tools the upstream saw declared", seen[1].tool_names, ["get_weather"])


REASONING = "The question names France; its capital is Paris."


def check_reasoning(c: Conformance) -> None:
    turn = say(ANSWER, input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS, reasoning=REASONING)
    steps = [turn, turn, _answer("Yes."), *([turn, turn] if "anthropic_ingress" in c.features else [])]
    with _run(c, steps) as run:
        reply = run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)])
        message = reply.choices[0].message
        _same("the answer's text", message.content, ANSWER)
        _same("the reasoning the client got (reasoning_content)", (message.model_extra or {}).get("reasoning_content"),
              REASONING)
        chunks = list(run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)], stream=True))
        streamed = "".join((chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                           for chunk in chunks if chunk.choices)
        _same("the streamed reasoning (reasoning_content deltas)", streamed, REASONING)
        _same("the streamed text", _text_of_stream(chunks)[0], ANSWER)
        # A client sends the answer back as it got it, reasoning and all (as OpenAI-style clients do).
        history = [_user(QUESTION), {"role": "assistant", "content": ANSWER, "reasoning_content": REASONING},
                   _user("Are you sure?")]
        again = run.openai.chat.completions.create(model=run.model, messages=history)
        _same("the answer after a turn with reasoning in the history", again.choices[0].message.content, "Yes.")
        if "anthropic_ingress" in c.features:
            whole = run.anthropic.messages.create(model=run.model, max_tokens=300, messages=[_user(QUESTION)])
            _same("the thinking blocks on /v1/messages",
                  [block.thinking for block in whole.content if block.type == "thinking"], [REASONING])
            with run.anthropic.messages.stream(model=run.model, max_tokens=300, messages=[_user(QUESTION)]) as stream:
                final = stream.get_final_message()
            _same("the streamed thinking blocks on /v1/messages",
                  [block.thinking for block in final.content if block.type == "thinking"], [REASONING])
        seen = run.seen(len(steps))
    _same("the conversation the upstream saw after a turn with reasoning", seen[2].text_turns(),
          [("user", QUESTION), ("assistant", ANSWER), ("user", "Are you sure?")])


RERANK_QUERY = "What is the capital of France?"
RERANK_DOCUMENTS = ["Berlin is the capital of Germany.", "Paris is the capital of France.",
                    "The Eiffel Tower is in Paris.", "Bananas are yellow."]


def check_rerank(c: Conformance) -> None:
    import httpx

    model = f"{INSTANCE}/{c.rerank_model or c.model}"
    with _run(c, []) as run:
        headers = {"authorization": "Bearer portway-test"}
        answers = []
        for path, documents in (("/v1/rerank", RERANK_DOCUMENTS), ("/v2/rerank", [{"text": d} for d in RERANK_DOCUMENTS])):
            response = httpx.post(run.server.url + path, headers=headers, timeout=30, json={
                "model": model, "query": RERANK_QUERY, "documents": documents, "top_n": 2, "return_documents": True})
            _same(f"the status of POST {path}", response.status_code, 200)
            answers.append(response.json())
        calls = list(getattr(run.fake, "rerank_calls", None) or [])
    _same("rerank requests the fake accepted (it keeps them in rerank_calls)", len(calls), 2)
    for answer, seen in zip(answers, calls, strict=True):
        _same("the query the upstream saw", seen.query, RERANK_QUERY)
        _same("the documents the upstream saw", seen.documents, RERANK_DOCUMENTS)
        _true(seen.top_n in (None, 2), f"the upstream was asked for top_n={seen.top_n!r}, not 2")
        order = sorted(range(len(RERANK_DOCUMENTS)), key=lambda i: (-seen.scores[i], i))[:2]
        results = answer.get("results")
        _true(isinstance(results, list), f"no results: {answer!r}")
        _same("the indexes of the results (by the upstream's scores, top 2)", [r.get("index") for r in results], order)
        _true(all(math.isclose(r["relevance_score"], seen.scores[r["index"]], rel_tol=1e-6, abs_tol=1e-6)
                  for r in results), f"the scores differ from the upstream's: {results!r} vs {seen.scores!r}")
        _same("the documents returned", [(r.get("document") or {}).get("text") for r in results],
              [RERANK_DOCUMENTS[i] for i in order])
        _same("the model in the answer", answer.get("model"), model)


def check_disconnect(c: Conformance) -> None:
    long_answer = Turn(tuple(f"word{i} " for i in range(60)), INPUT_TOKENS, OUTPUT_TOKENS)
    with _run(c, [long_answer], stream_delay=DISCONNECT_PACE) as run:
        stream = run.openai.chat.completions.create(model=run.model, messages=[_user(QUESTION)], stream=True)
        with stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
            else:
                raise AssertionError("the stream ended before any text arrived")
        _true(run.fake.disconnected.wait(DISCONNECT_PATIENCE), "the client left mid-stream, but the upstream request went on to "
              "its end (is the stream read whole before it is relayed, or not closed when the client leaves?)")


@dataclass(frozen=True)
class Check:
    """One named check and what it needs claimed (a feature or a parameter)."""

    name: str
    run: Callable[[Conformance], None]
    needs: str | None = None

    def skip_reason(self, conformance: Conformance) -> str | None:
        if self.name.startswith("param_") and "chat" not in conformance.features:
            return f"{conformance.provider} does not claim chat, whose parameter this is"
        if self.needs in FEATURES | OPTIONAL_FEATURES and self.needs not in conformance.features:
            return f"{conformance.provider} does not claim {self.needs}"
        if self.needs in EXTRA_PARAMS and self.needs not in conformance.params:
            return f"{conformance.provider} declares nothing about {self.needs}"
        return None


CHECKS: dict[str, Check] = {check.name: check for check in [
    Check("chat", check_chat, "chat"),
    Check("chat_stream", check_chat_stream, "chat"),
    Check("system", check_system, "system"),
    Check("developer", check_developer, "developer"),
    Check("multi_turn", check_multi_turn, "multi_turn"),
    Check("tool_round_trip", check_tool_round_trip, "tools"),
    Check("stream_tools", check_stream_tools, "stream_tools"),
    Check("vision_url", check_vision_url, "vision_url"),
    Check("vision_base64", check_vision_base64, "vision_base64"),
    Check("json_object", check_json_object, "json_object"),
    Check("json_schema", check_json_schema, "json_schema"),
    *(Check(f"param_{name}", _param_check(name), name) for name in (*PARAMS, *EXTRA_PARAMS)),
    Check("usage_in_stream", check_usage_in_stream, "usage_in_stream"),
    Check("finish_length", check_finish_length, "chat"),
    *(Check(f"error_{status}", _error_check(status)) for status in ERROR_STATUSES),
    Check("embeddings", check_embeddings, "embeddings"),
    Check("rerank", check_rerank, "rerank"),
    Check("reasoning", check_reasoning, "reasoning"),
    Check("anthropic_messages", check_anthropic_messages, "anthropic_ingress"),
    Check("anthropic_stream", check_anthropic_stream, "anthropic_ingress"),
    Check("disconnect", check_disconnect, "chat"),
]}


def run_check(conformance: Conformance, name: str) -> None:
    """Run the check ``name`` (a key of :data:`CHECKS`), whether claimed or not."""
    __tracebackhide__ = True
    import anthropic
    import openai

    try:
        CHECKS[name].run(conformance)
    except AssertionError as exc:
        raise AssertionError(f"{conformance.provider} conformance, {name}: {exc}") from None
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        raise AssertionError(f"{conformance.provider} conformance, {name}: the gateway answered HTTP "
                             f"{exc.status_code}: {exc.response.text[:1000]}") from exc


def check_provider(conformance: Conformance, *, checks: Sequence[str] | None = None) -> None:
    """Run every check the package's claims call for (or those named in
    ``checks``), raising :class:`AssertionError` on the first failure."""
    __tracebackhide__ = True
    try:
        for name, check in CHECKS.items():
            if (checks is None and check.skip_reason(conformance) is None) or (checks is not None and name in checks):
                run_check(conformance, name)
    finally:
        wait_for_stopped()


def conformance_tests(conformance: Conformance) -> Callable[[str, None], None]:
    """A pytest test function running each check as its own test, named for
    it (``test_conformance[tool_round_trip]``); a check of a default feature
    the package does not claim shows as skipped (checks of the optional
    features and the extra parameters appear only where claimed).  Assign it in a test module::

        test_conformance = conformance_tests(CONFORMANCE)
    """
    import pytest

    cases = []
    for name, check in CHECKS.items():
        reason = check.skip_reason(conformance)
        if reason and (check.needs in OPTIONAL_FEATURES or check.needs in EXTRA_PARAMS):
            continue  # not a gap: what only some providers have, or a parameter the package says nothing of
        cases.append(pytest.param(name, id=name, marks=[pytest.mark.skip(reason=reason)] if reason else []))

    @pytest.mark.parametrize("check", cases)
    def test_conformance(check: str, portway_conformance_servers: None) -> None:
        __tracebackhide__ = True
        run_check(conformance, check)

    test_conformance.__doc__ = f"The {conformance.provider} provider passes the conformance check."
    return test_conformance


__all__ = ["CHECKS", "ERROR_STATUSES", "EXTRA_PARAMS", "FEATURES", "INSTANCE", "OPTIONAL_FEATURES", "PARAMS",
           "PARAM_RULES", "Check", "Conformance", "Seen",
           "WireFake", "check_provider", "conformance_tests", "credentials", "run_check", "wait_for_stopped"]
