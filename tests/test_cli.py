"""The real ``portway`` console script, run as a subprocess."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
import openai
import pytest

from portway import configcheck, logs
from portway.hooks import HOOK_NAMES
from portway.testing import free_port

PORTWAY = shutil.which("portway", path=os.path.dirname(sys.executable)) or "portway"
TIMEOUT = 15.0
CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
#: The provider types installed here, as the config check lists them (each adapter package adds one).
INSTALLED = ", ".join(sorted(configcheck.Catalog.installed([]).provider_types))


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PORTWAY_CONFIG", "PORTWAY_LOAD_PLUGINS", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"}}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``portway ARGS``, by default in an empty directory (a ./portway.yaml
    wherever the suite runs would otherwise be found and used)."""
    with tempfile.TemporaryDirectory() as empty:
        return subprocess.run([PORTWAY, *args], capture_output=True, text=True, env=env or clean_env(),
                              timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd or empty)


def write(tmp_path: Path, text: str, name: str = "portway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, api_key: str = "portway-test") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=10)


@contextlib.contextmanager
def serve(*args: str, tmp_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
          log_level: str = "warning") -> Iterator[Served]:
    """``portway serve --port <free> ARGS`` (in an empty directory unless
    ``cwd``) until ``/health`` answers; always stopped (and its worker
    processes with it) on the way out."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    if cwd is None:
        cwd = tmp_path / f"cwd-{port}"
        cwd.mkdir()
    with open(log, "wb") as sink:
        proc = subprocess.Popen([PORTWAY, "serve", "--port", str(port), "--log-level", log_level, *args],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env or clean_env(),
                                start_new_session=True, cwd=cwd)
    served = Served(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"portway serve exited with {proc.returncode}:\n{served.stderr}")
            try:
                if httpx.get(served.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"portway serve did not answer /health in {TIMEOUT}s:\n{served.stderr}")
            time.sleep(0.05)
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group we started: stray workers, if any
        proc.wait(timeout=5)


def broken_distribution(root: Path, source: str = 'raise RuntimeError("boom")\n') -> Path:
    """An installed-looking distribution whose plugin module raises on import."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "broken_plugin.py").write_text(source)
    info = root / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: portway-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[portway.plugins]\nbroken = broken_plugin\n")
    return root


# -- commands that do not serve ---------------------------------------------------------


def test_help() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "plugins", "config", "models"):
        assert command in result.stdout
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"portway {metadata.version('portway')}"


def test_no_command_prints_help_and_exits_2() -> None:
    result = run()
    assert result.returncode == 2 and "serve" in result.stdout


def test_plugins_table() -> None:
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["NAME", "KIND", "DISTRIBUTION", "VERSION", "STATUS"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip() and not line.startswith(" ")}
    for name in ("mock", "openai"):
        dist = f"portway-{name}"
        assert rows[name][:5] == [name, "provider", dist, metadata.version(dist), "enabled"]
        assert rows[name][5] == "register_providers"
    assert rows["router"][:5] == ["router", "router", "portway", "builtin", "enabled"]
    assert rows["retries"][:5] == ["retries", "router", "portway", "builtin", "enabled"]


def test_plugins_json() -> None:
    result = run("plugins", "--json")
    assert result.returncode == 0, result.stderr
    infos = {info["name"]: info for info in json.loads(result.stdout)}
    for name in ("mock", "openai"):
        info = infos[name]
        assert info["distribution"] == f"portway-{name}"
        assert info["version"] == metadata.version(f"portway-{name}")
        assert info["kind"] == "provider" and info["enabled"] is True and info["error"] is None
        assert info["hooks"] == ["register_providers"] and info["builtin"] is False
    assert infos["router"]["builtin"] is True and infos["router"]["hooks"] == ["select_provider"]


