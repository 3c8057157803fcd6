"""``portway logs tail|show`` and ``portway serve --data-dir`` with two
workers, as subprocesses against real stores."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from portway.testing.gateway import GatewayServer
from portway.testing.process import PORTWAY, portway_serve

HI = [{"role": "user", "content": "hi"}]


def portway(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PORTWAY, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    """A config whose store has three requests in it (ids r0, r1, r2)."""
    db = tmp_path / "log.db"
    config = tmp_path / "portway.yaml"
    config.write_text(f"providers: {{mock: {{type: mock}}}}\nstore: {{url: 'sqlite:///{db}'}}\n")
    with GatewayServer({"providers": {"mock": {"type": "mock"}}, "store": {"url": f"sqlite:///{db}"}}) as server:
        for n in range(3):
            server.openai_client().chat.completions.create(model="mock/echo", messages=HI,
                                                           extra_headers={"x-request-id": f"r{n}"})
    return config


def test_show_prints_one_record_as_json(logged: Path) -> None:
    done = portway("logs", "show", "r1", "--config", str(logged), cwd=logged.parent)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["request_id"], record["model"], record["provider"], record["status"]) == ("r1", "mock/echo",
                                                                                              "mock", 200)
    missing = portway("logs", "show", "nope", "--config", str(logged), cwd=logged.parent)
    assert missing.returncode == 1 and "no logged request 'nope'" in missing.stderr


def test_tail_prints_the_newest_oldest_first(logged: Path) -> None:
    done = portway("logs", "tail", "-n", "2", "--no-follow", "--config", str(logged), cwd=logged.parent)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[2] for line in lines] == ["r1", "r2"]
    assert all(" chat.completions model=mock/echo -> mock/echo 200 " in line for line in lines)
    assert all("cost=unknown" in line for line in lines)  # the mock has no price: unknown, never 0


def test_tail_follows_new_records(logged: Path) -> None:
    tail = subprocess.Popen([PORTWAY, "logs", "tail", "-n", "1", "--interval", "0.1", "--config", str(logged)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=logged.parent,
                            stdin=subprocess.DEVNULL)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in tail.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        assert lines.get(timeout=30).split()[2] == "r2"
        db = logged.parent / "log.db"
        with GatewayServer({"providers": {"mock": {"type": "mock"}}, "store": {"url": f"sqlite:///{db}"}}) as server:
            for n in (3, 4):
                server.openai_client().chat.completions.create(model="mock/echo", messages=HI,
                                                               extra_headers={"x-request-id": f"r{n}"})
        assert [lines.get(timeout=30).split()[2] for _ in range(2)] == ["r3", "r4"]
    finally:
        tail.terminate()
        tail.wait(timeout=10)


def test_two_workers_log_every_request_into_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "portway.yaml"
    config.write_text("providers: {mock: {type: mock}}\n")
    pids: set[int] = set()
    sent: list[str] = []

    def ask(request_id: str) -> int:
        with httpx.Client(timeout=10, headers={"connection": "close"}) as http:
            answer = http.post(url + "/v1/chat/completions", json={"model": "mock/echo", "messages": HI},
                               headers={"x-request-id": request_id})
            assert answer.status_code == 200, answer.text
            return http.get(url + "/admin/logs/stats").json()["pid"]

    with portway_serve("--config", str(config), "--workers", "2", "--data-dir", str(data), cwd=tmp_path) as url:
        # Which worker accepts a connection is the kernel's choice: send in parallel until both have served.
        with ThreadPoolExecutor(8) as pool:
            for round_ in range(50):
                ids = [f"w{round_}-{n}" for n in range(8)]
                pids.update(pool.map(ask, ids))
                sent += ids
                if len(pids) == 2 and len(sent) >= 40:
                    break
    assert len(pids) == 2, "one worker served every request"
    assert (data / "portway.db").exists()
    done = portway("logs", "tail", "-n", "1000", "--no-follow", "--config", str(config), "--data-dir", str(data),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(line.split()[2] for line in done.stdout.splitlines()) == sorted(sent)
