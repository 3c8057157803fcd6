"""Finding and loading plugins.

Discovery happens once, when a gateway (or a CLI command) starts: stevedore
reads the ``portway.plugins`` entry-point group and imports each plugin in
its own ``try`` so that one broken plugin is reported, never fatal.  Each
loaded module is registered into a pluggy ``PluginManager`` that belongs to
that gateway (not to the process), after the built-in default plugins,
which are registered exactly like third-party ones.

``PORTWAY_LOAD_PLUGINS=a,b`` loads only the named entry points (handy to
isolate a misbehaving plugin); ``plugins.disable`` in config skips some.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
from stevedore import NamedExtensionManager

from portway import hookspecs

log = logging.getLogger("portway.plugins")

ENTRY_POINT_GROUP = "portway.plugins"

#: Built-in behaviour that must always exist, as plugins.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "portway.builtins.router",
    "portway.builtins.retries",
    "portway.builtins.access_log",
    "portway.builtins.catalog",
)


@dataclass
class PluginInfo:
    name: str
    module: str
    kind: str = "hook"
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    enabled: bool = True
    builtin: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def kind_of(module: Any, hooks: list[str]) -> str:
    declared = getattr(module, "PORTWAY_PLUGIN_KIND", None)
    if isinstance(declared, str):
        return declared
    if "register_providers" in hooks:
        return "provider"
    return "hook"


def new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("portway")
    pm.add_hookspecs(hookspecs)
    return pm


def _hooks_of(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])


def entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def load(
    pm: pluggy.PluginManager,
    *,
    disable: list[str] | tuple[str, ...] = (),
    only: list[str] | None = None,
    builtins: tuple[str, ...] = DEFAULT_PLUGINS,
    extra: list[tuple[str, Any]] | None = None,
) -> list[PluginInfo]:
    """Register built-ins, discovered plugins and ``extra`` (name, object)
    pairs into ``pm``; return what was found, loaded or not."""
    infos: list[PluginInfo] = []
    disabled = set(disable)
    if only is None and os.environ.get("PORTWAY_LOAD_PLUGINS") is not None:
        only = [n.strip() for n in os.environ["PORTWAY_LOAD_PLUGINS"].split(",") if n.strip()]

    for module_name in builtins:
        short = module_name.rsplit(".", 1)[-1]
        info = PluginInfo(name=short, module=module_name, builtin=True, distribution="portway")
        if short in disabled:
            info.enabled = False
        else:
            module = importlib.import_module(module_name)
            pm.register(module, name=short)
            info.hooks = _hooks_of(pm, module)
            info.kind = kind_of(module, info.hooks)
        infos.append(info)

    # A plugin handed in explicitly (tests, embedding apps) replaces the installed one of that name.
    overridden = {name for name, _ in extra or []}
    eps = [ep for ep in entry_points() if ep.name not in overridden]
    wanted = [ep.name for ep in eps if ep.name not in disabled and (only is None or ep.name in only)]
    failures: dict[str, str] = {}

    def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
        failures[entry_point.name] = f"{type(exc).__name__}: {exc}"
        log.error("plugin %s failed to load: %s: %s", entry_point.name, type(exc).__name__, exc)

    manager = NamedExtensionManager(
        ENTRY_POINT_GROUP, names=wanted, invoke_on_load=False, on_load_failure_callback=on_failure,
        name_order=True, on_missing_entrypoints_callback=lambda missing: None,
    )
    loaded = {ext.name: ext for ext in manager.extensions}
    for ep in eps:
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name, module=ep.value, distribution=dist.name if dist else None,
            version=dist.version if dist else None,
        )
        if ep.name not in wanted:
            info.enabled = False
        elif ep.name in failures:
            info.enabled = False
            info.error = failures[ep.name]
        elif ep.name in loaded:
            plugin = loaded[ep.name].plugin
            try:
                pm.register(plugin, name=ep.name)
                info.hooks = _hooks_of(pm, plugin)
                info.kind = kind_of(plugin, info.hooks)
                pm.check_pending()  # a misspelt hook name fails this plugin, not the server
            except Exception as exc:
                if pm.is_registered(plugin):
                    pm.unregister(plugin)
                info.enabled = False
                info.hooks = []
                info.error = f"{type(exc).__name__}: {exc}"
                log.error("plugin %s rejected: %s", ep.name, info.error)
        infos.append(info)

    for name, obj in extra or []:
        pm.register(obj, name=name)
        hooks = _hooks_of(pm, obj)
        infos.append(PluginInfo(name=name, module=repr(obj), hooks=hooks, kind=kind_of(obj, hooks)))

    pm.check_pending()
    return infos
