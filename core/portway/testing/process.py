"""``portway serve`` in a process of its own, for tests that need what only
a real process has: several workers, two gateways sharing Redis, the CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from portway.testing.servers import free_port

#: The ``portway`` command of the running interpreter's environment.
PORTWAY = shutil.which("portway", path=os.path.dirname(sys.executable)) or "portway"

#: Environment variables of the test run that would change what a served gateway loads.
NOT_INHERITED = frozenset({"PORTWAY_CONFIG", "PORTWAY_LOAD_PLUGINS", "PROMETHEUS_MULTIPROC_DIR"})


@contextlib.contextmanager
def portway_serve(*args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 30.0
                  ) -> Iterator[str]:
    """``portway serve --port <free port> *args`` (in its own session), until
    ``/health`` answers; yields its URL.  Its output goes to
    ``cwd/serve-<port>.log``, shown when it fails to start.  At the end a
    graceful stop (SIGTERM: workers flush what they hold), then SIGKILL to
    the whole group if it has not ended within ``timeout``."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    environ = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    environ.update(env or {})
    with open(log, "wb") as sink:
        proc = subprocess.Popen([PORTWAY, "serve", "--port", str(port), "--log-level", "warning", *args],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=environ,
                                cwd=cwd, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"portway serve exited with {proc.returncode}:\n"
                                     f"{log.read_text(errors='replace')}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"portway serve did not answer /health in {timeout:g} s:\n"
                                     f"{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


__all__ = ["PORTWAY", "portway_serve"]
