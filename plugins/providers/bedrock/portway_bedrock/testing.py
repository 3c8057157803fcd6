"""A fake Bedrock Runtime API, built from botocore's ``bedrock-runtime``
service model (2023-09-30) and Anthropic's Bedrock client, for tests.

Install it on a :class:`~portway.testing.FakeUpstream` and point the
``bedrock`` provider (or any client) at the fake's URL::

    api = BedrockAPI([say("hi")], credentials={"AKIDEXAMPLE": "secret"})
    with FakeUpstream() as upstream:
        api.install(upstream)
        ...
    assert api.calls[0].body["inferenceConfig"] == {"maxTokens": 64}

It answers, as the service does:

* ``POST /model/{modelId}/converse`` and ``/converse-stream`` with the next
  turn of a :mod:`script <portway.testing.script>`: a Converse answer, or
  the stream's events (``messageStart``, text deltas in two halves,
  ``contentBlockStart`` + two ``toolUse`` input deltas per tool call,
  ``messageStop``, ``metadata``) framed as ``application/vnd.amazon.eventstream``
  byte for byte, both CRCs real, with the random ``"p"`` padding Bedrock adds;
* ``/invoke`` and ``/invoke-with-response-stream`` for a Claude model with
  Anthropic's body (``anthropic_version: bedrock-2023-05-31``, no ``model``,
  betas in ``anthropic_beta``), the stream as ``chunk`` events whose
  ``bytes`` is the base64 of each Anthropic event;
* ``/invoke`` for Titan Text Embeddings and Cohere Embed bodies, with
  vectors derived from each text.

Every request is authenticated first: a Bedrock API key as
``Authorization: Bearer``, or SigV4, whose signature the fake computes again
with botocore's own signer (``SigV4Auth``) over the path as it arrived on
the wire, the headers the request says it signed and the body, for the
service ``bedrock`` and the fake's region (a session token must be sent and
signed when the credentials have one; the date must be within five minutes).
A refused request gets the service's error: a JSON ``{"message"}`` body and
the exception's name in ``x-amzn-ErrorType``.  The Converse body is checked
as the service checks it (known fields only, each content block a union with
exactly one member, alternating roles starting with the user, no blank text,
tool results answering the previous turn's tool uses, ``toolConfig``
whenever the history has tool blocks, ``inferenceConfig`` ranges).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from portway import serialization
from portway.testing.anthropic_api import COUNT_BASE
from portway.testing.anthropic_api import check_body as check_anthropic_body
from portway.testing.anthropic_api import stream_events as anthropic_events
from portway.testing.anthropic_api import tool_results as anthropic_tool_results
from portway.testing.conformance import Seen
from portway.testing.script import Call, Script, Step, ToolCall, ToolResult, Turn, halves, id_maker
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply
from portway_bedrock.models import base_name, family

REGION = "us-east-1"
EVENT_STREAM = "application/vnd.amazon.eventstream"
CONVERSE_FIELDS = frozenset({
    "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "additionalModelRequestFields",
    "promptVariables", "additionalModelResponseFieldPaths", "requestMetadata", "performanceConfig", "serviceTier",
    "outputConfig", "projectIdentifier",
})
CONTENT_BLOCKS = frozenset({"text", "image", "document", "video", "audio", "toolUse", "toolResult", "guardContent",
                            "cachePoint", "reasoningContent", "citationsContent", "searchResult"})
SYSTEM_BLOCKS = frozenset({"text", "guardContent", "cachePoint"})
RESULT_BLOCKS = frozenset({"json", "text", "image", "document", "video", "searchResult"})
INFERENCE_FIELDS = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
IMAGE_MEDIA = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: Error status -> the exception the service names in ``x-amzn-ErrorType``.
STATUS_EXCEPTIONS = {400: "ValidationException", 401: "UnrecognizedClientException", 403: "AccessDeniedException",
                     404: "ResourceNotFoundException", 408: "ModelTimeoutException", 424: "ModelErrorException",
                     429: "ThrottlingException", 500: "InternalServerException", 503: "ServiceUnavailableException"}
EMBEDDING_SIZES = {"titan-embed-text-v2": 1024, "titan-embed-text-v1": 1536, "titan-embed-g1-text": 1536,
                   "embed-": 1024}


# -- the event-stream framing -----------------------------------------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message (string headers), both CRCs computed."""
    encoded = b"".join(struct.pack(">B", len(name.encode())) + name.encode() + b"\x07"
                       + struct.pack(">H", len(value.encode())) + value.encode() for name, value in headers.items())
    total = 16 + len(encoded) + len(payload)
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def padding(size: int) -> str:
    """Bedrock's random-length ``"p"`` padding (here: a fixed alphabet run)."""
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[:size]


