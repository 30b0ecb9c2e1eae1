"""MPIIGaze normalised eyes (``Data/Normalized/pXX/dayYY.mat``) -> 35x55 gray eyes + gaze.

Each day file holds ``data.left`` and ``data.right``, structs with ``image`` (N x 36 x 60
uint8), ``gaze`` (N x 3, unit vectors in the normalised camera frame: x right, y down, z away
from the camera) and ``pose`` (N x 3, head rotation as a Rodrigues vector), plus
``filenames`` (N names such as ``0001.jpg``, shared by both eyes). Files come as MATLAB v5
(``scipy.io.loadmat``) or v7.3 (HDF5, ``h5py``): HDF5 stores MATLAB arrays with their
dimensions reversed (an N x 36 x 60 image stack reads as 60 x 36 x N) and cell arrays of
strings as object references to uint16 character arrays; :func:`read_day` hides both.

**Mirroring.** Right eyes are flipped horizontally so they look like left eyes (inner corner
on the image left, like UnityEyes and the builtin renderer). The gaze is mirrored with the
image: x negated (yaw negated, pitch kept). The head pose, a rotation R, becomes S R S with
S = diag(-1, 1, 1); for a Rodrigues vector r that is ``(r_x, -r_y, -r_z)`` (a reflection
reverses the sense of rotation: S R(theta, a) S = R(-theta, S a)). Rows say ``eye`` and
``mirrored``.

**Resize.** 36x60 -> 35x55 with the project's antialiased linear filter over the whole image
(:func:`simgan.core.ingest.common.resize_batch`, one batch per day file). The aspect changes by 6%
(60/36 vs 55/35), as in the public SimGAN set-ups that resized MPIIGaze to the paper's size.
Optional histogram equalisation afterwards.

**Split.** ``Evaluation Subset/sample list for eye image/pXX.txt`` (lines
``dayXX/NNNN.jpg left|right``) is the standard evaluation subset (1500 left + 1500 right eyes
per person): when present (``split: auto``) or demanded (``eval_list``) its samples are the
test split and every other sample the train split. Otherwise (``persons``) whole persons go to
test: those listed, or a seeded random fraction of them.

Labels: id, file (``pXX/dayYY/NNNN.jpg``), person, day, eye, mirrored, gaze_x/y/z, pitch, yaw,
pupil_u/v (NaN: MPIIGaze has no pupil positions), head_rvec_0..2. ids number every sample of
the dataset (day files in order, left eyes then right eyes), so they do not depend on the split.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import Field, field_validator

from simgan.core.ingest.common import (
    BadInput,
    IngestError,
    IngestSourceBase,
    PlanSettings,
    equalize_batch,
    first_bad_or,
    resize_batch,
    walk_files,
)
from simgan.core.ingest.driver import ingest_plan
from simgan.core.task import SplitPlan
from simgan.gaze.labels import OUT_SHAPE, gaze_columns, gaze_problems

EYES = ("left", "right")
FIELDS = ("image", "gaze", "pose")
NORMALIZED = Path("Data") / "Normalized"
EVAL_DIR = Path("Evaluation Subset") / "sample list for eye image"
EYE_SHAPE = (36, 60)
"""(height, width) of MPIIGaze's normalised eye images."""
MAX_POSE_RAD = 2 * np.pi
"""Largest plausible head rotation (the norm of a Rodrigues vector is its angle)."""
MIRROR = np.diag([-1.0, 1.0, 1.0])
_PERSON = re.compile(r"^p(\d+)$")
_DAY = re.compile(r"^day(\d+)\.mat$")


@dataclass(frozen=True)
class EyeData:
    images: np.ndarray  # (N, h, w) uint8
    gaze: np.ndarray  # (N, 3) float64
    pose: np.ndarray  # (N, 3) float64, Rodrigues


@dataclass(frozen=True)
class DayData:
    filenames: list[str]
    eyes: dict[str, EyeData]


# ----------------------------------------------------------------------------- .mat files


def is_v73(path: str | Path) -> bool:
    """MATLAB v7.3 files are HDF5 (with a 512-byte MATLAB header as the user block)."""
    import h5py

    return bool(h5py.is_hdf5(str(path)))


