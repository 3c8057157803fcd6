"""Provider packs (plugins/packs/<name>/): meta-distributions whose
dependencies are member provider packages.  Each member must be a real
package in this repository, and each pack must hold what its name promises:
``all`` every provider, ``cloud`` the hyperscalers, ``local`` servers on
127.0.0.1 with no key, ``openai-compatible`` adapters built on the shared
OpenAI-compatible base.  That the dependencies resolve is proven by
``./dev install``, which installs every pack with its members."""

from __future__ import annotations

import importlib
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from portway.formats.openai import OpenAICompatibleProvider

ROOT = Path(__file__).resolve().parents[1]
PACKS = ROOT / "plugins" / "packs"
PROVIDERS = ROOT / "plugins" / "providers"


def project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def provider_distributions() -> dict[str, Path]:
    return {project(folder)["name"]: folder for folder in sorted(PROVIDERS.iterdir())
            if (folder / "pyproject.toml").exists()}


def members(pack: str) -> set[str]:
    """The provider distributions a pack depends on (portway itself aside)."""
    names = {re.split(r"[<>=!~ ;\[]", dependency, maxsplit=1)[0] for dependency in project(PACKS / pack)["dependencies"]}
    assert "portway" in names, f"pack {pack} does not depend on portway"
    return names - {"portway"}


def provider_class(distribution: str) -> type:
    """The provider class a member distribution registers (through its entry point)."""
    [entry] = [ep for ep in metadata.distribution(distribution).entry_points if ep.group == "portway.plugins"]
    module = importlib.import_module(entry.value)
    found: list[type] = []
    module.register_providers(found.append)
    [cls] = found
    return cls


def test_the_packs_are_there_and_name_only_packages_of_this_repository() -> None:
    assert sorted(p.name for p in PACKS.iterdir() if (p / "pyproject.toml").exists()) == [
        "all", "cloud", "local", "openai-compatible"]
    known = provider_distributions()
    for pack in ("all", "cloud", "local", "openai-compatible"):
        assert project(PACKS / pack)["name"] == f"portway-pack-{pack}"
        assert members(pack) <= set(known), f"pack {pack} names packages this repository does not have"
        assert (PACKS / pack / "README.md").is_file()


def test_all_is_every_provider() -> None:
    assert members("all") == set(provider_distributions())
    assert len(members("all")) >= 40


def test_cloud_and_local_hold_what_the_issue_names() -> None:
    assert members("cloud") == {"portway-bedrock", "portway-vertex", "portway-gemini", "portway-azure-openai"}
    assert members("local") == {"portway-ollama", "portway-vllm", "portway-lmstudio", "portway-llamacpp"}
    for distribution in members("local"):
        cls = provider_class(distribution)
        assert cls.env_key is None, f"{cls.type} is a local server: it needs no key"
        assert cls.default_base_url.startswith("http://127.0.0.1:"), cls.type


@pytest.mark.parametrize("distribution", sorted(members("openai-compatible")))
def test_every_openai_compatible_member_is_built_on_the_shared_base(distribution: str) -> None:
    cls = provider_class(distribution)
    assert issubclass(cls, OpenAICompatibleProvider), f"{cls.type} does not extend OpenAICompatibleProvider"


def test_the_openai_compatible_pack_is_the_24_the_issue_names() -> None:
    assert members("openai-compatible") == {f"portway-{name}" for name in (
        "groq", "together", "fireworks", "deepseek", "perplexity", "xai", "openrouter", "deepinfra", "cerebras",
        "sambanova", "nebius", "moonshot", "novita", "hyperbolic", "nvidia-nim", "databricks", "github-models",
        "lambda", "vllm", "lmstudio", "llamacpp", "dashscope", "zhipu", "siliconflow")}
