"""The package is wired up: Portway discovers and loads it as a {{ cookiecutter.kind }} plugin."""

from portway import plugins

PLUGIN = "{{ cookiecutter.name }}"


def test_portway_loads_the_plugin_from_its_entry_point() -> None:
    infos = {info.name: info for info in plugins.load(plugins.new_manager(), only=[PLUGIN])}
    info = infos[PLUGIN]
    assert info.error is None
    assert info.enabled
    assert info.kind == "{{ cookiecutter.kind }}"
    assert info.distribution == "{{ cookiecutter.__distribution }}"
    assert info.module == "{{ cookiecutter.__module }}"
