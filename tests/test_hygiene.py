"""Layering kept true: each side imported alone in a fresh interpreter (harlequin's pattern)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def loaded_after(stmt: str) -> set[str]:
    code = f"import sys, json\n{stmt}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def top(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


@pytest.mark.parametrize(
    ("stmt", "forbidden"),
    [
        (
            "import llmtop.pricing",
            {"litellm", "textual", "llmtop.collector", "llmtop.tui", "llmtop.store"},
        ),
        ("import llmtop.tui.app", {"litellm", "llmtop.collector"}),
        ("import llmtop.cli", {"litellm", "textual", "llmtop.collector"}),
        ("import llmtop.store.reader", {"litellm", "textual", "llmtop.collector", "llmtop.tui"}),
        ("import llmtop.alerts.evaluate", {"litellm", "textual", "llmtop.tui"}),
        ("import llmtop.collector", {"textual", "litellm", "llmtop.tui"}),
        ("from llmtop.collector import Collector", {"textual", "llmtop.tui"}),
        ("import llmtop.demo.simulator", {"litellm", "textual"}),
    ],
)
def test_import_layers(stmt: str, forbidden: set[str]) -> None:
    mods = loaded_after(stmt)
    bad = {f for f in forbidden if f in mods or f in top(mods)}
    assert not bad, f"{stmt} loads {sorted(bad)}"


def test_importing_the_collector_sets_litellm_offline() -> None:
    code = (
        "import os\nos.environ.pop('LITELLM_LOCAL_MODEL_COST_MAP', None)\n"
        "import llmtop.collector\nprint(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'],"
        " os.environ['LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS'])"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("LITELLM_LOCAL")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["True", "True"]


def test_tui_source_never_touches_sqlite_or_litellm() -> None:
    for path in (ROOT / "tui").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in {"sqlite3", "aiosqlite", "litellm"}, f"{path}: {n}"


def test_no_bare_top_level_packages_installed() -> None:
    code = (
        "import importlib.util, json\n"
        "print(json.dumps([n for n in ('collector','pricing','tui','store','alerts','demo','review')"
        " if importlib.util.find_spec(n)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True
    )
    assert json.loads(out.stdout) == []


# --- every import, function-level ones included (the subprocess check above sees only the
# imports that run at import time) ------------------------------------------------------------

#: Folder -> what no import in it (at any level) may name. `llmtop.x` covers its submodules.
CONTRACTS: dict[str, set[str]] = {
    "pricing": {
        "litellm",
        "textual",
        "sqlite3",
        "aiosqlite",
        "psycopg",
        "llmtop.store",
        "llmtop.collector",
        "llmtop.tui",
        "llmtop.alerts",
        "llmtop.demo",
    },
    "store": {
        "litellm",
        "textual",
        "llmtop.pricing",
        "llmtop.collector",
        "llmtop.tui",
        "llmtop.alerts",
        "llmtop.demo",
    },
    "alerts": {
        "litellm",
        "textual",
        "sqlite3",
        "aiosqlite",
        "psycopg",
        "llmtop.tui",
        "llmtop.collector",
    },
    "tui": {"litellm", "sqlite3", "aiosqlite", "psycopg", "llmtop.collector", "llmtop.demo"},
    "collector": {"textual", "llmtop.tui", "llmtop.alerts", "llmtop.demo"},
    "demo": {"litellm"},
    # The weekly review reads through the store's public functions and prices with pricing.
    "review": {
        "litellm",
        "textual",
        "sqlite3",
        "aiosqlite",
        "psycopg",
        "llmtop.tui",
        "llmtop.collector",
    },
}
#: Where our code lives: the layer folders, the CLI package, and the tests and benchmarks.
SOURCES = (*CONTRACTS, "llmtop", "tests", "benchmarks")


def imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every import statement, at any depth."""
    out: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
    return out


