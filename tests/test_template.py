"""The plugin template (``templates/plugin``).

Every kind generates a package that builds and installs, that Portway
discovers with the right kind, and whose own tests (a real gateway,
in-process) pass as generated.

The generated plugins are installed into ONE throwaway venv (per run of the
slow test), never into the project's venv.  ``python -m venv
--system-site-packages`` would not do, because the project's interpreter is
itself a venv (the new venv would see the base interpreter's packages, not
Portway): instead the throwaway venv gets a ``.pth`` file that appends the
project venv's site-packages to its path.  Portway and its dependencies are
then importable there, while the plugins land only in the throwaway venv.

Everything happens under ``tmp_path`` and servers take free ports, so the
module runs in parallel with the rest of the suite under xdist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

pytestmark = pytest.mark.xdist_group("plugin-template")

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "templates" / "plugin"
KINDS = ("provider", "guardrail", "cache", "observability", "hook")

#: The hooks each kind implements as generated.
HOOKS = {
    "provider": ["register_providers"],
    "guardrail": ["register_guardrails"],
    "cache": ["post_response", "pre_request", "register_config", "startup"],
    "observability": ["register_config", "request_finished", "shutdown", "startup"],
    "hook": ["pre_request", "register_routes"],
}

JINJA_LEFTOVERS = re.compile(r"\{\{|\{%|\{#|cookiecutter")


@pytest.fixture
def cookiecutter_config(tmp_path: Path) -> Path:
    """Keep cookiecutter's replay files out of the home directory."""
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'cc-templates'}\nreplay_dir: {tmp_path / 'cc-replay'}\n")
    return config


def generate(output: Path, config: Path, **context: str) -> Path:
    return Path(cookiecutter(str(TEMPLATE), no_input=True, extra_context=context, output_dir=str(output),
                             config_file=str(config)))


def files_of(project: Path) -> dict[str, str]:
    return {str(path.relative_to(project)): path.read_text() for path in sorted(project.rglob("*")) if path.is_file()}


# -- rendering (fast) -------------------------------------------------------------


def test_defaults_render_a_clean_package(tmp_path: Path, cookiecutter_config: Path) -> None:
    project = generate(tmp_path, cookiecutter_config)

    assert project.name == "portway-my-plugin"
    files = files_of(project)
    leftovers = {name: JINJA_LEFTOVERS.findall(text) for name, text in files.items() if JINJA_LEFTOVERS.search(text)}
    assert leftovers == {}
    assert sorted(files) == [
        ".github/workflows/test.yml",
        ".gitignore",
        "README.md",
        "portway_my_plugin/__init__.py",
        "pyproject.toml",
        "tests/conftest.py",
        "tests/test_entry_point.py",
        "tests/test_provider.py",
    ]
    pyproject = tomllib.loads(files["pyproject.toml"])
    assert pyproject["project"]["name"] == "portway-my-plugin"
    assert pyproject["project"]["entry-points"]["portway.plugins"] == {"my-plugin": "portway_my_plugin"}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_keeps_only_its_own_code(tmp_path: Path, cookiecutter_config: Path, kind: str) -> None:
    project = generate(tmp_path, cookiecutter_config, kind=kind, name="acme-thing", description="Acme's thing",
                       author="Ada O'Hara \"the author\"")

    files = files_of(project)
    assert not (project / "_kinds").exists()
    assert {name for name in files if name.startswith("tests/")} == {
        "tests/conftest.py", "tests/test_entry_point.py", f"tests/test_{kind}.py",
    }
    module = files["portway_acme_thing/__init__.py"]
    assert module.startswith('"""Acme\'s thing\n')
    assert f'PORTWAY_PLUGIN_KIND = "{kind}"' in module
    for name, text in files.items():
        assert not JINJA_LEFTOVERS.search(text), name
        if name.endswith(".py"):
            compile(text, name, "exec")
    pyproject = tomllib.loads(files["pyproject.toml"])
    assert pyproject["project"]["authors"] == [{"name": 'Ada O\'Hara "the author"'}]
    assert pyproject["tool"]["setuptools"]["packages"] == ["portway_acme_thing"]


