"""Where each stage reads and writes, relative to the project root (the only place that knows).

dvc.yaml spells the same paths; tests/test_dvc_graph.py checks the two agree. Checkpoints
(resume state) live under ``.checkpoints/<task>/``, outside dvc.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOURCES = ("synthetic", "refined", "real")
#: the stages that read a task's sources, each with a file manifest (stages/manifest.py)
MANIFEST_STAGES = ("render", "real")
#: the directory (under the root) of every task's resume state; in .gitignore and .dvcignore
CHECKPOINTS = ".checkpoints"


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

    def manifest(self, stage: str) -> Path:
        """The file manifest of the source ``stage`` (``render`` or ``real``) reads."""
        if stage not in MANIFEST_STAGES:
            raise ValueError(f"no manifest for {stage!r}; allowed: {', '.join(MANIFEST_STAGES)}")
        return self.data / "manifest" / f"{stage}.json"

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
    def checkpoints(self) -> Path:
        """Resume state of the training stages: git- and DVC-ignored, not a DVC output (a
        killed stage resumes from it; queued experiments start without it and lose nothing)."""
        return self.root / CHECKPOINTS / self.task

    @property
    def refiner_checkpoints(self) -> Path:
        return self.checkpoints / "refiner"

    def estimator_model(self, source: str) -> Path:
        return self.models / f"estimator_{source}" / "model.pt"

    def estimator_checkpoints(self, source: str) -> Path:
        return self.checkpoints / f"estimator_{source}"

    def eval_dir(self, source: str) -> Path:
        return self.reports / "eval" / source

    @property
    def refiner_report(self) -> Path:
        return self.reports / "refiner"
