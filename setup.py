"""Package discovery for the one-folder-per-layer tree (everything else is in pyproject.toml).

The repository keeps each layer in a top-level folder (collector/, pricing/, store/, tui/,
alerts/, demo/, review/); installed, each is a sub-package of `llmtop` so nothing generic lands in
site-packages. pyproject's `packages.find` cannot add that `llmtop.` prefix, so the package
list is found here from the tree: a new module or sub-package (tui/screens/, store/filters.py)
ships without anyone editing a hand-kept list. tests/test_wheel.py installs the built wheel.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
#: Every top-level folder that is a package is a layer (a new one ships without a list to edit).
LAYERS = sorted(
    d.name for d in ROOT.iterdir() if d.name != "llmtop" and (d / "__init__.py").is_file()
)

packages = ["llmtop"]
package_dir = {"llmtop": "llmtop"}
for layer in LAYERS:
    package_dir[f"llmtop.{layer}"] = layer
    packages.append(f"llmtop.{layer}")
    packages += [f"llmtop.{layer}.{sub}" for sub in find_packages(where=ROOT / layer)]

setup(packages=packages, package_dir=package_dir)
