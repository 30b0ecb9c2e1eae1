"""UnityEyes renders (``N.jpg`` + ``N.json``) -> 35x55 grayscale eye crops with gaze labels.

The JSON, as UnityEyes writes it: ``interior_margin_2d`` (16 points), ``caruncle_2d`` (7),
``iris_2d`` (32), each point a string ``"(x, y, z)"`` in Unity screen coordinates;
``eye_details.look_vec`` ``"(x, y, z, 0)"``, ``eye_details.pupil_size`` / ``iris_size``;
``head_pose`` ``"(a, b, c)"`` (degrees); lighting and region details (not used).

**2D points.** Unity screen coordinates put the origin at the *bottom-left corner* of the image
with y up, so pixel centres sit at half-integers. We flip with the image height, ``H - y``, and
shift by half a pixel to the project's convention (u right, v down, integers at pixel centres):
``u = x - 0.5``, ``v = H - y - 0.5``.

**Gaze.** ``look_vec`` is the gaze direction in the UnityEyes *camera* frame, which is Unity's
left-handed camera frame: x right, y up, z forward (away from the camera). MPIIGaze's camera
frame (:mod:`simgan.gaze.metrics`) is right-handed: x right, y down, z away from the camera. The
two differ by the direction of y only, so ``g = (x, -y, z)``; an eye looking at the camera has
``z < 0`` in both. Evidence, besides the handedness argument:
(1) in a UnityEyes sample with look_vec ``(-0.0015, 0.4025, -0.9154, 0)`` the iris points lie
above the eye corners in the y-up screen coordinates (iris y ~ 266-272 vs corners ~ 234): a
positive look_vec y looks up; z is negative for a roughly frontal gaze;
(2) GazeML (Park et al. 2018), which trains on UnityEyes and tests on MPIIGaze, places the iris
centre at ``centre + R * (look_x, -look_y)`` in its y-down crop (after its own x negation and a
yaw wrap by pi, which cancel), i.e. the same ``(x, -y, z)``;
(3) other public UnityEyes loaders negate only the y component.
:func:`look_vec_to_gaze` implements it; the tests check it on hand-computed cases and check
that the iris offset in the crop points along ``(g_x, g_y)``, as in the builtin renderer
(``pupil = eyeball + R * (g_x, g_y)``).

**Crop** (:func:`crop_geometry`), as the public SimGAN set-ups did: centred on the middle of the
bounding box of the interior margin, with the output aspect (55:35), and a width of
``crop_scale`` times the eye-corner span (distance between interior-margin points 0 and 8, the
inner and outer corner of the lid opening). Default ``crop_scale = 1.5``: GazeML uses 1.5 times
the corner span for its UnityEyes crops, and the builtin renderer draws the lid opening
``2 * 1.22 * 0.27 * 55 = 36`` px wide in a 55 px image, i.e. 55 / 36 = 1.52 times the span. So
UnityEyes crops frame the eye like the builtin eyes and like MPIIGaze's normalised eyes.
(carpedm20's TensorFlow SimGAN crops a fixed 140x84 px around the same centre; a fixed size
breaks when the render resolution changes, a scale from the eye width does not.) The eye's
points must lie on the image (:func:`check_in_image`), so a crop is never all border.

**Plausibility.** Every point has exactly three numbers (``look_vec`` three or four), so a
point with one missing cannot shift the next ones; JSON past the parser's limits (deep nesting,
integers over 4300 digits) is a bad file; optional numbers are NaN when absent and an error
when present but not finite; 16-bit renders are scaled, not clipped
(:func:`~simgan.core.ingest.common.to_gray`).

**Landmarks.** UnityEyes' interior margin starts at the inner corner (next to the caruncle,
image left), runs along the upper lid to the outer corner (point 8) and back along the lower
lid: exactly the order of the builtin renderer's ``lmNN_u/v`` columns
(:func:`simgan.gaze.render.landmarks`), so the same names are used. The pupil label
(``pupil_u/v``, what the drift metric starts from) is the centroid of the 32 iris points, and
``iris_radius`` their largest distance from it (the semi-major axis of the projected limbus),
both in crop pixels.

**Speed.** Decoding a 640x480 JPEG dominates. With ``fast_jpeg`` the decoder is asked for the
luma plane only and, when the eye is large, for a DCT-domain downscale by 2, 4 or 8 that still
leaves at least 2 source pixels per output pixel before the antialiased resize.
"""