def _cell_strings(value: Any, path: str) -> list[str]:
    """A v5 cell array (or char matrix) of names -> list of str; numbers are no names."""
    arr = np.asarray(value)
    if arr.dtype.kind == "U":
        return [str(s).strip() for s in arr.ravel()]
    if arr.dtype.kind != "O":
        raise IngestError(path, "filenames", f"{arr.dtype} array, expected a cell array of names")
    out = []
    for c in arr.ravel(order="F"):
        c = np.asarray(c)
        if c.size and c.dtype.kind != "U":
            raise IngestError(path, "filenames", f"a cell holds {c.dtype}, expected a name")
        out.append(str(c.ravel()[0]).strip() if c.size else "")
    return out


def _v5_field(struct: Any, name: str, path: str, dotted: str) -> Any:
    names = getattr(getattr(struct, "dtype", None), "names", None) or ()
    if name not in names:
        raise IngestError(path, dotted, "missing")
    return struct[name][0, 0] if struct[name].shape else struct[name][()]


def _read_v5(path: str, filenames_only: bool) -> tuple[list[str], dict[str, dict[str, Any]]]:
    from scipy.io import loadmat

    want = ["filenames"] if filenames_only else None
    try:
        mat = loadmat(path, squeeze_me=False, struct_as_record=True, variable_names=want)
    except Exception as exc:  # scipy raises many types for a damaged file
        raise IngestError(path, "file", f"not a readable MATLAB .mat file: {exc}") from None
    if "filenames" not in mat:
        raise IngestError(path, "filenames", "missing")
    names = _cell_strings(mat["filenames"], path)
    if filenames_only:
        return names, {}
    if "data" not in mat:
        raise IngestError(path, "data", "missing")
    data = mat["data"]
    eyes: dict[str, dict[str, Any]] = {}
    for eye in EYES:
        s = _v5_field(data, eye, path, f"data.{eye}")
        eyes[eye] = {f: np.asarray(_v5_field(s, f, path, f"data.{eye}.{f}")) for f in FIELDS}
    return names, eyes


def _h5_strings(f: Any, ds: Any, path: str) -> list[str]:
    """A v7.3 cell array of strings (references) or char matrix -> list of str.

    Anything else (a group, a broken reference, codes that are no UTF-16 characters) is an
    IngestError naming ``filenames``."""
    import h5py

    if not isinstance(ds, h5py.Dataset):
        raise IngestError(path, "filenames", "a group, expected a cell array of names")
    raw = ds[()]
    if raw.dtype == h5py.ref_dtype or raw.dtype.kind == "O":
        out = []
        for ref in np.asarray(raw).ravel(order="F"):
            try:
                target = f[ref]
            except (ValueError, KeyError, TypeError) as exc:
                raise IngestError(path, "filenames", f"broken reference: {exc}") from None
            if not isinstance(target, h5py.Dataset):
                raise IngestError(path, "filenames", "a reference to a group, expected a name")
            out.append(_h5_chars(np.asarray(target[()]).ravel(), path))
        return out
    chars = np.asarray(raw)
    chars = chars.T if chars.ndim == 2 else chars.reshape(1, -1)
    return [_h5_chars(row, path) for row in chars]


def _h5_chars(codes: np.ndarray, path: str) -> str:
    """MATLAB char codes (UTF-16 units, as integers) -> str; other codes are an error."""
    if codes.dtype.kind not in "iu":
        raise IngestError(path, "filenames", f"character codes of dtype {codes.dtype}, expected "
                          "integers (MATLAB char)")
    if codes.size and (codes.min() < 0 or codes.max() > 0xFFFF):
        raise IngestError(path, "filenames", f"character codes in [{codes.min()}, {codes.max()}]"
                          ", expected UTF-16 units 0..65535")
    return "".join(map(chr, codes.astype(np.int64))).strip()


def _read_v73(path: str, filenames_only: bool) -> tuple[list[str], dict[str, dict[str, Any]]]:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise IngestError(path, "file", f"not a readable HDF5 (v7.3) .mat file: {exc}") from None
    with f:
        if "filenames" not in f:
            raise IngestError(path, "filenames", "missing")
        names = _h5_strings(f, f["filenames"], path)
        if filenames_only:
            return names, {}
        if "data" not in f or not isinstance(f["data"], h5py.Group):
            raise IngestError(path, "data", "missing")
        eyes: dict[str, dict[str, Any]] = {}
        for eye in EYES:
            g = f["data"].get(eye)
            if not isinstance(g, h5py.Group):
                raise IngestError(path, f"data.{eye}", "missing")
            fields = {}
            for name in FIELDS:
                ds = g.get(name)
                if not isinstance(ds, h5py.Dataset):
                    raise IngestError(path, f"data.{eye}.{name}", "missing")
                fields[name] = np.asarray(ds[()]).T  # MATLAB column-major -> our row-major
            eyes[eye] = fields
    return names, eyes


