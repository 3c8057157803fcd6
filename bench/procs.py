"""Starting, probing, and measuring the server processes under test (Linux /proc)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import HEADERS

REPO = Path(__file__).resolve().parent.parent
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"  # the large case; every target, the mock too, serves it there


class StartupError(RuntimeError):
    """A target did not come up; the harness skips or fails it with this message."""


def free_port() -> int:
    """A free port (under pytest-xdist, of this worker's own slot: the quick
    mode runs inside the test suite, beside other tests' servers)."""
    from portway.testing.servers import free_port

    return free_port()


def pin_prefix(cpu: int | None) -> list[str]:
    """``taskset -c N``: servers get their own core, mock + load share the other."""
    if cpu is None or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


@dataclass
class Server:
    """A process we started, and what we learnt while starting it."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    # The mock serves streams at their own path (nginx cannot read the body);
    # proxies take both at CHAT and route on the body's "stream" flag.
    stream_path: str = CHAT
    startup_ms: float = 0.0
    served: int = 0  # requests sent to it so far (for the RSS-after-N sample)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{CHAT}"

    @property
    def stream_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.stream_path}"

    @property
    def messages_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{MESSAGES}"

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        # Each server runs in its own session (start_new_session), so its
        # process group holds it and any workers it forked, and nothing else.
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def spawn(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], float]:
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
    return proc, t0


def _request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=dict(HEADERS) if body else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(server: Server, t0: float, timeout: float, body: bytes, health: str | None = None) -> float:
    """Poll until a chat request succeeds; return ms from spawn (t0) to that success.

    With `health`, GET it first: a gateway that never answers it is reported as
    not starting, one that answers but rejects the request as misconfigured.
    """
    deadline = t0 + timeout
    health_ok = health is None
    rejected_since: float | None = None
    last = "no answer"
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise StartupError(f"{server.name} exited with code {server.proc.returncode}: {tail(server.log)} (full log: {server.log})")
        try:
            if not health_ok:
                status, _ = _request(server.port, "GET", health)  # type: ignore[arg-type]
                health_ok = status == 200
                last = f"GET {health} -> {status}"
            if health_ok:
                status, answer = _request(server.port, "POST", CHAT, body)
                server.served += 1
                if status == 200:
                    return (time.perf_counter() - t0) * 1000
                last = f"POST {CHAT} -> {status}: {answer[:300]!r}"
                rejected_since = rejected_since or time.perf_counter()
                if time.perf_counter() - rejected_since > 2:  # it is up, and says no
                    break
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.005)
    what = f"GET {health}" if not health_ok else "a successful chat request"
    raise StartupError(f"{server.name}: no {what} within {timeout:.0f}s ({last}); log: {tail(server.log)} ({server.log})")


def tail(path: Path, n: int = 1) -> str:
    """Last n non-blank lines of a server log (a traceback's last line says what broke)."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-n:]) or "(empty log)"


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (a server may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kib(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """user+system CPU time of the process tree so far."""
    ticks = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def with_cpu(server: Server, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one load phase and add the server's CPU use during it.

    ``server_cpu_pct``: ~100 % means the server's core was saturated (so the
    load generator was not the limit). ``server_cpu_us_per_req``: user+sys CPU
    time (/proc/<pid>/stat, whole process tree) per completed request, in µs:
    the work the server does per request, which, unlike RPS, does not drop
    when the core is shared or stolen (only the server's own running time counts).
    """
    cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
    res = run()
    cpu = cpu_seconds(server.proc.pid) - cpu0
    res["server_cpu_pct"] = round(100 * cpu / (time.perf_counter() - t0), 1)
    res["server_cpu_s"] = round(cpu, 3)
    res["server_cpu_us_per_req"] = round(1e6 * cpu / res["requests"], 1) if res["requests"] else None
    server.served += int(res["requests"]) + int(res["errors"])
    return res


def steal_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs so far, from /proc/stat (0, 0 if unreadable)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, IndexError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def loaded_modules(pid: int) -> dict[str, bool]:
    """Whether httptools / uvloop native modules are mapped into the server:
    a cheap check that the fast HTTP parser and loop are really in use."""
    maps = ""
    for p in process_tree(pid):
        try:
            maps += Path(f"/proc/{p}/maps").read_text()
        except OSError:
            pass
    return {"httptools": "httptools" in maps, "uvloop": "uvloop" in maps}