def test_plugins_respects_config_disable(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins: {disable: [openai]}\n")
    infos = {i["name"]: i for i in json.loads(run("plugins", "--json", "--config", str(path)).stdout)}
    assert infos["openai"]["enabled"] is False and infos["openai"]["error"] is None
    assert infos["mock"]["enabled"] is True


def test_broken_plugin_is_listed_with_its_error(tmp_path: Path) -> None:
    env = clean_env(PYTHONPATH=str(broken_distribution(tmp_path / "site")))
    result = run("plugins", env=env)
    assert result.returncode == 0, result.stderr
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith("broken "))
    assert row[2:5] == ["portway-broken", "0.1", "error"]
    assert "RuntimeError: boom" in result.stdout
    assert any(line.split()[:1] == ["mock"] for line in result.stdout.splitlines())  # the others still load

    infos = {i["name"]: i for i in json.loads(run("plugins", "--json", env=env).stdout)}
    assert infos["broken"]["error"] == "RuntimeError: boom" and infos["broken"]["enabled"] is False
    assert infos["broken"]["version"] == "0.1" and infos["mock"]["error"] is None


def test_broken_plugin_does_not_stop_serve(tmp_path: Path) -> None:
    env = clean_env(PYTHONPATH=str(broken_distribution(tmp_path / "site")))
    with serve(tmp_path=tmp_path, env=env) as served:
        assert "mock" in httpx.get(served.url + "/health").json()["providers"]
        reply = served.client().chat.completions.create(**CHAT)
        assert reply.choices[0].message.content == "Mock reply to: hi"


def test_misspelt_hook_fails_that_plugin_only(tmp_path: Path) -> None:
    source = "from portway import hookimpl\n\n@hookimpl\ndef pre_reqest(ctx):\n    return None\n"
    env = clean_env(PYTHONPATH=str(broken_distribution(tmp_path / "site", source)))
    infos = {i["name"]: i for i in json.loads(run("plugins", "--json", env=env).stdout)}
    assert infos["broken"]["enabled"] is False and "pre_reqest" in infos["broken"]["error"]
    with serve(tmp_path=tmp_path, env=env) as served:
        assert served.client().chat.completions.create(**CHAT).choices[0].message.content == "Mock reply to: hi"
    assert "pre_reqest" in served.stderr


def test_serve_reports_a_broken_plugin(tmp_path: Path) -> None:
    """plugins.py: "one broken plugin is reported, never fatal".  `portway
    plugins` reports it, but `portway serve` says nothing: cli.main() sets
    the ``portway.plugins`` logger to CRITICAL for every command (meant for
    `portway plugins` only), so the load error is never logged."""
    env = clean_env(PYTHONPATH=str(broken_distribution(tmp_path / "site")))
    with serve(tmp_path=tmp_path, env=env) as served:
        pass
    assert "broken" in served.stderr and "boom" in served.stderr


def test_provider_type_of_a_broken_plugin_is_not_called_not_installed(tmp_path: Path) -> None:
    """A provider whose plugin is installed but failed to import is reported
    with the import error, not as "not installed (pip install ...)"."""
    env = clean_env(PYTHONPATH=str(broken_distribution(tmp_path / "site")))
    path = write(tmp_path, "providers: {b: {type: broken}, mock: {type: mock}}\n")
    with serve("--config", str(path), tmp_path=tmp_path, env=env) as served:
        response = httpx.post(served.url + "/v1/chat/completions", json={**CHAT, "model": "b/x"})
        assert response.status_code == 400
        assert httpx.post(served.url + "/v1/chat/completions", json=CHAT).status_code == 200
    message = response.json()["error"]["message"]
    assert "not installed" not in message and "failed to load" in message


def test_config_check(tmp_path: Path) -> None:
    good = write(tmp_path, """
        providers: {m: {type: mock}}
        models: {fast: {target: {provider: m, model: echo}}}
    """, "good.yaml")
    result = run("config", "check", str(good))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "1 providers" in result.stdout and "1 model aliases" in result.stdout


