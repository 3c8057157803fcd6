"""The ``cache:`` section and an alias's ``cache:`` key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from portway.config import Duration

#: Seconds an entry lives (more than zero): ``500ms``, ``30s``, ``10m``, ``1h``, ``7d`` or a number.
TTL = Annotated[Duration, Field(gt=0)]

Mode = Literal["exact", "semantic"]
Namespace = Literal["per-key", "shared"]


class SemanticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Any model name the gateway serves embeddings for: an alias or ``<provider>/<model>``.
    embedding_model: str = Field(min_length=1)
    #: Cosine similarity at or above which a cached answer is served.
    threshold: float = Field(0.95, gt=0, le=1)


class CacheConfig(BaseModel):
    """``cache:``.  Its presence turns caching on for every chat request;
    keys not listed here belong to the backend (``max_entries``, ``path``,
    ``redis_url``, ...) and are validated by its ``config_model`` at start-up."""

    model_config = ConfigDict(extra="allow")
    mode: Mode = "exact"
    backend: str = Field("memory", min_length=1)
    ttl: TTL = 600.0
    namespace: Namespace = "per-key"
    semantic: SemanticConfig | None = None

    @model_validator(mode="after")
    def _semantic_needs_a_model(self) -> CacheConfig:
        if self.mode == "semantic" and self.semantic is None:
            raise ValueError("mode 'semantic' needs 'semantic: {embedding_model: ..., threshold: ...}'")
        return self

    def backend_settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AliasCache(BaseModel):
    """``models.<alias>.cache``: ``false`` (no caching for this alias), or
    the keys of ``cache:`` this alias sets differently."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    mode: Mode | None = None
    ttl: TTL | None = None
    namespace: Namespace | None = None
    embedding_model: str | None = Field(None, min_length=1)
    threshold: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _false_is_off(cls, data: Any) -> Any:
        if isinstance(data, bool):
            return {"enabled": data}
        return data


@dataclass(frozen=True, slots=True)
class Settings:
    """What applies to one request: the section's keys under an alias's own."""

    mode: Mode
    ttl: float
    shared: bool
    embedding_model: str | None
    threshold: float

    @classmethod
    def of(cls, section: CacheConfig, alias: AliasCache | None) -> Settings | None:
        """None: no caching (an alias with ``cache: false``)."""
        if alias is not None and not alias.enabled:
            return None
        semantic = section.semantic
        mode = (alias.mode if alias is not None and alias.mode else None) or section.mode
        embedding_model = (alias.embedding_model if alias is not None else None) or (
            semantic.embedding_model if semantic is not None else None)
        threshold = (alias.threshold if alias is not None else None) or (
            semantic.threshold if semantic is not None else 0.95)
        ttl = (alias.ttl if alias is not None else None) or section.ttl
        namespace = (alias.namespace if alias is not None else None) or section.namespace
        if mode == "semantic" and embedding_model is None:
            mode = "exact"  # refused at start-up (see Cache.check); never reached
        return cls(mode, ttl, namespace == "shared", embedding_model, threshold)
