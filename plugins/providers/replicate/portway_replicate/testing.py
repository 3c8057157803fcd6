"""A fake Replicate predictions API, driven by a script, for the
``replicate`` provider's tests (and anyone testing against Replicate's wire
format).

Install it on a :class:`~portway.testing.FakeUpstream` and point the
provider's ``base_url`` at ``upstream.url + "/v1"``::

    api = ReplicateAPI([say("Hello.")], api_key="r8_test")
    with FakeUpstream() as upstream:
        api.install(upstream)

Its rules come from Replicate's HTTP API reference
(https://replicate.com/docs/reference/http), its guides to creating
predictions (https://replicate.com/docs/topics/predictions/create-a-prediction)
and to streaming (https://replicate.com/docs/topics/predictions/streaming),
replicate-python (``prediction.py``, ``stream.py``, ``exceptions.py``) and the
input schemas on the model pages, independently of the adapter:

- ``POST /v1/models/{owner}/{name}/predictions`` (official models) and
  ``POST /v1/predictions`` (``version``: 64 hex digits) create a
  prediction from ``{"input": {...}, "stream"?, "webhook"?,
  "webhook_events_filter"?}``; the answer is ``201`` with the prediction
  ``{id, model, version, input, output, error, status, metrics, urls:
  {get, cancel, stream?, web}}``.
- ``Prefer: wait`` or ``Prefer: wait=N`` (N from 1 to 60) holds the request
  until the prediction ends; a ``Prefer`` value of any other form is a 400.
  Without it the answer is ``starting`` at once.  ``polls``: how many
  ``GET urls.get`` a prediction needs before it ends, even after a wait
  (the wait ran out): until then it is ``processing``.
- ``"stream": true`` gives ``urls.stream``; ``GET`` there with ``Accept:
  text/event-stream`` (any other Accept is a 406) sends an ``event: logs``
  line of the model's log, then ``event: output``
  events whose data is the raw text of each token (a token with a newline in
  it spans two ``data:`` lines), then ``event: done`` with ``data: {}``; a
  failed prediction sends ``event: error`` (JSON ``detail``) then ``done``
  with ``{"reason": "error"}``.  The prediction is ``processing`` until its
  stream has been sent in full.
- ``POST urls.cancel`` cancels a running prediction: it ends ``canceled``,
  and :attr:`disconnected` is set (the conformance kit's sign that a client
  that left stopped the model).
- The input is checked against the schema of the model asked for (stricter
  than Replicate, which ignores inputs a model does not declare, so an
  input the adapter invents is caught): the ``prompt`` schema of Meta's
  Llama 3 models (``prompt`` required; ``stop_sequences`` one
  comma-separated string; no ``seed``) or, for ``openai/*``, the ``messages``
  schema of OpenAI's models on Replicate (``messages`` of ``{role,
  content}`` with text content, ``image_input``, ``max_completion_tokens``).
- Errors are problem details: ``{"title", "detail", "status"}``, a 401 for
  a missing or wrong bearer token, 422 for an invalid input, 404 for an
  unknown prediction; a 429 carries ``retry-after``.

A language model's ``output`` is the list of its tokens (words with their
spaces); ``metrics`` has ``input_token_count`` and ``output_token_count``.
An answer cut at the limit (a ``truncated`` turn) used every token allowed:
its ``output_token_count`` is the input's ``max_tokens`` (or the model's
default, 512; for the messages schema ``max_completion_tokens``, 4096).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from portway import serialization
from portway.testing.script import Call, Script, Step, Turn
from portway.testing.upstream import FakeUpstream, Gate, RecordedRequest, Reply, json_reply

#: Meta's Llama 3 instruct inputs (the model pages' API schema) -> their JSON types.
PROMPT_INPUTS: dict[str, type | tuple[type, ...]] = {
    "prompt": str, "system_prompt": str, "max_tokens": int, "min_tokens": int, "max_new_tokens": int,
    "temperature": (int, float), "top_p": (int, float), "top_k": int, "presence_penalty": (int, float),
    "frequency_penalty": (int, float), "length_penalty": (int, float), "stop_sequences": str,
    "prompt_template": str, "log_performance_metrics": bool,
}
#: The inputs of OpenAI's models on Replicate (``openai/gpt-4o``, ``openai/gpt-5``, ``openai/o4-mini``).
MESSAGES_INPUTS: dict[str, type | tuple[type, ...]] = {
    "prompt": str, "system_prompt": str, "messages": list, "image_input": list, "temperature": (int, float),
    "max_completion_tokens": int, "top_p": (int, float), "frequency_penalty": (int, float),
    "presence_penalty": (int, float), "reasoning_effort": str, "verbosity": str,
}
CREATE_FIELDS = frozenset({"input", "stream", "webhook", "webhook_events_filter"})
DEFAULT_MAX_TOKENS = {"prompt": 512, "messages": 4096}
VERSION = re.compile(r"^[0-9a-f]{64}$")
MODEL_PATH = re.compile(r"^/v1/models/([^/]+)/([^/]+)/predictions$")
PREFER_WAIT = re.compile(r"^wait(?:=(\d+))?$")
LLAMA3_TURN = re.compile(r"<\|start_header_id\|>(system|user|assistant)<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", re.S)
LLAMA3_END = "<|start_header_id|>assistant<|end_header_id|>\n\n"


@dataclass(frozen=True)
class Stopped:
    """A script step for a prediction that ends without output: ``failed``
    (with ``error``), ``canceled`` or ``aborted``."""

    status: str = "failed"
    error: str | None = "the model crashed"


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    outcome: Turn | Stopped
    schema: str
    polls_left: int
    stream: bool
    status: str = "starting"
    #: Reached once the stream has been sent in full.
    streamed: Gate | None = None
    created: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def tokens(text: str) -> list[str]:
    """``text`` as a language model's output list: words with their spaces."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def schema_for(model: str) -> str:
    return "messages" if fnmatchcase(model.lower(), "openai/*") else "prompt"


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Reply:
    return json_reply({"title": title, "detail": detail, "status": status}, status, headers)