@pytest.mark.parametrize(("text", "key"), [
    ('server: {port: "abc"}\n', "server.port"),
    ("providers: {m: {type: mock, latency_ms: slow}}\n", "providers.m.latency_ms"),
    ("providers: {m: {type: mock}}\nmodels: {fast: {target: {provider: ghost, model: x}}}\n", "models.fast"),
    ("providers: {m: {type: mock}}\nnot_a_section: {a: 1}\n", "not_a_section"),
    ("providers: [\n", "not valid YAML"),
])
def test_config_check_bad_file(tmp_path: Path, text: str, key: str) -> None:
    bad = write(tmp_path, text, "bad.yaml")
    result = run("config", "check", str(bad))
    assert result.returncode == 2
    assert key in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_unset_env_var(tmp_path: Path) -> None:
    path = write(tmp_path, "auth: {master_key: '${PW_TEST_UNSET_KEY}'}\n")
    result = run("config", "check", str(path))
    assert result.returncode == 2 and "auth.master_key" in result.stderr and "PW_TEST_UNSET_KEY" in result.stderr
    ok = run("config", "check", str(path), env=clean_env(PW_TEST_UNSET_KEY="sk-1234"))
    assert ok.returncode == 0, ok.stderr


def test_models(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers: {m: {type: mock, models: [echo, tools]}}
        models: {fast: {target: {provider: m, model: echo}}}
    """)
    result = run("models", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["fast\tportway", "m/echo\tm", "m/tools\tm"]


def test_models_shows_what_the_catalog_knows(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers: {m: {type: mock, models: [echo, house]}}
        models: {fast: {target: {provider: m, model: house}}}
        catalog:
          m/house: {context_window: 32000, max_output_tokens: 4096, price: {input: 1.0, output: 2.5, cache_read: 0.1}}
    """)
    result = run("models", "--config", str(path))
    assert result.returncode == 0, result.stderr
    house = "context 32,000 · output 4,096 · $1 input, $2.5 output, $0.1 cache read per 1M tokens"
    assert result.stdout.splitlines() == [f"fast\tportway\t{house}", "m/echo\tm", f"m/house\tm\t{house}"]


