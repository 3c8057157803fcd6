"""One gateway's cache: its backend, its flights, its vectors and its counts.

The request path (:meth:`Cache.lookup` in ``pre_request``, :meth:`Cache.store`
in ``post_response``, :meth:`Cache.finished` in ``request_finished``) is the
whole feature; a backend only keeps bytes.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from portway import caching
from portway.config import ConfigError, validate_section
from portway.errors import PortwayError
from portway_cache.config import CacheConfig, Settings

if TYPE_CHECKING:  # numpy comes with it: imported only once semantic caching is used
    from portway_cache.semantic import Bucket

log = logging.getLogger("portway.cache")

#: The header a client steers the cache with, and the one that says what it did.
HEADER = "x-portway-cache"
#: Endpoints whose answers are cached: chat, through either API.
CACHED_ENDPOINTS = frozenset({"chat.completions", "messages"})
#: Finish reasons of a complete answer (not an error, not a filtered one).
COMPLETE = frozenset({"stop", "length", "tool_calls"})
#: The most seconds ``ttl=`` may ask for (a year).
MAX_TTL = 366 * 86400.0
#: Semantic buckets kept in process (the least recently used go first).
MAX_BUCKETS = 4096


@dataclass(frozen=True, slots=True)
class Directive:
    """What the client's ``x-portway-cache`` asked for."""

    lookup: bool = True
    store: bool = True
    refresh: bool = False
    ttl: float | None = None


DEFAULT = Directive()


def directive(value: str | None) -> Directive:
    """Parse ``x-portway-cache``: a comma-separated list of ``no-cache``
    (look nothing up, store the answer), ``no-store`` (look up, store
    nothing), ``refresh`` (drop the entry, go upstream, store the answer) and
    ``ttl=SECONDS``.  Anything else is a 400."""
    if value is None:
        return DEFAULT
    lookup, store, refresh, ttl = True, True, False, None
    for token in value.split(","):
        word = token.strip().lower()
        if word == "no-cache":
            lookup = False
        elif word == "no-store":
            store = False
        elif word == "refresh":
            lookup, refresh = False, True
        elif word.startswith("ttl="):
            ttl = _seconds(word[4:])
        else:
            raise _bad_header(value)
    if ttl is not None and ttl <= 0:
        raise _bad_header(value)
    return Directive(lookup, store, refresh, ttl)


def _seconds(text: str) -> float:
    try:
        seconds = float(text) if text.replace(".", "", 1).isdigit() else -1.0
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_TTL:
        raise PortwayError(f"{HEADER}: ttl must be a number of seconds above 0 and at most {int(MAX_TTL)}",
                           kind="bad_request", code="invalid_cache_header", param=HEADER)
    return seconds


def _bad_header(value: str) -> PortwayError:
    shown = value if len(value) <= 80 else value[:80] + "..."
    return PortwayError(f"{HEADER}: {shown!r} is not understood; send no-cache, no-store, refresh or ttl=SECONDS "
                        f"(comma-separated)", kind="bad_request", code="invalid_cache_header", param=HEADER)


@dataclass(slots=True)
class Lookup:
    """This request's dealings with the cache (in ``ctx.metadata["cache"]``)."""

    key: str
    settings: Settings
    directive: Directive
    #: Whether this request leads the single flight of ``key`` (and must end it).
    leader: bool = False
    #: The semantic bucket and the prompt's vector, to store with the answer.
    bucket: str | None = None
    vector: Any = None
    #: Served from the cache: nothing to store.
    served: bool = False


@dataclass
class Stats:
    """Counted since start-up, per process (``GET /admin/cache``)."""

    hit: int = 0
    semantic_hit: int = 0
    miss: int = 0
    bypass: int = 0
    stored: int = 0
    backend_errors: int = 0
    embedding_errors: int = 0
    saved_usd: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {"hit": self.hit, "semantic_hit": self.semantic_hit, "miss": self.miss, "bypass": self.bypass,
                "stored": self.stored, "backend_errors": self.backend_errors,
                "embedding_errors": self.embedding_errors, "saved_usd": round(self.saved_usd, 12)}


def prompt_text(messages: Any) -> tuple[str, list[Any]] | None:
    """The prompt the semantic cache embeds (the last message, a user's, as
    text) and the conversation before it; None when the last message is
    not a user's text (an image, a tool result: exact matching only)."""
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, list):
        if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            return None
        content = "\n".join(str(p.get("text", "")) for p in content)
    if not isinstance(content, str) or not content.strip():
        return None
    return content, messages[:-1]