TITLES = {400: "Bad request", 401: "Unauthenticated", 402: "Payment required", 403: "Forbidden", 404: "Not found",
          406: "Not acceptable", 422: "Input validation failed", 429: "Too many requests",
          500: "Internal server error", 503: "Service unavailable"}


class ReplicateAPI:
    """The fake; see the module docstring.  ``api_key``: the only token it
    accepts (any non-empty bearer token when None)."""

    def __init__(self, script: Sequence[Step | Stopped] = (), *, api_key: str | None = None, polls: int = 0) -> None:
        self.script = Script(script)  # type: ignore[arg-type]
        self.api_key = api_key
        self.polls = polls
        self.calls: list[Call] = []
        #: (request, status, message) of every refused request.
        self.refusals: list[tuple[RecordedRequest, int, str]] = []
        #: Set when a running prediction is canceled.
        self.disconnected = threading.Event()
        #: Seconds between streamed events.
        self.stream_delay = 0.0
        self.predictions: dict[str, Prediction] = {}
        #: Ids of the predictions canceled, in order.
        self.canceled: list[str] = []
        self.url = ""
        self._ids = itertools.count(1)

    def install(self, upstream: FakeUpstream) -> ReplicateAPI:
        self.url = upstream.url
        upstream.add("/v1/models/*", self)
        upstream.add("/v1/predictions", self)
        upstream.add("/v1/predictions/*", self)  # POST .../cancel
        upstream.add("/v1/predictions/*", self, method="GET")
        upstream.add("/stream/*", self, method="GET")
        return self

    # -- answering ----------------------------------------------------------------------------

    def __call__(self, request: RecordedRequest) -> Reply:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or (self.api_key is not None and token.strip() != self.api_key):
            return self._refuse(request, 401, "You did not pass a valid authentication token")
        if request.method == "GET" and request.path.startswith("/stream/"):
            return self._stream(request, request.path.removeprefix("/stream/"))
        if request.path.startswith("/v1/predictions/"):
            rest = request.path.removeprefix("/v1/predictions/")
            if request.method == "GET" and "/" not in rest:
                return self._get(request, rest)
            if request.method == "POST" and rest.endswith("/cancel") and rest.count("/") == 1:
                return self._cancel(request, rest.removesuffix("/cancel"))
            return self._refuse(request, 404, f"no route {request.method} {request.path}")
        return self._create(request)

    def _refuse(self, request: RecordedRequest, status: int, message: str) -> Reply:
        self.refusals.append((request, status, message))
        return problem(status, TITLES.get(status, "Error"), message)

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        """An error answer in Replicate's shape (a script step may return it)."""
        return problem(status, TITLES.get(status, "Error"), message,
                       {"retry-after": retry_after} if retry_after is not None else None)

    def _create(self, request: RecordedRequest) -> Reply:
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._refuse(request, 400, "the body is not a JSON object")
        found = MODEL_PATH.match(request.path)
        if found:
            model, version, allowed = f"{found[1]}/{found[2]}", "", CREATE_FIELDS
        elif request.path == "/v1/predictions":
            version = body.get("version")
            if not isinstance(version, str) or not VERSION.match(version):
                return self._refuse(request, 422, "- version: a 64-character version id is required")
            model, allowed = "replicate/pinned", CREATE_FIELDS | {"version"}
        else:
            return self._refuse(request, 404, f"no route POST {request.path}")
        unknown = sorted(set(body) - allowed)
        if unknown:
            return self._refuse(request, 422, f"- (root): Additional property {unknown[0]} is not allowed")
        prefer = request.headers.get("prefer")
        wait = PREFER_WAIT.match(prefer.strip()) if prefer is not None else None
        if prefer is not None and (wait is None or (wait[1] is not None and not 1 <= int(wait[1]) <= 60)):
            return self._refuse(request, 400, f"Invalid Prefer header {prefer!r}: use wait or wait=N, N from 1 to 60")
        schema = schema_for(model)
        problem_text = check_input(body.get("input"), schema)
        if problem_text:
            return self._refuse(request, 422, problem_text)
        seen = Call(request, body)
        step = self.script.next_turn(seen)
        if step is None:
            return self._refuse(request, 400, f"fake Replicate API: the script has no turn left for call "
                                f"{len(self.calls) + 1}")
        if isinstance(step, Reply):  # a scripted failure (see error())
            return step
        seen.answer = step if isinstance(step, Turn) else None
        self.calls.append(seen)
        stream = body.get("stream") is True
        prediction = Prediction(id=f"rp{next(self._ids):024d}", model=model, version=version or "v" * 64,
                                input=body["input"], outcome=step, schema=schema, stream=stream,
                                polls_left=self.polls if prefer is not None else max(self.polls, 1))
        if stream:
            prediction.streamed = Gate()
            prediction.streamed.open()  # it only marks the end: the stream passes it at once
        self.predictions[prediction.id] = prediction
        if not stream and prediction.polls_left == 0:
            self._end(prediction)
        elif prefer is not None:
            prediction.status = "processing"  # the wait ran out
        return json_reply(self._view(prediction), 201)

    def _end(self, prediction: Prediction) -> None:
        outcome = prediction.outcome
        prediction.status = outcome.status if isinstance(outcome, Stopped) else "succeeded"

    def _status(self, prediction: Prediction) -> str:
        if prediction.status in ("starting", "processing") and prediction.streamed is not None \
                and prediction.streamed.reached.is_set():
            self._end(prediction)
        return prediction.status

    def _get(self, request: RecordedRequest, id: str) -> Reply:
        prediction = self.predictions.get(id)
        if prediction is None:
            return self._refuse(request, 404, "Prediction not found")
        if prediction.status in ("starting", "processing") and not prediction.stream:
            prediction.polls_left -= 1
            if prediction.polls_left <= 0:
                self._end(prediction)
            else:
                prediction.status = "processing"
        elif prediction.status == "starting":
            prediction.status = "processing"
        return json_reply(self._view(prediction))

    def _cancel(self, request: RecordedRequest, id: str) -> Reply:
        prediction = self.predictions.get(id)
        if prediction is None:
            return self._refuse(request, 404, "Prediction not found")
        self.canceled.append(id)
        if self._status(prediction) in ("starting", "processing"):
            prediction.status = "canceled"
            self.disconnected.set()
        return json_reply(self._view(prediction))

    def _stream(self, request: RecordedRequest, id: str) -> Reply:
        prediction = self.predictions.get(id)
        if prediction is None or prediction.streamed is None:
            return self._refuse(request, 404, "Prediction not found")
        if "text/event-stream" not in request.headers.get("accept", ""):
            return self._refuse(request, 406, "this URL serves text/event-stream")
        chunks: list[bytes | Gate] = []
        outcome = prediction.outcome
        if isinstance(outcome, Stopped):
            detail = serialization.dumps_str({"detail": outcome.error or outcome.status})
            chunks.append(f"event: error\nid: {id}:0\ndata: {detail}\n\n".encode())
            reason = "canceled" if outcome.status == "canceled" else "error"
            chunks.append(f"event: done\nid: {id}:1\ndata: {{\"reason\": \"{reason}\"}}\n\n".encode())
        else:
            chunks.append(f"event: logs\nid: {id}:log\ndata: Loading the model\n\n".encode())  # skipped by clients
            for n, token in enumerate(tokens(self._text(outcome))):
                data = "".join(f"data: {line}\n" for line in token.split("\n"))
                chunks.append(f"event: output\nid: {id}:{n}\n{data}\n".encode())
            chunks.append(f"event: done\nid: {id}:end\ndata: {{}}\n\n".encode())
        chunks.append(prediction.streamed)
        return Reply(chunks=chunks, delay=self.stream_delay, content_type="text/event-stream")

    @staticmethod
    def _text(turn: Turn) -> str:
        return "".join(part for part in turn.parts if isinstance(part, str))

    def _view(self, prediction: Prediction) -> dict[str, Any]:
        """The prediction as Replicate shows it."""
        status = self._status(prediction)
        base = f"{self.url}/v1/predictions/{prediction.id}"
        urls = {"get": base, "cancel": f"{base}/cancel", "web": f"https://replicate.com/p/{prediction.id}"}
        if prediction.stream:
            urls["stream"] = f"{self.url}/stream/{prediction.id}"
        view: dict[str, Any] = {
            "id": prediction.id, "model": prediction.model, "version": prediction.version, "input": prediction.input,
            "logs": "", "output": None, "error": None, "status": status, "data_removed": False,
            "created_at": "2026-01-01T00:00:00.000Z", "urls": urls, "metrics": {},
        }
        outcome = prediction.outcome
        if status == "succeeded" and isinstance(outcome, Turn):
            view["output"] = tokens(self._text(outcome))
            view["metrics"] = {"predict_time": 0.25, "input_token_count": outcome.input_tokens,
                               "output_token_count": self._output_tokens(prediction, outcome)}
        elif isinstance(outcome, Stopped) and status == outcome.status:
            view["error"] = outcome.error
        return view

    @staticmethod
    def _output_tokens(prediction: Prediction, turn: Turn) -> int:
        if not turn.truncated:
            return turn.output_tokens
        name = "max_completion_tokens" if prediction.schema == "messages" else "max_tokens"
        return int(prediction.input.get(name) or DEFAULT_MAX_TOKENS[prediction.schema])

    # -- the neutral view, for the conformance kit ----------------------------------------------

    def seen(self, call: Call) -> Any:
        """``call`` as :class:`portway.testing.conformance.Seen`."""
        from portway.testing.conformance import Seen

        return Seen(**seen_fields(call))


