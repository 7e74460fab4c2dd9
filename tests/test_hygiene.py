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
        "print(json.dumps([n for n in ('collector','pricing','tui','store','alerts','demo')"
        " if importlib.util.find_spec(n)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True
    )
    assert json.loads(out.stdout) == []
