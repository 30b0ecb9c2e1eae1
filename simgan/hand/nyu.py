"""NYU hand pose dataset (Tompson et al. 2014) -> hand crops in the renderer's format.

Layout read: ``<root>/{train,test}/joint_data.mat`` and ``<kind>_<K>_<NNNNNNN>.png`` with kind
``depth`` (real Kinect) or ``synthdepth`` (NYU's own synthetic render of the fitted model),
Kinect K in 1..3 and frame N from 1. A PNG holds depth in mm as ``(G << 8) | B``.
``joint_data.mat`` holds ``joint_uvd`` and ``joint_xyz`` of shape (kinects, frames, 36, 3)
(uvd: pixel u, v and depth mm); the 14 evaluated joints are
:data:`simgan.hand.render.NYU_EVAL_JOINTS`, in that order (our label columns j00..j13).

Crop (the common NYU protocol, e.g. DeepPrior's, and the same one the renderer emulates):
centre = mean of the 14 joints' (u, v, d) (``crop="joints"``) or the centroid and median depth
of the synthetic render's hand mask (``crop="synth_mask"``, the paper's choice; real pixels
outside the dilated mask are then cleared); a cube of ``cube_mm`` around the centre, i.e. a
square of ``cube_mm * f / d`` Kinect px, resampled to ``size`` px by nearest neighbour (depth
must not be interpolated across edges); depths outside the cube and missing readings (0) are
background; foreground coded by :func:`simgan.hand.render.normalise_depth` (depth minus a
reference, as the paper's depth - 2000). Labels are the joints in crop px (pixel centres at
integers) and depth mm, with the crop's intrinsics (see the renderer's label columns).

Params: :class:`NyuSource` holds what is particular to reading NYU (``path``, views, crop
centre, frame step, bad inputs, workers); the crop format (``size``, ``cube_mm``,
``depth_reference``) is a :class:`CropFormat` the hand task takes from ``hand.render.hand``,
so every hand source, builtin or NYU, synthetic or real, produces the same crops by
construction. The ``kind`` of a source (``nyu_synth``, ``nyu``) is added in
:mod:`simgan.hand.task`, with the other hand sources.

Which frames: every ``frame_step``-th frame (NYU's frames are consecutive video frames, so
neighbours are near duplicates; a step > 1 thins them out evenly), each from every view in
``views``; frames failing the cheap checks are dropped (``skip_bad``) or raise; a row cap
(the task's ``n_train`` / ``n_test``) then keeps a seeded subset, in file order
(:meth:`NyuPlan.take`).

Bad inputs, as the gaze readers report them (:mod:`simgan.core.ingest.common`): with
``skip_bad=False`` the first problem raises :class:`~simgan.core.ingest.common.IngestError`
(``"<file>: <field>: <problem>"``); with ``skip_bad=True`` the row (a frame seen from one
view) is skipped and counted in an :class:`~simgan.core.ingest.common.IngestReport`: problems found
when planning are :class:`~simgan.core.ingest.common.BadInput` items kept in ``NyuPlan.skipped`` and
counted first, as the driver's ``known_bad`` (whole split, before any row cap); those found when
decoding follow, in row order. The task's plan holds the report in an
:class:`~simgan.core.ingest.driver.IngestRun` (``late_meta``), so meta.json, MLflow and the stage's
log line get the same keys as gaze. Decoding runs in a process pool if ``workers > 0``
(spawned, as in :mod:`simgan.core.ingest.driver`: a fork of a stage holding MLflow or torch threads
can deadlock); chunks come back in order either way.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from simgan.core.ingest.common import BadInput, IngestError, IngestReport, IngestSourceBase
from simgan.hand.render import (
    N_JOINTS,
    NYU_CX,
    NYU_CY,
    NYU_EVAL_JOINTS,
    NYU_FX,
    NYU_FY,
    joint_columns,
    normalise_depth,
)

Kind = Literal["depth", "synthdepth"]
N_NYU_JOINTS = 36


class NyuSource(IngestSourceBase):
    """The keys of an NYU file source: ``path`` is the directory holding NYU's ``train/`` and
    ``test/`` (relative: to the project root, see :meth:`IngestSourceBase.with_root`)."""

    views: tuple[int, ...] = Field((1,), min_length=1, max_length=3,
                                   description="Kinect ids; the paper: (1,) and '3x' (1, 2, 3)")
    crop: Literal["joints", "synth_mask"] = Field(
        "joints", description="crop centre: the joints' mean, or the synthetic render's mask")
    mask_dilate_px: int = Field(3, ge=0, le=50, description="synth_mask: Kinect px")
    frame_step: int = Field(1, ge=1, description="every k-th frame (consecutive video frames)")
    chunk_frames: int = Field(64, ge=1, le=4096, description="frames per decoding task")

    @field_validator("views")
    @classmethod
    def _views(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v) or any(k not in (1, 2, 3) for k in v):
            raise ValueError(f"views must be distinct Kinect ids in 1..3, got {v}")
        return v


@dataclass(frozen=True)
class CropFormat:
    """The crops every hand source produces: ``size`` px of a ``cube_mm`` cube, depth coded
    by :func:`simgan.hand.render.normalise_depth` with ``depth_reference``."""

    size: int = 64
    cube_mm: float = 300.0
    depth_reference: Literal["cube", "paper"] = "cube"


# ----------------------------------------------------------------------------- files


def png_name(kind: Kind, kinect: int, frame: int) -> str:
    """``depth_1_0000001.png`` for Kinect 1, frame 1 (frames count from 1)."""
    return f"{kind}_{kinect}_{frame:07d}.png"


def decode_depth_png(path: str | Path) -> np.ndarray:
    """(H, W) uint16 depth in mm from an NYU PNG: ``(G << 8) | B`` (R is unused)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in ("RGB", "RGBA"):
                raise IngestError(path, "mode",
                                  f"expected an RGB PNG (depth in G and B), got {mode}")
            rgb = np.asarray(im.convert("RGB") if mode == "RGBA" else im)
    except IngestError:
        raise
    except FileNotFoundError as e:
        raise IngestError(path, "file", "missing") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise IngestError(path, "image", f"cannot decode ({e})") from e
    if rgb.ndim != 3 or rgb.dtype != np.uint8:
        raise IngestError(path, "image", f"unexpected pixel array {rgb.dtype} {rgb.shape}")
    return (rgb[..., 1].astype(np.uint16) << 8) | rgb[..., 2].astype(np.uint16)


@dataclass(frozen=True)
class JointData:
    """NYU labels of one split: (kinects, frames, 36, 3) float64 arrays."""

    uvd: np.ndarray
    xyz: np.ndarray

    @property
    def n_kinects(self) -> int:
        return int(self.uvd.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.uvd.shape[1])


def read_joint_data(path: str | Path) -> JointData:
    """Read and check ``joint_data.mat`` (MATLAB v5, as NYU ships it; scipy.io.loadmat)."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise IngestError(path, "file", "missing")
    try:
        mat = loadmat(path, variable_names=["joint_uvd", "joint_xyz"])
    except Exception as e:  # scipy raises several types for corrupt files
        raise IngestError(path, "file", f"cannot read as a MATLAB file ({e})") from e
    arrays = {}
    for key in ("joint_uvd", "joint_xyz"):
        if key not in mat:
            raise IngestError(path, key, "missing")
        a = np.asarray(mat[key])
        if a.ndim != 4 or a.shape[2:] != (N_NYU_JOINTS, 3) or not 1 <= a.shape[0] <= 3:
            raise IngestError(path, key,
                              f"expected shape (kinects<=3, frames, 36, 3), got {a.shape}")
        if not np.issubdtype(a.dtype, np.number):
            raise IngestError(path, key, f"expected numbers, got {a.dtype}")
        arrays[key] = a.astype(np.float64)
    if arrays["joint_uvd"].shape != arrays["joint_xyz"].shape:
        raise IngestError(path, "joint_xyz", f"shape {arrays['joint_xyz'].shape} differs from "
                          f"joint_uvd {arrays['joint_uvd'].shape}")
    return JointData(uvd=arrays["joint_uvd"], xyz=arrays["joint_xyz"])


def select_joints(joints: np.ndarray) -> np.ndarray:
    """The 14 evaluated joints (..., 36, 3) -> (..., 14, 3), in NYU evaluation order."""
    return np.asarray(joints)[..., list(NYU_EVAL_JOINTS), :]


# ----------------------------------------------------------------------------- cropping


@dataclass(frozen=True)
class Crop:
    """A square crop of the Kinect frame: left/top edge (continuous px, pixel centres at
    integers), crop px per Kinect px, and the cube's centre depth (mm)."""

    left: float
    top: float
    scale_u: float
    scale_v: float
    ref_depth: float