from __future__ import annotations

import json
import math
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from PIL import Image
from pydantic import Field

from simgan.core.ingest.common import (
    DECODE_ERRORS,
    BadInput,
    IngestError,
    IngestSourceBase,
    PlanSettings,
    equalize_batch,
    listed_names,
    random_split,
    to_gray,
    walk_files,
)
from simgan.core.ingest.driver import ingest_plan
from simgan.core.task import SplitPlan
from simgan.gaze.labels import OUT_SHAPE, gaze_columns, gaze_problems

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
N_INTERIOR = 16
INNER_CORNER, OUTER_CORNER = 0, 8
DEFAULT_CROP_SCALE = 1.5
MIN_OVERSAMPLING = 2.0
"""Source pixels per output pixel kept when ``fast_jpeg`` lets the decoder downscale."""


# ----------------------------------------------------------------------------- parsing


def parse_point(text: Any, n: int, file: str, field: str, extra: int = 0) -> np.ndarray:
    """``"(x, y, z)"`` -> float array of its ``n`` values; ``extra`` more values (the ``w``
    of ``"(x, y, z, w)"``) may follow and are dropped. Any other count is an error: a point
    with a number missing or added must not shift the coordinates of the next ones."""
    if not isinstance(text, str):
        raise IngestError(file, field, f"expected a string like '(x, y, z)', got {_short(text)}")
    parts = text.strip().strip("()").split(",")
    if not n <= len(parts) <= n + extra:
        want = f"{n}" if not extra else f"{n} to {n + extra}"
        raise IngestError(file, field, f"{len(parts)} numbers in {_short(text)}, expected {want}")
    try:
        return np.array([float(p) for p in parts[:n]], dtype=np.float64)
    except ValueError:
        raise IngestError(file, field, f"not numbers: {_short(text)}") from None