def event(event_type: str, data: dict[str, Any]) -> bytes:
    return frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                 serialization.dumps(data))


def exception(exception_type: str, message: str) -> bytes:
    """An exception inside a 200 stream, as the service sends one."""
    return frame({":exception-type": exception_type, ":content-type": "application/json",
                  ":message-type": "exception"}, serialization.dumps({"message": message}))


def chunk(anthropic_event: dict[str, Any]) -> bytes:
    """An InvokeModelWithResponseStream ``chunk``: the model's own event, base64."""
    data = base64.b64encode(serialization.dumps(anthropic_event)).decode()
    return event("chunk", {"bytes": data, "p": padding(len(data) % 17)})


def event_stream_reply(frames: Iterable[bytes], *, delay: float = 0.0, request_id: str = "req-fake") -> Reply:
    return Reply(chunks=list(frames), delay=delay, content_type=EVENT_STREAM,
                 headers={"x-amzn-requestid": request_id})


def error_reply(status: int, message: str, exception_type: str | None = None,
                retry_after: str | None = None) -> Reply:
    """An error answer as the service sends it (``x-amzn-ErrorType`` + ``{"message"}``)."""
    name = exception_type or STATUS_EXCEPTIONS.get(status, "ValidationException" if status < 500
                                                   else "InternalServerException")
    headers = {"x-amzn-errortype": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/",
               "x-amzn-requestid": "req-error"}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    return Reply(status=status, body=serialization.dumps({"message": message}), headers=headers)


# -- SigV4, checked with botocore's signer ------------------------------------------------