def crop_from_centre(u: float, v: float, d: float, cube_mm: float, size: int) -> Crop:
    """The cube of ``cube_mm`` around (u, v, d) seen by NYU's camera, as ``size`` px."""
    side_u, side_v = cube_mm * NYU_FX / d, cube_mm * NYU_FY / d
    return Crop(u - side_u / 2.0, v - side_v / 2.0, size / side_u, size / side_v, d)


def crop_depth(depth: np.ndarray, crop: Crop, size: int) -> np.ndarray:
    """Nearest-neighbour resampling of a Kinect depth map (H, W) into the crop: (S, S) float32
    mm; pixels outside the frame are 0 (no reading)."""
    h, w = depth.shape
    i = np.arange(size, dtype=np.float64) + 0.5
    src_u = np.floor(crop.left + i / crop.scale_u + 0.5).astype(np.int64)  # round half up
    src_v = np.floor(crop.top + i / crop.scale_v + 0.5).astype(np.int64)
    ok_u, ok_v = (src_u >= 0) & (src_u < w), (src_v >= 0) & (src_v < h)
    out = depth[np.clip(src_v, 0, h - 1)[:, None], np.clip(src_u, 0, w - 1)[None, :]]
    out = np.where(ok_v[:, None] & ok_u[None, :], out, 0)
    return out.astype(np.float32)


def to_crop_uv(uvd: np.ndarray, crop: Crop) -> np.ndarray:
    """Kinect-frame (..., 3) u, v, d -> crop (..., 3) u, v (px), d (mm)."""
    out = np.array(uvd, dtype=np.float64, copy=True)
    out[..., 0] = (out[..., 0] - crop.left) * crop.scale_u - 0.5
    out[..., 1] = (out[..., 1] - crop.top) * crop.scale_v - 0.5
    return out


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=steps) if steps > 0 else mask


def mask_centre(synth: np.ndarray) -> tuple[float, float, float] | None:
    """Centroid (u, v) and median depth of a synthetic depth map's hand mask; None if empty."""
    vv, uu = np.nonzero(synth > 0)
    if vv.size == 0:
        return None
    return float(uu.mean()), float(vv.mean()), float(np.median(synth[vv, uu]))


# ----------------------------------------------------------------------------- planning


@dataclass
class NyuPlan:
    """The frames of one split that passed the cheap checks, in output order."""

    split_dir: Path
    kind: Kind
    kinect: np.ndarray  # (N,) int
    frame: np.ndarray  # (N,) int, from 1
    uvd: np.ndarray  # (N, 14, 3) Kinect-frame labels
    skipped: list[BadInput] = field(default_factory=list)  # rows dropped when planning

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def take(self, rows: np.ndarray | None) -> NyuPlan:
        """The plan restricted to ``rows`` (sorted positions: file order is kept); None: all.
        ``skipped`` stays that of the whole split (what planning found)."""
        if rows is None:
            return self
        rows = np.asarray(rows, dtype=np.int64)
        return NyuPlan(self.split_dir, self.kind, self.kinect[rows], self.frame[rows],
                       self.uvd[rows], list(self.skipped))


