"""The eye-gaze task: 35x55 grayscale eyes, unit gaze vector labels (MPIIGaze convention),
the paper's gaze CNN, angular error metrics, pupil-centre drift for label preservation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from simgan.core.fields import BatchSize, Device, ImageCount, Seed, StrictParams, check_curve
from simgan.core.ingest.common import NoLabelsError
from simgan.core.params import KidParams, RealismParams
from simgan.core.refiner.params import (
    DiscriminatorParams,
    RefineParams,
    RefinerNetParams,
    RefinerTrainParams,
)
from simgan.core.task import EstimatorLoader, Evaluation, MetricsCallback, SplitPlan, Task
from simgan.gaze.estimator_params import EstimatorParams, LabelModelParams
from simgan.gaze.labels import has_gaze_labels, require_gaze_labels
from simgan.gaze.mpii_like import MpiiLikeParams
from simgan.gaze.readers.sources import RealSource, SyntheticSource, is_file_source
from simgan.gaze.render import EyeDomain, EyeRenderParams
from simgan.gaze.standin import RealAppearanceParams

GAZE_COLUMNS = ["gaze_x", "gaze_y", "gaze_z"]
RealAppearance = Annotated[RealAppearanceParams | MpiiLikeParams, Field(discriminator="kind")]
"""The built-in real appearance, by ``kind``: ``standin`` (:mod:`simgan.gaze.standin`) or the
harder ``mpii_like`` (:mod:`simgan.gaze.mpii_like`)."""


class RenderSection(StrictParams):
    """The synthetic domain. ``source``: the builtin renderer or files (UnityEyes, a folder).
    ``seed``, ``chunk_size`` apply to every source; ``n_train`` / ``n_test`` are the sizes the
    builtin renderer draws, and for a file source the most rows per split (a seeded random
    subset when the files hold more); ``eye.height`` / ``eye.width`` are the image size of
    every source."""

    source: SyntheticSource
    seed: Seed
    n_train: ImageCount
    n_test: ImageCount
    chunk_size: int = Field(gt=0, le=65536)
    eye: EyeRenderParams


class RealSection(StrictParams):
    """The real domain: a built-in appearance model or files (MPIIGaze, a folder); the
    other keys apply as in :class:`RenderSection` (``appearance``: the ``standin`` source only;
    its ``kind`` chooses the model, see :data:`RealAppearance`)."""

    source: RealSource
    seed: Seed
    n_train: ImageCount
    n_test: ImageCount
    chunk_size: int = Field(gt=0, le=65536)
    appearance: RealAppearance


def real_domain(appearance: RealAppearanceParams | MpiiLikeParams) -> EyeDomain:
    """The built-in real domain ``appearance.kind`` names."""
    if isinstance(appearance, MpiiLikeParams):
        from simgan.gaze.mpii_like import mpii_like_domain

        return mpii_like_domain(appearance)
    from simgan.gaze.standin import standin_domain

    return standin_domain(appearance)


class RefinerSection(StrictParams):
    net: RefinerNetParams
    discriminator: DiscriminatorParams
    train: RefinerTrainParams
    label_model: LabelModelParams


class EvaluateSection(StrictParams):
    within_deg: float = Field(gt=0, le=180)
    curve_max_deg: float = Field(gt=0, le=180)
    curve_step_deg: float = Field(gt=0, le=180)
    batch_size: BatchSize
    device: Device

    @model_validator(mode="after")
    def _curve(self) -> EvaluateSection:
        return check_curve(self, "deg")


class CompareSection(StrictParams):
    realism: RealismParams
    kid: KidParams
    marker: float = Field(ge=0, le=180, description="threshold marked on the curve plot")


class GazeParams(StrictParams):
    render: RenderSection
    real: RealSection
    refiner: RefinerSection
    refine: RefineParams
    estimator: EstimatorParams
    evaluate: EvaluateSection
    compare: CompareSection


class GazeTask(Task):
    name = "gaze"
    params_model = GazeParams
    curve_unit = "deg"
    headline = "mean_deg"
    headline_higher_is_better = False
    preservation_headline = "pupil_drift_mean_px"

    def table_columns(self, p: GazeParams) -> tuple[tuple[str, str], ...]:
        return (
            ("mean_deg", "mean error (deg)"),
            ("median_deg", "median (deg)"),
            ("pct_within", f"% within {p.evaluate.within_deg:g} deg"),
        )

    def _plans(self, p: GazeParams, section: Any, domain: EyeDomain, name: str
               ) -> dict[str, SplitPlan]:
        from simgan.gaze.render import iter_eye_chunks

        eye = p.render.eye
        shape = (eye.height, eye.width)
        ranges = {"train": (0, section.n_train), "test": (section.n_train, section.n_test)}

        def plan(start: int, n: int) -> SplitPlan:
            return SplitPlan(
                n=n,
                image_shape=shape,
                dtype="uint8",
                chunks=lambda: iter_eye_chunks(
                    eye, n, section.seed, section.chunk_size, start=start, domain=domain
                ),
                meta={"source": f"builtin-{name}", "seed": section.seed, "first_index": start,
                      "value_scaling": "uint8 gray [0, 255]"},
            )

        return {split: plan(start, n) for split, (start, n) in ranges.items()}

    def _file_plans(self, p: GazeParams, section: Any, root: Path | None
                    ) -> dict[str, SplitPlan]:
        from simgan.gaze.readers.sources import plan_splits

        source = section.source if root is None else section.source.with_root(root)
        plans = plan_splits(
            source, (p.render.eye.height, p.render.eye.width), seed=section.seed,
            chunk_size=section.chunk_size, max_train=section.n_train, max_test=section.n_test,
        )
        written = {"source_params": section.source.model_dump(mode="json"), "seed": section.seed}
        return {split: replace(plan, meta={**plan.meta, **written})
                for split, plan in plans.items()}

    def synthetic_splits(self, p: GazeParams, root: Path | None = None) -> dict[str, SplitPlan]:
        if not is_file_source(p.render.source):
            from simgan.gaze.render import synthetic_domain

            return self._plans(p, p.render, synthetic_domain(p.render.eye), "synthetic")
        plans = self._file_plans(p, p.render, root)
        for split, plan in plans.items():
            if plan.meta.get("labelled") is False:
                raise NoLabelsError(
                    f"gaze.render.source ({p.render.source.kind}, {plan.meta['source_path']}): "
                    f"the {split} images have no gaze labels (no labels.csv). The synthetic "
                    "domain must be labelled: estimators train on its labels and refine "
                    "carries them over. Only the real domain may be unlabelled."
                )
        return plans

    def real_splits(self, p: GazeParams, root: Path | None = None) -> dict[str, SplitPlan]:
        if not is_file_source(p.real.source):
            app = p.real.appearance
            name = "standin-real" if app.kind == "standin" else f"{app.kind}-real"
            return self._plans(p, p.real, real_domain(app), name)
        return self._file_plans(p, p.real, root)

    def has_labels(self, labels: pd.DataFrame) -> bool:
        return has_gaze_labels(labels)

    def build_estimator(self, p: GazeParams):
        from simgan.gaze.estimator import build_gaze_cnn

        return build_gaze_cnn(p.estimator, image_shape=(p.render.eye.height, p.render.eye.width))

    def train_estimator(
        self,
        p: GazeParams,
        images: np.ndarray,
        labels: pd.DataFrame,
        checkpoint_dir: Path,
        on_metrics: MetricsCallback | None,
    ):
        from simgan.gaze.estimator import train_estimator

        require_gaze_labels(labels, "training set", "training a gaze estimator on it")
        targets = labels[GAZE_COLUMNS].to_numpy(np.float32)
        state, _ = train_estimator(images, targets, p.estimator, checkpoint_dir, on_metrics)
        return self.load_estimator(p, state)

    def load_estimator(self, p: GazeParams, state: dict[str, Any]):
        model = self.build_estimator(p)
        model.load_state_dict(state)
        return model.eval()

    def label_model_params(self, p: GazeParams) -> EstimatorParams | None:
        return p.refiner.label_model.estimator(p.estimator)

    def label_model(self, p: GazeParams, state: dict[str, Any]):
        from simgan.gaze.estimator import GazeReading

        return GazeReading(self.load_estimator(p, state))

    def predict(self, p: GazeParams, model, images: np.ndarray) -> pd.DataFrame:
        from simgan.core.images import pick_device
        from simgan.gaze.estimator import predict

        g = predict(model, images, p.evaluate.batch_size, pick_device(p.evaluate.device))
        return pd.DataFrame(g, columns=["pred_x", "pred_y", "pred_z"])

    def evaluate(
        self, p: GazeParams, predictions: pd.DataFrame, labels: pd.DataFrame
    ) -> Evaluation:
        from simgan.core.curves import cumulative_curve
        from simgan.gaze.metrics import angular_error_deg, gaze_summary, vector_to_pitchyaw

        pred = predictions[["pred_x", "pred_y", "pred_z"]].to_numpy(np.float64)
        true = labels[GAZE_COLUMNS].to_numpy(np.float64)
        errors = angular_error_deg(pred, true)
        s = gaze_summary(errors, within_deg=p.evaluate.within_deg)
        summary = {
            "mean_deg": float(s["mean"]),
            "median_deg": float(s["median"]),
            "std_deg": float(s["std"]),
            "pct_within": float(s["pct_within"]),
            "n": float(s["n"]),
        }
        e = p.evaluate
        thresholds = np.arange(0.0, e.curve_max_deg + 1e-9, e.curve_step_deg)
        curve = cumulative_curve(errors, thresholds)
        pitch, yaw = vector_to_pitchyaw(pred)
        per_image = pd.DataFrame({
            "id": labels["id"].to_numpy(),
            "true_pitch": labels["pitch"].to_numpy(),
            "true_yaw": labels["yaw"].to_numpy(),
            "pred_pitch": pitch,
            "pred_yaw": yaw,
            "error_deg": errors,
        })
        return Evaluation(summary=summary, curve=curve, per_image=per_image)

    def label_preservation(
        self,
        p: GazeParams,
        synthetic: np.ndarray,
        refined: np.ndarray,
        labels: pd.DataFrame,
        estimator: EstimatorLoader,
    ) -> dict[str, float]:
        """Pupil-centre drift, from the images alone (``estimator`` is not needed)."""
        from simgan.gaze.drift import pupil_drift

        prior = labels[["pupil_u", "pupil_v"]].to_numpy(np.float64)
        d = pupil_drift(np.asarray(synthetic), np.asarray(refined), prior)
        return {
            "pupil_drift_mean_px": float(d["mean"]),
            "pupil_drift_std_px": float(d["std"]),
            "pupil_drift_median_px": float(d["median"]),
            "pupil_drift_n_valid": float(d["n_valid"]),
            # a blob in the synthetic image but none after refinement: the pupil was damaged
            "pupil_lost_n": float(d["n_lost"]),
            "pupil_not_found_n": float(d["n_no_blob"]),
        }