def names(module: str, imported: list[str]) -> set[str]:
    """The module and, for `from a import b`, `a.b` (b may be a submodule)."""
    return {module, *(f"{module}.{n}" for n in imported)}


def covered(name: str, rule: str) -> bool:
    return name == rule or name.startswith(rule + ".")


@pytest.mark.parametrize("folder", sorted(CONTRACTS))
def test_layer_contracts_hold_for_every_import(folder: str) -> None:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module, imported in imports(ast.parse(path.read_text())):
            for n in names(module, imported):
                for rule in CONTRACTS[folder]:
                    if covered(n, rule):
                        bad.append(f"{path.relative_to(ROOT)}:{line}: imports {n} ({rule})")
    assert not bad, "\n".join(sorted(set(bad)))


def test_the_contract_check_sees_function_level_imports() -> None:
    tree = ast.parse("def f():\n    from llmtop.pricing import catalogue\n")
    found = [n for _, m, i in imports(tree) for n in names(m, i)]
    assert any(covered(n, "llmtop.pricing") for n in found)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """Private names of our modules used from outside them: `from llmtop.x import _y`, a
    private module (`llmtop.x._y`), or `m._y` where `m` names an imported llmtop module."""
    out: list[tuple[int, str]] = []
    modules: set[str] = set()  # local names bound to llmtop modules (or possibly modules)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "llmtop":
                    modules.add(a.asname or "llmtop")
                    if any(_private(p) for p in a.name.split(".")):
                        out.append((node.lineno, a.name))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] != "llmtop":
                continue
            if any(_private(p) for p in node.module.split(".")):
                out.append((node.lineno, node.module))
            for a in node.names:
                if _private(a.name):
                    out.append((node.lineno, f"{node.module}.{a.name}"))
                elif (ROOT / _folder(node.module) / f"{a.name}.py").exists() or (
                    ROOT / _folder(node.module) / a.name / "__init__.py"
                ).exists():
                    modules.add(a.asname or a.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                out.append((node.lineno, f"{ast.unparse(node.value)}.{node.attr}"))
    return out


def _folder(module: str) -> str:
    """`llmtop.store.x` -> `store/x` (package-dir maps llmtop.<layer> to the <layer> folder)."""
    parts = module.split(".")[1:]
    if parts and parts[0] in CONTRACTS:
        return "/".join(parts)
    return "/".join(["llmtop", *parts])


def test_no_module_uses_another_modules_private_names() -> None:
    bad = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__snapshots__" in path.parts:
                continue
            for line, what in private_uses(ast.parse(path.read_text())):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not bad, "\n".join(bad)


def test_the_private_name_check_catches_both_forms() -> None:
    code = (
        "from llmtop.store.filters import _split\n"
        "from llmtop.store import reader\n"
        "import llmtop.alerts.cache as c\n"
        "def f():\n    return reader._helper, c._x, reader.Reader, c.AlertCache\n"
    )
    found = {what for _, what in private_uses(ast.parse(code))}
    assert found == {"llmtop.store.filters._split", "reader._helper", "c._x"}


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["check", "--now", "abc"], 3),
        (["export", "--format", "pdf"], 2),
        (["whatif", "--tier", "batchh", "--swap", "a=b"], 2),
        (["metrics", "--max-series", "-5"], 2),
        (["prune", "--bogus"], 2),
        (["vacuum", "--bogus"], 2),
        (["demo", "--speed", "x"], 2),
        (["prices", "--bogus"], 2),
        (["report", "--bogus"], 2),
        (["reconcile"], 2),
        (["--bogus"], 2),
    ],
)
def test_a_bad_argument_is_one_line(
    argv: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command: `llmtop CMD: problem` and the command's exit code for bad input, not
    argparse's usage block with the line that matters at its end."""
    from llmtop.cli import main

    try:
        got = main(argv)
    except SystemExit as exc:
        got = exc.code
    err = capsys.readouterr().err
    assert got == code and err.count("\n") == 1 and err.startswith("llmtop"), (got, err)
