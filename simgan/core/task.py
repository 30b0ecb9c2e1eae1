"""The task interface: everything that differs between tasks (eye gaze, hand pose) sits
behind :class:`Task`, so stages are written once. The registry of tasks is
:mod:`simgan.tasks`; the core never imports a task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from simgan.core.ingest.common import IngestSourceBase

Chunks = Iterator[tuple[np.ndarray, pd.DataFrame]]
MetricsCallback = Callable[[dict[str, float], int], None]
#: loads the estimator trained on a source ("synthetic", "refined", "real"), on demand
EstimatorLoader = Callable[[str], Any]


class ShardPlan(ABC):
    """Work along an axis of ``size`` units that can be computed as ranges ``[lo, hi)``, so
    an engine the library does not know (``flows/sharded.py``: Prefect on Dask) can spread it
    over workers (why this shape: :mod:`simgan.core.shards`).

    ``work(lo, hi)`` is built where the plan lives (the writer's process) and runs anywhere: it
    must pickle small (it carries the range's inputs by name, never the whole plan), and it
    reads its inputs from paths the workers can see. ``chunks(results)`` turns the results of
    consecutive ranges covering ``[0, size)`` into exactly the chunks the plan's single-process
    run yields, so the dataset written from them has the same bytes.
    """

    #: units along the sharded axis (files, image rows)
    size: int
    #: range boundaries are multiples of this (a refiner batch: batches stay whole)
    align: int = 1

    @abstractmethod
    def work(self, lo: int, hi: int) -> Callable[[], Any]:
        """A picklable zero-argument callable computing the range ``[lo, hi)``."""

    @abstractmethod
    def chunks(self, results: Iterable[Any]) -> Chunks:
        """The plan's writer chunks, from the range results in range order."""


@dataclass(frozen=True)
class SplitPlan:
    """How to produce one dataset split: its size, image format and a chunk generator.

    Readers of real files may skip bad inputs (``skip_bad``): then ``n`` is an upper bound
    (``n_is_upper_bound``) and ``late_meta`` gives, after the chunks are exhausted, what is
    known only then (counts of skipped files) for meta.json. ``shards``, when set, yields
    the same chunks from ranges computed elsewhere (:class:`ShardPlan`).
    """

    n: int
    image_shape: tuple[int, int]
    dtype: str
    chunks: Callable[[], Chunks]
    meta: dict[str, Any] = field(default_factory=dict)
    n_is_upper_bound: bool = False
    late_meta: Callable[[], dict[str, Any]] | None = None
    #: the same work as ranges a cluster can compute (None: this process only)
    shards: ShardPlan | None = None


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` writes: headline metrics, a cumulative curve, per-image rows.

    ``curve`` has the columns ``threshold`` and ``pct_within`` (the task's headline cumulative
    measure, which comparison plots and dvc.yaml's plots use) and may have more."""

    summary: dict[str, float]
    curve: pd.DataFrame
    per_image: pd.DataFrame


class Task(ABC):
    """One task of the paper. Implementations hold no state besides constants."""

    name: str
    params_model: type[BaseModel]
    #: unit of the cumulative-curve threshold ("deg", "px")
    curve_unit: str
    #: the headline metric (a key of Evaluation.summary) and its direction
    headline: str
    headline_higher_is_better: bool
    #: the label-preservation figure (a key of label_preservation's dict, in px) that
    #: headline.json shows
    preservation_headline: str

    @abstractmethod
    def table_columns(self, p: Any) -> tuple[tuple[str, str], ...]:
        """Summary keys shown in comparison tables, with their titles (which may quote params)."""

    def curve_xlabel(self, p: Any) -> str:
        """x-axis label of the cumulative-curve plot."""
        return f"error threshold ({self.curve_unit})"

    def curve_columns(self, p: Any) -> tuple[tuple[str, str], ...]:
        """Curve columns drawn in the comparison plot (the first solid), with their legends."""
        return (("pct_within", "% of test images within threshold"),)

    @abstractmethod
    def synthetic_splits(self, p: Any, root: Path | None = None) -> dict[str, SplitPlan]:
        """train (refiner input, estimator training) and test (held-out synthetic).

        ``root``: the project directory, against which relative paths of file sources
        resolve (stages pass it; None: the working directory)."""

    @abstractmethod
    def real_splits(self, p: Any, root: Path | None = None) -> dict[str, SplitPlan]:
        """train (unlabelled for the refiner; labelled for the 'real' reference) and test.
        A real source may have no labels at all (see :meth:`has_labels`)."""

    def file_source(self, p: Any, stage: str) -> IngestSourceBase | None:
        """The file source the ``render`` or ``real`` stage reads (``<stage>.source`` of the
        params), or None when the task draws that domain itself (builtin, stand-in). The
        ``manifest`` stage lists its files (:mod:`simgan.core.manifest`)."""
        source = getattr(getattr(p, stage), "source", None)
        return source if isinstance(source, IngestSourceBase) else None

    def file_sources(self, p: Any) -> dict[str, IngestSourceBase]:
        """Every params section whose source reads files -> that source (empty when the task
        draws all its domains): what decides whether its manifest must be watched."""
        found = {stage: self.file_source(p, stage) for stage in type(p).model_fields}
        return {stage: source for stage, source in found.items() if source is not None}

    def has_labels(self, labels: pd.DataFrame) -> bool:
        """True if a label table holds the labels the estimator needs. Only real sources may
        lack them (an unlabelled folder): the refiner does not need them, and the stages that
        do (the 'real' reference, evaluation on real images) then report that instead."""
        return True

    @abstractmethod
    def train_estimator(
        self,
        p: Any,
        images: np.ndarray,
        labels: pd.DataFrame,
        checkpoint_dir: Path,
        on_metrics: MetricsCallback | None,
    ) -> Any:
        """Train the task's estimator on one source; returns the torch module."""

    @abstractmethod
    def load_estimator(self, p: Any, state: dict[str, Any]) -> Any: ...

    def refiner_select_by(self, p: Any) -> str:
        """How ``train_refiner`` picks its checkpoint (see
        :class:`simgan.core.refiner.selection.Selector`)."""
        return "mmd"

    def label_model_params(self, p: Any) -> Any | None:
        """Estimator params for the refiner's own label model (trained on the synthetic set
        with photometric augmentation), or None: the synthetic-trained estimator serves."""
        return None

    def train_label_model(self, p: Any, images: np.ndarray, labels: pd.DataFrame,
                          checkpoint_dir: Path, on_metrics: MetricsCallback | None = None
                          ) -> Any | None:
        """The refiner's own label model: the estimator trained on the synthetic ``images`` and
        ``labels`` with :meth:`label_model_params`' augmentation (resumable in
        ``checkpoint_dir``), or None when the section asks for none. One place for the
        pipeline stage and the ablation benchmark."""
        augmented = self.label_model_params(p)
        if augmented is None:
            return None
        q = p.model_copy(update={"estimator": augmented})
        return self.train_estimator(q, images, labels, checkpoint_dir, on_metrics)

    @abstractmethod
    def label_model(self, p: Any, state: dict[str, Any]) -> Any:
        """The estimator (weights ``state``, trained on synthetic images) as a torch module
        from a (B, 1, H, W) batch in [-1, 1] to its label reading (B, ...), for the refiner's
        label-consistency term: gaze, unit vectors; hand pose, joint heatmaps."""

    @abstractmethod
    def predict(self, p: Any, model: Any, images: np.ndarray) -> pd.DataFrame: ...

    @abstractmethod
    def evaluate(self, p: Any, predictions: pd.DataFrame, labels: pd.DataFrame) -> Evaluation: ...

    @abstractmethod
    def label_preservation(
        self,
        p: Any,
        synthetic: np.ndarray,
        refined: np.ndarray,
        labels: pd.DataFrame,
        estimator: EstimatorLoader,
    ) -> dict[str, float]:
        """How far refinement moved the labels (e.g. pupil drift in px). ``estimator`` loads a
        trained estimator for tasks that measure preservation with one (hand pose)."""
