"""Opening a model or checkpoint file must not be able to run code: every ``torch.load`` in
the repository passes ``weights_only=True``, and no MLflow model is logged or loaded through
the pickling ``mlflow.pytorch`` flavour (models are logged as weights files). Checked on the
syntax tree of the repository's own .py files, so a new call cannot slip in."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python_files(root: Path) -> Iterator[Path]:
    """The project's .py files: hidden directories (.venv, .git, .dvc, ...) left out."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if not any(p.startswith(".") or p in ("node_modules", "__pycache__") for p in parts):
            yield path


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _weights_only(call: ast.Call) -> bool:
    return any(
        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def unsafe_loads(source: str) -> list[str]:
    """What in ``source`` could unpickle arbitrary objects: ``torch.load`` without a literal
    ``weights_only=True`` (also under another name), and any use of ``mlflow.pytorch``."""
    tree = ast.parse(source)
    loads = {"torch.load", "torch.serialization.load"}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            loads |= {a.asname or a.name for a in node.names if a.name == "load"}
        if isinstance(node, ast.Import) and any(a.name == "mlflow.pytorch" for a in node.names):
            found.append(f"line {node.lineno}: import mlflow.pytorch")
        if isinstance(node, ast.ImportFrom) and (
            node.module == "mlflow.pytorch"
            or (node.module == "mlflow" and any(a.name == "pytorch" for a in node.names))
        ):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        if isinstance(node, ast.Attribute) and _dotted(node) == "mlflow.pytorch":
            found.append(f"line {node.lineno}: mlflow.pytorch")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _dotted(node.func) in loads and not _weights_only(node):
            found.append(f"line {node.lineno}: {_dotted(node.func)} without weights_only=True")
    return found


def test_the_checker_finds_unsafe_loads() -> None:
    assert unsafe_loads("import torch\ntorch.load(p)\n") == [
        "line 2: torch.load without weights_only=True"]
    assert len(unsafe_loads("import torch\ntorch.load(p, weights_only=False)\n")) == 1
    assert len(unsafe_loads("from torch import load as L\nL(p)\n")) == 1
    assert len(unsafe_loads("import mlflow\nmlflow.pytorch.log_model(m, 'm')\n")) == 1
    assert len(unsafe_loads("from mlflow import pytorch\n")) == 1
    safe = "import torch\ntorch.load(p, map_location='cpu', weights_only=True)\n"
    assert unsafe_loads(safe) == []


def test_every_load_in_the_repository_is_weights_only() -> None:
    files = list(_python_files(ROOT))
    assert any(p.name == "artifacts.py" for p in files)  # the walk sees the stages
    problems = [f"{p.relative_to(ROOT)} {what}" for p in files
                for what in unsafe_loads(p.read_text(encoding="utf-8"))]
    assert problems == [], "\n".join(problems)
