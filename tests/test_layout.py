"""The layers of the package, as import-linter checks them (its contracts are in pyproject.toml:
app above training above host above rt above files, model and the shared basics; torch only in
training), and the one rule it cannot state: nothing imports `training` at module level, so
playing, `render` and `encode` never load torch."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "instrument"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path, pyproject: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package under `root`, with `pyproject`'s contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(pyproject), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_import_contract_is_kept():
    result = lint_imports(REPO, REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_contracts_catch_an_upward_import_inside_a_function_and_torch_outside_training(tmp_path):
    """The checker itself: a copy of the package where the audio process's package reaches up to
    the main process's from inside a function, and the model imports torch."""
    shutil.copytree(PACKAGE, tmp_path / "instrument", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    (tmp_path / "instrument" / "rt" / "upward.py").write_text("def f():\n    from ..host import link\n")
    (tmp_path / "instrument" / "model" / "heavy.py").write_text("import torch\n")
    result = lint_imports(tmp_path, REPO / "pyproject.toml")
    assert result.returncode != 0
    assert "instrument.rt.upward -> instrument.host.link" in result.stdout
    assert "instrument.model.heavy -> torch" in result.stdout


def imports(tree: ast.AST, top_level_only: bool):
    """(line, absolute-ish module name) of every import; relative names keep their leading dots."""
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, "." * node.level + (node.module or "")


def test_nothing_imports_training_at_module_level():
    """The CLI reaches training only inside the commands that train (a lazy import)."""
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "training" not in path.relative_to(PACKAGE).parts
        for line, name in imports(ast.parse(path.read_text(), filename=str(path)), top_level_only=True)
        if "training" in name.split(".")
    ]
    assert offenders == []


def test_the_module_level_rule_sees_a_violation():
    tree = ast.parse("import os\nfrom ..training import train\ndef f():\n    import torch.nn\n")
    assert [n for _, n in imports(tree, top_level_only=True)] == ["os", "..training"]
