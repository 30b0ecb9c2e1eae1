"""A plain directory of eye crops (PNG/JPG, any size and mode) -> 35x55 grayscale uint8,
with gaze labels from an optional ``labels.csv``.

For people whose data is neither UnityEyes nor MPIIGaze: export crops and a CSV, change params.

``labels.csv`` (header required): ``file`` (a name in the directory), then either
``gaze_x, gaze_y, gaze_z`` (any length, MPIIGaze camera convention: x right, y down, z away
from the camera, so a gaze at the camera has z < 0) or ``pitch, yaw`` in radians
(``pitch = asin(-y)``, ``yaw = atan2(-x, -z)``). When both are present the vector is used.
Optional ``pupil_u, pupil_v``: the pupil centre in the *source* image's pixels (u right, v down,
integers at pixel centres); they are mapped into the 35x55 crop (the drift metric needs them
on the synthetic side) and are NaN when absent.

Rows are checked (:class:`LabelTable`): numbers where numbers belong (text is named, not
coerced to NaN), a finite non-zero vector, pitch in [-pi/2, pi/2] and yaw in [-pi, pi], a pupil
given whole and lying on its source image. A bad row makes its image a bad input.

Without ``labels.csv`` the folder is *unlabelled*: labels hold only ``id`` and ``file`` and the
plan's meta says ``labelled: false``. That is enough for the refiner's real side; evaluation
and the 'real' reference estimator check :func:`simgan.core.ingest.common.require_gaze_labels`.

Images: every ``*.png``, ``*.jpg``, ``*.jpeg`` directly in the directory (not recursive; any
case), sorted by name. Colour and palette modes are converted with PIL's ITU-R 601 luma;
16-bit images are scaled by 255/65535 (``I;16``, or ``I`` with values above 255); 32-bit
integers beyond 16 bits and float images are refused (no agreed scale); alpha is ignored.
``resize``: ``stretch`` maps the whole image to 35x55 (crops already framed like MPIIGaze's),
``center_crop`` first cuts the largest centred 55:35 box (keeps the aspect).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import Field, model_validator

from simgan.core.ingest.common import (
    DECODE_ERRORS,
    BadInput,
    IngestError,
    IngestSourceBase,
    PlanSettings,
    equalize_batch,
    first_bad_or,
    listed_names,
    random_split,
    to_gray,
    walk_files,
)
from simgan.core.ingest.driver import ingest_plan
from simgan.core.task import SplitPlan
from simgan.gaze.labels import OUT_SHAPE, gaze_columns, gaze_problems
from simgan.gaze.metrics import pitchyaw_to_vector

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
LABELS_FILE = "labels.csv"
VECTOR = ("gaze_x", "gaze_y", "gaze_z")
ANGLES = ("pitch", "yaw")
PUPIL = ("pupil_u", "pupil_v")
PUPIL_FIELD = "pupil_u/pupil_v"

Resize = Literal["stretch", "center_crop"]


@dataclass(frozen=True)
class FolderOptions:
    out_shape: tuple[int, int] = OUT_SHAPE
    resize: Resize = "stretch"
    equalize: bool = False


class FolderUnit(NamedTuple):
    """One image; ``gaze`` is the label vector (None for an unlabelled folder), ``row`` its
    labels.csv row number (1 = first data row; 0 = labelled folder but no row: bad input);
    ``problem`` what is wrong with that row ('' if nothing), in its column ``problem_field``."""

    id: int
    path: str
    labels_file: str | None
    row: int
    gaze: tuple[float, float, float] | None
    gaze_field: str
    pupil: tuple[float, float]
    problem: str = ""
    problem_field: str = ""


@dataclass(frozen=True)
class FolderIndex:
    """The images of one folder, their label rows, and labels.csv rows naming no image."""

    root: str
    units: list[FolderUnit]
    labelled: bool
    orphan_rows: list[BadInput]


def resize_box(size: tuple[int, int], out_shape: tuple[int, int], mode: Resize
               ) -> tuple[float, float, float, float]:
    """The source box (corner coordinates) mapped onto the output image."""
    w, h = size
    oh, ow = out_shape
    if mode == "stretch":
        return 0.0, 0.0, float(w), float(h)
    if w * oh > h * ow:  # too wide: cut the sides
        cw = h * ow / oh
        return (w - cw) / 2, 0.0, (w + cw) / 2, float(h)
    ch = w * oh / ow
    return 0.0, (h - ch) / 2, float(w), (h + ch) / 2


def map_points(uv: np.ndarray, box: tuple[float, float, float, float],
               out_shape: tuple[int, int]) -> np.ndarray:
    """Source (u, v) at pixel centres -> output (u, v) at pixel centres for a box resize."""
    x0, y0, x1, y1 = box
    oh, ow = out_shape
    scale = np.array([ow / (x1 - x0), oh / (y1 - y0)])
    return (np.asarray(uv, dtype=np.float64) + 0.5 - np.array([x0, y0])) * scale - 0.5


def decode_image(path: str, out_shape: tuple[int, int], mode: Resize
                 ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Read one image as (H, W) uint8 (antialiased bilinear, PIL); errors name the file."""
    try:
        with Image.open(path) as im:
            im.load()
            gray = to_gray(im, path)
            box = resize_box(gray.size, out_shape, mode)
            out = gray.resize((out_shape[1], out_shape[0]), Image.Resampling.BILINEAR, box=box)
            return np.asarray(out, dtype=np.uint8), box
    except IngestError:
        raise
    except DECODE_ERRORS as exc:
        raise IngestError(path, "image", f"cannot decode (truncated?): {exc}") from None


