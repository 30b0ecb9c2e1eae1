"""The hand-pose task: depth crops (uint8 codes of a cube around the hand), 14 NYU joints in
crop px as labels, a stacked-hourglass estimator, % of joints / images within d px.

Sources, as for gaze (``render.source`` / ``real.source``, discriminated by ``kind``):

- synthetic (``render.source``): ``builtin``, the procedural capsule hand
  (:mod:`simgan.hand.render`); or ``nyu_synth``, NYU's own synthetic renders
  (``synthdepth_*.png``) through :mod:`simgan.hand.nyu`.
- real (``real.source``): ``standin``, the same geometry seen by a Kinect-like sensor model
  (:mod:`simgan.hand.standin`; needs ``render.source.kind: builtin``); or ``nyu``,
  the dataset's Kinect depth (``depth_*.png``).

The crop format (``render.hand``: size, cube_mm, depth_reference) is that of every source, so
the two domains always give the same crops. Pixel errors are in crop px or in px of the Kinect
frame (``evaluate.unit``); see ``docs/hand.md`` for why the default is crop px.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, model_validator

from simgan.core.fields import (
    MAX_IMAGES,
    BatchSize,
    Device,
    ImageCount,
    Seed,
    StrictParams,
    check_curve,
)
from simgan.core.params import KidParams, RealismParams
from simgan.core.refiner.params import (
    DiscriminatorParams,
    RefineParams,
    RefinerNetParams,
    RefinerTrainParams,
)
from simgan.core.task import EstimatorLoader, Evaluation, MetricsCallback, SplitPlan, Task
from simgan.hand.estimator_params import PoseEstimatorParams, SensorLabelModelParams
from simgan.hand.joints import N_JOINTS, joint_columns, keypoints_from_labels
from simgan.hand.nyu import CropFormat, Kind, NyuSource
from simgan.hand.render import HandDomain, HandRenderParams
from simgan.hand.standin import RealDepthParams

PRED_COLUMNS = [f"pred_{c}" for c in joint_columns("uv")]
MAX_PX = 1000.0
"""Largest pixel threshold: the Kinect frame is 640 x 480 px."""


# ----------------------------------------------------------------------------- sources


class BuiltinSource(StrictParams):
    """The procedural capsule hand (:mod:`simgan.hand.render`), params in ``render.hand``."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["builtin"] = "builtin"


class NyuSynthSource(NyuSource):
    """NYU's synthetic renders (``synthdepth_*.png``) of ``<path>/train`` and ``<path>/test``."""

    kind: Literal["nyu_synth"] = "nyu_synth"
    depth_kind: ClassVar[Kind | None] = "synthdepth"


class StandinSource(StrictParams):
    """The stand-in real domain: the renderer's geometry seen by a Kinect v1 model
    (:mod:`simgan.hand.standin`, params in ``real.depth``)."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["standin"] = "standin"


class NyuRealSource(NyuSource):
    """NYU's Kinect depth (``depth_*.png``) of ``<path>/train`` and ``<path>/test``."""

    kind: Literal["nyu"] = "nyu"
    depth_kind: ClassVar[Kind | None] = "depth"


SyntheticSource = Annotated[BuiltinSource | NyuSynthSource, Field(discriminator="kind")]
RealSource = Annotated[StandinSource | NyuRealSource, Field(discriminator="kind")]
NYU_KINDS = {"nyu_synth": "synthdepth", "nyu": "depth"}
"""NYU source kind -> the PNGs it reads."""


class RenderSection(StrictParams):
    """The synthetic domain. ``seed`` and ``chunk_size`` apply to every source; ``n_train`` /
    ``n_test`` are the images the builtin renderer draws (disjoint index ranges of one seed),
    and for NYU the most rows per split (a seeded subset, in file order); ``threads``: render
    threads (builtin only; bytes do not depend on it); ``hand``: the renderer, whose ``size``,
    ``cube_mm`` and ``depth_reference`` are the crop format of every source."""

    source: SyntheticSource
    seed: Seed
    n_train: ImageCount
    n_test: ImageCount
    chunk_size: int = Field(gt=0, le=65536)
    threads: int = Field(ge=1, le=64, description="render threads (bytes do not depend on it)")
    hand: HandRenderParams