def _shaped(a: np.ndarray, n: int, tail: tuple[int, ...] | None, path: str, dotted: str,
            ) -> np.ndarray:
    """Check (and, for n = 1 squeezed by MATLAB, restore) the leading sample axis."""
    if a.ndim == (1 if tail is None else len(tail)) and n == 1:
        a = a[None]
    ok = a.ndim >= 2 and a.shape[0] == n and (tail is None or a.shape[1:] == tail)
    if not ok:
        want = f"({n}, {', '.join(map(str, tail))})" if tail else f"({n}, h, w)"
        raise IngestError(path, dotted, f"shape {a.shape}, expected {want}")
    return a


def _raw(path: str, filenames_only: bool) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Either format, unchecked."""
    try:
        v73 = is_v73(path)
    except OSError as exc:  # a directory, a symlink loop
        raise IngestError(path, "file", f"unreadable: {exc}") from None
    return (_read_v73 if v73 else _read_v5)(path, filenames_only)


def _read(path: str, filenames_only: bool) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Either format; names checked: non-empty, printable, unique."""
    names, raw = _raw(path, filenames_only)
    bad = next((k for k, name in enumerate(names) if not name or not name.isprintable()), None)
    if bad is not None:
        raise IngestError(path, "filenames", f"entry {bad} is {names[bad]!r}: not a file name")
    if len(set(names)) != len(names):
        raise IngestError(path, "filenames", "the same name twice: names must tell samples apart")
    return names, raw


def read_filenames(path: str | Path) -> list[str]:
    """Only the ``filenames`` of a day file (cheap; used to plan the splits); an empty list
    is an error, as its images would be dropped without a trace."""
    names = _read(str(path), True)[0]
    if not names:
        raise IngestError(path, "filenames", "empty: without names the day's samples cannot be "
                          "listed (is the file complete?)")
    return names


def _numeric(a: Any, n: int, path: str, dotted: str) -> np.ndarray:
    """A gaze or pose array as float64 (n, 3); text, structs or cells are an error."""
    a = np.asarray(a)
    if a.dtype.kind not in "iuf":
        raise IngestError(path, dotted, f"dtype {a.dtype}, expected numbers")
    return _shaped(a.astype(np.float64), n, (3,), path, dotted)


def read_day(path: str | Path) -> DayData:
    """Read and validate one ``dayYY.mat`` (v5 or v7.3); errors name the file and the field.

    Images must be uint8 of MPIIGaze's normalised size (:data:`EYE_SHAPE`, both eyes)."""
    path = str(path)
    names, raw = _read(path, False)
    n = len(names)
    eyes = {}
    for eye in EYES:
        r = raw[eye]
        img = r["image"]
        if img.ndim == 2 and n == 1:
            img = img[None]
        if img.ndim != 3 or img.shape[0] != n:
            raise IngestError(path, f"data.{eye}.image", f"shape {img.shape}, expected ({n}, h, w)")
        if img.dtype != np.uint8:
            raise IngestError(path, f"data.{eye}.image", f"dtype {img.dtype}, expected uint8")
        if img.shape[1:] != EYE_SHAPE:
            raise IngestError(path, f"data.{eye}.image", f"eyes of {img.shape[1]}x{img.shape[2]} "
                              f"px, MPIIGaze's normalised eyes are {EYE_SHAPE[0]}x{EYE_SHAPE[1]}")
        gaze = _numeric(r["gaze"], n, path, f"data.{eye}.gaze")
        pose = _numeric(r["pose"], n, path, f"data.{eye}.pose")
        eyes[eye] = EyeData(np.ascontiguousarray(img), gaze, pose)
    return DayData(names, eyes)


# ----------------------------------------------------------------------------- mirroring


