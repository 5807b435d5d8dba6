"""The package layering of docs/architecture.md, enforced: the import contracts in ``.importlinter``
hold for the tree, and an upward import (or the runtime reaching into ``training/``) breaks them.

The contracts are checked with import-linter (``lint-imports``) on the real tree, and on a copy of
the tree with one offending module added, so the check itself is shown to fail when it should.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / ".importlinter"
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root), NO_COLOR="1", TERM="dumb")
    return subprocess.run([str(LINT), str(root / ".importlinter"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def copy_tree(dest: Path) -> Path:
    shutil.copytree(REPO / "csadetect", dest / "csadetect",
                    ignore=shutil.ignore_patterns("__pycache__", "reference", "templates", "static", "*.keras"))
    shutil.copy2(CONFIG, dest / ".importlinter")
    return dest


def layers() -> list[list[str]]:
    text = CONFIG.read_text()
    section = text.split("[importlinter:contract:layers]", 1)[1]
    block = re.search(r"^layers\s*=\s*\n((?:[ \t]+\S[^\n]*\n?)+)", section, re.M)
    return [[m.strip() for m in line.split("|")] for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture(scope="module", autouse=True)
def _linter():
    if not LINT.exists():
        pytest.skip(f"import-linter is not installed in this interpreter ({LINT} missing; `make install` adds it)")


def test_the_tree_keeps_every_contract():
    proc = lint(REPO)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert re.search(r"Contracts: (\d+) kept, 0 broken", proc.stdout)


def test_every_package_is_in_a_layer():
    """A new sub-package must be placed in the layering (and so in docs/architecture.md)."""
    placed = {m for layer in layers() for m in layer}
    packages = {f"csadetect.{p.name}" for p in (REPO / "csadetect").iterdir() if (p / "__init__.py").exists()}
    packages |= {f"csadetect.{p.stem}" for p in (REPO / "csadetect").glob("*.py") if not p.stem.startswith("__")}
    assert packages - placed == set(), "packages missing from .importlinter's layers"
    doc = (REPO / "docs" / "architecture.md").read_text()
    assert [p for p in sorted(placed) if p not in doc] == [], "layers missing from docs/architecture.md"


@pytest.mark.parametrize("module, imports, contract", [
    ("csadetect/core/_probe.py", "from csadetect.cli import main", "import one way"),
    ("csadetect/indicators/_probe.py", "import csadetect.pipelines.detect", "import one way"),
    ("csadetect/reports/_probe.py", "from csadetect.review import store", "import one way"),
    ("csadetect/models/_probe.py", "import training.train_grooming", "never imports training"),
    ("csadetect/events/_probe.py", "import apache_beam as beam", "does not import Beam"),
])
def test_an_offending_import_breaks_a_contract(tmp_path, module, imports, contract):
    root = copy_tree(tmp_path)
    (root / module).write_text(f'"""probe"""\n{imports}\n')
    if "training" in imports:
        (root / "training").mkdir()
        (root / "training" / "__init__.py").write_text("")
        (root / "training" / "train_grooming.py").write_text("")
    proc = lint(root)
    assert proc.returncode != 0, proc.stdout[-3000:]
    broken = proc.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken and module[:-3].replace("/", ".") in broken, broken[-3000:]


def test_the_copy_without_a_probe_passes(tmp_path):
    """The copy the probes use is itself clean, so a failure above is the probe's doing."""
    proc = lint(copy_tree(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_no_sys_path_manipulation():
    offenders = []
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0] in (".venv", "build", "dist") or "__pycache__" in rel.parts or rel.name == "test_architecture.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in ("insert", "append", "extend")
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "path"
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "sys"):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []
