"""The complete check of a config file: every problem at once.

:mod:`portway.config` checks what the core alone knows.  What is left needs
the installed plugins: which provider types exist, each type's own keys
(its ``config_model``), and the sections plugins declare through
``register_config``.  :func:`check` loads the plugins once more on their own
(a few milliseconds: the modules are already imported) so that all of it is
reported in one go, whatever the first problem was, before any gateway is
built.  :func:`checked_config` is what every command uses: ``portway serve``,
``portway models`` and ``portway config check``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from portway import config as config_module
from portway import plugins as plugin_loader
from portway.config import (
    CORE_SECTIONS,
    Config,
    ConfigError,
    ServerConfig,
    alias_key_problems,
    section_problems,
    suggest,
)
from portway.errors import PortwayError
from portway.hooks import Hooks


@contextlib.contextmanager
def quiet_plugin_loading() -> Iterator[None]:
    """Silence plugin load and registration failures while they are only
    being looked at: the command that uses the plugins reports them."""
    loggers = [logging.getLogger("portway.plugins"), logging.getLogger("portway.hooks")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@dataclass
class Catalog:
    """What the installed plugins offer a config."""

    provider_types: dict[str, Any]
    sections: dict[str, type[BaseModel]]
    plugins: list[plugin_loader.PluginInfo]
    #: The alias keys plugins declare (``register_alias_keys``).
    alias_keys: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def installed(cls, disable: list[str]) -> Catalog:
        pm = plugin_loader.new_manager()
        with quiet_plugin_loading():
            infos = plugin_loader.load(pm, disable=disable)
            hooks = Hooks(pm)
            types: dict[str, Any] = {}
            sections: dict[str, type[BaseModel]] = {}
            hooks.each_sync("register_providers", register=lambda provider: types.__setitem__(provider.type, provider))
            hooks.each_sync("register_config", register=lambda section, model: sections.__setitem__(section, model))
            alias_keys: dict[str, Any] = {}
            hooks.each_sync("register_alias_keys", register=lambda key, kind: alias_keys.__setitem__(key, kind))
        return cls(types, sections, infos, alias_keys)

    def why_unavailable(self, type_name: str) -> str:
        """Why no installed plugin provides ``type_name``."""
        # By convention a provider plugin's entry point is named after its type.
        info = next((p for p in self.plugins if p.name == type_name and not p.builtin), None)
        if info is not None and info.error:
            return f"provider type {type_name!r} failed to load ({info.error}; see `portway plugins`)"
        if info is not None and not info.enabled:
            return f"provider type {type_name!r} is disabled (plugins.disable or PORTWAY_LOAD_PLUGINS)"
        installed = ", ".join(sorted(self.provider_types)) or "none"
        hint = suggest(type_name, self.provider_types)
        if hint:
            return f"unknown provider type {type_name!r}{hint}; installed: {installed}"
        return f"provider type {type_name!r} is not installed (pip install portway-{type_name}); installed: {installed}"


def _plugins_disabled(data: dict[str, Any]) -> list[str]:
    """``plugins.disable`` as far as it is usable (problems in it are
    reported by the core check)."""
    section = data.get("plugins")
    disable = section.get("disable") if isinstance(section, dict) else None
    return [name for name in disable if isinstance(name, str)] if isinstance(disable, list) else []


def plugin_problems(data: dict[str, Any], source: str, catalog: Catalog, *, strict: bool) -> list[str]:
    """Problems only the installed plugins can tell.  ``strict``: a provider
    whose type is not available is an error (``config check``); otherwise it
    is left to the gateway, which serves the rest and warns."""
    problems: list[str] = []
    providers = data.get("providers")
    for name, raw in (providers.items() if isinstance(providers, dict) else ()):
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or "/" in str(name):
            continue  # the core check reported it
        cls = catalog.provider_types.get(raw["type"])
        if cls is None:
            if strict:
                problems.append(f"{source}: providers.{name}.type: {catalog.why_unavailable(raw['type'])}")
            continue
        settings, found = section_problems(cls.config_model, raw, source, f"providers.{name}")
        problems += found
        if settings is not None:
            try:
                cls(name, settings)  # the constructor's own checks (e.g. a base_url it needs)
            except PortwayError as exc:
                problems.append(f"{source}: providers.{name}: {exc.message}")
    for section in data:
        if section in CORE_SECTIONS or section in catalog.sections:
            continue
        problems.append(f"{source}: {section}: unknown section (no installed plugin declares it)"
                        f"{suggest(str(section), [*CORE_SECTIONS, *catalog.sections])}")
    for section, model in catalog.sections.items():
        problems += section_problems(model, data.get(section, {}), source, section)[1]
    models = data.get("models")
    if isinstance(models, dict):
        problems += alias_key_problems(models, catalog.alias_keys, source)[1]
    return problems


def check(path: str | os.PathLike[str], *, environ: dict[str, str] | None = None, secrets: bool = True,
          strict: bool = True) -> tuple[Config | None, list[str]]:
    """Every problem in the file at ``path``: YAML, interpolation, the core
    schema and the plugins' parts.  Returns the config (None if there are
    problems) and the problems."""
    source = str(path)
    data, problems = config_module.read(path)
    examined = config_module.examine(data, source, environ, secrets=secrets)
    problems += examined.problems
    if examined.data or examined.config is not None:
        catalog = Catalog.installed(_plugins_disabled(examined.data))
        problems += plugin_problems(examined.data, source, catalog, strict=strict)
    return (examined.config if not problems else None), problems


def checked_config(path: str | os.PathLike[str] | None, *, secrets: bool = True, strict: bool = False,
                   server: dict[str, Any] | None = None) -> Config:
    """The config at ``path`` (None: the embedded defaults), completely
    checked, with ``server`` overrides (from command-line flags) applied;
    :class:`ConfigError` lists every problem."""
    if path is None:
        config = config_module.parse({}, config_module.EMBEDDED)
    else:
        config, problems = check(path, secrets=secrets, strict=strict)
        if config is None:
            raise ConfigError(*problems)
    if server:
        settings, problems = section_problems(ServerConfig, {**config.server.model_dump(), **server}, config.source,
                                              "server")
        if problems:
            raise ConfigError(*problems)
        config.server = settings
    return config