def mirror_rvec(rvec: np.ndarray) -> np.ndarray:
    """Rodrigues vectors (..., 3) of R -> of S R S, S = diag(-1, 1, 1): (r_x, -r_y, -r_z)."""
    return np.asarray(rvec, dtype=np.float64) * np.array([1.0, -1.0, -1.0])


def mirror_eye(eye: EyeData) -> EyeData:
    """A right eye as a left eye: image flipped left-right, gaze x and pose mirrored."""
    return EyeData(
        images=np.ascontiguousarray(eye.images[:, :, ::-1]),
        gaze=eye.gaze @ MIRROR,
        pose=mirror_rvec(eye.pose),
    )


# ----------------------------------------------------------------------------- eval list


class EvalEntry(NamedTuple):
    """One line of an evaluation list."""

    day: str
    name: str
    eye: str
    line: int


def read_eval_list(path: str | Path) -> tuple[list[EvalEntry], list[BadInput]]:
    """``dayXX/NNNN.jpg left|right`` lines -> entries, and the malformed lines as bad inputs
    (one test sample each); blank lines ignored. A file that cannot be read as UTF-8 text
    raises."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise IngestError(path, "file", f"unreadable: {exc}") from None
    except UnicodeDecodeError as exc:
        raise IngestError(path, "file", f"not UTF-8 text (byte {exc.start}): is this MPIIGaze's "
                          "evaluation list?") from None
    out, bad = [], []
    for i, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in EYES or parts[0].count("/") != 1:
            bad.append(BadInput(str(path), f"line {i}", "expected 'dayXX/NNNN.jpg left|right', "
                                f"got {line.strip()[:80]!r}"))
            continue
        day, name = parts[0].split("/")
        out.append(EvalEntry(day, name, parts[1], i))
    return out, bad


def parse_eval_list(path: str | Path) -> list[tuple[str, str, str]]:
    """Strict :func:`read_eval_list`: [(day, filename, eye)]; a malformed line raises."""
    entries, bad = read_eval_list(path)
    first_bad_or(bad, skip_bad=False)
    return [(e.day, e.name, e.eye) for e in entries]


# ----------------------------------------------------------------------------- decoding


class DayUnit(NamedTuple):
    """One day file and the samples of it a split keeps (indices into its N samples)."""

    path: str
    person: int
    day: int
    n: int
    id_offset: int
    keep_left: np.ndarray
    keep_right: np.ndarray
    samples: int


@dataclass(frozen=True)
class MpiiOptions:
    out_shape: tuple[int, int] = OUT_SHAPE
    mirror_right: bool = True
    equalize: bool = False


def sample_problems(eye_data: EyeData, eye: str) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: what is wrong ('' if nothing) and in which field. The gaze must be usable
    (:func:`~simgan.gaze.labels.gaze_problems`), the pose a finite rotation of at most
    :data:`MAX_POSE_RAD`."""
    gaze = gaze_problems(eye_data.gaze)
    with np.errstate(over="ignore", invalid="ignore"):
        angle = np.linalg.norm(eye_data.pose, axis=1)
    pose = np.where(~np.isfinite(eye_data.pose).all(axis=1), "NaN or infinite component",
                    np.where(angle > MAX_POSE_RAD, "rotation above 2 pi rad", ""))
    fields = np.where(gaze != "", f"data.{eye}.gaze", f"data.{eye}.pose")
    return np.where(gaze != "", gaze, pose), fields


