"""Replicate provider: language models run as Replicate predictions, behind
the canonical chat format.

A chat request creates a prediction (``POST /v1/models/{owner}/{name}/predictions``
for an official model, ``POST /v1/predictions`` with ``version`` for a
pinned ``owner/name:version``) with ``Prefer: wait=N``, so a fast model
answers in the same request; a prediction still ``starting`` or
``processing`` when the wait runs out is polled at ``urls.get`` with a
bounded backoff until it ends or the provider's ``timeout`` passes (then it
is canceled).  A streamed request creates the prediction with
``"stream": true`` and reads the server-sent events at ``urls.stream``;
a client that leaves mid-stream cancels the prediction (``urls.cancel``).

The input mapping is in :mod:`portway_replicate.request`, the answers in
:mod:`portway_replicate.answer`; this module speaks HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from portway import hookimpl, serialization, sse
from portway.config import ProviderConfig
from portway.errors import ProviderError
from portway.formats import MalformedAnswer
from portway.formats.openai import completion_to_chunks, strip_anthropic_extras
from portway.providers import Provider, StreamEnd
from portway.quirks import check_capabilities
from portway.upstream import UpstreamResponse
from portway_replicate import answer
from portway_replicate.request import endpoint, prediction_input, schema_of

PORTWAY_PLUGIN_KIND = "provider"

log = logging.getLogger(__name__)

#: Replicate's own hosts: the URLs a prediction names (``urls.get``, ``urls.stream``: ``api.replicate.com``,
#: ``stream.replicate.com``...) are followed, with the key, only there or at the configured base URL's origin.
REPLICATE_DOMAIN = "replicate.com"
#: What the stream request says it takes (replicate-python's ``stream``).
STREAM_HEADERS = {"accept": "text/event-stream", "cache-control": "no-store"}


class ReplicateConfig(ProviderConfig):
    #: Seconds the create request is held open for the answer (``Prefer: wait=N``; Replicate allows 1 to 60).
    wait: int = Field(60, ge=1, le=60)
    #: First pause between two polls of a prediction still running; doubled after each poll, up to
    #: ``max_poll_interval``.  The polling stops (and the prediction is canceled) after ``timeout`` seconds.
    poll_interval: float = Field(0.5, gt=0)
    max_poll_interval: float = Field(5.0, gt=0)
    #: The model's input schema: ``prompt`` (Llama-style ``prompt`` / ``system_prompt``), ``messages``
    #: (OpenAI's models on Replicate), or ``auto``: ``messages`` for ``openai/*``, else ``prompt``.
    input_schema: Literal["auto", "prompt", "messages"] = "auto"
    #: How a prompt-schema model gets a multi-turn conversation: ``llama3`` (Llama 3's chat format in
    #: ``prompt``, with ``prompt_template: "{prompt}"``), ``none`` (refused), or ``auto``: ``llama3``
    #: for Meta's Llama 3 / 4 models, else ``none``.
    chat_template: Literal["auto", "llama3", "none"] = "auto"
    #: Token limit sent when a request gives none.  Replicate does not say why a model stopped: an
    #: answer that used the whole limit is reported as cut (``finish_reason: length``).  None sends no
    #: limit (the model's default applies and every answer is ``stop``).
    max_tokens: int | None = Field(1024, ge=1)


class ReplicateProvider(Provider):
    type = "replicate"
    config_model = ReplicateConfig
    default_base_url = "https://api.replicate.com/v1"
    env_key = "REPLICATE_API_TOKEN"
    env_base_url = "REPLICATE_BASE_URL"
    default_models = ("meta/meta-llama-3-70b-instruct", "meta/meta-llama-3-8b-instruct",
                      "meta/meta-llama-3.1-405b-instruct", "openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-5")
    #: Replicate's prediction API has no tool calling and no JSON mode; OpenAI's models there take
    #: images (``image_input``), the prompt-schema models none.
    capabilities = {"openai/gpt-4o*": {"vision"}, "openai/gpt-4.1*": {"vision"}, "openai/gpt-5*": {"vision"},
                    "openai/o4-mini*": {"vision"}, "openai/o3*": {"vision"}, "*": ()}

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        origin = urlsplit(self.base_url)
        if origin.path in ("", "/"):  # replicate-python's form (REPLICATE_BASE_URL): the host, paths under /v1
            self.base_url += "/v1"
        self._origin = (origin.scheme, origin.netloc)
        #: Cancellations sent after a client left; kept so they are not collected before they run.
        self._cancels: set[asyncio.Task[None]] = set()

    @property
    def settings(self) -> ReplicateConfig:
        return self.config  # type: ignore[return-value]

    async def close(self) -> None:
        if self._cancels:
            await asyncio.wait(set(self._cancels), timeout=5)
        await super().close()

    # -- errors ------------------------------------------------------------------------------

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        """Replicate's errors are problem details (RFC 7807, replicate-python's
        ``ReplicateError``): ``{"title", "detail", "status"}``."""
        try:
            data = serialization.loads(content)
        except serialization.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("detail"), str | None) and (
                isinstance(data.get("detail"), str) or isinstance(data.get("title"), str)):
            title, detail = data.get("title"), data.get("detail")
            parts = [p for p in (title, detail) if isinstance(p, str) and p]
            return None, ": ".join(parts)
        return Provider.parse_error_body(content)

    def _named(self, error: ProviderError) -> ProviderError:
        return error if error.provider else self.make_error(error.message, kind=error.kind, status=error.status,
                                                            code=error.code)

    def stopped(self, data: dict[str, Any]) -> ProviderError:
        """A prediction that ended without output (failed, canceled, aborted)."""
        return self.make_error(answer.failure_message(data), kind="server_error",
                               code=f"prediction_{data.get('status')}")

    # -- requests ----------------------------------------------------------------------------

    def _input(self, body: dict[str, Any], ctx: Any) -> tuple[dict[str, Any], int | None]:
        """The prediction's ``input`` and the token limit it carries."""
        if getattr(ctx, "client_format", None) == "anthropic":
            top_k = body.get("top_k")
            body = strip_anthropic_extras(body, self.name)
            if top_k is not None:
                body["top_k"] = top_k
        model = body["model"]
        capabilities = self.model_capabilities(model.split(":", 1)[0])
        if capabilities is not None:
            check_capabilities(body, capabilities, self.name, model)
        schema = schema_of(model, self.settings.input_schema)
        values = prediction_input(body, schema=schema, max_tokens=self.settings.max_tokens,
                                  chat_template=self.settings.chat_template)
        return values, values.get("max_completion_tokens" if schema == "messages" else "max_tokens")

    def _create_body(self, model: str, values: dict[str, Any], stream: bool) -> tuple[str, dict[str, Any]]:
        where = endpoint(model)
        payload: dict[str, Any] = {"input": values}
        if where.version:
            payload["version"] = where.version
        if stream:
            payload["stream"] = True
        return where.path, payload

    def _follow(self, data: dict[str, Any], name: str) -> str | None:
        """A URL the prediction names, if it may be sent the key: on
        Replicate's domain over https, or on the base URL's own origin (a
        proxy, a test server).  Any other is a malformed answer."""
        link = answer.url(data, name)
        if link is None:
            return None
        parts = urlsplit(link)
        host = (parts.hostname or "").lower()
        if (parts.scheme, parts.netloc) == self._origin:
            return link
        if parts.scheme == "https" and (host == REPLICATE_DOMAIN or host.endswith("." + REPLICATE_DOMAIN)):
            return link
        raise self.malformed(f"the prediction's urls.{name} points outside Replicate")

    def _checked(self, response: UpstreamResponse) -> dict[str, Any]:
        if response.status >= 300:
            raise self.error_from_response(response)
        try:
            return answer.prediction(self.answer_json(response))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def _poll(self, data: dict[str, Any], deadline: float) -> dict[str, Any]:
        """``data`` polled at ``urls.get`` until it ends or ``deadline``
        (``time.monotonic()``) comes: the last state seen."""
        pause = self.settings.poll_interval
        while data["status"] in answer.RUNNING:
            link = self._follow(data, "get")
            if link is None:
                raise self.malformed("a running prediction has no urls.get to poll")
            if time.monotonic() + pause > deadline:
                return data
            await asyncio.sleep(pause)
            data = self._checked(await self.http.request("GET", link))
            pause = min(pause * 2, self.settings.max_poll_interval)
        return data

    def _cancel_soon(self, data: dict[str, Any]) -> None:
        """Cancel the prediction in the background (the caller is going away)."""
        try:
            link = self._follow(data, "cancel")
        except ProviderError:
            link = None
        if link is None:
            return
        task = asyncio.get_running_loop().create_task(self._cancel(link))
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def _cancel(self, link: str) -> None:
        try:
            response = await self.http.request("POST", link)
            if response.status >= 300:
                log.warning("provider %r: canceling a prediction answered HTTP %s", self.name, response.status)
        except Exception as exc:  # noqa: BLE001 - a cancellation that fails must not mask what caused it
            log.warning("provider %r: canceling a prediction failed: %s", self.name, type(exc).__name__)

    async def _finished(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` once it has ended: polled until ``timeout``; a
        prediction still running then is canceled and a ``timeout``."""
        deadline = time.monotonic() + self.settings.timeout
        finished = False
        try:
            data = await self._poll(data, deadline)
            finished = data["status"] not in answer.RUNNING
        finally:
            if not finished:  # timed out, failed to poll, or the client left
                self._cancel_soon(data)
        if not finished:
            raise self.make_error(f"the prediction was still {data['status']} after {self.settings.timeout:g} "
                                  "seconds (the provider's timeout): it was canceled", kind="timeout")
        if data["status"] in answer.STOPPED:
            raise self.stopped(data)
        return data

    def _completion(self, data: dict[str, Any], model: str, limit: int | None) -> dict[str, Any]:
        try:
            return answer.chat_completion(data, model=model, created=int(time.time()), limit=limit)
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        values, limit = self._input(body, ctx)
        path, payload = self._create_body(body["model"], values, stream=False)
        response = await self.http.request("POST", path, json=payload,
                                           headers={"prefer": f"wait={self.settings.wait}"})
        data = await self._finished(self._checked(response))
        return self._completion(data, body["model"], limit)

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        values, limit = self._input(body, ctx)
        path, payload = self._create_body(body["model"], values, stream=True)
        data = self._checked(await self.http.request("POST", path, json=payload))
        stream_url = self._follow(data, "stream")
        if data["status"] not in answer.RUNNING or stream_url is None:
            # Over already, or a model that cannot stream: its whole answer, as chunks.
            yield completion_to_chunks(self._completion(await self._finished(data), body["model"], limit))
            return
        converter = answer.StreamToChunks(id=answer.prediction_id(data), model=body["model"],
                                          created=int(time.time()))
        finished = False
        try:
            async with self.http.stream("GET", stream_url, headers=STREAM_HEADERS) as response:
                await self.refuse_failed_stream(response)

                def convert(event: sse.Event) -> dict[str, Any] | None:
                    if event.event == "output":
                        return converter.text(event.data)
                    if event.event == "error":
                        raise self.make_error(stream_error(event), kind="server_error", code="prediction_failed")
                    if event.event == "done":
                        reason = done_reason(event)
                        if reason:
                            raise self.make_error(f"the prediction ended with reason {reason!r}", kind="server_error",
                                                  code=f"prediction_{reason}")
                        converter.done = True
                        raise StreamEnd
                    return None  # logs, and events Replicate may add

                async for batch in self.stream_items(response, convert):
                    yield batch
            if not converter.done:
                raise self.make_error("the stream ended before its done event", kind="connection")
            finished = True
        finally:
            if not finished:  # the client left, or the stream failed: stop the model (and the bill)
                self._cancel_soon(data)
        yield converter.finish(await self._final_usage(data), limit)

    async def _final_usage(self, data: dict[str, Any]) -> dict[str, int] | None:
        """The token counts of a streamed prediction, read from ``urls.get``
        once its stream is done (the events carry none).  A prediction not
        settled within a couple of polls gives no usage, not a wait."""
        try:
            link = self._follow(data, "get")
            if link is None:
                return None
            latest = self._checked(await self.http.request("GET", link))
            latest = await self._poll(latest, time.monotonic() + 2 * self.settings.poll_interval)
            return answer.usage(latest)
        except (ProviderError, MalformedAnswer) as exc:
            # The answer is complete: a failed look-up of its counts costs the usage, not the answer.
            log.warning("provider %r: no token counts for a streamed prediction: %s", self.name,
                        exc.message if isinstance(exc, ProviderError) else exc)
            return None


def stream_error(event: sse.Event) -> str:
    """The text of an ``error`` event: JSON with a ``detail``, or plain text."""
    try:
        data = event.json()
    except serialization.JSONDecodeError:
        return event.data or "the prediction failed"
    if isinstance(data, dict):
        return str(data.get("detail") or data.get("error") or data)
    return str(data)


def done_reason(event: sse.Event) -> str | None:
    """A ``done`` event's ``reason`` (``canceled``, ``error``...): None for a normal end."""
    if not event.raw.strip():
        return None
    data = event.json()  # not JSON: a malformed answer (stream_items)
    if not isinstance(data, dict):
        raise MalformedAnswer("a done event is not a JSON object")
    reason = data.get("reason")
    return str(reason) if reason else None


@hookimpl
def register_providers(register: Any) -> None:
    register(ReplicateProvider)