def plan_nyu(split_dir: str | Path, kind: Kind, params: NyuSource) -> NyuPlan:
    """List the frames to ingest from ``split_dir`` (NYU's ``train/`` or ``test/``).

    Checks that need no decoding: labels exist and are finite with positive depth, the view
    exists in the labels, the PNG (and, for ``synth_mask``, the synthdepth PNG) exists. Order:
    frame-major, then the views in ``params.views`` order.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise IngestError(split_dir, "directory", "missing")
    data = read_joint_data(split_dir / "joint_data.mat")
    mat = split_dir / "joint_data.mat"
    for k in params.views:
        if k > data.n_kinects:
            raise IngestError(mat, "joint_uvd", f"view {k} requested, labels hold {data.n_kinects}")
    frames = np.arange(1, data.n_frames + 1, params.frame_step)
    names = {e.name for e in os.scandir(split_dir) if e.name.endswith(".png")}
    need_mask = params.crop == "synth_mask"
    uvd14 = select_joints(data.uvd)  # (K, F, 14, 3)
    keep_k, keep_f, skipped = [], [], []
    for f in frames:
        for k in params.views:
            lab = uvd14[k - 1, f - 1]
            problem = None
            if not np.isfinite(lab).all():
                problem = IngestError(mat, "joint_uvd", f"kinect {k} frame {f}: not finite")
            elif (lab[:, 2] <= 0).any():
                problem = IngestError(mat, "joint_uvd", f"kinect {k} frame {f}: depth <= 0")
            else:
                for kd in (kind, "synthdepth") if need_mask else (kind,):
                    if png_name(kd, k, f) not in names:
                        problem = IngestError(split_dir / png_name(kd, k, f), "file", "missing")
                        break
            if problem is not None:
                if not params.skip_bad:
                    raise problem
                skipped.append(BadInput.from_error(problem))  # one row (frame x view)
                continue
            keep_k.append(k)
            keep_f.append(f)
    kin = np.asarray(keep_k, dtype=np.int64)
    frm = np.asarray(keep_f, dtype=np.int64)
    return NyuPlan(split_dir, kind, kin, frm, uvd14[kin - 1, frm - 1] if len(kin) else
                   np.zeros((0, N_JOINTS, 3)), skipped)


# ----------------------------------------------------------------------------- decoding


def _process_frame(
    split_dir: Path, kind: Kind, kinect: int, frame: int, uvd: np.ndarray, p: NyuSource,
    fmt: CropFormat,
) -> tuple[np.ndarray, np.ndarray, Crop]:
    """One frame -> (crop codes (S, S) uint8, crop labels (14, 3), crop)."""
    depth = decode_depth_png(split_dir / png_name(kind, kinect, frame))
    mask = None
    if p.crop == "synth_mask":
        synth_path = split_dir / png_name("synthdepth", kinect, frame)
        synth = depth if kind == "synthdepth" else decode_depth_png(synth_path)
        if synth.shape != depth.shape:
            raise IngestError(synth_path, "shape", f"{synth.shape} differs from {depth.shape}")
        centre = mask_centre(synth)
        if centre is None:
            raise IngestError(synth_path, "mask", "no hand pixels")
        mask = _dilate(synth > 0, p.mask_dilate_px)
    else:
        centre = tuple(uvd.mean(axis=0))
    crop = crop_from_centre(*centre, fmt.cube_mm, fmt.size)
    if mask is not None:
        depth = np.where(mask, depth, 0)
    z = crop_depth(depth, crop, fmt.size)
    codes = normalise_depth(z[None], np.array([crop.ref_depth]), fmt.cube_mm,
                            fmt.depth_reference)
    return codes[0], to_crop_uv(uvd, crop), crop


def _decode_chunk(
    split_dir: Path, kind: Kind, kinect: np.ndarray, frame: np.ndarray, uvd: np.ndarray,
    p: NyuSource, fmt: CropFormat,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[BadInput]]:
    """Worker task: frames -> (images (m, S, S), labels (m, 14, 3), crop table (m, 5) of the
    m kept frames, keep mask (n,), the skipped frames' problems). Picklable arguments only (it
    may run in another process); without ``skip_bad`` the first IngestError propagates."""
    n = frame.shape[0]
    images = np.zeros((n, fmt.size, fmt.size), dtype=np.uint8)
    labels = np.zeros((n, N_JOINTS, 3))
    crops = np.zeros((n, 5))
    keep = np.ones(n, dtype=bool)
    problems: list[BadInput] = []
    for i in range(n):
        try:
            img, lab, c = _process_frame(split_dir, kind, int(kinect[i]), int(frame[i]), uvd[i],
                                         p, fmt)
        except IngestError as e:
            if not p.skip_bad:
                raise
            keep[i] = False
            problems.append(BadInput.from_error(e))
            continue
        images[i], labels[i] = img, lab
        crops[i] = (c.left, c.top, c.scale_u, c.scale_v, c.ref_depth)
    return images[keep], labels[keep], crops[keep], keep, problems


def labels_frame(
    plan: NyuPlan, rows: np.ndarray, labels: np.ndarray, crops: np.ndarray, first_id: int
) -> pd.DataFrame:
    """Label table in the renderer's columns (id, j00_u .. j13_d, crop intrinsics) plus
    kinect, frame and file."""
    n = rows.shape[0]
    left, top, su, sv, ref = (crops[:, i] for i in range(5))
    frame = pd.DataFrame(labels.reshape(n, -1), columns=joint_columns())
    frame.insert(0, "id", np.arange(first_id, first_id + n, dtype=np.int64))
    frame["ref_depth_mm"] = ref
    frame["crop_scale"] = su
    frame["focal_u"] = NYU_FX * su
    frame["focal_v"] = NYU_FY * sv
    frame["center_u"] = (NYU_CX - left) * su - 0.5
    frame["center_v"] = (NYU_CY - top) * sv - 0.5
    frame["kinect"] = plan.kinect[rows]
    frame["frame"] = plan.frame[rows]
    frame["file"] = [png_name(plan.kind, int(k), int(f))
                     for k, f in zip(plan.kinect[rows], plan.frame[rows], strict=True)]
    return frame


def iter_nyu_chunks(
    plan: NyuPlan,
    params: NyuSource,
    fmt: CropFormat,
    report: IngestReport | None = None,
    chunk_size: int | None = None,
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Yield ``(images uint8 (n, S, S), labels)`` for the planned frames, in plan order.

    Frames are decoded ``params.chunk_frames`` per task (per worker process, if any); the
    chunks yielded hold ``chunk_size`` rows (the last one fewer), or, with None, one decoding
    task's frames (fewer if frames were skipped).

    ``report`` gets the run's counts, with the meaning the shared driver gives them
    (:func:`simgan.core.ingest.driver.stream_chunks`): the planning problems (``plan.skipped``) are
    counted first, as its ``known_bad`` (without ``skip_bad`` the first one raises), then
    ``units`` = rows (frame x view) handed to decoding, ``rows`` = rows yielded, each frame
    that failed decoding one skip, and ``seconds``.
    """
    report = report if report is not None else IngestReport()
    return _counted(plan, params, fmt, report, chunk_size)


