"""Where each stage reads and writes, relative to the project root (the only place that knows).

dvc.yaml spells the same paths; tests/test_dvc_graph.py checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOURCES = ("synthetic", "refined", "real")


@dataclass(frozen=True)
class Layout:
    root: Path
    task: str

    @property
    def data(self) -> Path:
        return self.root / "data" / self.task

    @property
    def models(self) -> Path:
        return self.root / "models" / self.task

    @property
    def reports(self) -> Path:
        return self.root / "reports" / self.task

    def synthetic(self, split: str) -> Path:
        return self.data / "synthetic" / split

    def real(self, split: str) -> Path:
        return self.data / "real" / split

    def refined(self) -> Path:
        return self.data / "refined" / "train"

    def train_set(self, source: str) -> Path:
        """The training dataset of an estimator trained on ``source``."""
        if source == "synthetic":
            return self.synthetic("train")
        if source == "refined":
            return self.refined()
        if source == "real":
            return self.real("train")
        raise ValueError(f"unknown source {source!r}; allowed values: {', '.join(SOURCES)}")

    @property
    def refiner_model(self) -> Path:
        return self.models / "refiner" / "refiner.pt"

    @property
    def refiner_checkpoints(self) -> Path:
        return self.models / "refiner_checkpoints"

    def estimator_model(self, source: str) -> Path:
        return self.models / f"estimator_{source}" / "model.pt"

    def estimator_checkpoints(self, source: str) -> Path:
        return self.models / f"estimator_{source}_checkpoints"

    def eval_dir(self, source: str) -> Path:
        return self.reports / "eval" / source

    @property
    def refiner_report(self) -> Path:
        return self.reports / "refiner"
