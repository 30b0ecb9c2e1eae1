"""NYU hand pose dataset (Tompson et al. 2014) -> hand crops in the renderer's format.

Layout read: ``<root>/{train,test}/joint_data.mat`` and ``<kind>_<K>_<NNNNNNN>.png`` with kind
``depth`` (real Kinect) or ``synthdepth`` (NYU's own synthetic render of the fitted model),
Kinect K in 1..3 and frame N from 1. A PNG holds depth in mm as ``(G << 8) | B``.
``joint_data.mat`` holds ``joint_uvd`` and ``joint_xyz`` of shape (kinects, frames, 36, 3)
(uvd: pixel u, v and depth mm); the 14 evaluated joints are
:data:`simgan.hand.joints.NYU_EVAL_JOINTS`, in that order (our label columns j00..j13).

Crop (the common NYU protocol, e.g. DeepPrior's, and the same one the renderer emulates):
centre = mean of the 14 joints' (u, v, d) (``crop="joints"``) or the centroid and median depth
of the synthetic render's hand mask (``crop="synth_mask"``, the paper's choice; real pixels
outside the dilated mask are then cleared); a cube of ``cube_mm`` around the centre, i.e. a
square of ``cube_mm * f / d`` Kinect px, resampled to ``size`` px by nearest neighbour (depth
must not be interpolated across edges); depths outside the cube and missing readings (0) are
background; foreground coded by :func:`simgan.hand.joints.normalise_depth` (depth minus a
reference, as the paper's depth - 2000). Labels are the joints in crop px (pixel centres at
integers) and depth mm, with the crop's intrinsics (the columns of every hand source, see
:mod:`simgan.hand.joints`), numbered 0.. in output order.

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

Streaming: the same driver as the gaze readers (:mod:`simgan.core.ingest.driver`): a unit is
one row (a frame seen from one view, :class:`NyuFrame`), decoded by :func:`decode_frame`,
``chunk_frames`` per pool task, in spawned processes if ``workers > 0``, in order either way;
:func:`plan_nyu_splits` gives the task's split plans
(:func:`~simgan.core.ingest.driver.ingest_plan`).

Bad inputs, as the gaze readers report them (:mod:`simgan.core.ingest.common`): with
``skip_bad=False`` the first problem raises :class:`~simgan.core.ingest.common.IngestError`
(``"<file>: <field>: <problem>"``); with ``skip_bad=True`` the row is skipped and counted in an
:class:`~simgan.core.ingest.common.IngestReport`: problems found when planning are
:class:`~simgan.core.ingest.common.BadInput` items kept in ``NyuPlan.skipped`` and counted first,
as the driver's ``known_bad`` (whole split, before any row cap); those found when decoding
follow, in row order. The plan holds the report in an
:class:`~simgan.core.ingest.driver.IngestRun` (``late_meta``), so meta.json, MLflow and the
stage's log line get the same keys as gaze.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from simgan.core.ingest.common import (
    DECODE_ERRORS,
    BadInput,
    IngestError,
    IngestReport,
    IngestSourceBase,
    PlanSettings,
    walk_files,
)
from simgan.core.ingest.driver import ingest_plan, stream_chunks
from simgan.core.task import SplitPlan
from simgan.hand.joints import (
    N_JOINTS,
    NYU_CX,
    NYU_CY,
    NYU_EVAL_JOINTS,
    NYU_FX,
    NYU_FY,
    NYU_HEIGHT,
    NYU_WIDTH,
    joint_columns,
    normalise_depth,
)

Kind = Literal["depth", "synthdepth"]
N_NYU_JOINTS = 36
DEPTH_RANGE_MM = (100.0, 10000.0)
"""Plausible joint depths: a Kinect sees nothing nearer than ~0.5 m and NYU's hands are at
0.5-1.5 m; beyond these bounds a label is garbage (or not in mm)."""


class NyuSource(IngestSourceBase):
    """The keys of an NYU file source: ``path`` is the directory holding NYU's ``train/`` and
    ``test/`` (relative: to the project root, see :meth:`IngestSourceBase.with_root`)."""

    views: tuple[Annotated[int, Field(ge=1, le=3)], ...] = Field((1,), min_length=1, max_length=3,
                                   description="Kinect ids; the paper: (1,) and '3x' (1, 2, 3)")
    crop: Literal["joints", "synth_mask"] = Field(
        "joints", description="crop centre: the joints' mean, or the synthetic render's mask")
    mask_dilate_px: int = Field(3, ge=0, le=50, description="synth_mask: Kinect px")
    frame_step: int = Field(1, ge=1, le=10_000, description="every k-th frame (video frames)")
    chunk_frames: int = Field(64, ge=1, le=4096, description="frames per decoding task")

    @field_validator("views")
    @classmethod
    def _views(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v) or any(k not in (1, 2, 3) for k in v):
            raise ValueError(f"views must be distinct Kinect ids in 1..3, got {v}")
        return v

    #: the PNGs this source reads (``depth`` or ``synthdepth``; None: not known, all of them)
    depth_kind: ClassVar[Kind | None] = None

    def input_files(self) -> Iterator[tuple[str, Path]]:
        """``train/`` and ``test/``'s joint_data.mat and the PNGs this source reads (its own
        kind, and ``synthdepth`` too for ``crop: synth_mask``), not the RGB frames."""
        kinds = None if self.depth_kind is None else {self.depth_kind}
        if kinds is not None and self.crop == "synth_mask":
            kinds.add("synthdepth")

        def read(name: str) -> bool:
            if name == "joint_data.mat":
                return True
            if not name.endswith(".png"):
                return False
            return kinds is None or name.split("_", 1)[0] in kinds

        if not self.path.is_dir():
            raise IngestError(self.path, "path", "directory not found")
        for split in ("train", "test"):
            if (self.path / split).is_dir():
                yield from walk_files(f"path/{split}", self.path / split, keep=read)


@dataclass(frozen=True)
class CropFormat:
    """The crops every hand source produces: ``size`` px of a ``cube_mm`` cube, depth coded
    by :func:`simgan.hand.joints.normalise_depth` with ``depth_reference``."""

    size: int = 64
    cube_mm: float = 300.0
    depth_reference: Literal["cube", "paper"] = "cube"


# ----------------------------------------------------------------------------- files


def png_name(kind: Kind, kinect: int, frame: int) -> str:
    """``depth_1_0000001.png`` for Kinect 1, frame 1 (frames count from 1)."""
    return f"{kind}_{kinect}_{frame:07d}.png"


def decode_depth_png(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W) uint16 depth in mm from an NYU PNG: ``(G << 8) | B`` (R is unused).

    The image must be RGB(A) and, if ``size`` (width, height) is given, of that size (checked
    from the header, so an oversized image is refused before it is decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in ("RGB", "RGBA"):
                raise IngestError(path, "mode",
                                  f"expected an RGB PNG (depth in G and B), got {mode}")
            if size is not None and im.size != tuple(size):
                raise IngestError(path, "size", f"{im.size[0]}x{im.size[1]} px, expected "
                                  f"{size[0]}x{size[1]} (NYU's frame size)")
            rgb = np.asarray(im.convert("RGB") if mode == "RGBA" else im)
    except IngestError:
        raise
    except FileNotFoundError as e:
        raise IngestError(path, "file", "missing") from e
    except DECODE_ERRORS as e:  # includes UnidentifiedImageError and decompression bombs
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

    def units(self) -> NyuUnits:
        """The planned rows as the driver's unit sequence."""
        return NyuUnits(self)


