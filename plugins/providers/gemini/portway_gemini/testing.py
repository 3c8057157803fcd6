"""A fake Gemini API, driven by a :mod:`portway.testing.script`, as strict as
the real one about what the adapter sends.  For this plugin's tests (and its
conformance run: it is a ``portway.testing.conformance.WireFake``) and the
``vertex`` plugin's (which serves the same bodies under its own paths)::

    api = GeminiAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")], api_key="k")
    with FakeUpstream() as upstream:
        api.install(upstream)
        ...

Built from python-genai (``types.py``: ``Content``, ``Part``,
``GenerationConfig``, ``Schema``, ``FunctionCallingConfigMode``,
``FinishReason``; ``models.py``: the request field names; ``errors.py``:
the error shape) and the API's documented behaviour:

* ``POST {prefix}/{model}:generateContent`` answers a whole
  ``GenerateContentResponse``; ``:streamGenerateContent?alt=sse`` the same
  as SSE events with CRLF line ends (text in two pieces, a function call
  whole, ``finishReason`` and the final ``usageMetadata`` on the last event);
  ``:embedContent`` / ``:batchEmbedContents`` answer vectors;
* a function call it renders carries no id (as generativelanguage answers)
  and the first call of a turn carries a ``thoughtSignature``; a later
  request that replays that call without its signature is refused, as
  Gemini 3 refuses it ("Function call ... is missing a thought_signature");
* it refuses, in Google's error shape (``{"error": {"code", "message",
  "status", "details"}}``): a missing key (403 PERMISSION_DENIED) or a wrong
  one (400 INVALID_ARGUMENT with ErrorInfo reason ``API_KEY_INVALID``); an
  unknown field anywhere it checks ('Invalid JSON payload received. Unknown
  name "x"'); a role other than user/model; a content without parts; a part
  with no data or two; an empty text; a schema type in lower case or a
  keyword Gemini's Schema lacks; an OBJECT schema with empty properties;
  function responses that do not answer the previous turn's calls one for
  one, by name; a call after the script is used up.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from portway import serialization
from portway.testing.conformance import Seen
from portway.testing.script import Call, Script, Step, ToolCall, ToolResult, Turn, halves
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply, sse_reply

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

TOP_LEVEL = frozenset({"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings",
                       "cachedContent", "labels"})
GENERATION_CONFIG = frozenset({
    "temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "responseLogprobs",
    "logprobs", "presencePenalty", "frequencyPenalty", "seed", "responseMimeType", "responseSchema",
    "responseJsonSchema", "responseModalities", "mediaResolution", "speechConfig", "thinkingConfig", "imageConfig"})
PART_DATA = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                       "codeExecutionResult"})
PART_META = frozenset({"thought", "thoughtSignature", "videoMetadata", "mediaResolution", "partMetadata"})
SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum"})
SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
MODES = frozenset({"AUTO", "ANY", "NONE", "VALIDATED"})

Authorize = Callable[[RecordedRequest], "tuple[int, str] | None"]


class Refused(Exception):
    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


@dataclass(frozen=True)
class Refusal:
    request: RecordedRequest
    status: int
    message: str


def error_body(status: int, message: str, *, retry_after: str | None = None,
               reason: str | None = None) -> dict[str, Any]:
    """Google's error shape, with a RetryInfo or ErrorInfo detail."""
    details: list[dict[str, Any]] = []
    if reason:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "domain": "googleapis.com"})
    if retry_after:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"})
    error: dict[str, Any] = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


def api_key_check(api_key: str | None) -> Authorize:
    """Gemini API's key check on ``x-goog-api-key`` (any key when None)."""

    def authorize(request: RecordedRequest) -> tuple[int, str] | None:
        key = request.headers.get("x-goog-api-key")
        if not key:
            return 403, "Method doesn't allow unregistered callers (callers without established identity)."
        if api_key is not None and key != api_key:
            return 400, "API key not valid. Please pass a valid API key."
        return None

    return authorize


