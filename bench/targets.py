"""The four targets: how each is configured and started."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import payloads
from bench.mock_upstream import nginx_conf
from bench.procs import CHAT, REPO, Server, StartupError, free_port, pin_prefix, spawn, wait_ready

TARGETS = {
    "a": "mock (direct)",
    "b": "floor proxy",
    "c": "portway (default)",
    "d": "portway (optional plugins off)",
}
# Portway routes on the model name: "bench-stream" goes to the mock's stream path.
NONSTREAM_BODY = payloads.request_body(stream=False, model="bench")
STREAM_BODY = payloads.request_body(stream=True, model="bench-stream")


# `tag` names the files of one start (configs, logs): the start-up time is
# measured over several fresh starts, and only the last one is kept running.


def start_mock(kind: str, work: Path, cpu: int | None, timeout: float, tag: str = "") -> Server:
    port = free_port()
    log = work / f"mock-{kind}{tag}.log"
    if kind == "nginx":
        prefix = work / f"nginx{tag}"
        prefix.mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf(port, prefix))
        cmd = [*pin_prefix(cpu), "nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    else:
        cmd = [*pin_prefix(cpu), sys.executable, "-m", "bench.mock_upstream", "--port", str(port)]
    proc, t0 = spawn("mock", cmd, log)
    server = Server(f"mock ({kind})", proc, port, log, stream_path="/stream" + CHAT)
    server.startup_ms = wait_ready(server, t0, timeout, NONSTREAM_BODY)
    return server


def start_floor(mock: Server, work: Path, cpu: int | None, timeout: float, tag: str = "") -> Server:
    port = free_port()
    log = work / f"floor{tag}.log"
    cmd = [
        *pin_prefix(cpu), sys.executable, "-m", "uvicorn", "bench.floor_proxy:app", "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        "--log-level", "warning", "--backlog", "4096",
    ]
    env = {
        "FLOOR_UPSTREAM": f"http://127.0.0.1:{mock.port}/v1",
        "FLOOR_UPSTREAM_STREAM": f"http://127.0.0.1:{mock.port}/stream/v1",
    }
    proc, t0 = spawn("floor", cmd, log, env)
    server = Server("floor proxy", proc, port, log)
    server.startup_ms = wait_ready(server, t0, timeout, NONSTREAM_BODY)
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("floor_proxy:"):  # what uvicorn really picked, as the app saw it
            server.info["self_report"] = line.removeprefix("floor_proxy: ")
    return server


def portway_config(port: int, mock_port: int, disable: list[str] | None) -> str:
    # JSON strings are valid YAML scalars, so json.dumps quotes safely.
    q = json.dumps
    lines = [
        f"server: {{host: 127.0.0.1, port: {port}}}",
        "providers:",
        f'  up: {{type: openai, api_key: "bench-key", base_url: {q(f"http://127.0.0.1:{mock_port}/v1")}}}',
        # A second provider on the mock's always-stream path: nginx cannot look
        # at "stream" in the body, so stream requests use another base URL.
        f'  up-stream: {{type: openai, api_key: "bench-key", base_url: {q(f"http://127.0.0.1:{mock_port}/stream/v1")}}}',
        # The large case: Claude Code's /v1/messages to an Anthropic upstream (a pass-through).
        f'  claude: {{type: anthropic, api_key: "bench-key", base_url: {q(f"http://127.0.0.1:{mock_port}")}}}',
        "models:",
        "  bench: {target: {provider: up, model: gpt-4o-mini}}",
        "  bench-stream: {target: {provider: up-stream, model: gpt-4o-mini}}",
        # As docs/configuration.md suggests for agents: Claude Code's default model routes unchanged.
        '  "claude-*": {target: {provider: claude, model: "claude-*"}}',
    ]
    if disable is not None:
        lines.append(f"plugins: {{disable: [{', '.join(q(name) for name in disable)}]}}")
    return "\n".join(lines) + "\n"


#: Hooks that run on every request; a plugin with none of them costs nothing per request.
HOT_PATH_HOOKS = frozenset({"pre_request", "select_provider", "post_chunk", "post_response", "request_finished"})


def optional_plugins(portway: str, config: Path) -> tuple[list[str], str]:
    """Names of the optional hot-path plugins, from ``portway plugins --json``.

    An entry is disabled for (d) when it is enabled, loaded without error, not
    a built-in ("must always exist"), not a provider (requests need one), and
    implements at least one hot-path hook. Entries that are bare names, or say
    "optional": true, are taken as they are; "required": true keeps one on.
    """
    for cmd in ([portway, "plugins", "--json"], [portway, "plugins", "--json", "--config", str(config)]):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=REPO)
            data = json.loads(out.stdout) if out.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError):
            data = None
        if data is None:
            continue
        if isinstance(data, dict) and "plugins" in data:
            data = data["plugins"]
        if isinstance(data, dict):
            data = [{"name": k, **(v if isinstance(v, dict) else {})} for k, v in data.items()]
        names = []
        for item in data if isinstance(data, list) else []:
            if isinstance(item, str):
                names.append(item)
            elif isinstance(item, dict) and "name" in item and not item.get("required", False):
                optional = item.get("optional")
                if optional is None:
                    optional = (
                        item.get("enabled", True) and not item.get("error") and not item.get("builtin", False)
                        and item.get("kind") != "provider" and bool(HOT_PATH_HOOKS & set(item.get("hooks") or []))
                    )
                if optional:
                    names.append(str(item["name"]))
        return names, f"from `portway {' '.join(cmd[1:3])}`"
    # TODO: drop this fallback once `portway plugins --json` is stable everywhere;
    # without it (d) disables nothing (pass --disable-plugins to name them by hand).
    return [], "`portway plugins --json` not available: nothing disabled, (d) == (c)"


def start_portway(
    key: str, portway: str, mock: Server, work: Path, cpu: int | None, timeout: float, disable: list[str] | None,
    tag: str = "",
) -> Server:
    port = free_port()
    config = work / f"portway-{key}{tag}.yaml"
    config.write_text(portway_config(port, mock.port, disable))
    log = work / f"portway-{key}{tag}.log"
    # The request log (on by default) writes its SQLite file in the work directory, never the user's data dir.
    data = work / f"data-{key}{tag}"
    proc, t0 = spawn(f"portway ({key})", [*pin_prefix(cpu), portway, "serve", "--config", str(config), "--port", str(port),
                                          "--data-dir", str(data)], log)
    server = Server(TARGETS[key], proc, port, log)
    try:
        server.startup_ms = wait_ready(server, t0, timeout, NONSTREAM_BODY, health="/health")
    except StartupError:
        server.stop()
        raise
    return server