def check_pupil(unit: FolderUnit, box: tuple[float, float, float, float], name: str) -> None:
    """A given pupil must lie on its source image (``box`` of a stretch is the whole image;
    of a centre crop, the image is the larger of the two)."""
    u, v = unit.pupil
    if np.isnan(u):
        return
    w, h = _image_size(box)
    if not (0 <= u + 0.5 <= w and 0 <= v + 0.5 <= h):
        raise IngestError(unit.labels_file, PUPIL_FIELD, f"({u:.6g}, {v:.6g}) outside the {w}x{h} "
                          f"image (row {unit.row}, {name}): pupil in source image pixels?")


def decode(unit: FolderUnit, opt: FolderOptions, skip_bad: bool = False
           ) -> tuple[np.ndarray, dict[str, np.ndarray], list[BadInput]]:
    """One image -> ((1, H, W) uint8, label columns, []). Raises IngestError."""
    name = os.path.basename(unit.path)
    if unit.labels_file is not None:
        if unit.row == 0:
            raise IngestError(unit.labels_file, "file", f"no row for image {name!r}")
        if unit.problem:
            raise IngestError(unit.labels_file, unit.problem_field,
                              f"{unit.problem} (row {unit.row}, {name})")
    pixels, box = decode_image(unit.path, opt.out_shape, opt.resize)
    if unit.labels_file is not None:
        check_pupil(unit, box, name)
    images = pixels[None]
    if opt.equalize:
        images = equalize_batch(images)
    cols: dict[str, np.ndarray] = {
        "id": np.array([unit.id], dtype=np.int64),
        "file": np.array([name], dtype=object),
    }
    if unit.labels_file is not None:
        cols.update(gaze_columns(np.array([unit.gaze])))
        uv = map_points(np.array([unit.pupil]), box, opt.out_shape)
        cols["pupil_u"] = uv[:, 0]
        cols["pupil_v"] = uv[:, 1]
    return images, cols, []


def _image_size(box: tuple[float, float, float, float]) -> tuple[int, int]:
    """The source image's (width, height) from its :func:`resize_box` (a centred box, so
    the image spans x0 + x1 by y0 + y1)."""
    x0, y0, x1, y1 = box
    return round(x0 + x1), round(y0 + y1)


@dataclass(frozen=True)
class LabelTable:
    """labels.csv, checked: gaze vectors (N, 3), pupils (N, 2; NaN = not given) and, per row,
    the first problem found ('' if none) and the column it is in."""

    files: list
    vectors: np.ndarray
    gaze_field: str
    pupil: np.ndarray
    problem: np.ndarray
    problem_field: np.ndarray