def decode_day(unit: DayUnit, opt: MpiiOptions, skip_bad: bool = False
               ) -> tuple[np.ndarray, dict[str, np.ndarray], list[BadInput]]:
    """The kept samples of one day file (left eyes, then right eyes) -> images and labels.

    A sample with a NaN or zero-length gaze or an implausible pose raises, or with
    ``skip_bad`` is left out and returned as a BadInput (the rest of the file is kept).
    """
    day = read_day(unit.path)
    if len(day.filenames) != unit.n:
        raise IngestError(unit.path, "filenames",
                          f"{len(day.filenames)} entries, {unit.n} when the split was planned")
    images, cols, bad = [], [], []
    for e, eye in enumerate(EYES):
        keep = unit.keep_left if eye == "left" else unit.keep_right
        if len(keep) == 0:
            continue
        data = day.eyes[eye]
        sub = EyeData(data.images[keep], data.gaze[keep], data.pose[keep])
        problems, fields = sample_problems(sub, eye)
        for j in np.flatnonzero(problems != ""):
            item = BadInput(unit.path, str(fields[j]),
                            f"{problems[j]} (sample {keep[j]}, {day.filenames[keep[j]]})")
            if not skip_bad:
                raise item.error()
            bad.append(item)
        ok = problems == ""
        sub = EyeData(sub.images[ok], sub.gaze[ok], sub.pose[ok])
        kept = keep[ok]
        n = len(kept)
        if n == 0:
            continue
        mirrored = opt.mirror_right and eye == "right"
        if mirrored:
            sub = mirror_eye(sub)
        images.append(sub.images)
        c = {
            "id": (unit.id_offset + e * unit.n + kept).astype(np.int64),
            "file": np.array([f"p{unit.person:02d}/day{unit.day:02d}/{day.filenames[k]}"
                              for k in kept], dtype=object),
            "person": np.full(n, unit.person, dtype=np.int64),
            "day": np.full(n, unit.day, dtype=np.int64),
            "eye": np.array([eye] * n, dtype=object),
            "mirrored": np.full(n, 1.0 if mirrored else 0.0),
            **gaze_columns(sub.gaze),
            "pupil_u": np.full(n, np.nan),
            "pupil_v": np.full(n, np.nan),
        }
        for k in range(3):
            c[f"head_rvec_{k}"] = sub.pose[:, k].copy()
        cols.append(c)
    if not images:
        return np.zeros((0, *opt.out_shape), np.uint8), {}, bad
    out = resize_batch(np.concatenate(images), opt.out_shape)
    if opt.equalize:
        out = equalize_batch(out)
    labels = {k: np.concatenate([c[k] for c in cols]) for k in cols[0]}
    return out, labels, bad


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class DayFile:
    path: str
    person: int
    day: int
    filenames: list[str]
    id_offset: int


def list_day_files(root: str | Path) -> list[tuple[Path, int, int]]:
    """(path, person, day) of every ``Data/Normalized/pXX/dayYY.mat`` under ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise IngestError(root, "path", "directory not found")
    norm = root / NORMALIZED
    if not norm.is_dir():
        raise IngestError(root, str(NORMALIZED), "directory not found (is this MPIIGaze's root?)")
    out = []
    for pdir in sorted(norm.iterdir()):
        m = _PERSON.match(pdir.name)
        if not (m and pdir.is_dir()):
            continue
        for f in sorted(pdir.iterdir()):
            d = _DAY.match(f.name)
            if d:
                out.append((f, int(m.group(1)), int(d.group(1))))
    if not out:
        raise IngestError(norm, "pXX/dayYY.mat", "no day files found")
    return out


def index_days(root: str | Path, skip_bad: bool) -> tuple[list[DayFile], list[BadInput]]:
    """Read the filenames of every day file (to size the splits and number the samples).

    An unreadable day file (or one whose names are missing, empty or garbled) raises, or with
    ``skip_bad`` is left out and returned as bad, with the rows its images would have given.
    """
    days, bad = [], []
    offset = 0
    for path, person, day in list_day_files(root):
        try:
            names = read_filenames(path)
        except IngestError as exc:
            if not skip_bad:
                raise
            bad.append(BadInput.from_error(exc, _rows_in(str(path))))
            continue
        days.append(DayFile(str(path), person, day, names, offset))
        offset += 2 * len(names)
    return days, bad


def _rows_in(path: str) -> int:
    """Rows a day file's images would give (both eyes), as far as it can be read; 0 if not."""
    try:
        raw = _raw(path, False)[1]
    except IngestError:
        return 0
    shapes = [np.shape(raw[eye]["image"]) for eye in EYES]
    return sum(s[0] if len(s) == 3 else int(len(s) == 2) for s in shapes)


def person_name(person: int) -> str:
    return f"p{person:02d}"


@dataclass
class EvalSplit:
    """What the evaluation lists say: test samples per (person, day) and eye; bad entries
    (malformed lines, samples no day file has, whole lists that cannot be read); and the
    persons left out because their list could not be read (``skip_bad``: neither split may
    take their samples, since which ones are test is unknown)."""

    test: dict[tuple[int, int], dict[str, np.ndarray]]
    bad: list[BadInput]
    dropped: set[int]


