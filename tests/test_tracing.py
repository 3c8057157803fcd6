"""The core's tracing switches, without an SDK (the plugin's tests,
plugins/observability/otel/tests, cover spans end to end)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import ProxyTracerProvider

from portway import tracing


class FakeProvider:
    """Stands for an SDK's tracer provider installed globally."""

    def get_tracer(self, name: str) -> str:
        return f"tracer:{name}"


def test_the_global_provider_is_looked_at_again_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[Any] = []
    installed: list[Any] = [ProxyTracerProvider()]  # no SDK yet

    def get_tracer_provider() -> Any:
        looks.append(installed[0])
        return installed[0]

    clock = [1000.0]
    monkeypatch.setattr(tracing.trace, "get_tracer_provider", get_tracer_provider)
    monkeypatch.setattr(tracing.time, "monotonic", lambda: clock[0])
    traced = tracing.Tracing()
    assert traced.tracer() is None and traced.tracer() is None
    assert len(looks) == 1  # the second request did not look again
    installed[0] = FakeProvider()  # an SDK installed after start-up ...
    clock[0] += tracing.GLOBAL_RECHECK_SECONDS / 2
    assert traced.tracer() is None and len(looks) == 1
    clock[0] += tracing.GLOBAL_RECHECK_SECONDS
    assert traced.tracer() == "tracer:portway"  # ... is used within a second
    assert traced.tracer() == "tracer:portway" and len(looks) == 2


def test_a_provider_given_to_the_gateway_is_used_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing.time, "monotonic", lambda: 0.0)
    assert tracing.Tracing(FakeProvider()).tracer() == "tracer:portway"


def test_inject_writes_nothing_while_no_span_is_current() -> None:
    headers: dict[str, str] = {}
    tracing.inject(headers)
    assert headers == {}
