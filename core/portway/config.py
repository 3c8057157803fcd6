"""The configuration file: one YAML document validated by pydantic.

``${VAR}`` and ``${VAR:-default}`` are replaced from the environment before
validation; an unset variable without a default is an error that names the
key.  Every error names the file and the dotted key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, model_validator


class ConfigError(Exception):
    """The configuration is invalid; the message names file and key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    insecure: bool = False
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)


class AuthConfig(Strict):
    master_key: SecretStr | None = None


class ProviderConfig(BaseModel):
    """Keys every provider accepts.  A provider type may declare a subclass
    with more keys (its ``config_model``)."""

    model_config = ConfigDict(extra="forbid")

    type: str
    api_key: SecretStr | None = None
    base_url: str | None = None
    timeout: float = Field(600.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    #: Longest wait for a free pooled connection when all max_connections are in use.
    pool_timeout: float = Field(30.0, gt=0)
    max_connections: int = Field(1000, ge=1)
    max_response_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_event_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    headers: dict[str, str] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list)


class TargetConfig(Strict):
    provider: str
    model: str
    weight: float = Field(1.0, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(Strict):
    """An alias: ``target`` for one place, ``targets`` for several (tried in
    order on failure)."""

    target: TargetConfig | None = None
    targets: list[TargetConfig] = Field(default_factory=list)
    retries: int | None = Field(None, ge=0, le=10)

    @model_validator(mode="after")
    def _one_form(self) -> ModelConfig:
        if (self.target is None) == (not self.targets):
            raise ValueError("give exactly one of 'target' or 'targets'")
        if self.target is not None:
            self.targets = [self.target]
            self.target = None
            self._written_as_target = True
        return self

    #: Whether the file said ``target:`` (for error messages that quote it back).
    _written_as_target: bool = PrivateAttr(False)


class RoutingConfig(Strict):
    retries: int = Field(0, ge=0, le=10)
    retry_backoff: float = Field(0.2, ge=0)


class PluginsConfig(Strict):
    disable: list[str] = Field(default_factory=list)
    order: dict[str, list[str]] = Field(default_factory=dict)


class Config(BaseModel):
    model_config = ConfigDict(extra="allow")  # plugin sections, validated by the plugin's model

    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)

    # Where it came from, for error messages.
    source: str = Field("<embedded defaults>", exclude=True)

    @model_validator(mode="after")
    def _check_providers(self) -> Config:
        for name, raw in self.providers.items():
            if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
                raise ValueError(f"providers.{name}: needs a 'type' (e.g. openai, anthropic, mock)")
            if "/" in name:
                raise ValueError(f"providers.{name}: a provider name cannot contain '/'")
        for alias, model in self.models.items():
            for i, target in enumerate(model.targets):
                if target.provider not in self.providers:
                    raise ValueError(
                        f"models.{alias}.{'target' if model._written_as_target else f'targets.{i}'}.provider: "
                        f"no provider named {target.provider!r} "
                        f"(defined: {', '.join(sorted(self.providers)) or 'none'})"
                    )
        return self

    def extra_sections(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, environ: dict[str, str], path: str = "") -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")

        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: interpolate(v, environ, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, f"{path}.{i}") for i, v in enumerate(value)]
    return value


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        # Whole-file checks name their own dotted key in the message.
        lines.append(f"{source}: {loc}: {msg}" if loc else f"{source}: {msg}")
    return "\n".join(lines)


def parse(data: Any, source: str = "<config>", environ: dict[str, str] | None = None) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        data = interpolate(data, dict(os.environ) if environ is None else environ)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    config.source = source
    return config


def load(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    return parse(data, str(file), environ)


def validate_section(model: type[BaseModel], data: Any, source: str, section: str) -> BaseModel:
    """Validate a provider's or plugin's own section with its model."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join([section, *(str(p) for p in err["loc"])])
            lines.append(f"{source}: {loc}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("\n".join(lines)) from None
