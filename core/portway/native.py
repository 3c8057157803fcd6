"""Pass-through: a request in an ingress format goes, as the client sent it,
to a provider that speaks that format.

An Anthropic client talking to an Anthropic-format upstream (Claude on the
``anthropic`` provider, and later on Vertex or Bedrock) must lose nothing:
fields and content blocks Portway does not know yet, beta headers, new
stream events.  Translating to the canonical (OpenAI) form and back cannot
promise that, so for such a target the gateway sends the client's own body
(with the target's model name) and relays the upstream's own answer.

Hooks still see — and may change — the canonical view, and the pass-through
never bypasses what they did:

* **The request.**  The canonical body is translated from the client's body
  as usual, and each canonical message remembers the client message it came
  from (:attr:`NativeRequest.origin`).  When ``pre_request`` hooks exist, the
  gateway snapshots the canonical body before they run; afterwards, every
  message they changed is translated back from its canonical form, and
  every untouched one is sent exactly as the client wrote it.
* **The answer.**  ``post_response`` hooks see the answer converted to the
  canonical shape; what they change (text, tool arguments, the finish
  reason) is written back into the native answer.
* **A stream.**  Each upstream event carries the canonical chunks it
  converts to (the adapter needs them anyway: they are how the event is
  checked, and how usage is counted).  With ``post_chunk`` hooks, an event
  whose chunks a hook changed is rewritten, and one whose chunks a hook
  dropped is dropped; every other event goes to the client as the exact
  bytes the upstream sent.

A format that supports this implements :class:`NativeFormat`; a provider
lists the formats it speaks in ``Provider.native_formats``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from portway import serialization


@dataclass(slots=True)
class NativeEvent:
    """One event of a native stream: its SSE name, its parsed data, the data
    bytes as received (what the client gets unless a hook changed the
    event), and the canonical chunks it converts to.

    When no hook needs the canonical chunks, an adapter may leave the events
    that carry content unparsed (``data`` None, no chunks): the client gets
    the upstream's own bytes either way, and the gateway reads only the
    events that say how the answer starts and ends (usage, errors, the end).
    ``preamble`` says whether the event only announces the answer (nothing
    the client would miss if the answer came from another target: see the
    gateway's fallback before the first content)."""

    name: str | None
    data: Any
    raw: bytes
    chunks: list[dict[str, Any]] = field(default_factory=list)
    preamble: bool = False

    def encode(self) -> bytes:
        if self.name is None:
            return b"data: " + self.raw + b"\n\n"
        return b"event: " + self.name.encode() + b"\ndata: " + self.raw + b"\n\n"

    def replaced(self, data: Any) -> NativeEvent:
        """This event with new data (a hook changed it)."""
        return NativeEvent(self.name, data, serialization.dumps(data), self.chunks, self.preamble)


class NativeFormat:
    """An ingress format that can go to an upstream as it is.  Stateless:
    one instance per format, shared by every request."""

    name: ClassVar[str] = ""
    #: Whether :meth:`patch_event` can carry ``post_chunk`` hooks' changes
    #: into a native stream; if not, a stream that such hooks watch takes
    #: the canonical path.
    patches_streams: ClassVar[bool] = True

    def upstream_body(self, request: NativeRequest, ctx: Any, target: Any) -> dict[str, Any] | None:
        """What goes upstream: the client's body for ``target`` (its model
        name, its ``params``), with every change hooks made to the canonical
        view (``ctx.body``) carried over; ``None`` when the changes cannot be
        carried over (the request then takes the canonical path to this
        target).  Reads ``ctx.body`` only if hooks may have changed it."""
        raise NotImplementedError

    def canonical_response(self, native: dict[str, Any]) -> dict[str, Any]:
        """A native answer as a ``chat.completion``, for hooks and usage."""
        raise NotImplementedError

    def patch_response(self, native: dict[str, Any], canonical: dict[str, Any]) -> dict[str, Any]:
        """``native`` with what hooks changed in its canonical view."""
        raise NotImplementedError

    def patch_event(self, event: NativeEvent, chunks: list[dict[str, Any] | None]) -> NativeEvent | None:
        """``event`` after hooks changed its canonical chunks (``None`` for a
        dropped chunk); ``None`` drops the event."""
        raise NotImplementedError


@dataclass(slots=True)
class NativeRequest:
    """The client's request in its own format, beside the canonical body."""

    format: NativeFormat
    body: dict[str, Any]
    #: For each canonical message, the index of the client message it came
    #: from (-1: from a top-level field, e.g. Anthropic's ``system``).
    origin: list[int]
    #: The canonical body as JSON before ``pre_request`` hooks ran (only
    #: taken when hooks exist): its messages one by one, then the rest.
    before: tuple[list[bytes], bytes] | None = None
    #: What else the format needs to build the upstream body (the Responses
    #: API: the stored turn that ``previous_response_id`` names).
    context: Any = None
    #: Why the canonical view is short of the request (a built-in tool only
    #: the native upstream runs): raised if the request takes the canonical
    #: path after all.
    canonical_error: Exception | None = None
    #: Makes the canonical view when something first reads ``ctx.body``
    #: (checking the body in full first, and filling :attr:`origin`).
    to_canonical: Callable[[NativeRequest], dict[str, Any]] | None = None

    def canonical(self) -> dict[str, Any]:
        if self.to_canonical is None:
            raise RuntimeError(f"no canonical view of this {self.format.name} request")
        return self.to_canonical(self)

    def snapshot(self, canonical: dict[str, Any]) -> None:
        self.before = _fingerprint(canonical)

    def changes(self, ctx: Any) -> tuple[set[int], set[str]] | None:
        """What hooks changed in ``ctx.body``: (indexes of changed canonical
        messages, names of changed top-level keys), or ``None`` when the
        messages were added, removed or reordered (the body must then be
        translated as a whole).  Nothing, without reading the body, when no
        hook ran."""
        if self.before is None:
            return set(), set()
        canonical = ctx.body
        messages_before, rest_before = self.before
        messages_after, rest_after = _fingerprint(canonical)
        if len(messages_after) != len(messages_before):
            return None
        changed = {i for i, (a, b) in enumerate(zip(messages_before, messages_after, strict=True)) if a != b}
        keys: set[str] = set()
        if rest_after != rest_before:
            old = serialization.loads(rest_before)
            keys = {k for k in {*old, *canonical} if k != "messages" and old.get(k) != canonical.get(k)}
        return changed, keys


def _fingerprint(canonical: dict[str, Any]) -> tuple[list[bytes], bytes]:
    messages = canonical.get("messages")
    rest = {k: v for k, v in canonical.items() if k != "messages"}
    listed = [serialization.dumps(m) for m in messages] if isinstance(messages, list) else []
    return listed, serialization.dumps(rest)


def native_request_for(ctx: Any, target: Any) -> NativeRequest | None:
    """The client's native request if ``target``'s provider speaks its format
    (for ``target``'s model: :meth:`portway.providers.Provider.speaks_natively`)."""
    native = ctx.native
    if native is not None and target.provider.speaks_natively(native.format.name, target.model):
        return native
    return None


async def canonical_batches(batches: AsyncIterator[list[NativeEvent]]) -> AsyncIterator[list[dict[str, Any]]]:
    """A native stream's canonical chunks, in the lists that arrived together
    (events without chunks add nothing): how a provider that speaks a format
    natively serves a canonical (OpenAI-format) stream from it."""
    async with aclosing(batches):
        async for batch in batches:
            chunks = [chunk for event in batch for chunk in event.chunks]
            if chunks:
                yield chunks