def _short(value: Any, limit: int = 60) -> str:
    """repr of a value for a message, cut to ``limit`` characters (a field may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_points(values: Any, file: str, field: str, count: int | None = None,
                 min_count: int = 1) -> np.ndarray:
    """A UnityEyes list of point strings -> (n, 3) float64 (raw Unity screen coordinates)."""
    if not isinstance(values, list):
        raise IngestError(file, field, "missing" if values is None else "not a list of points")
    if count is not None and len(values) != count:
        raise IngestError(file, field, f"{len(values)} points, expected {count}")
    if len(values) < min_count:
        raise IngestError(file, field, f"{len(values)} points, expected at least {min_count}")
    try:  # fast path: one split and one float conversion for the whole list
        if any(v.count(",") != 2 for v in values):  # 3 numbers per point, no shift
            raise ValueError("arity")
        text = " ".join(values).replace("(", " ").replace(")", " ").replace(",", " ")
        pts = np.array(text.split(), dtype=np.float64).reshape(len(values), 3)
    except (TypeError, ValueError, AttributeError):  # find the culprit for the message
        pts = np.stack([parse_point(v, 3, file, f"{field}[{i}]") for i, v in enumerate(values)])
    if not np.isfinite(pts).all():
        raise IngestError(file, field, "NaN or infinite coordinate")
    return pts


def _optional_number(data: dict, key: str, file: str, field: str) -> float:
    """A raw number kept as a label: NaN when absent, an error when present but not a finite
    number (UnityEyes writes them as strings, e.g. ``"0.0123"``)."""
    value = data.get(key)
    if value is None:
        return math.nan
    try:
        number = float(value) if isinstance(value, str | int | float) else math.nan
    except (ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise IngestError(file, field, f"expected a finite number, got {_short(value)}")
    return number


@dataclass(frozen=True)
class UnityEyesAnnotation:
    """The parts of a UnityEyes JSON used here; 2D points in image (u, v), v down, pixel
    centres at integers; ``look_vec`` raw (UnityEyes camera frame, y up)."""

    interior: np.ndarray  # (16, 2)
    iris: np.ndarray  # (n, 2)
    look_vec: np.ndarray  # (3,)
    pupil_size: float
    iris_size: float
    head_pose: np.ndarray  # (3,) degrees, as written


def unity_to_pixel(points: np.ndarray, height: int) -> np.ndarray:
    """Unity screen (x, y up, origin at the bottom-left corner) -> (u, v) at pixel centres."""
    pts = np.asarray(points, dtype=np.float64)[..., :2]
    return np.stack([pts[..., 0] - 0.5, height - pts[..., 1] - 0.5], axis=-1)


def parse_annotation(data: Any, image_height: int, file: str) -> UnityEyesAnnotation:
    """Validate and convert one decoded UnityEyes JSON; errors name the file and the key."""
    if not isinstance(data, dict):
        raise IngestError(file, "json", "top level is not an object")
    interior = parse_points(data.get("interior_margin_2d"), file, "interior_margin_2d",
                            count=N_INTERIOR)
    iris = parse_points(data.get("iris_2d"), file, "iris_2d", min_count=3)
    details = data.get("eye_details")
    if not isinstance(details, dict):
        raise IngestError(file, "eye_details", "missing" if details is None else "not an object")
    if "look_vec" not in details:
        raise IngestError(file, "eye_details.look_vec", "missing")
    look = parse_point(details["look_vec"], 3, file, "eye_details.look_vec", extra=1)
    problem = str(gaze_problems(look[None])[0])
    if problem:
        raise IngestError(file, "eye_details.look_vec", problem)
    head = data.get("head_pose")
    head_pose = np.full(3, np.nan) if head is None else parse_point(head, 3, file, "head_pose")
    if not np.isfinite(head_pose).all() and head is not None:
        raise IngestError(file, "head_pose", f"NaN or infinite angle in {_short(head)}")
    return UnityEyesAnnotation(
        interior=unity_to_pixel(interior, image_height),
        iris=unity_to_pixel(iris, image_height),
        look_vec=look,
        pupil_size=_optional_number(details, "pupil_size", file, "eye_details.pupil_size"),
        iris_size=_optional_number(details, "iris_size", file, "eye_details.iris_size"),
        head_pose=head_pose,
    )


def check_in_image(ann: UnityEyesAnnotation, size: tuple[int, int], file: str) -> None:
    """The eye's points must lie on the image (corner coordinates within its width x height):
    landmarks elsewhere belong to another image or are garbage, and would give a crop of
    black border (or a huge one)."""
    w, h = size
    for field, uv in (("interior_margin_2d", ann.interior), ("iris_2d", ann.iris)):
        c = uv + 0.5
        out = (c[:, 0] < 0) | (c[:, 0] > w) | (c[:, 1] < 0) | (c[:, 1] > h)
        if out.any():
            k = int(np.flatnonzero(out)[0])
            raise IngestError(file, field, f"{int(out.sum())} point(s) outside the {w}x{h} image "
                              f"(point {k} at u={uv[k, 0]:.6g}, v={uv[k, 1]:.6g}): does the JSON "
                              "belong to this image?")


def look_vec_to_gaze(look_vec: np.ndarray) -> np.ndarray:
    """UnityEyes look_vec (..., 3+) -> gaze in the MPIIGaze camera frame: (x, -y, z).

    Unity's camera frame is left-handed (y up), MPIIGaze's right-handed (y down); see the module
    doc for the evidence. Not normalised here (:func:`gaze_columns` does it).
    """
    v = np.asarray(look_vec, dtype=np.float64)[..., :3]
    return v * np.array([1.0, -1.0, 1.0])


# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class CropBox:
    """A crop in corner coordinates of the source image: top-left (x0, y0), ``px`` source
    pixels per output pixel (the same on both axes), output (height, width)."""

    x0: float
    y0: float
    px: float
    out_shape: tuple[int, int]

    @property
    def x1(self) -> float:
        return self.x0 + self.px * self.out_shape[1]

    @property
    def y1(self) -> float:
        return self.y0 + self.px * self.out_shape[0]

    def to_crop(self, uv: np.ndarray) -> np.ndarray:
        """Source (u, v) at pixel centres -> output (u, v) at pixel centres."""
        uv = np.asarray(uv, dtype=np.float64)
        return (uv + 0.5 - np.array([self.x0, self.y0])) / self.px - 0.5


def crop_geometry(interior: np.ndarray, out_shape: tuple[int, int] = OUT_SHAPE,
                  crop_scale: float = DEFAULT_CROP_SCALE, file: str = "?") -> CropBox:
    """Crop around the interior margin: centre of its bounding box, width ``crop_scale`` times
    the corner span (points 0 and 8), the output's aspect ratio (module doc)."""
    span = float(np.linalg.norm(interior[OUTER_CORNER] - interior[INNER_CORNER]))
    if not np.isfinite(span) or span < 1.0:
        raise IngestError(file, "interior_margin_2d",
                          f"eye corners (points 0 and 8) {span:.3g} px apart: degenerate eye")
    oh, ow = out_shape
    width = crop_scale * span
    px = width / ow
    centre = (interior.min(axis=0) + interior.max(axis=0)) / 2.0 + 0.5  # corner coordinates
    return CropBox(x0=float(centre[0] - width / 2), y0=float(centre[1] - px * oh / 2),
                   px=float(px), out_shape=(int(oh), int(ow)))