class NyuFrame(NamedTuple):
    """The driver's unit: one planned row (a frame seen from one view), picklable."""

    split_dir: Path
    kind: Kind
    kinect: int
    frame: int
    uvd: np.ndarray  # (14, 3) Kinect-frame labels
    samples: int = 1


class NyuUnits:
    """A plan's rows as :class:`NyuFrame` units, made when sliced (a split can hold 10^5)."""

    def __init__(self, plan: NyuPlan):
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, rows: slice) -> list[NyuFrame]:
        p = self.plan
        return [NyuFrame(p.split_dir, p.kind, int(k), int(f), uvd)
                for k, f, uvd in zip(p.kinect[rows], p.frame[rows], p.uvd[rows], strict=True)]


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
    label_problem = label_problems(uvd14)
    keep_k, keep_f, skipped = [], [], []
    for f in frames:
        for k in params.views:
            problem = None
            if label_problem[k - 1, f - 1]:
                problem = IngestError(mat, "joint_uvd",
                                      f"kinect {k} frame {f}: {label_problem[k - 1, f - 1]}")
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


def label_problems(uvd14: np.ndarray) -> np.ndarray:
    """Per (kinect, frame) of (K, F, 14, 3) joints: '' if plausible, else what is wrong.

    Plausible: finite; every joint on the 640x480 frame (u, v with pixel centres at integers,
    so within [-0.5, 639.5] x [-0.5, 479.5]); depth within :data:`DEPTH_RANGE_MM`."""
    lab = np.asarray(uvd14, dtype=np.float64)
    finite = np.isfinite(lab).all(axis=(-1, -2))
    safe = np.where(np.isfinite(lab), lab, 0.0)
    u, v, d = safe[..., 0] + 0.5, safe[..., 1] + 0.5, safe[..., 2]
    off = ((u < 0) | (u > NYU_WIDTH) | (v < 0) | (v > NYU_HEIGHT)).any(axis=-1)
    lo, hi = DEPTH_RANGE_MM
    nonpositive = (d <= 0).any(axis=-1)
    far = ((d < lo) | (d > hi)).any(axis=-1)
    out = np.full(finite.shape, "", dtype=object)
    out[far] = f"depth outside [{lo:.0f}, {hi:.0f}] mm"
    out[nonpositive] = "depth <= 0"
    out[off] = f"a joint off the {NYU_WIDTH}x{NYU_HEIGHT} frame"
    out[~finite] = "not finite"
    return out