class GeminiAPI:
    """The fake; see the module docstring.  ``prefix`` is the path before
    ``/{model}:{method}``; ``authorize`` checks a request's credentials
    (default: ``x-goog-api-key`` against ``api_key``); ``require_roles``
    refuses a content without a role (Vertex does)."""

    def __init__(self, script: Sequence[Step], *, api_key: str | None = None, models: Sequence[str] = ("test-model",),
                 prefix: str = "/v1beta/models", authorize: Authorize | None = None,
                 require_roles: bool = False) -> None:
        self.script = Script(script)
        self.models = list(models)
        self.prefix = prefix
        self.authorize = authorize or api_key_check(api_key)
        self.require_roles = require_roles
        self.calls: list[Call] = []
        self.refusals: list[Refusal] = []
        self.disconnected = threading.Event()
        self.stream_delay = 0.0
        self._signatures: dict[str, str] = {}  # function call (name + args) -> the signature it was issued with
        self._ids = itertools.count(1)

    def install(self, upstream: FakeUpstream) -> GeminiAPI:
        for model in self.models:
            for method in ("generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents"):
                upstream.add(f"{self.prefix}/{model}:{method}", self)
        return self

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        return json_reply(error_body(status, message, retry_after=retry_after), status)

    # -- answering -----------------------------------------------------------------------------

    def __call__(self, request: RecordedRequest) -> Reply:
        model, _, method = request.path.rsplit("/", 1)[1].partition(":")
        try:
            problem = self.authorize(request)
            if problem is not None:
                status, message = problem
                raise Refused(status, message, "API_KEY_INVALID" if status == 400 else None)
            try:
                body = request.json()
            except ValueError:
                raise Refused(400, "Invalid JSON payload received.") from None
            if not isinstance(body, dict):
                raise Refused(400, "Invalid JSON payload received. Expected an object.")
            if method in ("embedContent", "batchEmbedContents"):
                return json_reply(self._embed(body, model, method))
            if method == "streamGenerateContent" and request.query != "alt=sse":
                raise Refused(400, "fake Gemini API: streams only with alt=sse")
            self._check(body)
            seen = Call(request, body, tool_results(body["contents"]))
            turn = self.script.next_turn(seen)
            if turn is None:
                raise Refused(400, f"fake Gemini API: the script has no turn left for call {len(self.calls) + 1}")
        except Refused as refused:
            self.refusals.append(Refusal(request, refused.status, refused.message))
            return json_reply(error_body(refused.status, refused.message, reason=refused.reason), refused.status)
        seen.answer = turn
        self.calls.append(seen)
        count = (body.get("generationConfig") or {}).get("candidateCount") or 1
        parts = self._parts(turn)
        if method == "streamGenerateContent":
            return sse_reply(self._events(parts, turn, model, count), line_end="\r\n", delay=self.stream_delay,
                             disconnected=self.disconnected)
        return json_reply(self._response(parts, turn, model, count, finished=True))

    def _parts(self, turn: Turn) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        signed = False
        for part in turn.parts:
            if isinstance(part, ToolCall):
                rendered: dict[str, Any] = {"functionCall": {"name": part.name, "args": part.arguments}}
                if not signed:  # Gemini signs the first function call of a step
                    signed = True
                    rendered["thoughtSignature"] = signature = f"c2lnLXtest{next(self._ids)}"
                    self._signatures[_call_key(rendered["functionCall"])] = signature
                parts.append(rendered)
            else:
                parts.append({"text": part})
        return parts

    @staticmethod
    def _usage(turn: Turn, finished: bool) -> dict[str, Any]:
        usage = {"promptTokenCount": turn.input_tokens, "totalTokenCount": turn.input_tokens}
        if finished:
            usage.update(candidatesTokenCount=turn.output_tokens,
                         totalTokenCount=turn.input_tokens + turn.output_tokens)
        return usage

    def _response(self, parts: list[dict[str, Any]], turn: Turn, model: str, count: int, *,
                  finished: bool) -> dict[str, Any]:
        candidates = []
        for index in range(count):
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": index}
            if finished:
                candidate["finishReason"] = "MAX_TOKENS" if turn.truncated else "STOP"
            candidates.append(candidate)
        return {"candidates": candidates, "usageMetadata": self._usage(turn, finished), "modelVersion": model,
                "responseId": f"resp-{next(self._ids)}"}

    def _events(self, parts: list[dict[str, Any]], turn: Turn, model: str, count: int) -> Iterator[dict[str, Any]]:
        """Text in two pieces (a client must put deltas together), each
        function call whole, the finish and final usage on the last event."""
        pieces: list[list[dict[str, Any]]] = []
        for part in parts:
            if "text" in part:
                pieces += [[{"text": piece}] for piece in halves(part["text"])]
            else:
                pieces.append([part])
        pieces = pieces or [[{"text": ""}]]
        for k, piece in enumerate(pieces):
            yield self._response(piece, turn, model, count, finished=k == len(pieces) - 1)

    # -- checks ----------------------------------------------------------------------------------

    def _check(self, body: dict[str, Any]) -> None:
        _known(body, TOP_LEVEL, "")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise Refused(400, "* GenerateContentRequest.contents: contents is not specified")
        calls_before: list[str] = []
        for i, content in enumerate(contents):
            where = f"contents[{i}]"
            if not isinstance(content, dict):
                raise Refused(400, f"Invalid value at '{where}'")
            _known(content, {"role", "parts"}, where)
            role = content.get("role")
            if role is None and self.require_roles:
                raise Refused(400, f"Please use a valid role: user, model. ({where}.role is empty)")
            if role not in (None, "user", "model"):
                raise Refused(400, f"Please use a valid role: user, model. (got {role!r})")
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                raise Refused(400, f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
            for j, part in enumerate(parts):
                self._check_part(part, f"{where}.parts[{j}]")
            calls = [p["functionCall"]["name"] for p in parts if "functionCall" in p]
            answers = [p["functionResponse"]["name"] for p in parts if "functionResponse" in p]
            if answers and sorted(answers) != sorted(calls_before):
                raise Refused(400, "Please ensure that the number of function response parts is equal to the number "
                                   "of function call parts of the function call turn.")
            if role == "model":
                self._check_signatures(parts, i)
            calls_before = calls if role == "model" else []
        system = body.get("systemInstruction")
        if system is not None:
            if not isinstance(system, dict) or not isinstance(system.get("parts"), list):
                raise Refused(400, "Invalid value at 'system_instruction'")
            for j, part in enumerate(system["parts"]):
                self._check_part(part, f"systemInstruction.parts[{j}]")
        config = body.get("generationConfig")
        if config is not None:
            _known(config, GENERATION_CONFIG, "generation_config")
            if "responseSchema" in config:
                _check_schema(config["responseSchema"], "generation_config.response_schema")
        for k, tool in enumerate(body.get("tools") or ()):
            _known(tool, {"functionDeclarations", "googleSearch", "codeExecution", "urlContext"}, f"tools[{k}]")
            for d, declaration in enumerate(tool.get("functionDeclarations") or ()):
                where = f"tools[{k}].function_declarations[{d}]"
                _known(declaration, {"name", "description", "parameters", "parametersJsonSchema", "response"}, where)
                if not declaration.get("name"):
                    raise Refused(400, f"* GenerateContentRequest.{where}.name: Name cannot be empty.")
                if "parameters" in declaration:
                    _check_schema(declaration["parameters"], f"{where}.parameters")
        mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
        if mode is not None and mode not in MODES:
            raise Refused(400, f"Invalid value at 'tool_config.function_calling_config.mode' ({mode!r})")

    @staticmethod
    def _check_part(part: Any, where: str) -> None:
        if not isinstance(part, dict):
            raise Refused(400, f"Invalid value at '{where}'")
        _known(part, PART_DATA | PART_META, where)
        data = [key for key in part if key in PART_DATA]
        if len(data) != 1:
            raise Refused(400, f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
                               "initialized field")
        if "text" in part and not part["text"] and not part.get("thoughtSignature"):
            raise Refused(400, "Unable to submit request because it has an empty text parameter.")
        if "functionResponse" in part:
            response = part["functionResponse"]
            if not response.get("name") or not isinstance(response.get("response"), dict):
                raise Refused(400, f"* GenerateContentRequest.{where}.function_response: name and response "
                                   "(an object) are required")
        for key in ("inlineData", "fileData"):
            if key in part and not part[key].get("mimeType"):
                raise Refused(400, f"* GenerateContentRequest.{where}.{key}.mime_type: Required")

    def _check_signatures(self, parts: list[dict[str, Any]], index: int) -> None:
        first = next((p for p in parts if "functionCall" in p), None)
        if first is None:
            return
        issued = self._signatures.get(_call_key(first["functionCall"]))
        if issued is not None and first.get("thoughtSignature") != issued:
            name = first["functionCall"]["name"]
            raise Refused(400, f"Function call `{name}` in the {index + 1}. content block is missing a "
                               "`thought_signature`.")

    # -- embeddings -------------------------------------------------------------------------------

    def _embed(self, body: dict[str, Any], model: str, method: str) -> dict[str, Any]:
        if method == "embedContent":
            _known(body, {"content", "taskType", "title", "outputDimensionality", "model"}, "")
            return {"embedding": {"values": _vector(body, model)}}
        _known(body, {"requests"}, "")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise Refused(400, "* BatchEmbedContentsRequest.requests: requests is empty")
        for k, request in enumerate(requests):
            _known(request, {"model", "content", "taskType", "title", "outputDimensionality"}, f"requests[{k}]")
            if request.get("model") != f"models/{model}":
                raise Refused(400, f"* BatchEmbedContentsRequest.requests[{k}].model: the model of each request "
                                   f"must be models/{model}")
        return {"embeddings": [{"values": _vector(request, model)} for request in requests]}

    # -- the neutral view, for the conformance kit ----------------------------------------------------

    def seen(self, call: Call) -> Seen:
        """``call``'s request decoded to the conformance kit's neutral view
        (the response schema back in JSON Schema's spelling)."""
        body = call.body
        model, _, method = call.request.path.rsplit("/", 1)[1].partition(":")
        system = body.get("systemInstruction")
        seen = Seen(model=model, stream=method == "streamGenerateContent",
                    system="\n".join(p.get("text", "") for p in system["parts"]) if system else None)
        for content in body.get("contents") or ():
            parts = content["parts"]
            outputs = [str(p["functionResponse"]["response"].get("output", "")) for p in parts
                       if "functionResponse" in p]
            for part in parts:
                if "functionCall" in part:
                    seen.tool_calls.append((part["functionCall"]["name"], part["functionCall"].get("args") or {}))
                if "functionResponse" in part:  # Gemini has no call ids: a result names its function
                    seen.tool_results.append((part["functionResponse"]["name"],
                                              str(part["functionResponse"]["response"].get("output", ""))))
                if "inlineData" in part:
                    seen.images.append(f"base64:{part['inlineData']['mimeType']}")
                if "fileData" in part:
                    seen.images.append(f"url:{part['fileData']['fileUri']}")
            text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
            if outputs and len(outputs) == len(parts):
                seen.messages.append(("tool", "\n".join(outputs)))
            else:
                seen.messages.append(("assistant" if content.get("role") == "model" else "user", text))
        seen.tool_names = [d["name"] for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()]
        config = body.get("generationConfig") or {}
        if config.get("responseMimeType") == "application/json":
            seen.json_mode = "schema" if "responseSchema" in config else "object"
        if "responseSchema" in config:
            seen.json_schema = json_schema(config["responseSchema"])
        seen.params = {name: config[key] for name, key in (
            ("max_tokens", "maxOutputTokens"), ("stop", "stopSequences"), ("temperature", "temperature"),
            ("top_p", "topP"), ("seed", "seed")) if key in config}
        return seen


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A Gemini schema in JSON Schema's spelling (lower-case types, no
    propertyOrdering), for comparing with what a client sent."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "propertyOrdering":
            continue
        if key == "type":
            out[key] = value.lower()
        elif key == "properties":
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = json_schema(value)
        elif key == "anyOf":
            out[key] = [json_schema(sub) for sub in value]
        else:
            out[key] = value
    return out