def check_input(values: Any, schema: str) -> str | None:
    """Replicate's refusal of a prediction ``input`` for a model of ``schema``, or None."""
    if not isinstance(values, dict):
        return "- input: input is required and must be an object"
    declared = MESSAGES_INPUTS if schema == "messages" else PROMPT_INPUTS
    for name, value in values.items():
        if name not in declared:
            return f"- input: Additional property {name} is not allowed"
        if not isinstance(value, declared[name]) or isinstance(value, bool) and declared[name] is not bool:
            return f"- input.{name}: Invalid type"
    if schema == "prompt":
        if not isinstance(values.get("prompt"), str):
            return "- input: prompt is required"
        return None
    messages = values.get("messages")
    if messages is None:
        return None if isinstance(values.get("prompt"), str) else "- input: prompt or messages is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant") \
                or not isinstance(message.get("content"), str) or set(message) - {"role", "content"}:
            return f"- input.messages.{i}: a message is {{role: system|user|assistant, content: string}}"
    if not all(isinstance(url, str) and url.startswith(("https://", "http://", "data:"))
               for url in values.get("image_input") or ()):
        return "- input.image_input: each image is a URL or a data URI"
    if values.get("reasoning_effort") not in (None, "minimal", "low", "medium", "high"):
        return "- input.reasoning_effort: must be one of low, medium, high"
    return None


