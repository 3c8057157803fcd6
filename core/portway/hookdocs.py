"""Render the hook reference in ``docs/hooks.md`` from the hookspecs.

``python -m portway.hookdocs > docs/hooks.md`` regenerates it; a test
fails when the file and the docstrings disagree.
"""

from __future__ import annotations

import inspect
import textwrap

from portway import hookspecs
from portway.hooks import HOOK_NAMES

HEADER = """# Hook reference

Generated from `core/portway/hookspecs.py` by `python -m portway.hookdocs > docs/hooks.md`;
`tests/test_docs.py` fails when the two disagree. For how a request flows through these hooks,
with a diagram and a worked example per plugin kind, read [plugins.md](plugins.md).

Implement a hook with `@portway.hookimpl` on a module-level function (or a method of an object you
register). Request-path hooks may be `async def`; the host awaits them in order, so "first non-None
answer wins" holds for async implementations too. Order: `@hookimpl(tryfirst=True)` runs first,
`trylast=True` last, otherwise the most recently registered plugin first; `plugins.order` in the
config overrides that per hook.
"""


def signature(name: str) -> str:
    fn = getattr(hookspecs, name)
    params = ", ".join(inspect.signature(fn).parameters)
    return f"{name}({params})"


def render() -> str:
    parts = [HEADER]
    for name in HOOK_NAMES:
        doc = textwrap.dedent(getattr(hookspecs, name).__doc__ or "").strip()
        # The first docstring line is not indented; dedent the rest separately.
        first, _, rest = doc.partition("\n")
        body = (first + "\n" + textwrap.dedent(rest)).strip()
        parts.append(f"## `{signature(name)}`\n\n{body}\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
