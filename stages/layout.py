"""Where each stage reads and writes, relative to the project root (the only place that knows).

dvc.yaml spells the same paths; tests/test_dvc_graph.py checks the two agree. Checkpoints
(resume state) live under ``.checkpoints/<task>/``, outside dvc.yaml; the lock a running stage
holds on its outputs (stages/ownership.py) under ``.locks/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

SOURCES = ("synthetic", "refined", "real")
#: the stages that read a task's sources, each with a file manifest (stages/manifest.py)
MANIFEST_STAGES = ("render", "real")
#: the directory (under the root) of every task's resume state; in .gitignore and .dvcignore
CHECKPOINTS = ".checkpoints"
#: the directory (under the root) of the running stages' lock files; in .gitignore and .dvcignore
LOCKS = ".locks"
#: the stages of dvc.yaml that run through stages.common.main (review has its own main)
DVC_STAGES = ("manifest", "render", "real", "train_refiner", "refine", "train_estimator",
              "evaluate", "compare")
EVAL_FILES = ("predictions.csv", "metrics.json", "curve_real_test.csv", "curve_synthetic_test.csv")
COMPARE_FILES = ("comparison.json", "comparison.md", "curves.png", "samples.png", "headline.json")


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
    def label_model(self) -> Path:
        """The refiner's own label model, when it has one (saved beside the refiner)."""
        return self.models / "refiner" / "label_model.pt"

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

    def outputs(self, stage: str, source: str | None = None) -> tuple[Path, ...]:
        """What ``stage`` (for ``source``, if it has one) writes: exactly its outs in dvc.yaml
        (tests/test_ownership.py checks), so a stage can clean up after an earlier one; none
        for a stage dvc.yaml does not know (a test's probe stage)."""
        if stage not in DVC_STAGES:
            return ()
        if stage == "manifest":
            return tuple(self.manifest(s) for s in MANIFEST_STAGES)
        if stage == "render":
            return self.synthetic("train"), self.synthetic("test")
        if stage == "real":
            return self.real("train"), self.real("test")
        if stage == "train_refiner":
            return self.refiner_model.parent, self.refiner_report / "selection.json"
        if stage == "refine":
            return (self.refined(),)
        if stage == "train_estimator" and source in SOURCES:
            return (self.estimator_model(source).parent,)
        if stage == "evaluate" and source in SOURCES:
            return tuple(self.eval_dir(source) / name for name in EVAL_FILES)
        if stage == "compare":
            return tuple(self.reports / name for name in COMPARE_FILES)
        raise ValueError(f"no outputs known for stage {stage!r} (source {source!r})")

    def resume_state(self, stage: str, source: str | None = None) -> Path | None:
        """The checkpoint directory ``stage`` writes besides its outputs, if any."""
        if stage == "train_refiner":
            return self.refiner_checkpoints
        if stage == "train_estimator" and source in SOURCES:
            return self.estimator_checkpoints(source)
        return None

    def lock(self, stage: str, source: str | None = None) -> Path:
        """The lock file a running ``stage`` holds (one per stage, task and source)."""
        name = f"{stage}@{self.task}" + (f"-{source}" if source else "")
        return self.root / LOCKS / f"{name}.lock"


def declared_refiner_labels(root: Path, task: str) -> Path | None:
    """Where dvc.yaml says ``train_refiner@<task>``'s label model comes from (its ``vars``,
    ``tasks.<task>.refiner_labels``), or None outside a DVC project or for a task it does not
    list. The stage checks it against what its params make it read, since dvc.yaml cannot
    choose a dep from params."""
    spec = root / "dvc.yaml"
    if not spec.is_file():
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for block in yaml.load(spec.read_text(), Loader=loader).get("vars") or []:
        if isinstance(block, dict) and isinstance(block.get("tasks"), dict):
            entry = block["tasks"].get(task) or {}
            return root / entry["refiner_labels"] if "refiner_labels" in entry else None
    return None