def jpeg_reduction(box_px: float) -> int:
    """Largest DCT downscale (1, 2, 4, 8) leaving MIN_OVERSAMPLING source px per output px."""
    for k in (8, 4, 2):
        if box_px / k >= MIN_OVERSAMPLING:
            return k
    return 1


def extract_crop(gray: Image.Image, box: CropBox, reduce: int = 1) -> tuple[np.ndarray, bool]:
    """Antialiased crop-and-resize of a mode-L image (reduced ``reduce`` times) to the box.

    Pixels outside the image count as black (``inside`` says whether that happened): a tight
    integer region around the box is cut first (PIL pads it), then resized with PIL's
    antialiased bilinear filter over the exact fractional box.
    """
    oh, ow = box.out_shape
    x0, y0, x1, y1 = (c / reduce for c in (box.x0, box.y0, box.x1, box.y1))
    margin = math.ceil(box.px / reduce) + 1  # filter support in (reduced) source px
    ix0, iy0 = math.floor(x0) - margin, math.floor(y0) - margin
    ix1, iy1 = math.ceil(x1) + margin, math.ceil(y1) + margin
    region = gray.crop((ix0, iy0, ix1, iy1))
    out = region.resize((ow, oh), Image.Resampling.BILINEAR,
                        box=(x0 - ix0, y0 - iy0, x1 - ix0, y1 - iy0))
    w, h = gray.size
    inside = x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h
    return np.asarray(out, dtype=np.uint8), bool(inside)


# ----------------------------------------------------------------------------- files


class UnityEyesUnit(NamedTuple):
    """One sample to decode: ``image``/``annotation`` are None when the partner file is
    missing (reported as a bad input by :func:`decode`)."""

    id: int
    name: str
    image: str | None
    annotation: str | None