class RealSection(StrictParams):
    """The real domain: the stand-in or NYU's Kinect depth; the other keys apply as in
    :class:`RenderSection` (``depth``: the stand-in only)."""

    source: RealSource
    seed: Seed
    n_train: ImageCount
    n_test: ImageCount
    chunk_size: int = Field(gt=0, le=65536)
    threads: int = Field(ge=1, le=64)
    depth: RealDepthParams


def crop_format(hand: HandRenderParams) -> CropFormat:
    """The crops of every hand source (builtin or NYU, synthetic or real): ``render.hand``'s."""
    return CropFormat(hand.size, hand.cube_mm, hand.depth_reference)


class RefinerSection(StrictParams):
    net: RefinerNetParams
    discriminator: DiscriminatorParams
    train: RefinerTrainParams
    select_by: Literal["mmd", "latest"] = Field(
        description="checkpoint choice among those passing train.select_min_structure / "
        "select_max_drift: lowest mmd (gaze's rule) or the latest (docs/hand.md: on depth the "
        "mmd ranking did not follow downstream accuracy)"
    )
    label_model: SensorLabelModelParams


class EvaluateSection(StrictParams):
    unit: Literal["crop_px", "frame_px"] = Field(
        description="crop_px: px of the estimator's input crop; frame_px: px of the 640x480 "
        "Kinect frame (crop px / crop_scale)"
    )
    within_px: float = Field(gt=0, le=MAX_PX, description="threshold of the headline % (paper: 5)")
    curve_max_px: float = Field(gt=0, le=MAX_PX,
                                description="curves run from 0 to this (paper: 20)")
    curve_step_px: float = Field(gt=0, le=MAX_PX)
    batch_size: BatchSize
    device: Device

    @model_validator(mode="after")
    def _curve(self) -> EvaluateSection:
        return check_curve(self, "px")


class CompareSection(StrictParams):
    realism: RealismParams
    kid: KidParams
    marker: float = Field(ge=0, le=MAX_PX, description="threshold marked on the curve plot")
    preservation_n: int = Field(
        gt=0, le=MAX_IMAGES, description="synthetic train images (and their refined versions) "
        "scored for label preservation (a seeded sample if fewer than the split)"
    )


class HandParams(StrictParams):
    render: RenderSection
    real: RealSection
    refiner: RefinerSection
    refine: RefineParams
    estimator: PoseEstimatorParams
    evaluate: EvaluateSection
    compare: CompareSection

    @model_validator(mode="after")
    def _standin_needs_builtin(self) -> HandParams:
        if self.real.source.kind == "standin" and self.render.source.kind != "builtin":
            raise ValueError(
                "real.source.kind: standin draws the builtin renderer's hands through a sensor "
                "model, so it needs render.source.kind: builtin (got "
                f"{self.render.source.kind}); with NYU's synthetic renders use "
                "real.source.kind: nyu")
        return self