def split_by_eval_list(root: str | Path, days: list[DayFile], persons: list[int],
                       skip_bad: bool = False) -> EvalSplit:
    """Read every person's evaluation list; without ``skip_bad`` the first problem raises."""
    by_day = {(d.person, d.day): d for d in days}
    lookup = {key: {n: i for i, n in enumerate(d.filenames)} for key, d in by_day.items()}
    test: dict[tuple[int, int], dict[str, list[int]]] = {}
    out = EvalSplit({}, [], set())
    for p in persons:
        list_path = Path(root) / EVAL_DIR / f"{person_name(p)}.txt"
        try:
            if not list_path.is_file():
                raise IngestError(list_path, "file", "evaluation list missing for this person")
            entries, bad_lines = read_eval_list(list_path)
        except IngestError as exc:
            if not skip_bad:
                raise
            rows = sum(2 * len(d.filenames) for d in days if d.person == p)
            out.bad.append(BadInput.from_error(exc, rows))
            out.dropped.add(p)
            continue
        out.bad += first_bad_or(bad_lines, skip_bad)
        for day_s, name, eye, line_no in entries:
            m = re.match(r"^day(\d+)$", day_s)
            key = (p, int(m.group(1))) if m else None
            idx = lookup.get(key, {}).get(name) if key else None
            if idx is None:
                out.bad.append(BadInput(str(list_path), f"line {line_no}",
                                        f"{day_s}/{name} {eye} is in no day file's filenames"))
                continue
            test.setdefault(key, {"left": [], "right": []})[eye].append(idx)
    first_bad_or(out.bad, skip_bad)
    out.test = {k: {e: np.unique(np.array(v[e], dtype=np.int64)) for e in EYES}
                for k, v in test.items()}
    return out


def day_units(days: list[DayFile], test: dict[tuple[int, int], dict[str, np.ndarray]],
              want_test: bool) -> list[DayUnit]:
    """Units of one split: the test samples of each day, or all the others."""
    units = []
    for d in days:
        n = len(d.filenames)
        chosen = test.get((d.person, d.day), {"left": np.zeros(0, np.int64),
                                              "right": np.zeros(0, np.int64)})
        keep = {}
        for eye in EYES:
            mask = np.zeros(n, dtype=bool)
            mask[chosen[eye]] = True
            keep[eye] = np.flatnonzero(mask if want_test else ~mask)
        total = len(keep["left"]) + len(keep["right"])
        if total:
            units.append(DayUnit(d.path, d.person, d.day, n, d.id_offset, keep["left"],
                                 keep["right"], total))
    return units


def all_samples(day: DayFile) -> dict[str, np.ndarray]:
    n = len(day.filenames)
    return {eye: np.arange(n, dtype=np.int64) for eye in EYES}


# ----------------------------------------------------------------------------- params, plan


class MpiiGazeSource(IngestSourceBase):
    """``gaze.real.source`` for MPIIGaze: ``path`` is the dataset root (with ``Data/Normalized``
    and, usually, ``Evaluation Subset``). ``split``: ``auto`` uses the evaluation lists when
    present, else ``persons``; ``test_persons`` (e.g. ["p14"]) or, if empty, a seeded
    ``test_fraction`` of the persons form the person-disjoint test split (seed and the most
    rows per split: :class:`PlanSettings`)."""

    kind: Literal["mpiigaze"] = "mpiigaze"
    split: Literal["auto", "eval_list", "persons"] = "auto"
    test_persons: list[str] = Field(default_factory=list)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    mirror_right: bool = Field(True, description="flip right eyes to look like left eyes")
    equalize: bool = Field(False, description="histogram-equalise each eye")

    @field_validator("test_persons")
    @classmethod
    def _person_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _PERSON.match(name):
                raise ValueError(f"{name!r}: expected a person directory name like 'p14'")
        return v

    def input_files(self) -> Iterator[tuple[str, Path]]:
        """The normalised day files and the evaluation lists (not ``Data/Original``)."""
        if not self.path.is_dir():
            raise IngestError(self.path, "path", "directory not found")
        for sub in (NORMALIZED, EVAL_DIR):
            if (self.path / sub).is_dir():
                yield from walk_files(f"path/{sub.as_posix()}", self.path / sub, recursive=True)


