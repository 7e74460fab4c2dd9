"""The package as a user gets it: built with `python -m build`, installed from the wheel, no -e.

An editable install maps the source folders straight in, so it hides a package left out of the
wheel (tui/screens/ once was: every modal key crashed an installed llmtop). Here the sdist and the
wheel are built from a copy of the tree (the wheel from the sdist, as pip does from an index), the
wheel goes into a fresh venv, and that venv imports every module, runs the commands and drives
every screen with Pilot. The venv reaches the already-installed dependencies through a .pth line
(no download), but not the editable llmtop: site-packages' own .pth hooks are not run for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The layer folders as setup.py finds them; the hand list setup.py replaced is the tree's minimum.
LAYERS = tuple(
    sorted(d.name for d in ROOT.iterdir() if d.name != "llmtop" and (d / "__init__.py").is_file())
)
assert {"collector", "pricing", "store", "tui", "alerts", "demo"} <= set(LAYERS)
SKIP = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", "*.db*", ".ruff_cache"
)


def source_modules() -> set[str]:
    """Every module the tree holds, under the name it must have once installed."""
    names: set[str] = set()
    for folder, prefix in [("llmtop", "llmtop"), *((d, f"llmtop.{d}") for d in LAYERS)]:
        for f in (ROOT / folder).rglob("*.py"):
            parts = f.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.add(".".join((prefix, *parts)))
    return names


class Installed:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.dist = base / "dist"
        self.venv = base / "venv"
        self.python = self.venv / "bin" / "python"
        self.cwd = base / "elsewhere"  # not the repo: its llmtop/ folder must not shadow the wheel
        self.cwd.mkdir()
        self.env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LLMTOP_DB": str(base / "llmtop.db"),
            "LLMTOP_STATE": str(base / "ui-state.json"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.env.pop("PYTHONPATH", None)

    def run(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=180, **kw
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    inst = Installed(base)
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(inst.dist), str(src)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(inst.venv)], check=True)
    site = Path(
        subprocess.run(
            [str(inst.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_llmtop_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    (wheel,) = inst.dist.glob("*.whl")
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(inst.python), "install", "-q"]
        + ["--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    return inst


def test_sdist_and_wheel_carry_every_module_and_stylesheet(installed: Installed) -> None:
    from llmtop import __version__

    (wheel,) = installed.dist.glob(f"llmtop-{__version__}-*.whl")
    (sdist,) = installed.dist.glob(f"llmtop-{__version__}.tar.gz")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    for mod in source_modules():
        path = mod.replace(".", "/")
        assert f"{path}.py" in in_wheel or f"{path}/__init__.py" in in_wheel, mod
    tcss = {f"llmtop/{p.relative_to(ROOT)}" for d in LAYERS for p in (ROOT / d).rglob("*.tcss")}
    assert tcss and tcss <= in_wheel
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"setup.py", "pyproject.toml", "README.md", "tui/llmtop.tcss"} <= in_sdist
    meta = zipfile.ZipFile(wheel).read(f"llmtop-{__version__}.dist-info/METADATA").decode()
    assert f"\nVersion: {__version__}\n" in meta


IMPORT_ALL = """
import importlib, json, pkgutil, llmtop
found = {"llmtop"} | {m.name for m in pkgutil.walk_packages(llmtop.__path__, "llmtop.")}
for name in sorted(found - {"llmtop.__main__"}):
    importlib.import_module(name)
print(json.dumps({"file": llmtop.__file__, "modules": sorted(found)}))
"""


def test_installed_package_imports_every_module(installed: Installed) -> None:
    res = installed.run(str(installed.python), "-c", IMPORT_ALL)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(installed.venv)), out["file"]  # the wheel, not the tree
    missing = source_modules() - set(out["modules"])
    assert not missing, f"left out of the wheel: {sorted(missing)}"


def test_installed_commands_run(installed: Installed) -> None:
    exe = str(installed.venv / "bin" / "llmtop")
    for args in ([], ["check"]):
        res = installed.run(exe, *args, "--help")
        assert res.returncode == 0, res.stderr[-3000:]
        assert "usage: llmtop" in res.stdout
    res = installed.run(exe, "--version")
    from llmtop import __version__

    assert res.stdout.strip() == f"llmtop {__version__}"


PILOT = """
import asyncio, sys
from pathlib import Path
from llmtop.tui.app import LlmtopApp

NOW = float(sys.argv[2])

async def settle(app, pilot):
    from textual.worker import WorkerCancelled
    for _ in range(3):
        for _ in range(20):
            try:
                await app.workers.wait_for_complete()
                break
            except WorkerCancelled:
                continue
        await pilot.pause()

async def main():
    app = LlmtopApp(Path(sys.argv[1]), clock=lambda: NOW, watch=False, alerts=False)
    seen = []
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app, pilot)
        for keys in (["question_mark"], ["g"], ["slash"], ["w"], ["c"], ["e"], ["l", "enter"]):
            await pilot.press(*keys)
            await settle(app, pilot)
            seen.append(type(app.screen).__name__)
            await pilot.press("escape")
            await settle(app, pilot)
    print(" ".join(seen))

asyncio.run(main())
"""


def test_installed_dashboard_opens_every_screen(installed: Installed) -> None:
    from tests.tui_fixtures import NOW, build

    db = installed.base / "screens.db"
    build(db)
    res = installed.run(str(installed.python), "-c", PILOT, str(db), str(NOW))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == [
        "HelpScreen",
        "GroupPicker",
        "PromptScreen",
        "PromptScreen",
        "ChartScreen",
        "PromptScreen",
        "DetailScreen",
    ]
