"""The torch boundary: only `instrument/training/` may import torch, and nothing else imports
`training` at module level, so playing, `render` and `encode` never load torch."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "instrument"


def imports(tree: ast.AST, top_level_only: bool):
    """(line, absolute-ish module name) of every import; relative names keep their leading dots."""
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, "." * node.level + (node.module or "")


def modules_outside_training():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "training" not in path.relative_to(PACKAGE).parts:
            yield path, ast.parse(path.read_text(), filename=str(path))


def test_only_training_imports_torch():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path, tree in modules_outside_training()
        for line, name in imports(tree, top_level_only=False)
        if name == "torch" or name.startswith("torch.")
    ]
    assert offenders == []


def test_nothing_imports_training_at_module_level():
    """The CLI reaches training only inside the commands that train (a lazy import)."""
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path, tree in modules_outside_training()
        for line, name in imports(tree, top_level_only=True)
        if "training" in name.split(".")
    ]
    assert offenders == []


def test_the_rule_sees_a_violation(tmp_path):
    """The checker itself: it finds torch imported inside a function, and training at module level."""
    tree = ast.parse("import os\nfrom ..training import train\ndef f():\n    import torch.nn\n")
    assert [n for _, n in imports(tree, top_level_only=False)] == ["os", "..training", "torch.nn"]
    assert [n for _, n in imports(tree, top_level_only=True)] == ["os", "..training"]
