"""The ``bedrock`` provider: Bedrock Runtime over HTTP, signed with SigV4
or a Bedrock API key.

* Chat (every client, every model family): ``Converse`` /
  ``ConverseStream`` (:mod:`portway_bedrock.converse`).
* Anthropic clients on a Claude model: ``InvokeModel`` /
  ``InvokeModelWithResponseStream`` with Anthropic's own body, relayed as
  Anthropic's events (a pass-through, see :mod:`portway.native`).
* Embeddings: ``InvokeModel`` with Titan or Cohere bodies
  (:mod:`portway_bedrock.embeddings`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from portway import serialization
from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError, is_error_status, kind_for_status
from portway.formats import MalformedAnswer
from portway.formats.anthropic import AnthropicStreamToOpenAI, check_message
from portway.formats.openai import strip_anthropic_extras
from portway.native import NativeEvent
from portway.providers import Provider
from portway.upstream import UpstreamResponse, UpstreamStream
from portway_bedrock import embeddings, sigv4
from portway_bedrock.converse import ConverseStreamToOpenAI, converse_request, converse_response_to_openai
from portway_bedrock.eventstream import EventStreamReader, Message
from portway_bedrock.models import family, model_path

SERVICE = "bedrock"  # the signing name of bedrock-runtime (botocore's service model)
#: Embedding calls of one request in flight at once (Titan takes one text per call).
EMBED_CONCURRENCY = 8
_HOST_REGION = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")

#: Exception names (lower case, as ``x-amzn-ErrorType`` or ``:exception-type``
#: carry them) -> (kind, status when none came with it).  botocore's service
#: model gives the statuses; the kinds decide retries and fallbacks.
EXCEPTIONS: dict[str, tuple[str, int]] = {
    "throttlingexception": ("rate_limit", 429),
    "modelnotreadyexception": ("rate_limit", 429),  # retryable, per the service model
    "servicequotaexceededexception": ("rate_limit", 400),  # a quota: another target may have room
    "modelerrorexception": ("server_error", 424),
    "modelstreamerrorexception": ("server_error", 424),
    "internalserverexception": ("server_error", 500),
    "serviceunavailableexception": (kind_for_status(503), 503),
    "modeltimeoutexception": ("timeout", 408),
    "validationexception": ("bad_request", 400),
    "accessdeniedexception": ("permission", 403),
    "resourcenotfoundexception": ("not_found", 404),
    # AWS answers bad credentials with a 403 under these names.
    "unrecognizedclientexception": ("authentication", 403),
    "invalidsignatureexception": ("authentication", 403),
    "incompletesignatureexception": ("authentication", 403),
    "expiredtokenexception": ("authentication", 403),
    "missingauthenticationtokenexception": ("authentication", 403),
    "signaturedoesnotmatch": ("authentication", 403),
}
_TOO_LONG = re.compile(r"too long|too many (input )?tokens|context (window|length)", re.IGNORECASE)

#: The signatures this task's requests carried, so errors it raises redact
#: them (each request has its own; a context variable keeps concurrent
#: requests apart).
_SIGNATURES: ContextVar[tuple[str, ...]] = ContextVar("portway_bedrock_signatures", default=())


class BedrockConfig(ProviderConfig):
    #: The AWS region; also the default ``base_url``'s.
    region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    #: ``anthropic_version`` put in Claude's InvokeModel body (pass-through).
    anthropic_version: str = "bedrock-2023-05-31"
    #: Anthropic beta flags put in that body's ``anthropic_beta`` list, with the client's own.
    beta: list[str] = Field(default_factory=list)
    #: Cohere Embed's ``input_type`` when the client sends none.
    cohere_input_type: str = "search_document"


def exception_type(headers: Any, content: bytes) -> str | None:
    """The exception's name: ``x-amzn-ErrorType`` (``Name:namespace``), else
    the body's ``__type`` (``namespace#Name``)."""
    name = headers.get("x-amzn-errortype")
    if not name:
        try:
            data = serialization.loads(content)
        except serialization.JSONDecodeError:
            return None
        name = data.get("__type") if type(data) is dict and type(data.get("__type")) is str else None
    return name.partition(":")[0].rpartition("#")[2] if name else None


def error_message(content: bytes) -> str:
    try:
        data = serialization.loads(content)
    except serialization.JSONDecodeError:
        return content.decode("utf-8", "replace").strip() or "upstream returned an error with no body"
    if type(data) is dict:
        message = data.get("message") or data.get("Message")
        if isinstance(message, str) and message:
            return message
    return Provider.parse_error_body(content)[1]


