"""Refuse names that would make a broken package, before anything is written."""

import re
import sys

NAME = "{{ cookiecutter.name }}"
RESERVED = {"server", "auth", "providers", "models", "routing", "plugins"}  # Portway's own config sections

problem = None
if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", NAME):
    problem = "use lowercase letters, digits and single hyphens, starting with a letter (e.g. acme-pii)"
elif NAME.startswith("portway-") or NAME == "portway":
    problem = "leave out the 'portway-' prefix: the distribution is named portway-<name> for you"
elif NAME in RESERVED:
    problem = f"it is one of Portway's own config sections ({', '.join(sorted(RESERVED))})"

if problem:
    print(f"error: plugin name {NAME!r}: {problem}", file=sys.stderr)
    sys.exit(1)
