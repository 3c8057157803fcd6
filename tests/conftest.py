"""Fixtures shared by the suite's test modules."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The Claude Code release tests/test_agents.py drives (its requests are pinned there too).
CLAUDE_CODE_VERSION = "2.1.332"


@dataclass(frozen=True)
class ClaudeCode:
    executable: Path
    version: str


def tools_cache() -> Path:
    """Where test tools from other ecosystems are installed: outside the
    repository, kept between runs (``$PORTWAY_TEST_TOOLS``, else the user's cache)."""
    if os.environ.get("PORTWAY_TEST_TOOLS"):
        return Path(os.environ["PORTWAY_TEST_TOOLS"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "portway" / "test-tools"


@pytest.fixture(scope="session")
def claude_code() -> ClaudeCode:
    """The Claude Code CLI at :data:`CLAUDE_CODE_VERSION`, installed with npm
    (from the npm registry) into :func:`tools_cache` unless it is there
    already.  Without npm this fails, never skips: CI starts from a fresh
    machine and must run these tests.  A fresh install takes about 5 s."""
    import fcntl

    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH: the agent tests install the Claude Code CLI with it "
                    "(on Debian: apt-get install npm)", pytrace=False)
    cache = tools_cache()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"claude-code-{CLAUDE_CODE_VERSION}"
    executable = target / "node_modules" / ".bin" / "claude"
    with open(cache / "install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers: one installs, the others wait and reuse it
        if not target.exists():
            # Installed aside and renamed into place, so a present directory is always a whole install.
            staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=cache))
            try:
                done = subprocess.run(
                    [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--loglevel=error",
                     f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"],
                    capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
                if done.returncode != 0:
                    pytest.fail(f"npm could not install @anthropic-ai/claude-code@{CLAUDE_CODE_VERSION} "
                                f"(exit {done.returncode}):\n{done.stderr[-3000:]}", pytrace=False)
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    version = subprocess.run([str(executable), "--version"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    if not version.stdout.startswith(CLAUDE_CODE_VERSION):
        pytest.fail(f"{executable} --version said {version.stdout!r} {version.stderr[-500:]!r}, not "
                    f"{CLAUDE_CODE_VERSION}; delete {target} to reinstall it", pytrace=False)
    return ClaudeCode(executable, CLAUDE_CODE_VERSION)