def _counted(
    plan: NyuPlan, params: NyuSource, fmt: CropFormat, report: IngestReport,
    chunk_size: int | None,
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    t0 = time.perf_counter()
    try:
        for bad in plan.skipped:
            if not params.skip_bad:
                raise bad.error()
            report.skip(bad)
        decoded = _iter_decoded(plan, params, fmt, report)
        for images, labels in decoded if chunk_size is None else _regroup(decoded, chunk_size):
            report.rows += int(images.shape[0])
            yield images, labels
    finally:
        report.seconds = time.perf_counter() - t0


def _iter_decoded(
    plan: NyuPlan, params: NyuSource, fmt: CropFormat, report: IngestReport
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    bounds = [(lo, min(lo + params.chunk_frames, len(plan)))
              for lo in range(0, len(plan), params.chunk_frames)]

    def args(lo: int, hi: int) -> tuple:
        return (plan.split_dir, plan.kind, plan.kinect[lo:hi], plan.frame[lo:hi],
                plan.uvd[lo:hi], params, fmt)

    next_id = 0

    def emit(lo: int, hi: int, result: tuple) -> tuple[np.ndarray, pd.DataFrame]:
        nonlocal next_id
        images, labels, crops, keep, problems = result
        report.units += hi - lo
        for bad in problems:
            report.skip(bad)
        rows = np.arange(lo, hi)[keep]
        frame = labels_frame(plan, rows, labels, crops, next_id)
        next_id += rows.shape[0]
        return images, frame

    if params.workers == 0:
        for lo, hi in bounds:
            yield emit(lo, hi, _decode_chunk(*args(lo, hi)))
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(params.workers, mp_context=ctx) as pool:
        pending: deque[tuple[int, int, Future]] = deque()
        todo = iter(bounds)
        for lo, hi in todo:
            pending.append((lo, hi, pool.submit(_decode_chunk, *args(lo, hi))))
            if len(pending) >= 2 * params.workers:
                break
        while pending:
            lo, hi, fut = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((*nxt, pool.submit(_decode_chunk, *args(*nxt))))
            yield emit(lo, hi, fut.result())


def _regroup(
    chunks: Iterator[tuple[np.ndarray, pd.DataFrame]], size: int
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """The same rows in chunks of ``size`` (the last one fewer): the writer's chunk size is
    the task's ``chunk_size`` whatever the decoding task size."""
    if size <= 0:
        raise ValueError(f"chunk_size must be > 0 (got {size})")
    images: list[np.ndarray] = []
    labels: list[pd.DataFrame] = []
    pending = 0
    for img, lab in chunks:
        images.append(img)
        labels.append(lab)
        pending += img.shape[0]
        while pending >= size:
            allimg = np.concatenate(images)
            alllab = pd.concat(labels, ignore_index=True)
            yield allimg[:size], alllab.iloc[:size].reset_index(drop=True)
            images, labels = [allimg[size:]], [alllab.iloc[size:]]
            pending -= size
    if pending:
        yield np.concatenate(images), pd.concat(labels, ignore_index=True)