class Cache:
    def __init__(self, gateway: Any, config: CacheConfig, backend_types: dict[str, Any]) -> None:
        self.gateway = gateway
        self.config = config
        source = gateway.config.source
        cls = backend_types.get(config.backend)
        if cls is None:
            known = ", ".join(sorted(backend_types)) or "none installed"
            raise ConfigError(f"{source}: cache.backend: no cache backend named {config.backend!r} "
                              f"(installed: {known}; e.g. pip install portway-cache-{config.backend})")
        settings = validate_section(cls.config_model, config.backend_settings(), source, "cache")
        self.backend: caching.CacheBackend = cls(settings)
        self.flights = caching.SingleFlight()
        self.stats = Stats()
        self._settings: dict[int, Settings | None] = {}
        self.default = Settings.of(config, None)
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def check_embedding_model(self, name: str | None, where: str) -> None:
        if name is None:
            return
        try:
            self.gateway.resolve(name)
        except PortwayError as exc:
            raise ConfigError(f"{self.gateway.config.source}: {where}: {exc.message}") from None

    def settings_for(self, route: Any) -> Settings | None:
        """The settings of a request on ``route``: the section's, under its
        alias's ``cache:`` key (worked out once per configured alias)."""
        option = route.options.get("cache")
        if option is None:
            return self.default
        if route.from_header:
            # A per-request alias (x-portway-config), not worth keeping; it may not choose its
            # namespace: a client must not read or fill another's entries by asking to.
            return Settings.of(self.config, option.model_copy(update={"namespace": None}))
        found = self._settings.get(id(option), self)
        if found is self:
            found = self._settings[id(option)] = Settings.of(self.config, option)
        return found  # type: ignore[return-value]

    # -- pre_request ---------------------------------------------------------------

    async def lookup(self, ctx: Any) -> dict[str, Any] | None:
        asked = directive(ctx.headers.get(HEADER))
        try:
            route = self.gateway.route_for(ctx)
        except PortwayError:
            return None  # the pipeline reports the unknown model, in the client's shape
        settings = self.settings_for(route)
        if settings is None:
            return self._bypass(ctx)
        targets = route.targets
        body = ctx.body
        namespace = caching.namespace_for(ctx.key_id, settings.shared)
        key = caching.cache_key(namespace, "chat", targets, body)
        state = Lookup(key, settings, asked)
        ctx.metadata["cache"] = state
        headers = ctx.response_headers
        headers["x-portway-cache-key"] = key
        semantic = prompt_text(body.get("messages")) if settings.mode == "semantic" else None
        if semantic is not None:
            state.bucket = caching.bucket_key(namespace, "chat", targets, body, semantic[1])
        if not asked.lookup:
            if asked.refresh:
                await self._safely(self.backend.delete(key))
            return self._bypass(ctx)
        flight = self.flights.lead(key)
        if flight is not None:
            shared = await self.flights.wait(flight)
            if shared is not None:
                return self._serve(ctx, state, shared, "hit")
        else:
            state.leader = True
        raw = await self._safely(self.backend.get(key))
        if raw is not None:
            self._end_flight(state, raw)
            return self._serve(ctx, state, raw, "hit")
        if semantic is not None and state.bucket is not None:
            found = await self._similar(ctx, state, semantic[0])
            if found is not None:
                raw, similarity = found
                self._end_flight(state, raw)
                headers["x-portway-cache-similarity"] = f"{similarity:.4f}"
                return self._serve(ctx, state, raw, "semantic-hit")
        ctx.cache_status = headers[HEADER] = "miss"
        return None

    def _bypass(self, ctx: Any) -> None:
        ctx.cache_status = ctx.response_headers[HEADER] = "bypass"
        return None

    def _serve(self, ctx: Any, state: Lookup, raw: bytes, status: str) -> dict[str, Any]:
        entry = orjson.loads(raw)
        state.served = True
        ctx.cache_status = ctx.response_headers[HEADER] = status
        ctx.response_headers["age"] = str(max(0, int(time.time() - entry["stored_at"])))
        provider = self.gateway.providers.get(entry.get("provider"))
        usage = entry["response"].get("usage")
        if provider is not None and usage:
            ctx.cost_saved = self.gateway.catalog.cost(provider, entry.get("model"), usage)
        ctx.cost = 0.0  # no upstream was paid for this answer
        return entry["response"]

    def _end_flight(self, state: Lookup, raw: bytes | None) -> None:
        if state.leader:
            state.leader = False
            self.flights.done(state.key, raw)

    async def _similar(self, ctx: Any, state: Lookup, text: str) -> tuple[bytes, float] | None:
        """The most similar cached prompt's answer, when similar enough."""
        vector = await self._embed(ctx, state.settings.embedding_model, text)  # type: ignore[arg-type]
        if vector is None:
            return None
        state.vector = vector
        bucket = await self._bucket(state.bucket)  # type: ignore[arg-type]
        if bucket is None:
            return None
        best = bucket.best(vector)
        if best is None or best[1] < state.settings.threshold:
            return None
        raw = await self._safely(self.backend.get(best[0]))
        return (raw, best[1]) if raw is not None else None

    async def _embed(self, ctx: Any, model: str, text: str) -> Any:
        """The prompt's unit vector, or None when the embedding call failed
        (logged: the request goes on as a miss)."""
        try:
            target = self.gateway.resolve(model).targets[0]
            answer = await target.provider.embeddings({"model": target.model, "input": [text]}, ctx)
            from portway_cache.semantic import unit  # numpy: imported only when semantic caching is used

            return unit(answer["data"][0]["embedding"])
        except Exception as exc:
            self.stats.embedding_errors += 1
            log.warning("request %s: the semantic cache could not embed the prompt with %s (%s): %s",
                        ctx.request_id, model, type(exc).__name__, getattr(exc, "message", exc))
            return None

    async def _bucket(self, name: str) -> Bucket | None:
        """The bucket's vectors, brought up to date with the backend's."""
        bucket = self._buckets.get(name)
        if bucket is None:
            from portway_cache.semantic import Bucket

            bucket = self._buckets[name] = Bucket()
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(name)
        read = await self._safely(self.backend.vectors(name, bucket.count))
        if read is None:
            return bucket
        rows, total = read
        if total < bucket.count:  # cleared or expired meanwhile: read it whole again
            bucket.reset()
            read = await self._safely(self.backend.vectors(name, 0))
            if read is None:
                return bucket
            rows, total = read
        bucket.add(rows)
        return bucket

    # -- post_response -----------------------------------------------------------------

    async def store(self, ctx: Any, response: dict[str, Any]) -> None:
        state: Lookup | None = ctx.metadata.get("cache")
        if state is None or state.served or ctx.error is not None or not _complete(response):
            return  # request_finished ends a flight that got nothing to share
        target = ctx.target
        raw = orjson.dumps({"response": response, "stored_at": time.time(),
                            "provider": target.provider.name if target is not None else None,
                            "model": target.model if target is not None else None})
        if state.leader:
            self.flights.resolve(state.key, raw)  # the waiters need not wait for the backend
        if state.directive.store:
            ttl = state.directive.ttl or state.settings.ttl
            if await self._safely(self.backend.set(state.key, raw, ttl), failed=False) is not False:
                self.stats.stored += 1
                if state.vector is not None and state.bucket is not None:
                    await self._safely(self.backend.add_vector(state.bucket, state.key, state.vector.tobytes(),
                                                               ttl))
        self._end_flight(state, raw)

    # -- request_finished ------------------------------------------------------------------

    def finished(self, ctx: Any) -> None:
        state: Lookup | None = ctx.metadata.get("cache")
        if state is not None and state.leader:
            # Failed, cut short, or not storable: the waiters go upstream themselves.
            self._end_flight(state, None)
        status = ctx.cache_status
        stats = self.stats
        if status == "hit":
            stats.hit += 1
        elif status == "semantic-hit":
            stats.semantic_hit += 1
        elif status == "miss":
            stats.miss += 1
        elif status == "bypass":
            stats.bypass += 1
        if ctx.cost_saved:
            stats.saved_usd += ctx.cost_saved

    async def _safely(self, work: Any, failed: Any = None) -> Any:
        """A backend that fails (Redis down, a full disk) costs the cache, not the request."""
        try:
            return await work
        except Exception as exc:
            self.stats.backend_errors += 1
            log.warning("cache backend %s failed (%s): %s", self.config.backend, type(exc).__name__, exc)
            return failed


def _complete(response: dict[str, Any]) -> bool:
    choices = response.get("choices")
    return bool(choices) and all(
        isinstance(c, dict) and c.get("finish_reason") in COMPLETE for c in choices)
