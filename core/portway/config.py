"""The configuration file: one YAML document validated by pydantic.

- Where it comes from: :func:`discover` (``--config``, then ``$PORTWAY_CONFIG``,
  then ``./portway.yaml`` or ``./portway.yml``, else the embedded defaults).
- YAML is read strictly: a key written twice in one mapping is an error
  (PyYAML would silently keep the last one).
- ``${VAR}`` and ``${VAR:-default}`` are replaced from the environment before
  validation (the default also when ``VAR`` is set but empty, as in the
  shell); ``$${`` writes a literal ``${``.  An unset variable without a
  default is an error that names the key.
- Every problem in the file is reported at once, each naming the file and the
  dotted key.  This module checks what the core alone can know; the checks
  that need the installed plugins (provider types and their keys, plugin
  sections) are in :mod:`portway.configcheck`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from portway.hooks import HOOK_NAMES

#: ``Config.source`` when no file is used.
EMBEDDED = "<embedded defaults>"
#: The environment variable naming the config file.
CONFIG_ENV = "PORTWAY_CONFIG"
#: Looked for in the working directory, in this order.
DEFAULT_FILES = ("portway.yaml", "portway.yml")


class ConfigError(Exception):
    """The configuration is invalid.  ``problems`` holds one message per
    problem, each naming the file and the key; ``str()`` joins them."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def suggest(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- the schema ------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    insecure: bool = False
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    #: Request line and headers together; larger requests get a 431.
    max_header_bytes: int = Field(64 * 1024, ge=4096)
    #: One log line per request on the ``portway.access`` logger.
    access_log: bool = True
    #: ``text``: one human line per record; ``json``: one JSON object per line.
    log_format: Literal["text", "json"] = "text"


class AuthConfig(Strict):
    master_key: SecretStr | None = None

    @field_validator("master_key")
    @classmethod
    def _usable(cls, key: SecretStr | None) -> SecretStr | None:
        # An empty key would be matched by an empty header: everyone in.
        if key is not None:
            value = key.get_secret_value()
            if not value.strip():
                raise ValueError("is empty; set it to a secret, or remove the key to run without one "
                                 "(allowed only on a loopback address)")
            if value != value.strip():
                raise ValueError("starts or ends with whitespace, which no HTTP client can send "
                                 "(header values are trimmed)")
        return key


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
    #: Requests in flight to this instance at once (portway-routing queues the
    #: rest, see ``routing.queue``); None: no limit but ``max_connections``.
    max_concurrency: int | None = Field(None, ge=1)
    max_response_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_event_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    #: The upstream transport (portway.upstream): Portway's own httptools client, aiohttp or httpx.
    http_client: Literal["httptools", "aiohttp", "httpx"] = "httptools"
    headers: dict[str, str] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list)


