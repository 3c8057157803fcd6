"""Docs that cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

from portway import hookdocs, hookspecs
from portway.hooks import HOOK_NAMES

ROOT = Path(__file__).resolve().parents[1]


def test_hooks_md_matches_hookspecs() -> None:
    on_disk = (ROOT / "docs" / "hooks.md").read_text()
    assert on_disk == hookdocs.render(), "docs/hooks.md is stale: run `python -m portway.hookdocs > docs/hooks.md`"


def test_every_hook_has_a_contract() -> None:
    for name in HOOK_NAMES:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.split()) >= 15, f"hook {name} needs a docstring that says when it runs and what it returns"


def test_every_plugin_has_a_readme() -> None:
    for pyproject in ROOT.glob("plugins/*/*/pyproject.toml"):
        readme = pyproject.parent / "README.md"
        assert readme.exists(), f"{pyproject.parent} has no README.md"
        text = readme.read_text()
        assert "pip install" in text and ("type:" in text or "hookimpl" in text), f"{readme} lacks install/config"
