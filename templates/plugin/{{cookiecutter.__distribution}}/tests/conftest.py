"""Set-up shared by this plugin's tests.

The tests drive a real Portway gateway in-process with the fixtures that
installing ``portway`` registers with pytest: ``gateway_server`` (a gateway
on a free port, built from a config dict) and ``fake_upstream`` (a scripted
provider upstream); see :mod:`portway.testing`.

The gateway finds this plugin the way production does, through the
``portway.plugins`` entry point in ``pyproject.toml``, so the package must be
installed: ``pip install -e ".[test]"``.
"""

from importlib import metadata

import pytest

PLUGIN = "{{ cookiecutter.name }}"


def pytest_configure(config: pytest.Config) -> None:
    if not metadata.entry_points(group="portway.plugins", name=PLUGIN):
        raise pytest.UsageError(
            f"the {PLUGIN!r} plugin is not installed; run: pip install -e \".[test]\""
        )


@pytest.fixture(autouse=True)
def only_this_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load only this plugin from the installed entry points{% if cookiecutter.kind != "provider" %} (and the mock
    provider the tests use{% if cookiecutter.kind == "guardrail" %}, and the guardrail framework that runs its checks{% endif %}){% endif %},
    so other plugins installed in the same environment cannot change what the
    tests see.  PORTWAY_LOAD_PLUGINS is the switch an operator uses to
    isolate a misbehaving plugin."""
    monkeypatch.setenv("PORTWAY_LOAD_PLUGINS", "{{ cookiecutter.name }}{% if cookiecutter.kind != "provider" %},mock{% endif %}{% if cookiecutter.kind == "guardrail" %},guardrails{% endif %}")
