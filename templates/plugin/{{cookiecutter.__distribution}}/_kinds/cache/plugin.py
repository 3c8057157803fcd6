"""{{ cookiecutter.description }}

An in-memory, exact-match response cache.  A chat request identical to an
earlier one (same messages, model, parameters; streamed or not) is answered
from memory without calling a provider; the response says
``x-portway-provider: cache``.

Configure it with its own top-level section::

    {{ cookiecutter.name }}:
      max_entries: 1000     # least recently used entries are evicted first
      ttl_seconds: 300

To put the entries somewhere shared (Redis, a database), replace
:class:`Store`; to match more loosely (ignore ``user``, normalise
whitespace, embeddings similarity), change :func:`cache_key`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import weakref
from collections import OrderedDict
from typing import Any

from portway import hookimpl
from pydantic import BaseModel, ConfigDict, Field

PORTWAY_PLUGIN_KIND = "cache"
NAME = "{{ cookiecutter.name }}"

#: Request keys that do not change the answer: a streamed request is served
#: from a non-streamed answer and vice versa.
IGNORED_KEYS = frozenset({"stream", "stream_options"})


class Settings(BaseModel):
    """The ``{{ cookiecutter.name }}:`` config section (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    max_entries: int = Field(default=1000, ge=1)
    ttl_seconds: float = Field(default=300.0, gt=0)


class Store:
    """Responses by key, least recently used first, each with its expiry."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        expires, response = entry
        if expires < time.monotonic():
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return copy.deepcopy(response)

    def put(self, key: str, response: dict[str, Any]) -> None:
        self.entries[key] = (time.monotonic() + self.settings.ttl_seconds, copy.deepcopy(response))
        self.entries.move_to_end(key)
        while len(self.entries) > self.settings.max_entries:
            self.entries.popitem(last=False)


# One store per gateway, found from a request as stores[ctx.gateway]: two
# gateways in one process (tests, an app embedding Portway) must not answer
# from each other's entries, nor with each other's limits.  Weak keys: a
# store goes away with its gateway.
stores: weakref.WeakKeyDictionary[Any, Store] = weakref.WeakKeyDictionary()


@hookimpl
def register_config(register: Any) -> None:
    register(NAME, Settings)


@hookimpl
def startup(gateway: Any) -> None:
    """A fresh, empty store each time a gateway starts."""
    stores[gateway] = Store(gateway.plugin_config[NAME])


def cache_key(body: dict[str, Any]) -> str:
    """What makes two requests "the same"."""
    relevant = {key: value for key, value in body.items() if key not in IGNORED_KEYS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@hookimpl
def pre_request(ctx: Any) -> dict[str, Any] | None:
    """A hit answers the request (the provider is not called); a miss
    remembers the key for :func:`post_response`."""
    if ctx.endpoint == "embeddings":  # only chat answers pass through post_response
        return None
    key = cache_key(ctx.body)
    cached = stores[ctx.gateway].get(key)
    if cached is None:
        ctx.metadata[NAME] = key
    return cached


@hookimpl
def post_response(ctx: Any, response: dict[str, Any]) -> None:
    """Store a fresh answer (for a stream: the chunks assembled into one)."""
    key = ctx.metadata.get(NAME)
    if key is not None and not ctx.cached:
        stores[ctx.gateway].put(key, response)
