"""The provider contract.

A provider plugin registers a :class:`Provider` subclass through the
``register_providers`` hook.  The gateway makes one instance per entry in
the config's ``providers:`` section at start-up, calls :meth:`start` (which
opens the pooled :class:`~portway.upstream.Upstream`), and then only calls
:meth:`chat`, :meth:`chat_stream` and :meth:`embeddings` on the request
path.  Requests and responses are canonical: OpenAI Chat Completions and
Embeddings bodies as plain dicts; the adapter translates to and from its
wire format.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing
from typing import Any, ClassVar

from portway import serialization, sse
from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError, is_error_status, kind_for_status, kind_for_type, redact
from portway.quirks import lookup_capabilities
from portway.upstream import Upstream, UpstreamResponse, UpstreamStream

#: Longest upstream error message passed on to a client.
MAX_MESSAGE = 1000


class Provider:
    #: The name used as ``type:`` in config.
    type: ClassVar[str] = ""
    #: Pydantic model for this provider's config entry.
    config_model: ClassVar[type[ProviderConfig]] = ProviderConfig
    #: Used when the config gives no ``base_url`` (the official SDK's default).
    default_base_url: ClassVar[str | None] = None
    #: The standard environment variable holding the key; with no config
    #: file, a provider whose variable is set is enabled automatically.
    env_key: ClassVar[str | None] = None
    #: The official SDK's base-URL variable (e.g. ``OPENAI_BASE_URL``), also
    #: honoured for providers enabled from the environment.
    env_base_url: ClassVar[str | None] = None
    #: Models listed by ``GET /v1/models`` when the config lists none.
    default_models: ClassVar[tuple[str, ...]] = ()
    #: Ingress formats this upstream speaks as they are (``"anthropic"`` for
    #: the Messages API): a client request in one goes through unchanged,
    #: by :meth:`native` / :meth:`native_stream` (see :mod:`portway.native`).
    native_formats: frozenset[str] = frozenset()
    #: Names (lower case) of configured ``headers`` that carry credentials:
    #: their values are redacted like the API key (see :meth:`secrets`).
    #: Extend it for a provider's own, e.g. ``Provider.secret_headers | {"x-acme-token"}``.
    secret_headers: ClassVar[frozenset[str]] = frozenset(
        {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"})
    #: What each model can do, for the models the provider documents:
    #: shell-style model patterns (matched in order, case-insensitive) -> a
    #: set of :data:`portway.quirks.CAPABILITIES` (``tools``, ``vision``,
    #: ``json``).  A request that needs what its model lacks is a 400 naming
    #: the field before anything is sent (adapters call
    #: :func:`portway.quirks.check_capabilities`); a model no pattern matches
    #: is not checked.
    capabilities: ClassVar[Mapping[str, Iterable[str]]] = {}
    #: The limits of the models the provider documents: shell-style model
    #: patterns (matched in order, case-insensitive) -> (context window,
    #: maximum output tokens), either None when unknown.  Read by the model
    #: catalog (:mod:`portway.catalog`) under the config's ``catalog:`` entries.
    limits: ClassVar[Mapping[str, tuple[int | None, int | None]]] = {}
    #: The provider's id in the ``genai-prices`` data the built-in catalog
    #: reads (``google`` for Gemini, ``aws`` for Bedrock); None: :attr:`type`.
    catalog_id: ClassVar[str | None] = None

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        base_url = config.base_url or self.default_base_url
        if not base_url:
            raise PortwayError(f"provider {name!r} needs a base_url", kind="bad_request")
        self.base_url = base_url.rstrip("/")
        key = config.api_key.get_secret_value() if config.api_key is not None else None
        if key is None and self.env_key:
            key = os.environ.get(self.env_key)
        self.api_key: str | None = key or None
        self._http: Upstream | None = None

    # -- lifecycle ---------------------------------------------------------

    def default_headers(self) -> dict[str, str]:
        """Headers sent with every request that carry no credential (an API
        version, feature flags); override per provider.  Unlike
        :meth:`auth_headers`, their values are not redacted from errors."""
        return {}

    def auth_headers(self) -> dict[str, str]:
        """Headers that carry the credentials; override per provider."""
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def start(self) -> None:
        http = Upstream(
            self.base_url,
            name=self.name,
            headers={**self.default_headers(), **self.auth_headers(), **self.config.headers},
            timeout=self.config.timeout,
            connect_timeout=self.config.connect_timeout,
            pool_timeout=self.config.pool_timeout,
            max_connections=self.config.max_connections,
            max_response_bytes=self.config.max_response_bytes,
            max_event_bytes=self.config.max_event_bytes,
            transport=self.config.http_client,
        )
        await http.start()
        self._http = http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def http(self) -> Upstream:
        if self._http is None:
            raise PortwayError(f"provider {self.name!r} is not started", kind="unavailable")
        return self._http

    # -- the request path --------------------------------------------------

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """Non-streamed chat completion: return an OpenAI ``chat.completion`` dict."""
        raise self.unsupported("chat completions")

    async def chat_stream(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[dict[str, Any]]:
        """Streamed chat completion: yield OpenAI ``chat.completion.chunk``
        dicts, ending with a chunk that has ``usage`` when the upstream
        reports it.  (A provider that overrides :meth:`chat_stream_batches`
        instead gets this for free.)"""
        if type(self).chat_stream_batches is Provider.chat_stream_batches:
            raise self.unsupported("streamed chat completions")
        async with aclosing(self.chat_stream_batches(body, ctx)) as batches:
            async for batch in batches:
                for chunk in batch:
                    yield chunk

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """What the gateway calls: the chunks of :meth:`chat_stream` in
        lists of those that arrived together, so the gateway can send them
        to the client in one write.  Override it (and build ``chat_stream``
        on it) when the wire delivers several events per read, as SSE does;
        the default makes one list per chunk."""
        async with aclosing(self.chat_stream(body, ctx)) as chunks:
            async for chunk in chunks:
                yield [chunk]

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """Return an OpenAI embeddings ``list`` dict."""
        raise self.unsupported("embeddings")

    async def rerank(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """Rank ``body["documents"]`` by relevance to ``body["query"]`` (the
        canonical rerank request, :mod:`portway.schemas.rerank`): return the
        canonical answer (:mod:`portway.formats.rerank`; check an upstream's
        with :func:`~portway.formats.rerank.check_rerank`).  The gateway
        sorts the results, cuts them to ``top_n`` and fills in documents."""
        raise self.unsupported("rerank")

    async def count_tokens(self, body: dict[str, Any], ctx: Any) -> int | None:
        """The input tokens of a Messages API request (``body``: the
        client's ``/v1/messages/count_tokens`` body, ``model`` already this
        provider's), counted by the provider's own API; None when it has
        none (the gateway then answers with its estimate, marked as one)."""
        return None

    def counted(self, response: UpstreamResponse, key: str) -> int:
        """The token count under ``key`` of a counting API's answer (checked:
        a non-negative integer, else the provider's malformed-answer 502)."""
        answer = self.answer_json(response)
        count = answer.get(key) if isinstance(answer, dict) else None
        if type(count) is not int or count < 0:
            raise self.malformed(f"its token count has no {key} count")
        return count

    async def native(self, fmt: str, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """A request in ``fmt`` (one of :attr:`native_formats`), sent as it is;
        return the upstream's answer in the same format, shape-checked."""
        raise self.unsupported(f"{fmt} requests as they are")

    async def native_stream(self, fmt: str, body: dict[str, Any], ctx: Any, *,
                            chunks: bool = True) -> AsyncIterator[list[Any]]:
        """The streamed form of :meth:`native`: lists of
        :class:`portway.native.NativeEvent`, each with the canonical chunks
        it converts to, in the batches they arrived in.  Must end with the
        format's end of stream, or raise a classified error.  With
        ``chunks=False`` no hook needs the canonical view, and the adapter
        may leave the events that carry content unparsed (see
        :class:`~portway.native.NativeEvent`)."""
        raise self.unsupported(f"{fmt} streams as they are")
        yield []

    def speaks_natively(self, fmt: str, model: str) -> bool:
        """Whether a request in ``fmt`` for ``model`` goes to this upstream as
        it is (by :meth:`native`).  One of :attr:`native_formats`, for every
        model; a provider whose models speak different formats (Vertex AI:
        Claude speaks Anthropic's, Gemini does not) narrows it by model."""
        return fmt in self.native_formats

    def models(self) -> list[str]:
        return list(self.config.models or self.default_models)

    def model_capabilities(self, model: str) -> frozenset[str] | None:
        """What ``model`` can do by :attr:`capabilities` (None: not known)."""
        if not self.capabilities:
            return None
        cache = self.__dict__.setdefault("_capabilities_cache", {})
        if model not in cache:
            if len(cache) > 1024:  # model names come from clients: keep the cache bounded
                cache.clear()
            cache[model] = lookup_capabilities(self.capabilities, model)
        return cache[model]

    # -- helpers shared by adapters ------------------------------------------

    def unsupported(self, what: str) -> PortwayError:
        return PortwayError(
            f"provider {self.name!r} (type {self.type}) does not support {what}", kind="bad_request",
            code="unsupported",
        )

    def secrets(self) -> list[str]:
        """Every credential this provider sends, redacted (exact and masked
        forms) from every error it raises: the API key, every value of
        :meth:`auth_headers`, and the configured ``headers`` named in
        :attr:`secret_headers`; for a value like ``Bearer <token>``, the
        token too.  Override it (extending ``super().secrets()``) for
        credentials made at run time: OAuth tokens, request signatures."""
        values = [self.api_key or "", *self.auth_headers().values()]
        values += [v for k, v in self.config.headers.items() if k.lower() in self.secret_headers]
        tokens = [v.split(" ", 1)[1].strip() for v in values if " " in v.strip()]
        return [v for v in values + tokens if v]

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        """Turn an upstream error answer into a classified, client-safe error.
        A status that is no HTTP error (999) reaches the client as a 502."""
        error_type, message = self.parse_error_body(response.content)
        if not is_error_status(response.status):
            message = f"upstream answered with HTTP status {response.status}, not an HTTP error status: {message}"
        kind = kind_for_status(response.status)
        if kind == "bad_request" and error_type in {"context_length_exceeded", "content_filter"}:
            kind = kind_for_type(error_type)  # a 400 the router can act on (e.g. fall back to a bigger window)
        elif kind == "rate_limit" and error_type == "insufficient_quota":
            kind = "billing"  # a 429 that no retry can fix
        return self.make_error(message, kind=kind, status=response.status, code=error_type,
                               retry_after=retry_after(response.headers))

    def make_error(self, message: str, *, kind: str, status: int | None = None, code: str | None = None,
                   retry_after: str | None = None) -> ProviderError:
        # Redact and cut together: a key straddling the cut would survive in part.
        message = redact(message, self.secrets(), limit=MAX_MESSAGE)
        if kind == "authentication":
            message = f"provider {self.name!r} rejected the gateway's credentials: {message}"
        else:
            message = f"provider {self.name!r}: {message}"
        return ProviderError(message, kind=kind, status=status, code=code, retry_after=retry_after, provider=self.name)

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        """(type or code, message) from the common shapes: ``{"error":
        {"message", "type", "code"}}`` (OpenAI's and most others'), ``{"error":
        "text"}``, ``{"message": ...}``, and FastAPI's ``{"detail": "text"}`` or
        ``{"detail": [{"loc": [...], "msg": "..."}]}`` (servers written with
        it: Voyage, Jina, vLLM's validation errors, …)."""
        try:
            data = serialization.loads(content)
        except serialization.JSONDecodeError:
            text = content.decode("utf-8", "replace").strip()
            return None, text or "upstream returned an error with no body"
        if isinstance(data, dict) and "error" not in data and "detail" in data:
            detail = data["detail"]
            if isinstance(detail, str):
                return None, detail
            if isinstance(detail, list) and detail:
                return None, "; ".join(_validation_item(item) for item in detail)
        if isinstance(data, dict):
            err = data.get("error", data)
            if isinstance(err, dict):
                code = err.get("code") if isinstance(err.get("code"), str) else None
                return code or err.get("type"), str(err.get("message") or err)
            if isinstance(err, str):
                return None, err
        return None, str(data)

    # -- untrusted answers -----------------------------------------------------

    async def stream_items(self, response: UpstreamStream, convert: Callable[[sse.Event], Any], *,
                           as_sent: bool = False) -> AsyncIterator[list[Any]]:
        """What ``convert`` makes of each SSE event of ``response``, one list
        per network read (what arrived together is relayed together).
        ``as_sent``: each item is its event's JSON itself, parsed and
        unchanged; a batch then comes as an :class:`~portway.sse.Relayed`
        carrying the events' own bytes, which are relayed instead of the
        items encoded again (unless something changes them on the way).

        ``convert`` returns ``None`` to skip an event; raises
        :class:`StreamEnd` at the format's end marker (``[DONE]``),
        :class:`~portway.formats.MalformedAnswer` or a JSON error for an event
        without its format's shape (a :meth:`malformed` answer), and
        :class:`ProviderError` for an error the upstream reported inside the
        stream (given this provider's name and redaction if it has none).
        What was converted before a failure is yielded first."""
        from portway.formats import MalformedAnswer

        # Closed here, not left to the garbage collector: a generator dropped
        # unfinished (this one returns at [DONE]) is closed by a task the loop
        # schedules through its thread-safe wake-up, a write and a read per stream.
        async with aclosing(response.aiter_event_batches()) as reads:
            async for events in reads:
                batch: list[Any] = []
                raw: list[bytes] | None = [] if as_sent else None
                try:
                    for event in events:
                        item = convert(event)
                        if item is not None:
                            batch.append(item)
                            if raw is not None:
                                if event.raw.find(b"\n") < 0:
                                    raw.append(event.raw)
                                else:  # data of several lines cannot be framed again as one
                                    raw = None
                except StreamEnd:
                    if batch:
                        yield batch if raw is None else sse.Relayed(batch, raw)
                    return
                except (serialization.JSONDecodeError, MalformedAnswer) as exc:
                    if batch:
                        yield batch
                    raise self.malformed("a stream event is not JSON" if isinstance(exc, serialization.JSONDecodeError)
                                         else str(exc)) from None
                except ProviderError as exc:
                    if batch:
                        yield batch
                    if exc.provider is None:
                        raise self.make_error(exc.message, kind=exc.kind, code=exc.code) from None
                    raise
                if batch:
                    yield batch if raw is None else sse.Relayed(batch, raw)

    async def refuse_failed_stream(self, response: UpstreamStream) -> None:
        """Raise the classified error of a stream request the upstream
        refused (any status from 300 up: redirects are never followed)."""
        if response.status >= 300:
            raise self.error_from_response(UpstreamResponse(response.status, response.headers, await response.aread()))

    def malformed(self, reason: str) -> ProviderError:
        """An answer that does not have its format's shape: a retryable
        upstream failure (the next attempt, or another target, may do
        better), shown to the client as a 502."""
        return self.make_error(f"returned a malformed answer: {reason}", kind="server_error", status=502)

    def answer_json(self, response: UpstreamResponse) -> Any:
        """The JSON of a successful answer.  A body that is not JSON is
        :meth:`malformed`; an ``{"error": ...}`` body inside a 2xx (some
        servers do that) is classified like an error status would be."""
        try:
            data = serialization.loads(response.content)
        except serialization.JSONDecodeError:
            raise self.malformed("the body is not JSON") from None
        if type(data) is dict and data.get("error") and "choices" not in data and "data" not in data \
                and "output" not in data:
            error_type, message = self.parse_error_body(response.content)
            kind = kind_for_type(error_type if isinstance(error_type, str) else None)
            raise self.make_error(message, kind=kind, code=error_type if isinstance(error_type, str) else None,
                                  status=502 if kind == "server_error" else None)
        return data


def _validation_item(item: Any) -> str:
    """One FastAPI validation error (``{"loc": ["body", "input"], "msg": ...}``) as ``input: msg``."""
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc") or () if part != "body")
    message = str(item.get("msg") or item)
    return f"{where}: {message}" if where else message


def retry_after(headers: Any) -> str | None:
    """An upstream's retry hint as a ``Retry-After`` value: its own
    ``retry-after`` (seconds or an HTTP date) as it is, else its
    ``retry-after-ms`` (Azure OpenAI's and OpenAI's, which their SDKs read
    first) rounded up to whole seconds, as ``Retry-After`` takes no fractions."""
    value = headers.get("retry-after")
    if value:
        return value
    try:
        millis = float(headers.get("retry-after-ms") or "")
    except ValueError:
        return None
    if not 0 <= millis < 86_400_000:  # not a number, negative, or more than a day: no usable hint
        return None
    return str(math.ceil(millis / 1000))


class StreamEnd(Exception):
    """Raised by a :meth:`Provider.stream_items` converter at its format's
    end-of-stream marker (OpenAI's ``[DONE]``)."""
