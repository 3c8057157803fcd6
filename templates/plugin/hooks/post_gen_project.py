"""Keep only the chosen kind: move its module and its tests into place and
delete the templates of the other kinds."""

import shutil
from pathlib import Path

KIND = "{{ cookiecutter.kind }}"
MODULE = "{{ cookiecutter.__module }}"

project = Path.cwd()
kinds = project / "_kinds"
package = project / MODULE
package.mkdir()
(kinds / KIND / "plugin.py").rename(package / "__init__.py")
(kinds / KIND / "test_plugin.py").rename(project / "tests" / f"test_{KIND}.py")
shutil.rmtree(kinds)