def test_the_documented_command_line(tmp_path: Path, cookiecutter_config: Path) -> None:
    cli = Path(sys.executable).with_name("cookiecutter")
    subprocess.run(
        [str(cli), "--no-input", "--config-file", str(cookiecutter_config), "--output-dir", str(tmp_path),
         str(TEMPLATE), "kind=guardrail", "name=acme-pii"],
        check=True, capture_output=True, text=True,
    )
    module = (tmp_path / "portway-acme-pii" / "portway_acme_pii" / "__init__.py").read_text()
    assert 'PORTWAY_PLUGIN_KIND = "guardrail"' in module
    assert 'NAME = "acme-pii"' in module


@pytest.mark.parametrize("name", ["Acme", "acme_pii", "-acme", "acme--pii", "portway-acme", "providers"])
def test_bad_names_are_refused(tmp_path: Path, cookiecutter_config: Path, name: str) -> None:
    with pytest.raises(FailedHookException):
        generate(tmp_path, cookiecutter_config, name=name)
    assert list(tmp_path.glob("portway-*")) == []


# -- installed and tested (slow: one venv, all kinds) ---------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def setuptools_can_build() -> bool:
    """Building a wheel without build isolation needs setuptools >= 70.1, or
    an older one plus ``wheel``."""
    try:
        version = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        return False
    if importlib.util.find_spec("wheel") is not None:
        return True
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    return (major, minor) >= (70, 1)


def run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=180, **options)  # type: ignore[call-overload]


def throwaway_venv(path: Path) -> Path:
    """A venv that sees the project venv's packages but installs into its own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = venv_python(path)
    own = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    project = sysconfig.get_paths()["purelib"]
    # Processed last (zz), so the throwaway venv's own packages come first on the path.
    Path(own, "zz_portway_project_venv.pth").write_text(f"import site; site.addsitedir({project!r})\n")
    return python


def child_env() -> dict[str, str]:
    """No PYTEST_* (xdist worker ids, disabled autoload) or PORTWAY_* from this run."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PORTWAY_"))}


def test_every_kind_installs_and_its_own_tests_pass(tmp_path: Path, cookiecutter_config: Path) -> None:
    projects = {kind: generate(tmp_path / "src", cookiecutter_config, kind=kind, name=f"acme-{kind}")
                for kind in KINDS}
    python = throwaway_venv(tmp_path / "venv")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--disable-pip-version-check"]
    if not setuptools_can_build():
        # The project venv's setuptools is too old to build a wheel offline:
        # give the throwaway venv a newer one (from the configured index).
        done = run([*pip, "setuptools>=70.1"])
        assert done.returncode == 0, f"could not install setuptools>=70.1:\n{done.stdout}{done.stderr}"

    # A regular (not editable) install: the tests below then exercise the
    # built wheel, so a package missing from it would fail them.
    done = run([*pip, "--no-deps", "--no-index", "--no-build-isolation", *map(str, projects.values())], cwd=tmp_path)
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}{done.stderr}"

    # `portway plugins --json` (python -m portway: the throwaway venv has no console script of its own).
    listed = run([str(python), "-m", "portway", "plugins", "--json"], cwd=tmp_path, env=child_env())
    assert listed.returncode == 0, listed.stderr
    plugins = {info["name"]: info for info in json.loads(listed.stdout)}
    for kind in KINDS:
        info = plugins[f"acme-{kind}"]
        assert (info["kind"], info["distribution"], info["module"], info["enabled"], info["error"], info["hooks"]) == (
            kind, f"portway-acme-{kind}", f"portway_acme_{kind.replace('-', '_')}", True, None, HOOKS[kind]
        ), info

    # Each plugin's own test suite, as its author runs it; all five at once.
    # The working directory is outside the projects, so the plugins are
    # imported from the venv, not from their source trees.
    running = {
        kind: subprocess.Popen(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
            cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for kind, project in projects.items()
    }
    failures = {}
    for kind, process in running.items():
        try:
            output, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if process.returncode != 0 or " passed" not in output:
            failures[kind] = output
    assert not failures, "\n\n".join(f"== generated {kind} plugin: its tests failed\n{out}"
                                     for kind, out in failures.items())