class TargetConfig(Strict):
    """One target of an alias: a provider instance and its model, or another
    alias (``{alias: eu-pool}``: strategies nest)."""

    provider: str | None = None
    model: str | None = None
    alias: str | None = None
    weight: float = Field(1.0, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    #: Requests in flight to this target at once (portway-routing queues the rest, see ``routing.queue``).
    max_concurrency: int | None = Field(None, ge=1)

    @field_validator("provider")
    @classmethod
    def _defined(cls, name: str | None, info: ValidationInfo) -> str | None:
        # parse() passes the file's provider names as validation context.
        defined = (info.context or {}).get("providers")
        if name is not None and defined is not None and name not in defined:
            raise ValueError(f"no provider named {name!r} (defined: {', '.join(sorted(defined)) or 'none'})")
        return name

    @model_validator(mode="after")
    def _one_form(self) -> TargetConfig:
        if self.alias is not None:
            if self.provider is not None or self.model is not None or self.params or self.max_concurrency:
                raise ValueError("a target names either an alias ({alias: NAME}) or a provider and a model, "
                                 "not both")
        elif self.provider is None or self.model is None:
            raise ValueError("a target needs a 'provider' and a 'model' (or an 'alias')")
        return self


# -- durations and retries ---------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _duration(value: Any) -> Any:
    """``200ms``, ``5s``, ``2m``, ``12h``, ``30d`` or a number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 200ms, 5s, 2m")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        found = _DURATION.fullmatch(value.strip())
        if found:
            return float(found.group(1)) * _UNIT[found.group(2)]
    raise ValueError(f"{value!r} is not a duration: write a number of seconds or 200ms, 5s, 2m, 12h, 30d")


#: Seconds: ``200ms``, ``5s``, ``2m``, ``12h``, ``30d``, or a number.
Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]

#: The statuses retried unless the config says otherwise.
RETRY_STATUSES = (408, 429, 500, 502, 503, 504, 529)


class BackoffConfig(Strict):
    """The wait before a retry: ``initial``, doubling each time up to ``max``,
    with jitter; an upstream's ``Retry-After`` is honoured when it is no
    longer than ``max`` (a longer one falls back instead of waiting)."""

    initial: Duration = 0.2
    max: Duration = 5.0


class RetryConfig(Strict):
    """Retries on the same target before falling back to the next one."""

    #: Tries per target, the first included (1: no retry).
    attempts: int = Field(1, ge=1, le=10)
    #: Upstream statuses retried (a timeout or a broken connection, which got no answer, always is).
    on_status: list[int] = Field(default_factory=lambda: list(RETRY_STATUSES))
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)


class AliasRetryConfig(Strict):
    """An alias's ``retry``: each key given overrides ``routing.retry``'s."""

    attempts: int | None = Field(None, ge=1, le=10)
    on_status: list[int] | None = None
    backoff: BackoffConfig | None = None

    def over(self, defaults: RetryConfig) -> RetryConfig:
        return RetryConfig(attempts=self.attempts or defaults.attempts,
                           on_status=defaults.on_status if self.on_status is None else self.on_status,
                           backoff=self.backoff or defaults.backoff)


class TimeoutConfig(Strict):
    """Limits on one attempt (a retry or a fallback starts afresh); a limit
    reached is a ``timeout`` failure, retried or fallen back from like any
    other before the answer starts.  Unset: only the provider's own
    ``timeout`` (per read) and ``connect_timeout`` apply."""

    #: Until the first content of the answer (a stream's first chunk, a whole
    #: non-streamed answer), and the longest pause between a stream's chunks.
    first_token: Duration | None = None
    #: The whole attempt, a whole stream included.
    total: Duration | None = None
    #: Opening a connection to an upstream: under ``routing`` only, the
    #: default for every provider that sets no ``connect_timeout`` of its own
    #: (connections are pooled per provider, shared by every alias).
    connect: Duration | None = Field(None, gt=0)

    def over(self, defaults: TimeoutConfig) -> TimeoutConfig:
        return TimeoutConfig(first_token=self.first_token if self.first_token is not None else defaults.first_token,
                             total=self.total if self.total is not None else defaults.total)

    @property
    def is_set(self) -> bool:
        return self.first_token is not None or self.total is not None


def _no_retries_key(data: Any) -> Any:
    """The keys ``retry`` replaced, refused with what to write instead."""
    if isinstance(data, dict):
        if "retries" in data:
            raise ValueError("retries is gone: write retry: {attempts: N}, the tries per target "
                             "with the first included (retries: 2 is attempts: 3)")
        if "retry_backoff" in data:
            raise ValueError("retry_backoff is gone: write retry: {backoff: {initial: 200ms, max: 5s}}")
    return data


class ModelConfig(BaseModel):
    """An alias: ``target`` for one place, ``targets`` for several (tried in
    order on failure, unless a routing plugin's ``strategy`` says otherwise).
    Keys other than these belong to plugins (the ``register_alias_keys``
    hook), which validate them; one that no plugin declares is an error."""

    model_config = ConfigDict(extra="allow")

    target: TargetConfig | None = None
    targets: list[TargetConfig] = Field(default_factory=list)
    retry: AliasRetryConfig | None = None
    #: This alias's limits: each key given overrides ``routing.timeout``'s.
    timeout: TimeoutConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _old_keys(cls, data: Any) -> Any:
        return _no_retries_key(data)

    @model_validator(mode="after")
    def _one_form(self) -> ModelConfig:
        if self.timeout is not None and self.timeout.connect is not None:
            raise ValueError("timeout.connect is not per alias: connections are pooled per provider and shared by "
                             "every alias; set routing.timeout.connect or providers.<name>.connect_timeout")
        if (self.target is None) == (not self.targets):
            raise ValueError("give exactly one of 'target' or 'targets'")
        if self.target is not None:
            self.targets = [self.target]
            self.target = None
        return self

    def plugin_keys(self) -> dict[str, Any]:
        """The keys plugins declare, as written."""
        return dict(self.model_extra or {})


class PriceConfig(Strict):
    """USD per million tokens."""

    input: float | None = Field(None, ge=0)
    output: float | None = Field(None, ge=0)
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)
    reasoning: float | None = Field(None, ge=0)


CatalogCapability = Literal["tools", "vision", "json", "json_schema", "reasoning", "embeddings", "rerank"]


class CatalogEntryConfig(Strict):
    """A ``catalog:`` entry: what the config says of one ``provider/model``
    (over what the catalog's sources say)."""

    context_window: int | None = Field(None, ge=1)
    max_output_tokens: int | None = Field(None, ge=1)
    price: PriceConfig | None = None
    capabilities: list[CatalogCapability] | None = None


def _catalog_key(key: str) -> str:
    provider, sep, model = key.partition("/")
    if not (sep and provider and model):
        raise ValueError(f"{key!r}: a catalog entry is keyed '<provider>/<model>', the provider as named in "
                         "'providers:'")
    return key


class BreakerConfig(Strict):
    """A circuit breaker per target (``portway-routing``): after ``failures``
    retryable failures within ``window``, the target is skipped for
    ``cooldown``, then one probe request decides."""

    enabled: bool = True
    failures: int = Field(5, ge=1)
    window: Duration = 30.0
    cooldown: Duration = 30.0
    #: Share open circuits between workers and machines through this Redis
    #: (``redis://host:6379/0``); None: each process keeps its own.
    redis_url: str | None = None
    #: The Redis hash that holds the open circuits (one per gateway fleet).
    redis_key: str = "portway:breakers"
    #: How often each process reads the shared state.
    sync_interval: Duration = Field(1.0, gt=0)


class QueueConfig(Strict):
    """Requests over a provider's ``max_concurrency`` wait here
    (``portway-routing``): at most ``max_waiting`` per provider instance, each
    for at most ``timeout``; past either, a 429 with ``Retry-After``.  Waiting
    requests are served round-robin between client keys."""

    max_waiting: int = Field(100, ge=0)
    timeout: Duration = 10.0


class RoutingConfig(Strict):
    retry: RetryConfig = Field(default_factory=RetryConfig)
    timeout: TimeoutConfig = Field(default_factory=TimeoutConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)

    @model_validator(mode="before")
    @classmethod
    def _old_keys(cls, data: Any) -> Any:
        return _no_retries_key(data)


def _hook_name(name: str) -> str:
    if name not in HOOK_NAMES:
        raise ValueError(f"no hook named {name!r}{suggest(name, HOOK_NAMES)}; the hooks are: {', '.join(HOOK_NAMES)}")
    return name


class PluginsConfig(Strict):
    disable: list[str] = Field(default_factory=list)
    order: dict[Annotated[str, AfterValidator(_hook_name)], list[str]] = Field(default_factory=dict)


def _provider_name(name: str) -> str:
    if not name:
        raise ValueError("a provider name cannot be empty")
    if "/" in name:
        raise ValueError("a provider name cannot contain '/'")
    return name


def _alias_name(name: str) -> str:
    if not name:
        raise ValueError("a model alias cannot be empty")
    if name.count("*") > 1:
        raise ValueError(f"a model alias may contain one '*' (a wildcard), not {name.count('*')}")
    return name


def _provider_entry(raw: Any) -> Any:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ValueError("needs a 'type' (e.g. openai, anthropic, mock)")
    return raw


class Config(BaseModel):
    model_config = ConfigDict(extra="allow")  # plugin sections, validated by the plugin's model

    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    #: Raw entries: each is validated by its provider type's ``config_model``
    #: (see :mod:`portway.configcheck`), which only the installed plugins know.
    providers: dict[
        Annotated[str, AfterValidator(_provider_name)], Annotated[dict[str, Any], BeforeValidator(_provider_entry)]
    ] = Field(default_factory=dict)
    models: dict[Annotated[str, AfterValidator(_alias_name)], ModelConfig] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    catalog: dict[Annotated[str, AfterValidator(_catalog_key)], CatalogEntryConfig] = Field(default_factory=dict)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)

    # Where it came from, for messages; not a key of the file.
    _source: str = PrivateAttr(EMBEDDED)

    @property
    def source(self) -> str:
        return self._source

    @source.setter
    def source(self, value: str) -> None:
        self._source = value

    def extra_sections(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _wildcard_targets(self) -> Config:
        for alias, model in self.models.items():
            for i, target in enumerate(model.targets):
                where = "target" if len(model.targets) == 1 else f"targets.{i}"
                if target.alias is not None:
                    if target.alias not in self.models:
                        raise ValueError(f"models.{alias}.{where}.alias: no alias named {target.alias!r}"
                                         f"{suggest(target.alias, self.models)}")
                    if "*" in target.alias:
                        raise ValueError(f"models.{alias}.{where}.alias: {target.alias!r} is a wildcard alias, "
                                         "which only a request's model name can fill in")
                    continue
                if target.model.count("*") > (1 if "*" in alias else 0):  # type: ignore[union-attr]
                    raise ValueError(
                        f"models.{alias}.{where}.model: {target.model!r} uses '*', which stands for the part of "
                        f"the name the alias's own '*' matched" + (" (once)" if "*" in alias else
                                                                   f"; alias {alias!r} has none"))
        cycle = alias_cycle(self.models)
        if cycle:
            raise ValueError(f"models: aliases name each other in a cycle: {' -> '.join(cycle)}")
        return self


def alias_cycle(models: Mapping[str, ModelConfig]) -> list[str] | None:
    """A cycle of aliases naming each other as targets (``[a, b, a]``), or None."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name):], name]
        if name in done or name not in models:
            return None
        for target in models[name].targets:
            if target.alias is not None:
                found = visit(target.alias, [*path, name])
                if found:
                    return found
        done.add(name)
        return None

    for name in models:
        found = visit(name, [])
        if found:
            return found
    return None


#: The top-level keys the core owns; any other belongs to a plugin.
CORE_SECTIONS = tuple(Config.model_fields)


# -- finding the file -------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """Which config to use and why."""

    path: str | None  # None: the embedded defaults
    reason: str

    def describe(self) -> str:
        return f"{self.path or EMBEDDED} ({self.reason})"


def discover(cli_path: str | None, environ: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> Choice:
    """``--config``, then ``$PORTWAY_CONFIG``, then ``./portway.yaml`` (or
    ``./portway.yml``), else the embedded defaults.  An empty variable counts
    as unset; a named file that does not exist is an error later, not a
    reason to look further."""
    environ = os.environ if environ is None else environ
    if cli_path:
        return Choice(cli_path, "from --config")
    if environ.get(CONFIG_ENV):
        return Choice(environ[CONFIG_ENV], f"from ${CONFIG_ENV}")
    here = Path.cwd() if cwd is None else Path(cwd)
    found = [name for name in DEFAULT_FILES if (here / name).is_file()]
    if found:
        ignored = f"; ./{found[1]} is ignored" if len(found) > 1 else ""
        return Choice(found[0], f"found in the working directory{ignored}")
    return Choice(None, f"no --config, no ${CONFIG_ENV}, no ./{DEFAULT_FILES[0]}")


# -- reading YAML -----------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with keys kept as written: YAML 1.1 reads a plain
    ``on``, ``off``, ``yes`` or ``no`` as a boolean, and as a key (a
    guardrail's ``on: [input]``, a model alias named ``no``) that is never
    what was meant.  Values keep the boolean reading (``stream: yes``)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        for key_node, _ in node.value:
            if (isinstance(key_node, yaml.ScalarNode) and key_node.tag == _BOOL_TAG and key_node.style is None
                    and key_node.value.lower() not in ("true", "false")):
                key_node.tag = _STR_TAG
        return super().construct_mapping(node, deep)


_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"


def read(path: str | os.PathLike[str]) -> tuple[Any, list[str]]:
    """The file's YAML document and the duplicate-key problems in it.  A file
    that cannot be read or parsed raises :class:`ConfigError` (naming the
    file, line and column): nothing else can be checked then."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    # Messages are built here from the error's parts: PyYAML's own name the
    # text "<unicode string>" and quote the offending line (which may hold a secret).
    loader = None
    try:
        loader = _Loader(text)  # checks every character of the text first
        node = loader.get_single_node()
        looped = _recursion(node)
        if looped is not None:
            raise ConfigError(f"{file}: {looped or '<root>'}: an alias refers to a node that contains it")
        problems = [f"{file}: {problem}" for _, problem in sorted(_duplicates(node))]
        data = loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        raise ConfigError(f"{file}: not valid YAML: line {line}, column {column}: "
                          f"character #x{exc.character:04x} is not allowed") from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {_describe(exc)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {type(exc).__name__}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, problems


def _describe(exc: yaml.MarkedYAMLError) -> str:
    def where(mark: Any) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    text = f"{where(exc.problem_mark)}: {exc.problem}" if exc.problem_mark else str(exc.problem)
    if exc.context:
        text += f" ({exc.context}" + (f" at {where(exc.context_mark)})" if exc.context_mark else ")")
    return text


def _recursion(node: yaml.Node | None, path: str = "", inside: frozenset[int] = frozenset(),
               cleared: set[int] | None = None) -> str | None:
    """The dotted path of an alias to one of its own ancestors (a structure
    that contains itself, which nothing after this could walk), or None."""
    cleared = set() if cleared is None else cleared  # nodes already walked without finding one
    if node is None or id(node) in cleared:
        return None
    if id(node) in inside:
        return path
    inside = inside | {id(node)}
    if isinstance(node, yaml.MappingNode):
        children = [(f"{path}.{key.value}" if path else str(key.value), value) for key, value in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [(f"{path}.{i}" if path else str(i), item) for i, item in enumerate(node.value)]
    else:
        return None
    for child_path, child in children:
        found = _recursion(child, child_path, inside, cleared)
        if found is not None:
            return found
    cleared.add(id(node))
    return None


def _duplicates(node: yaml.Node | None, path: str = "", seen: set[int] | None = None) -> Iterator[tuple[int, str]]:
    """(line, problem) for each key written twice in one mapping (merge keys
    ``<<`` are YAML's own way to override and are not counted)."""
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:  # an alias points at a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                continue
            if isinstance(key, yaml.ScalarNode):
                dotted = f"{path}.{key.value}" if path else key.value
                line = key.start_mark.line + 1
                if (key.tag, key.value) in first:
                    yield line, (f"{dotted}: duplicate key {key.value!r} on line {line} "
                                 f"(first on line {first[key.tag, key.value]})")
                else:
                    first[key.tag, key.value] = line
                yield from _duplicates(value, dotted, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicates(item, f"{path}.{i}" if path else str(i), seen)


# -- ${VAR} interpolation -----------------------------------------------------------------

_TOKEN = re.compile(
    r"\$\$\{"  # $${ : a literal ${
    r"|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>(?:[^}$]|\$(?!\{))*))?\})?"  # ${VAR}, ${VAR:-x}, or a bad ${
)


def is_secret(path: tuple[str, ...]) -> bool:
    """Keys whose values only serving needs: the master key, provider API
    keys and provider headers (which often carry credentials)."""
    return (path == ("auth", "master_key")
            or (len(path) == 3 and path[0] == "providers" and path[2] == "api_key")
            or (len(path) == 4 and path[0] == "providers" and path[2] == "headers"))


def interpolate(value: Any, environ: dict[str, str], *, secrets: bool = True,
                path: tuple[str, ...] = ()) -> tuple[Any, list[tuple[tuple[str, ...], str]]]:
    """``value`` with ``${…}`` replaced, and a (path, problem) pair for each
    reference that could not be.  A string with a problem is kept as
    written.  With ``secrets=False`` an unset variable in a secret key
    (:func:`is_secret`) is not a problem: the text stays as a placeholder."""
    problems: list[tuple[tuple[str, ...], str]] = []

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, str):
            found: list[str] = []

            def repl(match: re.Match[str]) -> str:
                if match.group(0) == "$${":
                    return "${"
                name, default = match.group("name"), match.group("default")
                if name is None:
                    found.append("'${' starts neither ${VAR} nor ${VAR:-default} (write $${ for a literal ${)")
                elif environ.get(name):
                    return environ[name]
                elif default is not None:
                    return default
                elif name in environ:
                    return ""
                elif secrets or not is_secret(path):
                    found.append(f"environment variable {name} is not set")
                return match.group(0)

            result = _TOKEN.sub(repl, value)
            problems.extend((path, problem) for problem in found)
            return value if found else result
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, str(i))) for i, v in enumerate(value)]
        return value

    return walk(value, path), problems


# -- validation -----------------------------------------------------------------------------


def error_lines(exc: ValidationError, source: str, prefix: tuple[str, ...] = (),
                skip: Collection[tuple[str, ...]] = ()) -> list[str]:
    """One ``source: dotted.key: message`` line per pydantic error, leaving
    out errors under a key in ``skip`` (already reported otherwise)."""
    lines = []
    for err in exc.errors():
        loc = (*prefix, *(str(part) for part in err["loc"] if part != "[key]"))
        if any(loc[:len(bad)] == bad for bad in skip):
            continue
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {'.'.join(loc)}: {msg}" if loc else f"{source}: {msg}")
    return lines


@dataclass
class Examined:
    """What :func:`examine` found: the data after interpolation, the
    validated config (None when it has problems) and the problems."""

    data: dict[str, Any]
    config: Config | None
    problems: list[str] = field(default_factory=list)


def examine(data: Any, source: str = "<config>", environ: dict[str, str] | None = None, *,
            secrets: bool = True) -> Examined:
    """Interpolate and validate ``data``, collecting every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Examined({}, None, [f"{source}: the top level must be a mapping"])
    data, unset = interpolate(data, dict(os.environ) if environ is None else environ, secrets=secrets)
    problems = [f"{source}: {'.'.join(path) or '<root>'}: {problem}" for path, problem in unset]
    providers = data.get("providers")
    context = {"providers": set(providers) if isinstance(providers, dict) else None}
    try:
        config: Config | None = Config.model_validate(data, context=context)
    except ValidationError as exc:
        config = None
        # A key whose ${VAR} failed holds the text as written: do not also report its type.
        problems += error_lines(exc, source, skip={path for path, _ in unset})
    if problems:
        return Examined(data, None, problems)
    assert config is not None
    config.source = source
    return Examined(data, config)


def parse(data: Any, source: str = "<config>", environ: dict[str, str] | None = None, *,
          secrets: bool = True) -> Config:
    """The validated config, or :class:`ConfigError` with every problem."""
    examined = examine(data, source, environ, secrets=secrets)
    if examined.config is None:
        raise ConfigError(*examined.problems)
    return examined.config


def load(path: str | os.PathLike[str], environ: dict[str, str] | None = None, *, secrets: bool = True) -> Config:
    """Read and validate the file at ``path`` (core keys only; see
    :mod:`portway.configcheck` for the complete check)."""
    data, problems = read(path)
    examined = examine(data, str(path), environ, secrets=secrets)
    if problems or examined.config is None:
        raise ConfigError(*problems, *examined.problems)
    return examined.config


def section_problems(model: type[BaseModel], data: Any, source: str, section: str) -> tuple[Any, list[str]]:
    """Validate a provider's or plugin's own section with its model: the
    validated value (None if invalid) and the problems."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, error_lines(exc, source, prefix=(section,))


def validate_section(model: type[BaseModel], data: Any, source: str, section: str) -> BaseModel:
    """Validate a provider's or plugin's own section with its model."""
    value, problems = section_problems(model, data, source, section)
    if problems:
        raise ConfigError(*problems)
    return value


#: The keys of an alias the core owns; any other belongs to a plugin (``register_alias_keys``).
CORE_ALIAS_KEYS = ("target", "targets", "retry", "timeout")


def target_names(targets: Any) -> list[str]:
    """The names of an alias's targets as written (``<provider>/<model>``, or
    the alias a target names), from a raw entry's ``target``/``targets``."""
    names = []
    for target in targets if isinstance(targets, list) else [targets]:
        if isinstance(target, dict):
            alias = target.get("alias")
            names.append(str(alias) if alias is not None else f"{target.get('provider')}/{target.get('model')}")
    return names


def alias_key_problems(models: Mapping[str, Any], declared: Mapping[str, Any], source: str
                       ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Validate every alias's plugin keys (``models.<alias>.<key>``) with the
    type its plugin declared (a pydantic model or any type pydantic
    validates: ``Literal[...]``, ``bool | Model``).  ``models`` maps an alias
    to its raw entry.  A plugin's validators get the validation context
    ``{"alias": name, "targets": [target names], "keys": {the alias's keys}}``
    (see :func:`target_names`), to check one key against the others.
    Returns each alias's validated plugin keys, and the problems: an
    undeclared key names the file and the key."""
    values: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for alias, entry in models.items():
        if not isinstance(entry, Mapping):
            continue
        values[alias] = {}
        keys = {k: v for k, v in entry.items() if k not in CORE_ALIAS_KEYS}
        context = {"alias": alias, "keys": dict(entry),
                   "targets": target_names(entry.get("targets", entry.get("target")))}
        for key, raw in keys.items():
            kind = declared.get(key)
            if kind is None:
                problems.append(f"{source}: models.{alias}.{key}: unknown key (no installed plugin declares it)"
                                f"{suggest(str(key), [*CORE_ALIAS_KEYS, *declared])}")
                continue
            try:
                values[alias][key] = _adapter(kind).validate_python(raw, context=context)
            except ValidationError as exc:
                problems += error_lines(exc, source, prefix=("models", alias, key))
    return values, problems


def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)