def seen_fields(call: Call) -> dict[str, Any]:
    """What a create request asked for, in the conformance kit's neutral terms."""
    body = call.body
    found = MODEL_PATH.match(call.request.path)
    model = f"{found[1]}/{found[2]}" if found else f"replicate/pinned:{body.get('version')}"
    values: dict[str, Any] = body["input"]
    system: str | None = None
    messages: list[tuple[str, str]] = []
    if "messages" in values:
        texts = [m["content"] for m in values["messages"] if m["role"] == "system"]
        system = "\n".join(texts) if texts else None
        messages = [(m["role"], m["content"]) for m in values["messages"] if m["role"] != "system"]
    elif values.get("prompt_template") == "{prompt}" and values["prompt"].endswith(LLAMA3_END):
        for role, text in LLAMA3_TURN.findall(values["prompt"]):
            if role == "system":
                system = text
            else:
                messages.append((role, text))
    else:
        system = values.get("system_prompt")
        messages = [("user", values.get("prompt", ""))]
    images = [f"base64:{url[5:].split(';')[0]}" if url.startswith("data:") else f"url:{url}"
              for url in values.get("image_input") or ()]
    stop = values.get("stop_sequences")
    params = {"max_tokens": values.get("max_tokens", values.get("max_completion_tokens")),
              "stop": stop.split(",") if isinstance(stop, str) else None,
              "temperature": values.get("temperature"), "top_p": values.get("top_p"),
              "frequency_penalty": values.get("frequency_penalty"),
              "presence_penalty": values.get("presence_penalty"), "reasoning_effort": values.get("reasoning_effort"),
              "max_completion_tokens": values.get("max_completion_tokens")}
    return {
        "model": model, "stream": body.get("stream") is True, "system": system, "messages": messages,
        "images": images, "params": {k: v for k, v in params.items() if v is not None}, "raw": values,
    }


__all__ = ["MESSAGES_INPUTS", "PROMPT_INPUTS", "ReplicateAPI", "Stopped", "check_input", "seen_fields", "tokens"]