# ----------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class NyuOptions:
    """What decoding a frame needs besides the frame (sent to the workers): the crop centre
    rule and the crop format."""

    crop: Literal["joints", "synth_mask"]
    mask_dilate_px: int
    fmt: CropFormat

    @classmethod
    def of(cls, params: NyuSource, fmt: CropFormat) -> NyuOptions:
        return cls(params.crop, params.mask_dilate_px, fmt)


def _process_frame(unit: NyuFrame, opt: NyuOptions) -> tuple[np.ndarray, np.ndarray, Crop]:
    """One frame -> (crop codes (S, S) uint8, crop labels (14, 3), crop)."""
    fmt = opt.fmt
    frame = (NYU_WIDTH, NYU_HEIGHT)
    depth = decode_depth_png(unit.split_dir / png_name(unit.kind, unit.kinect, unit.frame), frame)
    mask = None
    if opt.crop == "synth_mask":
        synth_path = unit.split_dir / png_name("synthdepth", unit.kinect, unit.frame)
        synth = depth if unit.kind == "synthdepth" else decode_depth_png(synth_path, frame)
        if synth.shape != depth.shape:
            raise IngestError(synth_path, "shape", f"{synth.shape} differs from {depth.shape}")
        centre = mask_centre(synth)
        if centre is None:
            raise IngestError(synth_path, "mask", "no hand pixels")
        mask = _dilate(synth > 0, opt.mask_dilate_px)
    else:
        centre = tuple(unit.uvd.mean(axis=0))
    crop = crop_from_centre(*centre, fmt.cube_mm, fmt.size)
    if mask is not None:
        depth = np.where(mask, depth, 0)
    z = crop_depth(depth, crop, fmt.size)
    codes = normalise_depth(z[None], np.array([crop.ref_depth]), fmt.cube_mm,
                            fmt.depth_reference)
    return codes[0], to_crop_uv(unit.uvd, crop), crop