def classify(error_type: str | None, status: int | None, message: str) -> tuple[str, int]:
    """(kind, status) of a Bedrock exception; ``status`` is what the upstream
    said, if anything (an exception inside a stream comes with none)."""
    kind, default = EXCEPTIONS.get((error_type or "").lower(), (None, None))
    status = status or default or 502
    kind = kind or kind_for_status(status)
    if kind == "bad_request" and _TOO_LONG.search(message):
        kind = "context_length"  # the router may fall back to a model with a larger window
    return kind, status


class BedrockProvider(Provider):
    type = "bedrock"
    catalog_id = "aws"  # genai-prices' id for its models' prices
    config_model = BedrockConfig
    env_key = "AWS_BEARER_TOKEN_BEDROCK"  # a Bedrock API key; AWS keys alone enable nothing
    native_formats = frozenset({"anthropic"})
    default_models = (
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0", "amazon.titan-embed-text-v2:0", "cohere.embed-english-v3",
    )

    def __init__(self, name: str, config: ProviderConfig) -> None:
        settings: BedrockConfig = config  # type: ignore[assignment]
        self.region = settings.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not settings.base_url:
            if not self.region:
                raise PortwayError(f"provider {name!r} needs a region: set 'region' (or AWS_REGION) or 'base_url'",
                                   kind="bad_request")
            settings = settings.model_copy(update={"base_url": f"https://bedrock-runtime.{self.region}.amazonaws.com"})
        super().__init__(name, settings)
        split = urlsplit(self.base_url)
        if not self.region:
            found = _HOST_REGION.match(split.hostname or "")
            self.region = found.group(1) if found else None
        # The Host header is signed, so it is sent as signed (the transports would send the same value).
        default_port = {"https": 443, "http": 80}.get(split.scheme)
        self._host = split.hostname + (f":{split.port}" if split.port and split.port != default_port else "") \
            if split.hostname else ""
        self._path_prefix = split.path.rstrip("/")
        self.credentials = self._credentials(name, settings)
        if self.credentials is not None:
            self.api_key = None  # signed requests carry no bearer key (one from the environment loses to keys given)
            if not self.region:
                raise PortwayError(f"provider {name!r} needs a region to sign requests: set 'region' (or AWS_REGION)",
                                   kind="bad_request")

    @staticmethod
    def _credentials(name: str, settings: BedrockConfig) -> sigv4.Credentials | None:
        """SigV4 credentials, or None for a bearer key (or none at all).  The
        config's own credentials come first, then the environment's: a Bedrock
        API key, then the standard AWS variables."""
        given = settings.aws_access_key_id, settings.aws_secret_access_key
        if any(given) and settings.api_key is not None:
            raise PortwayError(f"provider {name!r}: give either api_key or AWS keys, not both", kind="bad_request")
        if any(given):
            if not all(given):
                raise PortwayError(f"provider {name!r}: aws_access_key_id and aws_secret_access_key go together",
                                   kind="bad_request")
            token = settings.aws_session_token
            return sigv4.Credentials(settings.aws_access_key_id or "", given[1].get_secret_value(),  # type: ignore[union-attr]
                                     token.get_secret_value() if token is not None else None)
        if settings.aws_session_token is not None:
            raise PortwayError(f"provider {name!r}: aws_session_token needs aws_access_key_id and "
                               "aws_secret_access_key", kind="bad_request")
        if settings.api_key is not None or os.environ.get(BedrockProvider.env_key or ""):
            return None
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            return sigv4.Credentials(key, secret, os.environ.get("AWS_SESSION_TOKEN") or None)
        return None

    @property
    def settings(self) -> BedrockConfig:
        return self.config  # type: ignore[return-value]

    def speaks_natively(self, fmt: str, model: str) -> bool:
        # Only Claude takes Anthropic's Messages body (through InvokeModel).
        return fmt == "anthropic" and family(model) == "anthropic"

    def secrets(self) -> list[str]:
        values = super().secrets()
        if self.credentials is not None:
            values += [self.credentials.secret_key, self.credentials.session_token or ""]
        return [value for value in (*values, *_SIGNATURES.get()) if value]

    # -- the wire ----------------------------------------------------------------------

    def _headers(self, path: str, body: bytes, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"content-type": "application/json", **(extra or {})}
        if self.credentials is None:
            if not self.api_key:
                raise self.make_error("no credentials: set api_key (a Bedrock API key), or aws_access_key_id and "
                                      "aws_secret_access_key, or the standard AWS variables", kind="authentication",
                                      status=401)
            return headers  # the bearer key is one of the pool's headers
        headers["host"] = self._host
        signed = sigv4.sign("POST", self._path_prefix + path, headers, body, credentials=self.credentials,
                            region=self.region or "", service=SERVICE, when=datetime.now(UTC))
        _SIGNATURES.set((*_SIGNATURES.get()[-3:], sigv4.signature_of(signed["authorization"])))
        return {**headers, **signed}

    async def _post(self, path: str, payload: dict[str, Any], extra: dict[str, str] | None = None) -> UpstreamResponse:
        body = serialization.dumps(payload)
        response = await self.http.request("POST", path, body=body, headers=self._headers(path, body, extra))
        if response.status >= 300:
            raise self.error_from_response(response)
        return response

    @asynccontextmanager
    async def _open_stream(self, path: str, payload: dict[str, Any]) -> AsyncIterator[EventStreamReader]:
        """A streamed call's body as event-stream messages (an error status,
        or a JSON body where a stream should be, raised as a classified error)."""
        body = serialization.dumps(payload)
        async with self.http.stream("POST", path, body=body, headers=self._headers(path, body)) as response:
            await self.refuse_failed_stream(response)
            if response.headers.get("content-type", "").startswith("application/json"):
                self.answer_json(UpstreamResponse(response.status, response.headers, await response.aread()))
                raise self.malformed("a stream request was answered with JSON, not an event stream")
            yield self._reader(response)

    def _reader(self, response: UpstreamStream) -> EventStreamReader:
        limit = self.http.max_event_bytes
        return EventStreamReader(response, limit, self.malformed,
                                 lambda size: self.http.too_large("a stream event", "max_event_bytes", limit))

    def _stream_error(self, message: Message) -> ProviderError | None:
        """The error an ``exception`` or ``error`` message carries (None for an event)."""
        if message.message_type == "exception":
            error_type = str(message.headers.get(":exception-type") or "")
            text = error_message(message.payload)
            kind, status = classify(error_type, None, text)
            return self.make_error(text, kind=kind, status=status, code=error_type or None)
        if message.message_type == "error":
            code = str(message.headers.get(":error-code") or "")
            text = str(message.headers.get(":error-message") or "the upstream stream failed")
            kind, status = classify(code, None, text)
            return self.make_error(text, kind=kind if code.lower() in EXCEPTIONS else "server_error",
                                   status=status, code=code or None)
        if message.message_type != "event":
            return self.malformed(f"an event-stream message of type {message.message_type!r}")
        return None

    def _cut(self, reader: EventStreamReader, what: str) -> ProviderError:
        where = "inside a message" if reader.ended_inside_message else f"before {what}"
        return self.make_error(f"the upstream stream ended {where}", kind="connection")

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        if not is_error_status(response.status):
            return super().error_from_response(response)
        error_type = exception_type(response.headers, response.content)
        message = error_message(response.content)
        kind, status = classify(error_type, response.status, message)
        return self.make_error(message, kind=kind, status=status, code=error_type,
                               retry_after=response.headers.get("retry-after"))

    # -- chat: Converse, for every client and model family ---------------------------------

    def _converse_body(self, body: dict[str, Any], ctx: Any, model: str) -> dict[str, Any]:
        if getattr(ctx, "client_format", None) == "anthropic":
            # What only Anthropic's API takes goes (the core's rule), except what Converse can carry.
            kept = {key: body[key] for key in ("top_k", "thinking") if body.get(key) is not None}
            body = {**strip_anthropic_extras(body, self.name), **kept}
        return converse_request(body, model)

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        model = str(body.get("model") or "")
        response = await self._post(model_path(model, "converse"), self._converse_body(body, ctx, model))
        try:
            return converse_response_to_openai(self.answer_json(response), model,
                                               response.headers.get("x-amzn-requestid"))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        model = str(body.get("model") or "")
        path = model_path(model, "converse-stream")
        async with self._open_stream(path, self._converse_body(body, ctx, model)) as reader:
            converter = ConverseStreamToOpenAI(model, reader.headers.get("x-amzn-requestid"))

            def convert(message: Message) -> list[dict[str, Any]]:
                error = self._stream_error(message)
                if error is not None:
                    raise error
                return converter.feed(str(message.event_type), serialization.loads(message.payload or b"{}"))

            async for batch in self.stream_items(reader, convert):  # type: ignore[arg-type]
                chunks = [chunk for converted in batch for chunk in converted]
                if chunks:
                    yield chunks
            if not converter.done:
                raise self._cut(reader, "its metadata event")

    # -- Claude as it is: Anthropic's body through InvokeModel (pass-through) ---------------

    def _anthropic_body(self, body: dict[str, Any], ctx: Any) -> tuple[str, dict[str, Any]]:
        """(model, InvokeModel body): the client's Messages body without
        ``model`` and ``stream`` (the path says both), with Bedrock's
        ``anthropic_version`` and the beta flags in ``anthropic_beta``, not a
        header (Anthropic's Bedrock client does the same)."""
        payload = dict(body)
        model = str(payload.pop("model", "") or "")
        payload.pop("stream", None)
        payload.setdefault("anthropic_version", self.settings.anthropic_version)
        asked = ctx.headers.get("anthropic-beta", "") if getattr(ctx, "client_format", None) == "anthropic" else ""
        flags = [*(payload.get("anthropic_beta") or []), *self.settings.beta,
                 *(flag.strip() for flag in asked.split(",") if flag.strip())]
        if flags:
            payload["anthropic_beta"] = list(dict.fromkeys(flags))
        return model, payload

    async def native(self, fmt: str, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        model, payload = self._anthropic_body(body, ctx)
        if not self.speaks_natively(fmt, model):
            raise self.unsupported(f"{fmt} requests as they are for model {model!r}")
        response = await self._post(model_path(model, "invoke"), payload, {"accept": "application/json"})
        try:
            return check_message(self.answer_json(response))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def count_tokens(self, body: dict[str, Any], ctx: Any) -> int | None:
        """Bedrock's CountTokens (``/model/{id}/count-tokens``) for Claude: the
        InvokeModel body the request would be, as the base64 blob of
        ``input.invokeModel.body`` (botocore's bedrock-runtime model).  Other
        model families: None (the gateway estimates)."""
        model, payload = self._anthropic_body(body, ctx)
        if family(model) != "anthropic":
            return None
        payload.setdefault("max_tokens", 1)  # InvokeModel requires it; it does not change the input's count
        blob = base64.b64encode(serialization.dumps(payload)).decode("ascii")
        response = await self._post(model_path(model, "count-tokens"), {"input": {"invokeModel": {"body": blob}}})
        return self.counted(response, "inputTokens")

    async def native_stream(self, fmt: str, body: dict[str, Any], ctx: Any, *,
                            chunks: bool = True) -> AsyncIterator[list[NativeEvent]]:
        """Anthropic's events, each from a ``chunk`` message's base64
        ``bytes``, relayed as Anthropic's SSE events."""
        model, payload = self._anthropic_body(body, ctx)
        if not self.speaks_natively(fmt, model):
            raise self.unsupported(f"{fmt} streams as they are for model {model!r}")
        async with self._open_stream(model_path(model, "invoke-with-response-stream"), payload) as reader:
            converter = AnthropicStreamToOpenAI()

            def convert(message: Message) -> NativeEvent | None:
                error = self._stream_error(message)
                if error is not None:
                    raise error
                if message.event_type != "chunk":
                    return None
                part = serialization.loads(message.payload)
                encoded = part.get("bytes") if type(part) is dict else None
                if type(encoded) is not str:
                    raise MalformedAnswer("a chunk event has no base64 bytes")
                try:
                    raw = base64.b64decode(encoded, validate=True)
                except binascii.Error:
                    raise MalformedAnswer("a chunk event's bytes are not base64") from None
                data = serialization.loads(raw)
                name = data.get("type") if type(data) is dict and type(data.get("type")) is str else None
                if b"\n" in raw:
                    raw = serialization.dumps(data)  # one SSE data line
                return NativeEvent(name, data, raw, converter.feed(name, data))

            async for batch in self.stream_items(reader, convert):  # type: ignore[arg-type]
                yield batch
            if not converter.done:
                raise self._cut(reader, "message_stop")

    # -- embeddings: InvokeModel with Titan or Cohere bodies ---------------------------------

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        model = str(body.get("model") or "")
        plan = embeddings.plan(body, model, self.settings.cohere_input_type)
        path = model_path(model, "invoke")
        limit = asyncio.Semaphore(EMBED_CONCURRENCY)

        async def invoke(payload: dict[str, Any]) -> UpstreamResponse:
            async with limit:
                return await self._post(path, payload, {"accept": "application/json"})

        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels the other calls
                tasks = [group.create_task(invoke(payload)) for payload in plan.bodies]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        vectors: list[list[float]] = []
        tokens = 0
        try:
            for payload, task in zip(plan.bodies, tasks, strict=True):
                response = task.result()
                found, counted = embeddings.vectors(plan.kind, self.answer_json(response),
                                                    len(payload.get("texts") or [None]))
                vectors += found
                header = response.headers.get("x-amzn-bedrock-input-token-count", "")
                tokens += counted if counted is not None else int(header) if header.isdigit() else 0
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None
        encoding = body.get("encoding_format")
        return {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": embeddings.encode(v, encoding)}
                         for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

