"""The {{ cookiecutter.name }} sink, through a real gateway in front of the mock
provider: every request becomes one JSON line in the configured file."""

import json
import time
from pathlib import Path
from typing import Any

import openai
import pytest

NAME = "{{ cookiecutter.name }}"


def config(path: Path) -> dict[str, Any]:
    return {"providers": {"mock": {"type": "mock"}}, NAME: {"path": str(path)}}


def read_records(path: Path, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The file's records, once there are ``count`` of them (the writer is a
    background task)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.02)


def test_each_request_is_written_as_a_json_line(gateway_server: Any, tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    client = gateway_server(config(path)).openai_client()

    reply = client.chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": "hello"}]
    )

    [record] = read_records(path, 1)
    assert record["request_id"] == reply.headers["x-request-id"]
    assert record["model"] == "mock/echo"
    assert record["provider"] == "mock"
    assert record["status"] == 200
    assert record["latency_ms"] > 0
    assert record["usage"]["total_tokens"] > 0


def test_failures_are_recorded_and_shutdown_flushes(gateway_server: Any, tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    server = gateway_server(config(path))
    client = server.openai_client()

    stream = client.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Mock reply to: hi"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nowhere/model", messages=[{"role": "user", "content": "hi"}])
    server.stop()  # shutdown writes what is still queued

    records = sorted(read_records(path, 2, timeout=0), key=lambda r: r["model"])
    assert [(r["model"], r["stream"], r["status"]) for r in records] == [
        ("mock/echo", True, 200),
        ("nowhere/model", False, 404),
    ]
    assert "not configured" in records[1]["error"]


def test_an_unwritable_path_stops_the_gateway_at_start_up(gateway_server: Any, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="failed to start"):
        gateway_server(config(tmp_path / "missing-dir" / "requests.jsonl"))
