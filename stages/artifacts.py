"""Saving and loading model files and report files atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from simgan.core import torchfile
from simgan.core.dataset import atomic_write_text


def save_torch(path: Path, obj: dict[str, Any]) -> None:
    """Tensors and plain values only, atomically; the same values give the same bytes
    (a resumed training run writes the file an uninterrupted one does)."""
    torchfile.save(path, obj)


def load_torch(path: Path) -> dict[str, Any]:
    """A model file, loaded with ``weights_only=True``: opening it cannot run code."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the stage that writes it first")
    return torchfile.load(path)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the stage that writes it first")
    return json.loads(path.read_text())


def write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False, float_format="%.6g"))


def example_batch(images, n: int = 2):
    """A small float batch (B, 1, H, W) in the networks' input scaling, for MLflow signatures."""
    from simgan.core.images import to_tensor

    return to_tensor(images[:n]).contiguous().numpy()