def choose_test_persons(src: MpiiGazeSource, persons: list[int], seed: int = 0) -> list[int]:
    """The persons of the person-disjoint test split (listed, or a seeded fraction)."""
    if src.test_persons:
        chosen = sorted(int(_PERSON.match(p).group(1)) for p in src.test_persons)
        missing = [person_name(p) for p in chosen if p not in persons]
        if missing:
            raise IngestError(Path(src.path) / NORMALIZED, "test_persons",
                              f"{missing} not found (persons: "
                              f"{[person_name(p) for p in persons]})")
        return chosen
    if len(persons) < 2:
        raise IngestError(Path(src.path) / NORMALIZED, "persons",
                          f"{len(persons)} person(s): a person-disjoint split needs two")
    k = min(max(int(round(src.test_fraction * len(persons))), 1), len(persons) - 1)
    rng = np.random.default_rng(seed)
    return sorted(int(p) for p in rng.choice(persons, size=k, replace=False))


def subset_units(units: list[DayUnit], positions: np.ndarray) -> list[DayUnit]:
    """Keep the rows at ``positions`` (sorted, in the split's row order: day files in order,
    each day's kept left eyes then right eyes) out of ``units``; days left empty drop out."""
    bounds = np.cumsum([0] + [u.samples for u in units])
    out = []
    for k, u in enumerate(units):
        lo, hi = np.searchsorted(positions, [bounds[k], bounds[k + 1]])
        local = positions[lo:hi] - bounds[k]
        if len(local) == 0:
            continue
        n_left = len(u.keep_left)
        left = u.keep_left[local[local < n_left]]
        right = u.keep_right[local[local >= n_left] - n_left]
        out.append(u._replace(keep_left=left, keep_right=right, samples=len(left) + len(right)))
    return out


def plan_mpiigaze(src: MpiiGazeSource, settings: PlanSettings | None = None
                  ) -> dict[str, SplitPlan]:
    """train/test plans: the day files are indexed (filenames only) now, decoded when
    iterated; each split decodes only the samples it keeps."""
    settings = settings or PlanSettings(OUT_SHAPE)
    root = Path(src.path)
    days, bad_days = index_days(root, src.skip_bad)
    persons = sorted({d.person for d in days})
    mode = src.split
    if mode == "auto":
        mode = "eval_list" if (root / EVAL_DIR).is_dir() else "persons"
    meta: dict[str, Any] = {"source": "mpiigaze", "source_path": str(root), "labelled": True,
                            "value_scaling": "uint8 gray [0, 255]", "split_mode": mode,
                            "mirror_right": src.mirror_right}
    known = {"train": list(bad_days), "test": []}
    if mode == "eval_list":
        if not (root / EVAL_DIR).is_dir():
            raise IngestError(root / EVAL_DIR, "path", "directory not found (split: eval_list)")
        lists = split_by_eval_list(root, days, persons, src.skip_bad)
        days = [d for d in days if d.person not in lists.dropped]
        test, known["test"] = lists.test, lists.bad
    else:
        chosen = set(choose_test_persons(src, persons, settings.seed))
        meta["test_persons"] = [person_name(p) for p in sorted(chosen)]
        test = {(d.person, d.day): all_samples(d) for d in days if d.person in chosen}
        known = {"train": [b for b in bad_days if not _in_persons(b.file, chosen)],
                 "test": [b for b in bad_days if _in_persons(b.file, chosen)]}
    opt = MpiiOptions(tuple(settings.out_shape), src.mirror_right, src.equalize)
    plans = {}
    for split in ("train", "test"):
        units = day_units(days, test, want_test=split == "test")
        available = sum(u.samples for u in units)
        keep = settings.subset(split, available)
        if keep is not None:
            units = subset_units(units, keep)
        plans[split] = ingest_plan(
            units, decode_day, opt, n_upper=sum(u.samples for u in units),
            out_shape=settings.out_shape, workers=src.workers, chunk_size=settings.chunk_size,
            skip_bad=src.skip_bad, meta={**meta, **settings.rows_meta(split, available)},
            known_bad=known[split],
        )
    return plans


def _in_persons(file: str, persons: set[int]) -> bool:
    m = _PERSON.match(Path(file).parent.name)
    return bool(m) and int(m.group(1)) in persons