def _numbers(frame: pd.DataFrame, cols: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Columns as float64 (N, k) and, per row, the first cell that is text but not a number
    ('' if none): an empty cell is NaN, 'abc' is a problem, not a silent NaN."""
    raw = frame[list(cols)]
    num = raw.apply(pd.to_numeric, errors="coerce")
    text = (num.isna() & raw.notna()).to_numpy()
    first = np.full(len(frame), "", dtype=object)
    for j in range(len(cols) - 1, -1, -1):  # the leftmost bad cell wins
        bad = text[:, j]
        first[bad] = [f"not a number: {cols[j]} = {str(x)[:40]!r}" for x in raw.iloc[:, j][bad]]
    return num.to_numpy(np.float64), first


def _angle_problems(a: np.ndarray) -> np.ndarray:
    """Per row: pitch in [-pi/2, pi/2] and yaw in [-pi, pi] (radians), else what is wrong."""
    with np.errstate(invalid="ignore"):
        pitch_bad = np.abs(a[:, 0]) > np.pi / 2
        yaw_bad = np.abs(a[:, 1]) > np.pi
    out = np.where(~np.isfinite(a).all(axis=1), "NaN or infinite angle", "")
    out = np.where((out == "") & pitch_bad, "pitch outside [-pi/2, pi/2] (radians expected)", out)
    return np.where((out == "") & yaw_bad, "yaw outside [-pi, pi] (radians expected)", out)


def _read_labels(path: Path) -> LabelTable:
    """labels.csv -> a :class:`LabelTable`. Structural problems (not a file, no file column,
    no gaze columns, duplicate names) raise: they are not one bad row."""
    if not path.is_file():
        raise IngestError(path, LABELS_FILE, "not a regular file (a directory, or a broken "
                          "link?): make it the CSV of labels, or remove it (unlabelled folder)")
    try:
        frame = pd.read_csv(path, dtype={"file": str}, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise IngestError(path, "csv", f"unreadable: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    cols = set(frame.columns)
    if "file" not in cols:
        raise IngestError(path, "file", f"column missing (columns: {list(frame.columns)})")
    if set(VECTOR) <= cols:
        v, problem = _numbers(frame, VECTOR)
        field = "gaze_x/gaze_y/gaze_z"
        problem = np.where(problem == "", gaze_problems(v), problem)
    elif set(ANGLES) <= cols:
        a, problem = _numbers(frame, ANGLES)
        v = pitchyaw_to_vector(a[:, 0], a[:, 1])
        field = "pitch/yaw"
        problem = np.where(problem == "", _angle_problems(a), problem)
    else:
        raise IngestError(path, "gaze_x/gaze_y/gaze_z or pitch/yaw",
                          f"columns missing (columns: {list(frame.columns)})")
    dup = frame["file"][frame["file"].duplicated()]
    if len(dup):
        raise IngestError(path, "file", f"duplicate rows for {sorted(set(dup))[:5]}")
    problem_field = np.where(problem != "", field, "")
    pupil = np.full((len(frame), 2), np.nan)
    if set(PUPIL) <= cols:
        pupil, bad = _numbers(frame, PUPIL)
        bad = np.where(bad == "", _pupil_problems(pupil), bad)
        use = (problem == "") & (bad != "")
        problem = np.where(use, bad, problem)
        problem_field = np.where(use, PUPIL_FIELD, problem_field)
    return LabelTable(frame["file"].tolist(), v, field, pupil, problem.astype(str),
                      problem_field.astype(str))


def _pupil_problems(uv: np.ndarray) -> np.ndarray:
    """Per row: both pupil coordinates or neither (NaN), and no infinity."""
    nan = np.isnan(uv)
    out = np.where(nan[:, 0] != nan[:, 1], "one of pupil_u, pupil_v given without the other", "")
    return np.where((out == "") & np.isinf(uv).any(axis=1), "infinite coordinate", out)


def index_folder(root: str | Path, first_id: int = 0) -> FolderIndex:
    """List the images of ``root`` and match them to labels.csv rows (if the file exists)."""
    root = Path(root)
    if not root.is_dir():
        raise IngestError(root, "path", "directory not found")
    names = sorted(listed_names(root, lambda n: os.path.splitext(n)[1].lower() in IMAGE_EXTS))
    if not names:
        raise IngestError(root, "path", f"no images ({', '.join(IMAGE_EXTS)}) in this directory")
    labels_path = root / LABELS_FILE
    if not os.path.lexists(labels_path):
        units = [FolderUnit(first_id + i, str(root / n), None, 0, None, "", (np.nan, np.nan))
                 for i, n in enumerate(names)]
        return FolderIndex(str(root), units, labelled=False, orphan_rows=[])
    table = _read_labels(labels_path)
    row_of = {f: i for i, f in enumerate(table.files)}
    units = []
    for i, n in enumerate(names):
        r = row_of.get(n)
        if r is None:
            units.append(FolderUnit(first_id + i, str(root / n), str(labels_path), 0,
                                    (np.nan, np.nan, np.nan), table.gaze_field, (np.nan, np.nan)))
        else:
            units.append(FolderUnit(first_id + i, str(root / n), str(labels_path), r + 1,
                                    tuple(float(x) for x in table.vectors[r]), table.gaze_field,
                                    (float(table.pupil[r, 0]), float(table.pupil[r, 1])),
                                    str(table.problem[r]), str(table.problem_field[r])))
    present = set(names)
    orphans = [BadInput(str(labels_path), "file", f"row {i + 1}: no image named {f!r}", 0)
               for i, f in enumerate(table.files) if f not in present]
    return FolderIndex(str(root), units, labelled=True, orphan_rows=orphans)


# ----------------------------------------------------------------------------- params, plan


class FolderSource(IngestSourceBase):
    """A folder of crops on either side (``gaze.render.source`` or ``gaze.real.source``).
    The test split is ``test_path`` (another folder) when given, else a seeded
    ``test_fraction`` of ``path``'s images (seed and the most rows per split:
    :class:`PlanSettings`)."""

    kind: Literal["folder"] = "folder"
    test_path: Path | None = None
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    resize: Resize = "stretch"
    equalize: bool = False

    def input_files(self) -> Iterator[tuple[str, Path]]:
        """The images directly in ``path`` (and ``test_path``) and their labels.csv."""
        def read(name: str) -> bool:
            return name == LABELS_FILE or os.path.splitext(name)[1].lower() in IMAGE_EXTS

        for key, base in self.path_keys():
            yield from walk_files(key, base, keep=read)

    @model_validator(mode="after")
    def _one_test_source(self) -> FolderSource:
        if self.test_path is not None and self.test_fraction > 0:
            raise ValueError("test_fraction must be 0 when test_path is given")
        return self


def plan_folder(src: FolderSource, settings: PlanSettings | None = None
                ) -> dict[str, SplitPlan]:
    """train/test plans over one folder (or two). Rows of labels.csv naming no image are bad
    inputs (raised now, or counted with ``skip_bad``)."""
    settings = settings or PlanSettings(OUT_SHAPE)
    main = index_folder(src.path)
    bad = first_bad_or(list(main.orphan_rows), src.skip_bad)
    if src.test_path is not None:
        other = index_folder(src.test_path, first_id=len(main.units))
        test_bad = first_bad_or(list(other.orphan_rows), src.skip_bad)
        parts = {"train": (main.units, main, bad), "test": (other.units, other, test_bad)}
    else:
        train, test = random_split(len(main.units), src.test_fraction, settings.seed)
        parts = {"train": ([main.units[i] for i in train], main, bad),
                 "test": ([main.units[i] for i in test], main, [])}
    opt = FolderOptions(tuple(settings.out_shape), src.resize, src.equalize)
    plans = {}
    for split, (units, idx, known) in parts.items():
        keep = settings.subset(split, len(units))
        chosen = units if keep is None else [units[i] for i in keep]
        meta = {"source": "folder", "source_path": idx.root, "labelled": idx.labelled,
                "value_scaling": "uint8 gray [0, 255]", **settings.rows_meta(split, len(units))}
        plans[split] = ingest_plan(chosen, decode, opt, n_upper=len(chosen),
                                   out_shape=settings.out_shape, workers=src.workers,
                                   chunk_size=settings.chunk_size, skip_bad=src.skip_bad,
                                   meta=meta, known_bad=known)
    return plans