def _call_key(call: dict[str, Any]) -> str:
    return call.get("name", "") + serialization.dumps_str(call.get("args") or {})


def _known(value: Any, known: frozenset[str] | set[str], where: str) -> None:
    if not isinstance(value, dict):
        raise Refused(400, f"Invalid value at '{where}': not an object")
    for name in value:
        if name not in known:
            place = f" at '{where}'" if where else ""
            raise Refused(400, f'Invalid JSON payload received. Unknown name "{name}"{place}: Cannot find field.')


def _check_schema(schema: Any, where: str) -> None:
    _known(schema, SCHEMA_KEYS, where)
    kind = schema.get("type")
    if kind is not None and kind not in SCHEMA_TYPES:
        raise Refused(400, f"Invalid value at '{where}.type' ({kind!r})")
    if kind == "OBJECT" and "properties" in schema and not schema["properties"]:
        raise Refused(400, f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type")
    for name, sub in (schema.get("properties") or {}).items():
        _check_schema(sub, f"{where}.properties[{name}]")
    if "items" in schema:
        _check_schema(schema["items"], f"{where}.items")
    for k, sub in enumerate(schema.get("anyOf") or ()):
        _check_schema(sub, f"{where}.any_of[{k}]")


def _vector(request: dict[str, Any], model: str) -> list[float]:
    """A deterministic vector for one text (its length and first letters)."""
    text = "".join(p.get("text", "") for p in (request.get("content") or {}).get("parts") or ())
    size = request.get("outputDimensionality") or 4
    return [round((len(text) + k) / 10, 3) for k in range(size)]


def tool_results(contents: Any) -> list[ToolResult]:
    """Every functionResponse of the user turns, as the script sees it (Gemini
    has no call ids: the result's id is the function's name)."""
    found = []
    for content in contents if isinstance(contents, list) else ():
        for part in (content.get("parts") if isinstance(content, dict) else None) or ():
            response = part.get("functionResponse") if isinstance(part, dict) else None
            if isinstance(response, dict):
                output = (response.get("response") or {}).get("output", "")
                found.append(ToolResult(str(response.get("name")), str(output)))
    return found


__all__ = ["GeminiAPI", "Refusal", "api_key_check", "error_body", "json_schema", "tool_results"]