def check_signature(request: RecordedRequest, credentials: dict[str, str | tuple[str, str]], region: str,
                    now: datetime | None = None) -> tuple[str, str] | None:
    """Why the service would refuse ``request``'s SigV4 signature (the
    exception's name and message), or None.
    ``credentials``: access key -> secret, or (secret, session token)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = request.headers.get("authorization", "")
    found = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", authorization)
    if not found:
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    access_key, day, scope_region, service, signed, signature = found.groups()
    known = credentials.get(access_key)
    if known is None:
        return "UnrecognizedClientException", "The security token included in the request is invalid."
    secret, token = known if isinstance(known, tuple) else (known, None)
    names = signed.split(";")
    amz_date = request.headers.get("x-amz-date", "")
    if "host" not in names or "x-amz-date" not in names or not amz_date.startswith(day):
        return "IncompleteSignatureException", "The request signature must sign host and x-amz-date."
    if (scope_region, service) != (region, "bedrock"):
        return ("InvalidSignatureException",
                f"Credential should be scoped to a valid region and service 'bedrock' in {region}, "
                f"not {scope_region}/{service}.")
    if token is not None and (request.headers.get("x-amz-security-token") != token
                              or "x-amz-security-token" not in names):
        return "UnrecognizedClientException", "The security token included in the request is invalid."
    when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if abs(((now or datetime.now(UTC)) - when).total_seconds()) > 300:
        return "InvalidSignatureException", "Signature expired: the request date is more than 5 minutes off."
    # What the service computes: the path as it arrived, the headers the request says it signed, the body.
    url = "http://" + request.headers.get("host", "") + request.raw_path + (f"?{request.query}" if request.query else "")
    aws = AWSRequest(method=request.method, url=url, data=request.body,
                     headers={name: request.headers.get(name, "") for name in names})
    aws.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret, token), "bedrock", region)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    if expected != signature:
        return ("InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS "
                "Secret Access Key and signing method. Consult the service documentation for details.")
    return None


# -- checks on request bodies ------------------------------------------------------------


class Invalid(Exception):
    """A body the service refuses (400 ValidationException)."""


def _union(block: Any, members: frozenset[str], where: str) -> str:
    if type(block) is not dict or len(block) != 1 or next(iter(block)) not in members:
        raise Invalid(f"{where} must set exactly one of: {', '.join(sorted(members))}")
    return next(iter(block))


def _base64(value: Any, where: str) -> bytes:
    try:
        data = base64.b64decode(value, validate=True) if type(value) is str else b""
    except ValueError:
        data = b""
    if not data:
        raise Invalid(f"{where} is not valid base64 bytes")
    return data


def _check_block(block: Any, where: str, role: str, previous_uses: set[str], uses: set[str]) -> None:
    kind = _union(block, CONTENT_BLOCKS, where)
    value = block[kind]
    if kind == "text" and (type(value) is not str or not value.strip()):
        raise Invalid(f"The text field in the ContentBlock object at {where} is blank. Add text to the text field, "
                      "and try again.")
    if kind == "image":
        if role != "user" or type(value) is not dict or value.get("format") not in IMAGE_MEDIA:
            raise Invalid(f"{where}.image must be a user's png, jpeg, gif or webp image")
        _base64((value.get("source") or {}).get("bytes"), f"{where}.image.source.bytes")
    if kind == "document":
        if role != "user" or type(value) is not dict or not value.get("name"):
            raise Invalid(f"{where}.document needs a name and must be in a user message")
        _base64((value.get("source") or {}).get("bytes"), f"{where}.document.source.bytes")
    if kind == "toolUse":
        if role != "assistant" or type(value) is not dict or type(value.get("input")) is not dict:
            raise Invalid(f"{where}.toolUse must be an assistant's, with an input object")
        if not TOOL_USE_ID.fullmatch(str(value.get("toolUseId"))) or not TOOL_NAME.fullmatch(str(value.get("name"))):
            raise Invalid(f"{where}.toolUse has an invalid toolUseId or name")
        uses.add(value["toolUseId"])
    if kind == "toolResult":
        if role != "user" or type(value) is not dict or type(value.get("content")) is not list:
            raise Invalid(f"{where}.toolResult must be a user's, with a content list")
        if value.get("toolUseId") not in previous_uses:
            raise Invalid(f"{where}: the toolResult's toolUseId {value.get('toolUseId')!r} answers no toolUse of "
                          "the previous turn")
        if value.get("status", "success") not in ("success", "error"):
            raise Invalid(f"{where}.toolResult.status must be success or error")
        for k, part in enumerate(value["content"]):
            _union(part, RESULT_BLOCKS, f"{where}.toolResult.content.{k}")


def check_converse(body: Any) -> None:
    """Raise :class:`Invalid` where the service would refuse a Converse body."""
    if type(body) is not dict:
        raise Invalid("the body is not a JSON object")
    for name in body:
        if name not in CONVERSE_FIELDS:
            raise Invalid(f"Unknown field {name!r}")
    messages = body.get("messages")
    if type(messages) is not list or not messages:
        raise Invalid("messages must be a non-empty list")
    previous_uses: set[str] = set()
    tool_blocks = False
    for i, message in enumerate(messages):
        role = message.get("role") if type(message) is dict else None
        if role not in ("user", "assistant") or type(message.get("content")) is not list or not message["content"]:
            raise Invalid(f"messages.{i} needs a role (user or assistant) and non-empty content")
        if role != ("user" if i % 2 == 0 else "assistant"):
            raise Invalid("A conversation must start with a user message. Try again with a conversation that starts "
                          "with a user message." if i == 0 else
                          "A conversation must alternate between user and assistant roles. Make sure the "
                          "conversation alternates between user and assistant roles and try again.")
        uses: set[str] = set()
        for j, block in enumerate(message["content"]):
            _check_block(block, f"messages.{i}.content.{j}", role, previous_uses, uses)
            tool_blocks = tool_blocks or "toolUse" in block or "toolResult" in block
        previous_uses = uses
    for j, block in enumerate(body.get("system") or []):
        kind = _union(block, SYSTEM_BLOCKS, f"system.{j}")
        if kind == "text" and (type(block["text"]) is not str or not block["text"]):
            raise Invalid(f"system.{j}.text must not be empty")
    inference = body.get("inferenceConfig") or {}
    if type(inference) is not dict or not set(inference) <= INFERENCE_FIELDS:
        raise Invalid(f"inferenceConfig takes only {', '.join(sorted(INFERENCE_FIELDS))}")
    for name in ("temperature", "topP"):
        if name in inference and not (type(inference[name]) in (int, float) and 0 <= inference[name] <= 1):
            raise Invalid(f"inferenceConfig.{name} must be a number from 0 to 1")
    if "maxTokens" in inference and not (type(inference["maxTokens"]) is int and inference["maxTokens"] >= 1):
        raise Invalid("inferenceConfig.maxTokens must be a positive integer")
    stops = inference.get("stopSequences", [])
    if type(stops) is not list or not all(type(s) is str and s for s in stops):
        raise Invalid("inferenceConfig.stopSequences must be a list of non-empty strings")
    config = body.get("toolConfig")
    if tool_blocks and config is None:
        raise Invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    if config is not None:
        tools = config.get("tools") if type(config) is dict else None
        if type(tools) is not list or not tools:
            raise Invalid("toolConfig.tools must be a non-empty list")
        for k, tool in enumerate(tools):
            if _union(tool, frozenset({"toolSpec", "systemTool", "cachePoint"}), f"toolConfig.tools.{k}") == "toolSpec":
                spec = tool["toolSpec"]
                if not TOOL_NAME.fullmatch(str(spec.get("name"))) or \
                        type((spec.get("inputSchema") or {}).get("json")) is not dict:
                    raise Invalid(f"toolConfig.tools.{k}.toolSpec needs a valid name and inputSchema.json")
        if "toolChoice" in config:
            _union(config["toolChoice"], frozenset({"auto", "any", "tool"}), "toolConfig.toolChoice")
    text_format = (body.get("outputConfig") or {}).get("textFormat")
    if text_format is not None:
        schema = ((text_format.get("structure") or {}).get("jsonSchema") or {}).get("schema")
        if text_format.get("type") != "json_schema" or type(schema) is not str:
            raise Invalid("outputConfig.textFormat needs type json_schema and a schema given as a JSON string")
        try:
            json.loads(schema)
        except ValueError:
            raise Invalid("outputConfig.textFormat's schema is not valid JSON") from None
    if "additionalModelRequestFields" in body and type(body["additionalModelRequestFields"]) is not dict:
        raise Invalid("additionalModelRequestFields must be an object")


def converse_tool_results(messages: Any) -> list[ToolResult]:
    found = []
    for message in messages if isinstance(messages, list) else []:
        for block in message.get("content") or [] if isinstance(message, dict) else []:
            result = block.get("toolResult") if isinstance(block, dict) else None
            if isinstance(result, dict):
                text = "".join(part.get("text", "") for part in result.get("content") or [] if isinstance(part, dict))
                found.append(ToolResult(str(result.get("toolUseId")), text, result.get("status") == "error"))
    return found


# -- the neutral view of what was sent (for the conformance kit) ---------------------------


def _seen_converse(body: dict[str, Any], model: str, stream: bool) -> Seen:
    system = "\n".join(block["text"] for block in body.get("system") or [] if "text" in block) or None
    messages: list[tuple[str, str]] = []
    calls: list[tuple[str, dict[str, Any]]] = []
    results: list[tuple[str, str]] = []
    images: list[str] = []
    for message in body.get("messages") or []:
        texts = [block["text"] for block in message["content"] if "text" in block]
        if texts:
            messages.append((message["role"], "".join(texts)))
        for block in message["content"]:
            if "toolUse" in block:
                calls.append((block["toolUse"]["name"], block["toolUse"]["input"]))
            if "toolResult" in block:
                text = "".join(part.get("text", "") for part in block["toolResult"]["content"])
                results.append((block["toolResult"]["toolUseId"], text))
                messages.append(("tool", text))
            if "image" in block:
                images.append(f"base64:{IMAGE_MEDIA[block['image']['format']]}")
    inference = body.get("inferenceConfig") or {}
    text_format = (body.get("outputConfig") or {}).get("textFormat")
    schema = json.loads(text_format["structure"]["jsonSchema"]["schema"]) if text_format else None
    params = {name: inference[key] for name, key in (("max_tokens", "maxTokens"), ("stop", "stopSequences"),
                                                     ("temperature", "temperature"), ("top_p", "topP"))
              if key in inference}
    return Seen(model=model, stream=stream, system=system, messages=messages,
                tool_names=[t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools") or []
                            if "toolSpec" in t],
                tool_calls=calls, tool_results=results, images=images,
                json_mode="schema" if text_format else None, json_schema=schema, params=params)


def _seen_anthropic(body: dict[str, Any], model: str, stream: bool) -> Seen:
    system = body.get("system")
    if isinstance(system, list):
        system = "\n".join(block.get("text", "") for block in system)
    messages: list[tuple[str, str]] = []
    calls: list[tuple[str, dict[str, Any]]] = []
    images: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        texts = [block.get("text", "") for block in blocks if block.get("type") == "text"]
        if texts:
            messages.append((message["role"], "".join(texts)))
        for block in blocks:
            if block.get("type") == "tool_use":
                calls.append((block["name"], block["input"]))
            if block.get("type") == "image":
                source = block.get("source") or {}
                images.append(f"url:{source.get('url')}" if source.get("type") == "url"
                              else f"base64:{source.get('media_type')}")
    results = [(r.call_id, r.text) for r in anthropic_tool_results(body.get("messages"))]
    messages += [("tool", text) for _, text in results]
    params = {name: body[key] for name, key in (("max_tokens", "max_tokens"), ("stop", "stop_sequences"),
                                                ("temperature", "temperature"), ("top_p", "top_p")) if key in body}
    schema = ((body.get("output_config") or {}).get("format") or {}).get("schema")
    return Seen(model=model, stream=stream, system=system or None, messages=messages,
                tool_names=[tool.get("name") for tool in body.get("tools") or []], tool_calls=calls,
                tool_results=results, images=images, json_mode="schema" if schema else None,
                json_schema=schema, params=params)


# -- the fake ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    request: RecordedRequest
    status: int
    exception_type: str
    message: str


@dataclass
class _Route:
    model: str
    operation: str


class BedrockAPI:
    """The fake; see the module docstring.  ``credentials``: access key ->
    secret, or (secret, session token); ``api_key``: the Bedrock API key it
    takes as a bearer (any bearer when neither is given)."""

    def __init__(self, script: Sequence[Step] = (), *, credentials: dict[str, str | tuple[str, str]] | None = None,
                 api_key: str | None = None, region: str = REGION) -> None:
        self.script = Script(script)
        self.credentials = credentials or {}
        self.api_key = api_key
        self.region = region
        self.calls: list[Call] = []
        self.refusals: list[Refusal] = []
        #: The InvokeModel body of every accepted CountTokens request.
        self.counted: list[dict[str, Any]] = []
        self.stream_delay = 0.0
        self.disconnected = threading.Event()
        self._tool_id = id_maker("tooluse_")
        self._message_id = id_maker("msg_bdrk_")
        self._request_id = id_maker("req-")

    def install(self, upstream: FakeUpstream) -> BedrockAPI:
        upstream.add("/model/*", self)
        self.disconnected = upstream.disconnected
        return self

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        return error_reply(status, message, retry_after=retry_after)

    def seen(self, call: Call) -> Seen:
        route = _route(call.request)
        assert route is not None
        stream = route.operation.endswith("stream")
        if route.operation.startswith("converse"):
            return _seen_converse(call.body, route.model, stream)
        return _seen_anthropic(call.body, route.model, stream)

    # -- answering --------------------------------------------------------------------------

    def __call__(self, request: RecordedRequest) -> Reply:
        problem = self._check_auth(request)
        if problem is not None:
            return self._refuse(request, 403, *problem)
        route = _route(request)
        if route is None:
            return self._refuse(request, 404, "UnknownOperationException", f"no operation at {request.raw_path}")
        try:
            body = request.json()
        except ValueError:
            return self._refuse(request, 400, "ValidationException", "The request body is not valid JSON")
        try:
            if route.operation in ("converse", "converse-stream"):
                check_converse(body)
                return self._converse(request, body, route)
            if route.operation == "invoke" and family(route.model) in ("amazon", "cohere"):
                return self._embed(body, route.model)
            if route.operation in ("invoke", "invoke-with-response-stream") and family(route.model) == "anthropic":
                return self._claude(request, body, route)
            if route.operation == "count-tokens" and family(route.model) == "anthropic":
                return self._count_tokens(body, route)
        except Invalid as exc:
            return self._refuse(request, 400, "ValidationException", str(exc))
        return self._refuse(request, 400, "ValidationException", f"The fake has no {route.operation} for "
                            f"{route.model}")

    def _check_auth(self, request: RecordedRequest) -> tuple[str, str] | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            if not value or (self.api_key is not None and value != self.api_key) or \
                    (self.api_key is None and self.credentials):
                return "UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix"
            return None
        if self.api_key is not None and not self.credentials:
            return "MissingAuthenticationTokenException", "Missing Authentication Token"
        return check_signature(request, self.credentials, self.region)

    def _refuse(self, request: RecordedRequest, status: int, exception_type: str, message: str) -> Reply:
        self.refusals.append(Refusal(request, status, exception_type, message))
        return error_reply(status, message, exception_type)

    def _turn(self, request: RecordedRequest, body: dict[str, Any], results: list[ToolResult]) -> tuple[Call, Turn]:
        seen = Call(request, body, results)
        turn = self.script.next_turn(seen)
        if turn is None:
            raise Invalid(f"fake Bedrock API: the script has no turn left for call {len(self.calls) + 1}")
        seen.answer = turn
        self.calls.append(seen)
        return seen, turn

    def _converse(self, request: RecordedRequest, body: dict[str, Any], route: _Route) -> Reply:
        _, turn = self._turn(request, body, converse_tool_results(body["messages"]))
        parts = [part if isinstance(part, str) else
                 ToolCall(part.name, part.arguments, part.id or self._tool_id()) for part in turn.parts]
        stop = "tool_use" if turn.calls_tools else "max_tokens" if turn.truncated else "end_turn"
        usage = {"inputTokens": turn.input_tokens, "outputTokens": turn.output_tokens,
                 "totalTokens": turn.input_tokens + turn.output_tokens}
        if route.operation == "converse-stream":
            return event_stream_reply(converse_events(parts, stop, usage), delay=self.stream_delay,
                                      request_id=self._request_id())
        content = [{"text": part} if isinstance(part, str) else
                   {"toolUse": {"toolUseId": part.id, "name": part.name, "input": part.arguments}} for part in parts]
        return Reply(body=serialization.dumps({
            "output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop, "usage": usage,
            "metrics": {"latencyMs": 12}}), headers={"x-amzn-requestid": self._request_id()})

    def _count_tokens(self, body: dict[str, Any], route: _Route) -> Reply:
        """CountTokens (``/model/{id}/count-tokens``), InvokeModel form: ``{"input": {"invokeModel": {"body":
        <the InvokeModel body, base64>}}}`` (a blob in AWS's REST-JSON protocol); the body is checked as
        InvokeModel would check it.  Answers ``inputTokens`` = :data:`COUNT_BASE` + the number of messages."""
        given = body.get("input")
        invoke = given.get("invokeModel") if isinstance(given, dict) else None
        if set(body) != {"input"} or not isinstance(invoke, dict) or set(given) != {"invokeModel"} \
                or set(invoke) != {"body"} or not isinstance(invoke["body"], str):
            raise Invalid("input: must be {invokeModel: {body: <blob>}} or {converse: {...}}")
        try:
            inner = json.loads(base64.b64decode(invoke["body"], validate=True))
        except ValueError:
            raise Invalid("input.invokeModel.body: not a base64-encoded JSON document") from None
        if not isinstance(inner, dict):
            raise Invalid("input.invokeModel.body: must be a JSON object")
        self._check_claude_body(inner, route)
        self.counted.append(inner)
        return Reply(body=serialization.dumps({"inputTokens": COUNT_BASE + len(inner["messages"])}),
                     headers={"x-amzn-requestid": self._request_id()})

    def _claude(self, request: RecordedRequest, body: dict[str, Any], route: _Route) -> Reply:
        self._check_claude_body(body, route)
        _, turn = self._turn(request, body, anthropic_tool_results(body["messages"]))
        return self._claude_reply(request, route, turn)

    def _check_claude_body(self, body: dict[str, Any], route: _Route) -> None:
        if body.get("anthropic_version") != "bedrock-2023-05-31":
            raise Invalid("anthropic_version: must be bedrock-2023-05-31")
        for name in ("model", "stream"):
            if name in body:
                raise Invalid(f"Malformed input request: #: extraneous key [{name}] is not permitted, please "
                              "reformat your input and try again.")
        betas = body.get("anthropic_beta", [])
        if type(betas) is not list or not all(type(beta) is str for beta in betas):
            raise Invalid("anthropic_beta: must be a list of strings")
        message = check_anthropic_body({**{k: v for k, v in body.items() if k not in ("anthropic_version",
                                                                                       "anthropic_beta")},
                                        "model": route.model}, betas)
        if message is not None:
            raise Invalid(message)

    def _claude_reply(self, request: RecordedRequest, route: _Route, turn: Turn) -> Reply:
        answer = self._claude_message(turn, route.model)
        if route.operation == "invoke":
            return Reply(body=serialization.dumps(answer), headers={"x-amzn-requestid": self._request_id()})
        events = []
        for _, data in anthropic_events(answer):
            if data["type"] == "message_stop":  # Bedrock adds its metrics to the last event
                data = {**data, "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": turn.input_tokens, "outputTokenCount": turn.output_tokens,
                    "invocationLatency": 12, "firstByteLatency": 5}}
            events.append(chunk(data))
        return event_stream_reply(events, delay=self.stream_delay, request_id=self._request_id())

    def _claude_message(self, turn: Turn, model: str) -> dict[str, Any]:
        content = [{"type": "text", "text": part} if isinstance(part, str) else
                   {"type": "tool_use", "id": part.id or f"toolu_bdrk_{self._tool_id()[8:]}", "name": part.name,
                    "input": part.arguments} for part in turn.parts]
        return {"id": self._message_id(), "type": "message", "role": "assistant", "model": base_name(model),
                "content": content,
                "stop_reason": "tool_use" if turn.calls_tools else "max_tokens" if turn.truncated else "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": turn.input_tokens,
                                                 "output_tokens": turn.output_tokens}}

    def _embed(self, body: dict[str, Any], model: str) -> Reply:
        name = base_name(model)
        size = next((n for prefix, n in EMBEDDING_SIZES.items() if name.startswith(prefix)), None)
        if size is None:
            raise Invalid(f"{model} is not an embeddings model")
        if family(model) == "amazon":
            allowed = {"inputText", "dimensions", "normalize"} if name.startswith("titan-embed-text-v2") \
                else {"inputText"}
            if not set(body) <= allowed or type(body.get("inputText")) is not str:
                raise Invalid(f"Malformed input request: the body takes {', '.join(sorted(allowed))}")
            size = body.get("dimensions", size)
            if size not in (256, 512, 1024, 1536):
                raise Invalid("dimensions must be 256, 512 or 1024")
            vector = embedding_for(body["inputText"], size, body.get("normalize", True))
            return Reply(body=serialization.dumps({"embedding": vector,
                                                   "inputTextTokenCount": len(body["inputText"].split())}))
        texts = body.get("texts")
        if type(texts) is not list or not 1 <= len(texts) <= 96 or not all(type(t) is str for t in texts):
            raise Invalid("texts must be a list of 1 to 96 strings")
        if body.get("input_type") not in ("search_document", "search_query", "classification", "clustering"):
            raise Invalid("input_type: must be one of search_document, search_query, classification, clustering")
        size = body.get("output_dimension", size)
        vectors = [embedding_for(text, size, False) for text in texts]
        embeddings = {"float": vectors} if body.get("embedding_types") else vectors
        return Reply(body=serialization.dumps({"id": "emb-1", "embeddings": embeddings, "texts": texts,
                                               "response_type": "embeddings_by_type" if body.get("embedding_types")
                                               else "embeddings_floats"}),
                     headers={"x-amzn-bedrock-input-token-count": str(sum(len(t.split()) for t in texts))})


def embedding_for(text: str, size: int, normalize: bool) -> list[float]:
    """A vector that depends on ``text`` only (so tests can tell texts apart)."""
    digest = hashlib.sha256(text.encode()).digest()
    vector = [(digest[i % len(digest)] - 127.5) / 128 for i in range(size)]
    if normalize:
        norm = math.sqrt(sum(x * x for x in vector))
        vector = [x / norm for x in vector]
    return vector


def converse_events(parts: Sequence[str | ToolCall], stop: str, usage: dict[str, int]) -> Iterator[bytes]:
    """A ConverseStream answer's frames, as the service sends them."""
    yield event("messageStart", {"role": "assistant", "p": padding(4)})
    for index, part in enumerate(parts):
        if isinstance(part, str):
            for piece in halves(part):
                yield event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece},
                                                  "p": padding(len(piece) % 11)})
        else:
            yield event("contentBlockStart", {"contentBlockIndex": index,
                                              "start": {"toolUse": {"toolUseId": part.id, "name": part.name}}})
            for piece in halves(serialization.dumps_str(part.arguments)):
                yield event("contentBlockDelta", {"contentBlockIndex": index,
                                                  "delta": {"toolUse": {"input": piece}}})
        yield event("contentBlockStop", {"contentBlockIndex": index})
    yield event("messageStop", {"stopReason": stop})
    yield event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}})


def _route(request: RecordedRequest) -> _Route | None:
    found = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream|invoke|invoke-with-response-stream|count-tokens)",
                         request.raw_path or request.path)
    return _Route(unquote(found.group(1)), found.group(2)) if found else None


__all__ = ["BedrockAPI", "Refusal", "Seen", "check_converse", "check_signature", "chunk", "converse_events",
           "embedding_for", "error_reply", "event", "event_stream_reply", "exception", "frame"]