def decode_frame(unit: NyuFrame, opt: NyuOptions, skip_bad: bool = False
                 ) -> tuple[np.ndarray, dict[str, np.ndarray], list[BadInput]]:
    """The driver's decode: one row -> (image (1, S, S), its label columns, no problems).

    Columns: the 14 joints in crop px and mm (NYU order), the crop's reference depth, scale
    (crop px per Kinect px) and intrinsics, kinect, frame and file; the driver numbers the
    rows (``id``). A bad file raises :class:`IngestError` (the driver counts or raises it).
    """
    code, labels, c = _process_frame(unit, opt)
    cols: dict[str, np.ndarray] = dict(zip(joint_columns(), labels.reshape(-1, 1), strict=True))
    cols.update({
        "ref_depth_mm": np.array([c.ref_depth], dtype=np.float64),
        "crop_scale": np.array([c.scale_u], dtype=np.float64),
        "focal_u": np.array([NYU_FX * c.scale_u], dtype=np.float64),
        "focal_v": np.array([NYU_FY * c.scale_v], dtype=np.float64),
        "center_u": np.array([(NYU_CX - c.left) * c.scale_u - 0.5], dtype=np.float64),
        "center_v": np.array([(NYU_CY - c.top) * c.scale_v - 0.5], dtype=np.float64),
        "kinect": np.array([unit.kinect], dtype=np.int64),
        "frame": np.array([unit.frame], dtype=np.int64),
        "file": np.array([png_name(unit.kind, unit.kinect, unit.frame)]),
    })
    return code[None], cols, []


def _driver_args(plan: NyuPlan, params: NyuSource, fmt: CropFormat) -> dict[str, Any]:
    """The driver's arguments for a plan (shared by the task's plans and iter_nyu_chunks)."""
    return dict(units=plan.units(), decode=decode_frame, options=NyuOptions.of(params, fmt),
                out_shape=(fmt.size, fmt.size), workers=params.workers,
                skip_bad=params.skip_bad, known_bad=plan.skipped,
                task_size=params.chunk_frames, number_rows="id", source=str(plan.split_dir))


def iter_nyu_chunks(
    plan: NyuPlan,
    params: NyuSource,
    fmt: CropFormat,
    report: IngestReport | None = None,
    chunk_size: int | None = None,
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Yield ``(images uint8 (n, S, S), labels)`` for the planned frames, in plan order, in
    chunks of ``chunk_size`` rows (default: ``params.chunk_frames``; the last one shorter).

    ``report`` gets the run's counts, as for every reader
    (:func:`simgan.core.ingest.driver.stream_chunks`): the planning problems (``plan.skipped``)
    first (without ``skip_bad`` the first one raises), then ``units`` = rows handed to
    decoding, ``rows`` = rows yielded, each frame that failed decoding one skip, and
    ``seconds``.
    """
    return stream_chunks(**_driver_args(plan, params, fmt),
                         chunk_size=chunk_size or params.chunk_frames,
                         report=report if report is not None else IngestReport())


def plan_nyu_splits(src: NyuSource, kind: Kind, fmt: CropFormat, settings: PlanSettings
                    ) -> dict[str, SplitPlan]:
    """train/test plans of ``src.path/{train,test}`` (planned now, decoded when iterated).

    A row cap (``settings.max_train`` / ``max_test``) keeps a seeded subset in file order
    (:meth:`NyuPlan.take`); a split without any usable frame is an error.
    """
    return {split: _split_plan(src, kind, fmt, settings, split) for split in ("train", "test")}


def _split_plan(src: NyuSource, kind: Kind, fmt: CropFormat, settings: PlanSettings,
                split: str) -> SplitPlan:
    usable = plan_nyu(src.path / split, kind, src)
    if len(usable) == 0:
        first = f"; first: {usable.skipped[0]}" if usable.skipped else ""
        raise IngestError(src.path / split, "frames", f"no usable frame ({len(usable.skipped)} "
                          f"bad frame(s) skipped{first}): fix or remove them")
    plan = usable.take(settings.subset(split, len(usable)))
    meta = {"source": f"nyu-{kind}", "source_path": str(src.path), "nyu_split": split,
            **settings.rows_meta(split, len(usable))}
    return ingest_plan(**_driver_args(plan, src, fmt), n_upper=len(plan),
                       chunk_size=settings.chunk_size, meta=meta)
