"""How the host calls hooks.

pluggy calls implementations synchronously, so an ``async def``
implementation hands back a coroutine, which pluggy's ``firstresult`` would
take as the answer before it is known.  The host therefore walks the
implementations itself, in pluggy's order (``tryfirst`` first, last
registered first, ``trylast`` last), and awaits each result that is
awaitable.  The list of implementations per hook is computed once when the
gateway starts, so a hook nobody implements costs one empty-tuple check.

An exception from an implementation is contained: it becomes a
:class:`PortwayError` that names the plugin (a :class:`PortwayError` raised
on purpose, e.g. a guardrail block, passes through unchanged), or, for a
non-critical plugin (kind ``observability``), it is logged, counted and
that plugin is skipped.

Every implementation's calls, time and failures are counted (a
:class:`HookStats` per plugin and hook, made when the gateway starts, so
counting allocates nothing per call); the ``portway-metrics`` plugin
exposes them.
"""

from __future__ import annotations

import inspect
import logging
import time
import types
from collections.abc import Callable
from typing import Any

import pluggy

from portway import hookspecs
from portway.errors import PortwayError

log = logging.getLogger("portway.hooks")

HOOK_NAMES: tuple[str, ...] = tuple(
    name for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "portway_spec")
)


class HookStats:
    """One plugin's implementation of one hook: calls, seconds spent in it
    (an async implementation: until its answer, awaits included), and
    failures (exceptions other than a deliberate :class:`PortwayError`)."""

    __slots__ = ("calls", "seconds", "errors")

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0
        self.errors = 0


Impl = tuple[str, Callable[..., Any], tuple[str, ...], HookStats]

#: Types of answers seen that are not awaitable (``inspect.isawaitable``
#: costs an ABC check per call; a hook's answers come in few types).
_PLAIN: set[type] = set()


def _awaitable(result: Any) -> bool:
    if inspect.isawaitable(result):
        return True
    # (A generator is awaitable or not by how it was made, not by its type.)
    if type(result) is not types.GeneratorType and len(_PLAIN) < 256:
        _PLAIN.add(type(result))
    return False


#: Hooks on the request path; only there can a non-critical plugin be skipped.
#: A failing ``startup`` still stops the server, whatever the plugin's kind.
REQUEST_HOOKS = frozenset({"pre_request", "select_provider", "post_chunk", "post_response", "on_error"})


class HookFailed(PortwayError):
    """A plugin raised something other than a PortwayError inside a hook."""


class Hooks:
    def __init__(
        self,
        pm: pluggy.PluginManager,
        order: dict[str, list[str]] | None = None,
        non_critical: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        self.pm = pm
        self._impls: dict[str, tuple[Impl, ...]] = {}
        #: Unexpected exceptions per plugin name (shown by ``GET /health``).
        self.errors: dict[str, int] = {}
        #: (plugin, hook) -> its :class:`HookStats`, kept across :meth:`refresh`.
        self.stats: dict[tuple[str, str], HookStats] = {}
        self.order = order or {}
        #: Plugins whose failures skip the plugin instead of failing the
        #: request (observability: a broken log sink must not cost an answer).
        self.non_critical = frozenset(non_critical)
        self.refresh()

    def refresh(self) -> None:
        """Recompute who implements what (after plugins are (un)registered)."""
        for name in HOOK_NAMES:
            caller = getattr(self.pm.hook, name)
            impls = [
                (impl.plugin_name, impl.function, tuple(impl.argnames),
                 self.stats.setdefault((impl.plugin_name, name), HookStats()))
                for impl in reversed(caller.get_hookimpls())
            ]
            wanted = self.order.get(name)
            if wanted:
                rank = {plugin: i for i, plugin in enumerate(wanted)}
                # Named plugins first, in the configured order; the rest keep pluggy's order.
                impls.sort(key=lambda impl: rank.get(impl[0], len(rank)))
            self._impls[name] = tuple(impls)

    def implemented(self, name: str) -> bool:
        return bool(self._impls[name])

    def implementers(self, name: str) -> list[str]:
        return [plugin for plugin, _, _, _ in self._impls[name]]

    async def first(self, name: str, **kwargs: Any) -> Any:
        """Call implementations in order until one answers non-None."""
        for impl in self._impls[name]:
            result = await self._call(impl, name, kwargs)
            if result is not None:
                return result
        return None

    async def each(self, name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation in order; return their answers."""
        return [await self._call(impl, name, kwargs) for impl in self._impls[name]]

    def each_sync(self, name: str, *, contain: bool = True, **kwargs: Any) -> None:
        """Call every implementation of a synchronous hook; log and count
        failures instead of raising when ``contain``."""
        for plugin, fn, argnames, stats in self._impls[name]:
            started = time.perf_counter()
            try:
                fn(kwargs[argnames[0]]) if len(argnames) == 1 else fn(*[kwargs[arg] for arg in argnames])
            except Exception:
                self._count(plugin, stats)
                if not contain:
                    raise
                log.exception("plugin %s failed in %s", plugin, name)
            finally:
                stats.calls += 1
                stats.seconds += time.perf_counter() - started

    def collect_sync(self, name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation of a synchronous hook; return the
        answers that are not None.  A failing plugin is logged, counted and
        skipped."""
        answers = []
        for plugin, fn, argnames, stats in self._impls[name]:
            stats.calls += 1
            try:
                answer = fn(*[kwargs[arg] for arg in argnames])
            except Exception:
                self._count(plugin, stats)
                log.exception("plugin %s failed in %s", plugin, name)
                continue
            if answer is not None:
                answers.append(answer)
        return answers

    async def each_contained(self, name: str, **kwargs: Any) -> None:
        """Like :meth:`each`, but a failing plugin is logged and skipped."""
        for impl in self._impls[name]:
            try:
                await self._call(impl, name, kwargs)
            except Exception:
                log.exception("plugin %s failed in %s", impl[0], name)

    async def _call(self, impl: Impl, name: str, kwargs: dict[str, Any]) -> Any:
        plugin, fn, argnames, stats = impl
        started = time.perf_counter()
        try:
            # (One argument, the common case, without building a list.)
            result = fn(kwargs[argnames[0]]) if len(argnames) == 1 else fn(*[kwargs[arg] for arg in argnames])
            if result is not None and type(result) not in _PLAIN and _awaitable(result):
                result = await result
            return result
        except PortwayError as exc:
            if exc.plugin is None:
                exc.plugin = plugin
            raise
        except Exception as exc:
            self._count(plugin, stats)
            log.exception("plugin %s raised in %s", plugin, name)
            if plugin in self.non_critical and name in REQUEST_HOOKS:
                return None
            raise HookFailed(
                f"plugin {plugin!r} failed in {name}: {type(exc).__name__}", kind="server_error", plugin=plugin
            ) from exc
        finally:
            stats.calls += 1
            stats.seconds += time.perf_counter() - started

    def _count(self, plugin: str, stats: HookStats) -> None:
        self.errors[plugin] = self.errors.get(plugin, 0) + 1
        stats.errors += 1
