"""The ``log:`` section (the ``store:`` section is :class:`portway.stores.sql.StoreConfig`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from portway.config import Duration


class LogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``off``: no bodies; ``full``: the request and the answer as they were;
    #: ``redacted``: with API keys, emails and card numbers masked.
    log_bodies: Literal["off", "full", "redacted"] = "off"
    #: Each body is cut to this many characters (``body_truncated`` says so).
    max_body_bytes: int = Field(16 * 1024, ge=256)
    #: Records older than this are deleted by a background sweep; null keeps them.
    retention: Duration | None = 30 * 86400.0
    #: Records waiting to be written, at most; past it new records are dropped (and counted).
    queue_size: int = Field(10_000, ge=1)
    #: Records written in one transaction, at most.
    batch_size: int = Field(500, ge=1)
    #: Rows ``GET /admin/analytics`` reads at most (its answer says when there were more).
    analytics_max_rows: int = Field(200_000, ge=1)

    @field_validator("log_bodies", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false.
        return "off" if value is False else value

    @field_validator("retention")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be longer than 0 (or null to keep records forever)")
        return value