class HandTask(Task):
    name = "hand"
    params_model = HandParams
    curve_unit = "px"
    headline = "pct_joints_within"
    headline_higher_is_better = True
    preservation_headline = "delta_mean_px"

    def table_columns(self, p: HandParams) -> tuple[tuple[str, str], ...]:
        d, unit = f"{p.evaluate.within_px:g}", p.evaluate.unit.replace("_", " ")
        return (
            ("pct_joints_within", f"% joints within {d} {unit}"),
            ("pct_images_within", f"% images, worst joint within {d} {unit}"),
            ("mean_px", f"mean joint error ({unit})"),
        )

    def curve_xlabel(self, p: HandParams) -> str:
        return f"joint error threshold ({p.evaluate.unit.replace('_', ' ')})"

    def curve_columns(self, p: HandParams) -> tuple[tuple[str, str], ...]:
        return (("pct_within", "% of joints"), ("pct_images_within", "% of images (worst joint)"))

    # ------------------------------------------------------------------------- data

    def _builtin(self, hand: HandRenderParams, section: Any, domain: HandDomain,
                 name: str) -> dict[str, SplitPlan]:
        from simgan.hand.render import iter_hand_chunks

        ranges = {"train": (0, section.n_train), "test": (section.n_train, section.n_test)}

        def plan(start: int, n: int) -> SplitPlan:
            return SplitPlan(
                n=n,
                image_shape=(hand.size, hand.size),
                dtype="uint8",
                chunks=lambda: iter_hand_chunks(hand, n, section.seed, section.chunk_size,
                                                start=start, domain=domain,
                                                threads=section.threads),
                meta={"source": f"builtin-{name}", "seed": section.seed, "first_index": start,
                      "value_scaling": _coding(hand.depth_reference, hand.cube_mm)},
            )

        return {split: plan(start, n) for split, (start, n) in ranges.items()}

    def _nyu(self, p: HandParams, section: RenderSection | RealSection,
             root: Path | None) -> dict[str, SplitPlan]:
        """NYU's splits through the readers' driver (:func:`simgan.hand.nyu.plan_nyu_splits`),
        with what only the task knows added to their meta."""
        from simgan.core.ingest.common import PlanSettings
        from simgan.hand.nyu import plan_nyu_splits

        src = section.source if root is None else section.source.with_root(root)
        fmt = crop_format(p.render.hand)
        settings = PlanSettings((fmt.size, fmt.size), section.seed, section.chunk_size,
                                section.n_train, section.n_test)
        plans = plan_nyu_splits(src, NYU_KINDS[section.source.kind], fmt, settings)
        written = {"value_scaling": _coding(fmt.depth_reference, fmt.cube_mm),
                   "source_params": section.source.model_dump(mode="json"),
                   "seed": section.seed}
        return {split: replace(plan, meta={**plan.meta, **written})
                for split, plan in plans.items()}

    def synthetic_splits(self, p: HandParams, root: Path | None = None) -> dict[str, SplitPlan]:
        if isinstance(p.render.source, NyuSynthSource):
            return self._nyu(p, p.render, root)
        from simgan.hand.render import synthetic_domain

        return self._builtin(p.render.hand, p.render, synthetic_domain(), "synthetic")

    def real_splits(self, p: HandParams, root: Path | None = None) -> dict[str, SplitPlan]:
        if isinstance(p.real.source, NyuRealSource):
            return self._nyu(p, p.real, root)
        from simgan.hand.standin import standin_domain

        return self._builtin(p.render.hand, p.real, standin_domain(p.real.depth),
                             "standin-real")

    # ------------------------------------------------------------------------- estimator

    def train_estimator(
        self,
        p: HandParams,
        images: np.ndarray,
        labels: pd.DataFrame,
        checkpoint_dir: Path,
        on_metrics: MetricsCallback | None,
    ):
        from simgan.hand.estimator import train_pose_estimator

        state, _ = train_pose_estimator(images, keypoints_from_labels(labels), p.estimator,
                                        checkpoint_dir, on_metrics)
        return self.load_estimator(p, state)

    def load_estimator(self, p: HandParams, state: dict[str, Any]):
        from simgan.hand.estimator import build_hourglass

        model = build_hourglass(p.estimator, N_JOINTS)
        model.load_state_dict(state)
        return model.eval()

    def refiner_select_by(self, p: HandParams) -> str:
        return p.refiner.select_by

    def label_model_params(self, p: HandParams) -> PoseEstimatorParams | None:
        return p.refiner.label_model.estimator(p.estimator)

    def label_model(self, p: HandParams, state: dict[str, Any]):
        from simgan.hand.hourglass import LastStack

        return LastStack(self.load_estimator(p, state))

    def predict(self, p: HandParams, model, images: np.ndarray) -> pd.DataFrame:
        from simgan.core.images import pick_device
        from simgan.hand.estimator import predict_keypoints

        kp = predict_keypoints(model, images, p.evaluate.batch_size,
                               pick_device(p.evaluate.device), p.estimator.decode)
        return pd.DataFrame(kp.reshape(len(kp), 2 * N_JOINTS), columns=PRED_COLUMNS)

    # ------------------------------------------------------------------------- metrics

    def joint_errors(self, p: HandParams, predictions: pd.DataFrame, labels: pd.DataFrame
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(errors in ``evaluate.unit``, errors in crop px), both (N, 14)."""
        from simgan.hand.metrics import joint_errors_px, to_frame_px

        pred = predictions[PRED_COLUMNS].to_numpy(np.float64).reshape(-1, N_JOINTS, 2)
        crop = joint_errors_px(pred, keypoints_from_labels(labels))
        if p.evaluate.unit == "frame_px":
            return to_frame_px(crop, labels["crop_scale"].to_numpy()), crop
        return crop, crop

    def evaluate(
        self, p: HandParams, predictions: pd.DataFrame, labels: pd.DataFrame
    ) -> Evaluation:
        from simgan.hand.metrics import hand_curves, hand_summary, to_frame_px

        e = p.evaluate
        errors, crop = self.joint_errors(p, predictions, labels)
        summary = hand_summary(errors, within_px=e.within_px)
        summary["mean_crop_px"] = float(crop.mean())
        summary["mean_frame_px"] = float(
            to_frame_px(crop, labels["crop_scale"].to_numpy()).mean())
        thresholds = np.arange(0.0, e.curve_max_px + 1e-9, e.curve_step_px)
        curves = hand_curves(errors, thresholds)
        # pct_within: every task's headline curve (here the paper's: % of joints within d)
        curve = curves.rename(columns={"pct_joints_within": "pct_within"})
        per_image = pd.DataFrame({"id": labels["id"].to_numpy(),
                                  "mean_px": errors.mean(1), "worst_px": errors.max(1)})
        per_joint = pd.DataFrame(errors, columns=[f"err_j{k:02d}" for k in range(N_JOINTS)])
        pred = predictions[PRED_COLUMNS].reset_index(drop=True)
        per_image = pd.concat([per_image, per_joint, pred], axis=1)
        return Evaluation(summary=summary, curve=curve, per_image=per_image)

    def label_preservation(
        self,
        p: HandParams,
        synthetic: np.ndarray,
        refined: np.ndarray,
        labels: pd.DataFrame,
        estimator: EstimatorLoader,
    ) -> dict[str, float]:
        """The synthetic-trained estimator on synthetic train images and on their refined
        versions, scored against the same labels: refinement that moved the joints (or made
        the images unreadable to it) shows as a drop."""
        from simgan.hand.metrics import preservation_summary

        n = len(synthetic)
        k = min(p.compare.preservation_n, n)
        rows = np.arange(n) if k == n else np.sort(
            np.random.default_rng(0).choice(n, size=k, replace=False))
        model = estimator("synthetic")
        lab = labels.iloc[rows].reset_index(drop=True)
        errs = [self.joint_errors(p, self.predict(p, model, np.asarray(x[rows])), lab)[0]
                for x in (synthetic, refined)]
        out = preservation_summary(errs[0], errs[1], within_px=p.evaluate.within_px)
        out["n"] = float(k)
        return out


def _coding(reference: str, cube_mm: float) -> str:
    if reference == "paper":
        return "uint8: 0 background, else (2000 mm - depth) * 255 / 2000"
    return f"uint8: 0 background, else (back of the {cube_mm:g} mm cube - depth) * 255 / cube"