def test_models_lists_wildcard_aliases_with_their_targets(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers: {m: {type: mock, models: [echo]}}
        models:
          fast: {target: {provider: m, model: echo}}
          "*": {target: {provider: m, model: echo}}
          "claude-*": {target: {provider: m, model: "claude-*"}}
    """)
    result = run("models", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["fast\tportway", "m/echo\tm", "claude-*\tportway (wildcard: m/claude-*)",
                                          "*\tportway (wildcard: m/echo)"]


# -- serve --------------------------------------------------------------------------------


def test_serve_without_config_serves_mock(tmp_path: Path) -> None:
    with serve(tmp_path=tmp_path) as served:
        health = httpx.get(served.url + "/health").json()
        assert health["status"] == "ok" and "mock" in health["providers"]
        client = served.client()
        reply = client.chat.completions.create(**CHAT)
        assert reply.choices[0].message.content == "Mock reply to: hi"
        assert "mock/echo" in [m.id for m in client.models.list()]
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**CHAT, stream=True)
                       if c.choices)
        assert text == "Mock reply to: hi"
    assert ("| providers: mock (mock) | config: <embedded defaults> (no --config, no $PORTWAY_CONFIG, "
            "no ./portway.yaml)\n") in served.stderr  # the start-up line


def test_serve_refuses_public_bind_without_master_key() -> None:
    result = run("serve", "--host", "0.0.0.0", "--port", str(free_port()), timeout=15)
    assert result.returncode == 2
    assert "--insecure" in result.stderr


def test_serve_public_bind_with_insecure(tmp_path: Path) -> None:
    with serve("--host", "0.0.0.0", "--insecure", tmp_path=tmp_path) as served:
        assert served.client().chat.completions.create(**CHAT).choices[0].message.content == "Mock reply to: hi"
    assert "--insecure" in served.stderr  # the warning


def test_serve_with_master_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
        auth: {master_key: "${PW_TEST_MASTER_KEY}"}
        providers: {mock: {type: mock}}
    """)
    key = "sk-portway-master-test"
    env = clean_env(PW_TEST_MASTER_KEY=key)
    # A master key makes a non-loopback bind acceptable without --insecure.
    with serve("--config", str(path), "--host", "0.0.0.0", tmp_path=tmp_path, env=env) as served:
        url = served.url
        missing = httpx.post(url + "/v1/chat/completions", json=CHAT)
        assert missing.status_code == 401
        error = missing.json()["error"]
        assert error["type"] == "authentication_error" and error["message"] and "code" in error and "param" in error

        wrong = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-wrong"})
        assert wrong.status_code == 401 and key not in wrong.text
        assert httpx.get(url + "/v1/models").status_code == 401

        with pytest.raises(openai.AuthenticationError):
            served.client("sk-wrong").chat.completions.create(**CHAT)
        assert served.client(key).chat.completions.create(**CHAT).choices[0].message.content == "Mock reply to: hi"
        ok = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})
        assert ok.status_code == 200

        message = {"model": "mock/echo", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
        anthropic_headers = {"anthropic-version": "2023-06-01"}
        accepted = httpx.post(url + "/v1/messages", json=message, headers={**anthropic_headers, "x-api-key": key})
        assert accepted.status_code != 401, accepted.text
        assert accepted.status_code == 200, accepted.text
        refused = httpx.post(url + "/v1/messages", json=message, headers=anthropic_headers)
        assert refused.status_code == 401
        assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "authentication_error"

        assert httpx.get(url + "/health").status_code == 200  # for load balancers: no key
    assert key not in served.stderr


def test_serve_with_two_workers(tmp_path: Path) -> None:
    path = write(tmp_path, "providers: {mock: {type: mock}}\n")
    with serve("--config", str(path), "--workers", "2", tmp_path=tmp_path) as served:
        with httpx.Client(base_url=served.url, timeout=10) as http:
            for i in range(20):
                body = {**CHAT, "messages": [{"role": "user", "content": f"request {i}"}]}
                response = http.post("/v1/chat/completions", json=body, headers={"connection": "close"})
                assert response.status_code == 200, response.text
                assert response.json()["choices"][0]["message"]["content"] == f"Mock reply to: request {i}"


def test_serve_with_a_provider_type_that_is_not_installed(tmp_path: Path) -> None:
    path = write(tmp_path, """
        providers:
          nosuchprovider-instance: {type: nosuchprovider}
          mock: {type: mock}
    """)
    with serve("--config", str(path), tmp_path=tmp_path) as served:
        health = httpx.get(served.url + "/health").json()
        assert "nosuchprovider-instance" in health["unavailable"]
        response = httpx.post(served.url + "/v1/chat/completions",
                              json={**CHAT, "model": "nosuchprovider-instance/x"})
        assert response.status_code == 400
        assert "is not installed" in response.json()["error"]["message"]
        with pytest.raises(openai.BadRequestError) as info:
            served.client().chat.completions.create(**{**CHAT, "model": "nosuchprovider-instance/x"})
        assert "is not installed" in info.value.message
        assert served.client().chat.completions.create(**CHAT).choices[0].message.content == "Mock reply to: hi"
    assert "is not installed" in served.stderr  # warned at start-up


# -- finding the config (--config, $PORTWAY_CONFIG, ./portway.yaml, ./portway.yml, embedded) ---------


def models_in(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The provider names ``portway models`` listed."""
    return {line.split("/")[0] for line in result.stdout.splitlines() if "/" in line}


@pytest.mark.parametrize(("files", "env", "used", "said"), [
    ({"portway.yaml": "here", "portway.yml": "yml"}, {}, "here",
     "portway: config: portway.yaml (found in the working directory; ./portway.yml is ignored)"),
    ({"portway.yaml": "here", "env.yaml": "env"}, {"PORTWAY_CONFIG": "env.yaml"}, "env",
     "portway: config: env.yaml (from $PORTWAY_CONFIG)"),
])  # the whole order is tested in test_config.py; this is the command's use of it
def test_models_finds_the_config(tmp_path: Path, files: dict[str, str], env: dict[str, str], used: str,
                                 said: str) -> None:
    for name, provider in files.items():
        write(tmp_path, f"providers: {{{provider}: {{type: mock}}}}\n", name)
    result = run("models", env=clean_env(**env), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert models_in(result) == {used}
    assert result.stderr.splitlines() == [said]


def test_a_named_config_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "providers: {here: {type: mock}}\n")  # not a fallback for a file that was named
    result = run("models", env=clean_env(PORTWAY_CONFIG="missing.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "portway: config: missing.yaml (from $PORTWAY_CONFIG)",
        "portway: config error:",
        "missing.yaml: cannot read: No such file or directory",
    ]


def test_plugins_and_config_check_find_the_config_too(tmp_path: Path) -> None:
    write(tmp_path, "providers: {m: {type: mock}}\nplugins: {disable: [openai]}\n")
    infos = {i["name"]: i for i in json.loads(run("plugins", "--json", cwd=tmp_path).stdout)}
    assert infos["openai"]["enabled"] is False and infos["mock"]["enabled"] is True
    result = run("config", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "portway.yaml: ok (1 providers, 0 model aliases)\n"
    assert result.stderr == "portway: config: portway.yaml (found in the working directory)\n"


# -- config check: strict, and every problem at once --------------------------------------


def test_config_check_unknown_provider_type_suggests_the_installed_one(tmp_path: Path) -> None:
    path = write(tmp_path, "providers: {m: {type: mokc}}\n", "typo.yaml")
    result = run("config", "check", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines()[1:] == [
        "portway: config error:",
        f"{path}: providers.m.type: unknown provider type 'mokc' (did you mean 'mock'?); "
        f"installed: {INSTALLED}",
    ]


def test_serve_still_starts_with_an_unknown_provider_type_and_warns(tmp_path: Path) -> None:
    path = write(tmp_path, "providers: {m: {type: mokc}}\n")
    with serve("--config", str(path), tmp_path=tmp_path) as served:
        response = httpx.post(served.url + "/v1/chat/completions", json={**CHAT, "model": "m/x"})
        assert response.status_code == 400
        assert response.json()["error"]["message"] == (
            f"unknown provider type 'mokc' (did you mean 'mock'?); installed: {INSTALLED}; "
            "needed by provider 'm'")
    assert "WARNING portway: unknown provider type 'mokc' (did you mean 'mock'?)" in served.stderr
    # ...and, with no provider left that can serve, says so:
    assert "WARNING portway.serve: no provider is configured: nothing can be served (add one under providers:)" \
        in served.stderr


def test_config_check_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, """
        server:
          port: 1
          port: 2
          workers: 0
        auth: {master_key: "${PW_TEST_EMPTY}"}
        providers:
          m: {type: mokc}
          o: {type: openai, api_key: "${PW_TEST_UNSET}", organisation: x}
          k: {type: mock, latency_ms: slow}
        models:
          fast: {target: {provider: ghost, model: x}}
        plugins:
          order: {pre_reqest: [a]}
        provider: {}
    """, "all.yaml")
    result = run("config", "check", str(path), env=clean_env(PW_TEST_EMPTY=""))
    assert result.returncode == 2
    hooks = ", ".join(HOOK_NAMES)  # every hook, in hookspecs order
    assert result.stderr.splitlines()[1:] == [f"{path}: {line}" if i else line for i, line in enumerate([
        "portway: config error:",
        "server.port: duplicate key 'port' on line 4 (first on line 3)",
        "providers.o.api_key: environment variable PW_TEST_UNSET is not set",
        "server.workers: Input should be greater than or equal to 1",
        "auth.master_key: is empty; set it to a secret, or remove the key to run without one "
        "(allowed only on a loopback address)",
        "models.fast.target.provider: no provider named 'ghost' (defined: k, m, o)",
        f"plugins.order.pre_reqest: no hook named 'pre_reqest' (did you mean 'pre_request'?); the hooks are: {hooks}",
        f"providers.m.type: unknown provider type 'mokc' (did you mean 'mock'?); installed: {INSTALLED}",
        "providers.o.organisation: Extra inputs are not permitted",
        "providers.k.latency_ms: Input should be a valid number, unable to parse string as a number",
        "provider: unknown section (no installed plugin declares it) (did you mean 'providers'?)",
    ])]
    assert "Traceback" not in result.stderr


def test_models_does_not_need_secrets_but_config_check_does(tmp_path: Path) -> None:
    path = write(tmp_path, """
        auth: {master_key: "${PW_TEST_UNSET_MASTER}"}
        providers:
          oai: {type: openai, api_key: "${PW_TEST_UNSET_OPENAI}", headers: {x-org-token: "${PW_TEST_UNSET_TOKEN}"}}
          m: {type: mock, models: [echo]}
    """)
    result = run("models", "--config", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("oai/gpt-4o-mini\toai\tcontext 128,000") for line in lines) and "m/echo\tm" in lines

    check = run("config", "check", str(path))
    assert check.returncode == 2
    assert check.stderr.splitlines()[2:] == [
        f"{path}: auth.master_key: environment variable PW_TEST_UNSET_MASTER is not set",
        f"{path}: providers.oai.api_key: environment variable PW_TEST_UNSET_OPENAI is not set",
        f"{path}: providers.oai.headers.x-org-token: environment variable PW_TEST_UNSET_TOKEN is not set",
    ]
    # Only secrets are spared: a variable elsewhere is needed to list models, too.
    other = write(tmp_path, "providers: {m: {type: mock, models: ['${PW_TEST_UNSET_MODEL}']}}\n", "other.yaml")
    listed = run("models", "--config", str(other))
    assert listed.returncode == 2
    assert listed.stderr.splitlines()[-1] == f"{other}: providers.m.models.0: environment variable PW_TEST_UNSET_MODEL is not set"


# -- the master key -----------------------------------------------------------------------------


def test_serve_refuses_an_empty_master_key(tmp_path: Path) -> None:
    path = write(tmp_path, "auth: {master_key: '${PW_TEST_MASTER_KEY}'}\nproviders: {mock: {type: mock}}\n")
    result = run("serve", "--config", str(path), "--host", "0.0.0.0", "--port", str(free_port()),
                 env=clean_env(PW_TEST_MASTER_KEY=""), timeout=15)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "portway: config error:",
        f"{path}: auth.master_key: is empty; set it to a secret, or remove the key to run without one "
        "(allowed only on a loopback address)",
    ]


# -- logging and workers --------------------------------------------------------------------------

def access_record(**fields: object) -> logging.LogRecord:
    """A record as the access-log plugin will log it: message plus ``extra=`` fields."""
    record = logging.getLogger("portway.access").makeRecord(
        "portway.access", logging.INFO, __file__, 1, "%s %s %s", ("POST", "/v1/chat/completions", 200), None,
        extra=fields)
    record.created, record.msecs = 1767225600.25, 250.0  # 2026-01-01T00:00:00.250Z
    return record


FIELDS = {"request_id": "req-1", "endpoint": "/v1/chat/completions", "model": "fast", "provider": "oai",
          "status": 200, "latency_ms": 12.5}


def test_json_format_has_the_standard_keys_and_every_extra_field() -> None:
    line = logs.JsonFormatter().format(access_record(**FIELDS))
    assert json.loads(line) == {"ts": "2026-01-01T00:00:00.250Z", "level": "INFO", "logger": "portway.access",
                                "message": "POST /v1/chat/completions 200", **FIELDS}
    assert "\n" not in line


def test_text_format_is_one_line_whatever_the_message_holds() -> None:
    record = access_record(**FIELDS)
    record.args = ("POST", "/v1/chat/completions\n2026-01-01 00:00:00.000 INFO portway.access: forged", 200)
    line = logs.TextFormatter().format(record)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
    assert line == (f"{when}.250 INFO portway.access: POST /v1/chat/completions\\n"
                    "2026-01-01 00:00:00.000 INFO portway.access: forged 200")


def test_configure_writes_through_the_queue_with_extra_fields_and_tracebacks() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], logging.getLogger("portway").level
    sink = io.StringIO()
    try:
        logs.configure("json", "info", stream=sink)
        assert [type(h).__name__ for h in root.handlers] == ["_Handoff"]  # the caller only queues
        log = logging.getLogger("portway.access")
        log.info("request %s", "done", extra=FIELDS)
        log.debug("not at info")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("portway").exception("failed")
    finally:
        logs.stop()  # writes everything queued
        root.handlers[:] = saved[0]
        logging.getLogger("portway").setLevel(saved[1])
    first, second = (json.loads(line) for line in sink.getvalue().splitlines())
    assert first == {**first, "message": "request done", "logger": "portway.access", **FIELDS}
    assert second["message"] == "failed" and second["exc"].endswith("ValueError: boom")


PROBE = '''
import json, logging, os
from pathlib import Path

from portway import hookimpl


@hookimpl
def startup(gateway):
    """Each serving process says who it is and what configuration it runs with."""
    server = gateway.config.server
    seen = {"pid": os.getpid(), "ppid": os.getppid(), "source": gateway.config.source,
            "access_log": server.access_log, "log_format": server.log_format}
    out = Path(os.environ["PORTWAY_TEST_PROBE_DIR"])
    (out / f"{os.getpid()}.tmp").write_text(json.dumps(seen))
    (out / f"{os.getpid()}.tmp").rename(out / f"{os.getpid()}.json")
    logging.getLogger("portway.probe").warning("probe in %s", "startup", extra={"request_id": "req-1",
                                               "latency_ms": 12.5, "status": 200})
'''


def probe_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An installed probe plugin, and the directory where each process
    that serves writes ``<pid>.json``."""
    out = tmp_path / "probe"
    out.mkdir()
    site = broken_distribution(tmp_path / "site", PROBE)
    return clean_env(PYTHONPATH=str(site), PORTWAY_TEST_PROBE_DIR=str(out)), out


def wait_for_probes(out: Path, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + TIMEOUT
    while len(found := sorted(out.glob("*.json"))) < count:
        assert time.monotonic() < deadline, f"{len(found)} serving process(es) started, expected {count}"
        time.sleep(0.05)
    return [json.loads(path.read_text()) for path in found]


def test_workers_are_separate_processes_with_the_same_choices(tmp_path: Path) -> None:
    """``--workers 2`` really runs two serving processes under the one started,
    each with the config the main process found (./portway.yaml here) and the
    flags given to it; every line on stderr is a JSON object."""
    env, out = probe_env(tmp_path)
    write(tmp_path, "providers: {mock: {type: mock}}\nserver: {log_format: text}\n")
    with serve("--workers", "2", "--log-format", "json", "--no-access-log", tmp_path=tmp_path, env=env,
               cwd=tmp_path, log_level="info") as served:
        workers = wait_for_probes(out, 2)
        assert served.client().chat.completions.create(**CHAT).choices[0].message.content == "Mock reply to: hi"
        main = served.proc.pid
    assert len({w["pid"] for w in workers}) == 2 and main not in {w["pid"] for w in workers}
    assert [w["ppid"] for w in workers] == [main, main]
    for worker in workers:
        assert worker == {**worker, "source": str(tmp_path / "portway.yaml"), "access_log": False, "log_format": "json"}

    lines = [json.loads(line) for line in served.stderr.splitlines()]  # each line is one JSON object
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]  # uvicorn's access log stays off
    banner = next(line for line in lines if line["logger"] == "portway.serve")
    assert banner["level"] == "INFO" and banner["message"].endswith(
        "| providers: mock (mock) | config: portway.yaml (found in the working directory)")
    probes = [line for line in lines if line["logger"] == "portway.probe"]
    assert len(probes) == 2
    for probe in probes:
        assert set(probe) == {"ts", "level", "logger", "message", "request_id", "latency_ms", "status"}
        assert probe == {**probe, "level": "WARNING", "message": "probe in startup", "request_id": "req-1",
                         "latency_ms": 12.5, "status": 200}
    # The last words of each worker are not lost when the process ends.
    finished = [line["message"] for line in lines if line["message"].startswith("Finished server process")]
    assert sorted(finished) == sorted(f"Finished server process [{w['pid']}]" for w in workers)


def test_log_format_flag_overrides_the_config_and_access_log_defaults_on(tmp_path: Path) -> None:
    env, out = probe_env(tmp_path)
    path = write(tmp_path, "providers: {mock: {type: mock}}\nserver: {log_format: json}\n")
    with serve("--config", str(path), "--log-format", "text", tmp_path=tmp_path, env=env, log_level="info") as served:
        [seen] = wait_for_probes(out, 1)
    assert seen == {**seen, "pid": served.proc.pid, "access_log": True, "log_format": "text"}
    probe = next(line for line in served.stderr.splitlines() if "portway.probe" in line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} WARNING portway\.probe: probe in startup", probe)
    assert f"INFO uvicorn.error: Finished server process [{served.proc.pid}]" in served.stderr.splitlines()[-1]


# -- the access log and upstream warnings, as an operator sees them -------------------------------------


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_the_access_log_has_one_line_per_request_and_upstream_failures_are_warned(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: every call there fails to connect
    path = write(tmp_path, f"""
        providers:
          mock: {{type: mock}}
          dead: {{type: openai, api_key: sk-dead-key-0123456789, base_url: "{dead}"}}
        models:
          safe: {{targets: [{{provider: dead, model: m}}, {{provider: mock, model: echo}}]}}
    """)
    with serve("--config", str(path), "--log-format", "json", tmp_path=tmp_path, log_level="info") as served:
        client = served.client()
        ok = client.chat.completions.with_raw_response.create(**CHAT)
        list(client.chat.completions.create(**CHAT, stream=True))
        fell_back = client.chat.completions.with_raw_response.create(model="safe", messages=CHAT["messages"])
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="dead/m", messages=CHAT["messages"])
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="nowhere/x", messages=CHAT["messages"])
        deadline = time.monotonic() + TIMEOUT
        while len([r for r in json_lines(served.stderr) if r["logger"] == "portway.access"]) < 5:
            assert time.monotonic() < deadline, served.stderr
            time.sleep(0.05)
    records = json_lines(served.stderr)
    access = [r for r in records if r["logger"] == "portway.access"]
    assert [(r["model"], r["provider"], r["status"], r["stream"]) for r in access] == [
        ("mock/echo", "mock/echo", 200, False), ("mock/echo", "mock/echo", 200, True),
        ("safe", "mock/echo", 200, False), ("dead/m", "dead/m", 502, False), ("nowhere/x", "-", 404, False)]
    assert access[0]["request_id"] == ok.headers["x-request-id"]
    assert access[2]["request_id"] == fell_back.headers["x-request-id"] and access[2]["attempts"] == 2
    assert access[3]["error"] == "connection" and access[4]["error"] == "not_found"
    assert all(isinstance(r["latency_ms"], float) for r in access) and access[1]["ttft_ms"] is not None
    warnings = [r for r in records if r["logger"] == "portway" and r["level"] == "WARNING"]
    fallback = next(r for r in warnings if "falling back" in str(r["message"]))
    assert fell_back.headers["x-request-id"] in str(fallback["message"])
    assert "dead/m failed (connection, 502)" in str(fallback["message"])
    assert any("dead/m failed (connection, 502)" in str(r["message"]) and "falling back" not in str(r["message"])
               for r in warnings)
    assert "sk-dead-key" not in served.stderr


def test_no_access_log_turns_it_off(tmp_path: Path) -> None:
    path = write(tmp_path, "providers: {mock: {type: mock}}\n")
    with serve("--config", str(path), "--log-format", "json", "--no-access-log", tmp_path=tmp_path,
               log_level="info") as served:
        served.client().chat.completions.create(**CHAT)
        served.client().chat.completions.create(**CHAT)
    assert not [r for r in json_lines(served.stderr) if r["logger"] == "portway.access"]
    assert any(r["logger"] == "portway.serve" for r in json_lines(served.stderr))  # the log itself is there