@dataclass(frozen=True)
class UnityEyesOptions:
    out_shape: tuple[int, int] = OUT_SHAPE
    crop_scale: float = DEFAULT_CROP_SCALE
    fast_jpeg: bool = True
    equalize: bool = False


def _gray_for_box(im: Image.Image, box_px: float, fast_jpeg: bool, file: str
                  ) -> tuple[Image.Image, int]:
    """Mode-L version of an opened (not yet loaded) image (16-bit ones scaled, not clipped:
    :func:`~simgan.core.ingest.common.to_gray`); for JPEGs optionally let the decoder
    downscale by k in (2, 4, 8) (returns k, 1 if it did not)."""
    reduce = 1
    if fast_jpeg and im.format == "JPEG":
        w, h = im.size
        want = jpeg_reduction(box_px)
        im.draft("L", (-(-w // want), -(-h // want)))
        for k in (8, 4, 2, 1):  # the scale the decoder actually chose
            if im.size == (-(-w // k), -(-h // k)):
                reduce = k
                break
        else:
            raise OSError(f"unexpected draft size {im.size} for {w}x{h}")
    return to_gray(im, file), reduce


def decode_sample(unit: UnityEyesUnit, opt: UnityEyesOptions, skip_bad: bool = False
                  ) -> tuple[np.ndarray, dict[str, np.ndarray], list[BadInput]]:
    """One UnityEyes pair -> ((1, H, W) uint8, label columns, []). Raises IngestError."""
    if unit.annotation is None:
        raise IngestError(unit.image, "json", f"missing ({unit.name}.json not found)")
    if unit.image is None:
        raise IngestError(unit.annotation, "image",
                          f"missing (no {'/'.join(IMAGE_EXTS)} for {unit.name})")
    data = load_json(unit.annotation)
    try:
        im = Image.open(unit.image)  # reads the header only
    except DECODE_ERRORS as exc:
        raise IngestError(unit.image, "image", f"unreadable: {exc}") from None
    with im:
        ann = parse_annotation(data, im.size[1], unit.annotation)
        check_in_image(ann, im.size, unit.annotation)
        box = crop_geometry(ann.interior, opt.out_shape, opt.crop_scale, unit.annotation)
        try:
            gray, reduce = _gray_for_box(im, box.px, opt.fast_jpeg, unit.image)
            pixels, inside = extract_crop(gray, box, reduce)
        except IngestError:
            raise
        except DECODE_ERRORS as exc:
            raise IngestError(unit.image, "image", f"cannot decode (truncated?): {exc}") from None
    images = pixels[None]
    if opt.equalize:
        images = equalize_batch(images)
    return images, labels_for(unit, ann, box, inside), []


def load_json(path: str) -> Any:
    """Parse one annotation; every way a file can fail to be JSON is an IngestError: I/O
    (a directory, a symlink loop), not UTF-8, syntax, an integer over Python's 4300-digit
    limit (ValueError) and nesting deeper than the parser's recursion limit."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        raise IngestError(path, "json", f"unreadable: {str(exc)[:200]}") from None
    except RecursionError:
        raise IngestError(path, "json", "nested too deeply to be a UnityEyes annotation") from None


def labels_for(unit: UnityEyesUnit, ann: UnityEyesAnnotation, box: CropBox, inside: bool
               ) -> dict[str, np.ndarray]:
    """The label row of one sample (arrays of length 1, column order fixed)."""
    cols: dict[str, np.ndarray] = {
        "id": np.array([unit.id], dtype=np.int64),
        "file": np.array([os.path.basename(unit.image or "")], dtype=object),
    }
    cols.update(gaze_columns(look_vec_to_gaze(ann.look_vec)[None]))
    iris = box.to_crop(ann.iris)
    centre = iris.mean(axis=0)
    cols["pupil_u"] = np.array([centre[0]])
    cols["pupil_v"] = np.array([centre[1]])
    cols["iris_radius"] = np.array([np.linalg.norm(iris - centre, axis=1).max()])
    lm = box.to_crop(ann.interior)
    for k in range(N_INTERIOR):
        cols[f"lm{k:02d}_u"] = lm[k : k + 1, 0]
        cols[f"lm{k:02d}_v"] = lm[k : k + 1, 1]
    cols["ue_pupil_size"] = np.array([ann.pupil_size])
    cols["ue_iris_size"] = np.array([ann.iris_size])
    for k in range(3):
        cols[f"ue_head_pose_{k}"] = ann.head_pose[k : k + 1].astype(np.float64)
    cols["crop_x0"] = np.array([box.x0])
    cols["crop_y0"] = np.array([box.y0])
    cols["crop_px"] = np.array([box.px])
    cols["crop_inside"] = np.array([1.0 if inside else 0.0])
    return cols


# ----------------------------------------------------------------------------- index


def _stem_key(stem: str) -> int | None:
    """UnityEyes numbers its files; canonical decimal stems sort numerically."""
    return int(stem) if stem.isdigit() and str(int(stem)) == stem else None


@dataclass(frozen=True)
class UnityEyesIndex:
    """The samples of a UnityEyes directory in sorted order (numeric stems by value first,
    then other stems by name), kept as arrays (1.2M files fit in a few tens of MB).

    ``image_ext[i]`` indexes :data:`IMAGE_EXTS` spelled as found (-1: no image);
    ``ext_names`` holds the spellings. ids are positions in this order.
    """

    root: str
    stems: np.ndarray  # str (object) or int64
    has_json: np.ndarray  # bool
    image_ext: np.ndarray  # int16, index into ext_names or -1
    ext_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.stems.shape[0])

    def units(self, positions: np.ndarray | None = None) -> UnityEyesUnits:
        pos = np.arange(len(self)) if positions is None else np.asarray(positions, np.int64)
        return UnityEyesUnits(self, pos)


class UnityEyesUnits:
    """A lazy sequence of :class:`UnityEyesUnit` over index positions (for the driver)."""

    def __init__(self, index: UnityEyesIndex, positions: np.ndarray):
        self.index, self.positions = index, positions

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def __getitem__(self, s: slice) -> list[UnityEyesUnit]:
        ix = self.index
        out = []
        for p in self.positions[s]:
            stem = str(ix.stems[p])
            e = int(ix.image_ext[p])
            image = os.path.join(ix.root, stem + ix.ext_names[e]) if e >= 0 else None
            ann = os.path.join(ix.root, stem + ".json") if ix.has_json[p] else None
            out.append(UnityEyesUnit(int(p), stem, image, ann))
        return out


def index_names(root: str, names: Iterable[str]) -> UnityEyesIndex:
    """Build the index from file names (a directory listing); other files are ignored."""
    num_stem, num_kind = array("q"), array("h")
    other: dict[str, list[int]] = {}
    ext_names: list[str] = []
    ext_code: dict[str, int] = {}
    for name in names:
        stem, ext = os.path.splitext(name)
        low = ext.lower()
        if low == ".json":
            kind = -2
        elif low in IMAGE_EXTS:
            if ext not in ext_code:
                ext_code[ext] = len(ext_names)
                ext_names.append(ext)
            kind = ext_code[ext]
        else:
            continue
        key = _stem_key(stem)
        if key is not None:
            num_stem.append(key)
            num_kind.append(kind)
        else:
            other.setdefault(stem, []).append(kind)
    stems_n = np.frombuffer(num_stem, dtype=np.int64) if num_stem else np.zeros(0, np.int64)
    kinds_n = np.frombuffer(num_kind, dtype=np.int16) if num_kind else np.zeros(0, np.int16)
    uniq, inverse = np.unique(stems_n, return_inverse=True)
    has_json = np.zeros(uniq.shape[0], dtype=bool)
    has_json[inverse[kinds_n == -2]] = True
    # several spellings of one stem (1.jpg and 1.png): the first extension seen wins
    none = np.iinfo(np.int16).max
    image_ext = np.full(uniq.shape[0], none, dtype=np.int16)
    img = kinds_n >= 0
    np.minimum.at(image_ext, inverse[img], kinds_n[img])
    image_ext[image_ext == none] = -1
    if other:
        names_o = sorted(other)
        stems = np.concatenate([uniq.astype(str).astype(object), np.array(names_o, dtype=object)])
        has_json = np.concatenate([has_json, [-2 in other[s] for s in names_o]])
        ext_o = [min((c for c in other[s] if c >= 0), default=-1) for s in names_o]
        image_ext = np.concatenate([image_ext, np.array(ext_o, dtype=np.int16)])
    else:
        stems = uniq
    return UnityEyesIndex(root=str(root), stems=stems, has_json=has_json,
                          image_ext=image_ext, ext_names=tuple(ext_names))


def index_directory(root: str | Path) -> UnityEyesIndex:
    """Index a UnityEyes output directory (not recursive); a missing one is an IngestError."""
    root = Path(root)
    if not root.is_dir():
        raise IngestError(root, "path", "directory not found")
    index = index_names(str(root), listed_names(root, lambda name: True))
    if len(index) == 0:
        raise IngestError(root, "path", "no UnityEyes files (N.jpg + N.json) in this directory")
    return index


# ----------------------------------------------------------------------------- params, plan


class UnityEyesSource(IngestSourceBase):
    """``gaze.render.source`` for UnityEyes renders: ``path`` is the directory UnityEyes
    wrote (N.jpg + N.json). The held-out synthetic test split is a seeded ``test_fraction``
    of the files (seed and the most rows per split: :class:`PlanSettings`)."""

    kind: Literal["unityeyes"] = "unityeyes"
    crop_scale: float = Field(DEFAULT_CROP_SCALE, gt=0.5, le=5.0,
                              description="crop width / eye-corner span")
    fast_jpeg: bool = Field(True, description="decode luma only, DCT downscale when large")
    equalize: bool = Field(False, description="histogram-equalise each crop")
    test_fraction: float = Field(0.05, ge=0.0, lt=1.0)

    def input_files(self) -> Iterator[tuple[str, Path]]:
        """The renders and their JSON directly in ``path`` (what :func:`index_names` reads)."""
        def read(name: str) -> bool:
            ext = os.path.splitext(name)[1].lower()
            return ext == ".json" or ext in IMAGE_EXTS

        return walk_files("path", self.path, keep=read)


def plan_unityeyes(src: UnityEyesSource, settings: PlanSettings | None = None
                   ) -> dict[str, SplitPlan]:
    """train/test plans over a UnityEyes directory (indexed now, decoded when iterated)."""
    settings = settings or PlanSettings(OUT_SHAPE)
    index = index_directory(src.path)
    out_shape = settings.out_shape
    train, test = random_split(len(index), src.test_fraction, settings.seed)
    opt = UnityEyesOptions(tuple(out_shape), src.crop_scale, src.fast_jpeg, src.equalize)
    plans = {}
    for split, pos in (("train", train), ("test", test)):
        keep = settings.subset(split, len(pos))
        chosen = pos if keep is None else pos[keep]
        meta = {"source": "unityeyes", "source_path": str(src.path), "labelled": True,
                "value_scaling": "uint8 gray [0, 255]", "files_indexed": len(index),
                **settings.rows_meta(split, len(pos))}
        plans[split] = ingest_plan(
            index.units(chosen), decode_sample, opt, n_upper=len(chosen), out_shape=out_shape,
            workers=src.workers, chunk_size=settings.chunk_size, skip_bad=src.skip_bad,
            meta=meta,
        )
    return plans
