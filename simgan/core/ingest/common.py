"""What every reader shares: the error type, the bad-input ledger, image resampling and
histogram equalisation.

Why one module: the three readers (UnityEyes, MPIIGaze, folder) must preprocess the same way
(same resampling filter, same equalisation, same label schema), otherwise the synthetic and real
domains would differ by our preprocessing rather than by appearance, and the refiner would learn
our bugs.

Coordinates: image points are (u, v) = (column, row), integers at pixel centres (as in
:mod:`simgan.gaze.render` and :mod:`simgan.gaze.drift`). Crop boxes are given in *corner*
coordinates (x0, y0, x1, y1), where pixel (r, c) covers [c, c+1) x [r, r+1), as PIL uses them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

MAX_EXAMPLES = 20
"""Skipped inputs listed by name in meta.json (the rest are counted by field)."""


class IngestError(ValueError):
    """A bad input file. The message is ``<file>: <field>: <problem>`` so a user can open the
    file and find the field; picklable, so it crosses the process pool unchanged."""

    def __init__(self, file: Any, field: str, problem: str):
        self.file, self.field, self.problem = str(file), field, problem
        super().__init__(f"{self.file}: {field}: {problem}")

    def __reduce__(self):
        return (IngestError, (self.file, self.field, self.problem))


class NoLabelsError(ValueError):
    """A dataset without gaze labels (an unlabelled folder) used where labels are needed."""


@dataclass(frozen=True)
class BadInput:
    """One skipped input (``samples``: how many dataset rows it would have given)."""

    file: str
    field: str
    problem: str
    samples: int = 1

    @classmethod
    def from_error(cls, err: IngestError, samples: int = 1) -> BadInput:
        return cls(err.file, err.field, err.problem, samples)

    def error(self) -> IngestError:
        return IngestError(self.file, self.field, self.problem)

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.problem}"


@dataclass
class IngestReport:
    """Counts of one ingestion run: files tried, rows written, bad inputs skipped by field.

    ``meta()`` is deterministic (it goes into meta.json, a DVC output); timings are kept apart
    in ``metrics()`` (for MLflow).
    """

    units: int = 0
    rows: int = 0
    skipped: int = 0
    skipped_rows: int = 0
    by_field: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def skip(self, bad: BadInput) -> None:
        self.skipped += 1
        self.skipped_rows += bad.samples
        self.by_field[bad.field] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(str(bad))

    def meta(self) -> dict[str, Any]:
        return {
            "ingest_files": self.units,
            "ingest_rows": self.rows,
            "skipped_bad": self.skipped,
            "skipped_bad_rows": self.skipped_rows,
            "skipped_bad_by_field": dict(sorted(self.by_field.items())),
            "skipped_bad_examples": list(self.examples),
        }

    def metrics(self) -> dict[str, float]:
        return {
            "ingest_files": float(self.units),
            "ingest_rows": float(self.rows),
            "skipped_bad": float(self.skipped),
            "skipped_bad_rows": float(self.skipped_rows),
            "ingest_seconds": self.seconds,
            "ingest_files_per_s": self.units / self.seconds if self.seconds > 0 else 0.0,
        }


# ----------------------------------------------------------------------------- resampling


def resample_matrix(n_in: int, n_out: int, lo: float = 0.0, hi: float | None = None) -> np.ndarray:
    """(n_out, n_in) weights of an antialiased linear (triangle) resampling of [lo, hi).

    The same filter as PIL's ``resize(..., BILINEAR, box=...)``: the triangle is widened by
    the downscale factor (so shrinking averages instead of aliasing) and truncated and
    renormalised at the borders. Used for whole batches (MPIIGaze) so that batch and per-file
    resizing (PIL, UnityEyes and folders) agree to about one gray level.
    """
    hi = float(n_in) if hi is None else float(hi)
    scale = (hi - lo) / n_out
    fscale = max(scale, 1.0)
    centre = lo + (np.arange(n_out) + 0.5) * scale  # corner coordinates
    src = np.arange(n_in) + 0.5  # pixel centres in corner coordinates
    w = np.maximum(0.0, 1.0 - np.abs(src[None, :] - centre[:, None]) / fscale)
    total = w.sum(axis=1, keepdims=True)
    return w / np.where(total > 0, total, 1.0)


def resize_batch(images: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """(N, h, w) uint8 -> (N, H, W) uint8 with :func:`resample_matrix` on both axes (2 GEMMs)."""
    n, h, w = images.shape
    oh, ow = out_shape
    if (h, w) == (oh, ow):
        return np.ascontiguousarray(images, dtype=np.uint8)
    rows = resample_matrix(h, oh).astype(np.float32)
    cols = resample_matrix(w, ow).astype(np.float32)
    x = images.astype(np.float32) @ cols.T  # (N, h, W)
    x = np.matmul(rows, x)  # (N, H, W)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def equalize_batch(images: np.ndarray) -> np.ndarray:
    """Per-image histogram equalisation of (N, H, W) uint8, as OpenCV's equalizeHist.

    The darkest level present maps to 0 and the cumulative histogram stretches the rest to
    [0, 255]; a constant image stays as it is. Vectorised: one bincount for the whole batch.
    """
    n = images.shape[0]
    if n == 0:
        return images.copy()
    flat = images.reshape(n, -1)
    total = flat.shape[1]
    offsets = (np.arange(n, dtype=np.int64) * 256)[:, None]
    hist = np.bincount((flat + offsets).ravel(), minlength=256 * n).reshape(n, 256)
    cdf = np.cumsum(hist, axis=1)
    cmin = np.where(hist > 0, cdf, total).min(axis=1, keepdims=True)  # cdf at the darkest level
    denom = np.maximum(total - cmin, 1)
    lut = np.clip(np.rint((cdf - cmin) * 255.0 / denom), 0, 255).astype(np.uint8)
    out = np.take_along_axis(lut, flat.astype(np.int64), axis=1).reshape(images.shape)
    constant = (total - cmin[:, 0]) == 0
    out[constant] = images[constant]
    return out


# ----------------------------------------------------------------------------- pixels

DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
"""What PIL raises for a damaged, truncated, unsupported or oversized image (a decompression
bomb is an input problem like the others, not a crash)."""


def to_gray(im: Image.Image, file: Any) -> Image.Image:
    """Any PIL image -> mode L, keeping the whole range of deeper images.

    8-bit modes: PIL's conversion (ITU-R 601 luma; palettes through their colours; alpha
    ignored). 16-bit (``I;16*``, or ``I`` with values above 255): scaled by 255/65535.
    Refused with an :class:`IngestError` (a clip would make them all white or all black):
    32-bit integers outside 0..65535 and float images, which have no agreed scale.
    """
    if im.mode == "L":
        return im
    if im.mode == "F":
        raise IngestError(file, "image", "32-bit float pixels have no agreed scale: save the "
                          "image as 8-bit or 16-bit grayscale (or 8-bit RGB)")
    if im.mode.startswith("I"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < 0 or hi > 65535:
            raise IngestError(file, "image", f"32-bit integer pixels in [{lo:.0f}, {hi:.0f}], "
                              "beyond 16 bits: save the image as 8-bit or 16-bit")
        if im.mode.startswith("I;16") or hi > 255:
            a = a * (255.0 / 65535.0)
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")
    if im.mode in ("P", "PA"):  # through the palette's colours
        im = im.convert("RGBA")
    return im.convert("L")


# ----------------------------------------------------------------------------- params


class IngestSourceBase(BaseModel):
    """Knobs every file reader has. ``workers``: decoding processes (0 = in this process);
    ``skip_bad``: count and skip bad input files instead of stopping at the first one.

    What a task's params section decides for every source of a domain (output size, seed,
    chunk size, the most rows per split) is not here but in :class:`PlanSettings`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    workers: int = Field(0, ge=0, le=256)
    skip_bad: bool = False

    def input_files(self) -> Iterator[tuple[str, Path]]:
        """``(name, file)`` of every file the reader may read, for the source's manifest
        (``simgan.core.manifest``): ``name`` is ``<key>/<path relative to that key's
        directory>``. Default: every file under each path-valued key, recursively; readers
        narrow it to what they read, so that other files there rerun nothing. A missing
        directory raises :class:`IngestError`, as the reader would."""
        for key, base in self.path_keys():
            yield from walk_files(key, base, recursive=True)

    def path_keys(self) -> list[tuple[str, Path]]:
        """``(key, path)`` of the source's path-valued keys that are set, in field order."""
        return [(key, value) for key, value in self if isinstance(value, Path)]

    def with_root(self, root: str | Path) -> IngestSourceBase:
        """A copy whose relative paths are taken relative to ``root`` (the project root)."""
        update = {}
        for name, value in self:
            if isinstance(value, Path) and not value.is_absolute():
                update[name] = Path(root) / value
        return self.model_copy(update=update)


def is_dir_entry(entry: os.DirEntry) -> bool:
    """``entry.is_dir()`` that says False instead of raising for a symlink loop (ELOOP):
    the readers then list the entry as a file and report it as unreadable, naming it."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def listed_names(root: Path, keep: Callable[[str], bool]) -> list[str]:
    """Names of the non-directory entries directly in ``root`` that pass ``keep``, in the
    directory's order (symlink loops included, as files: their decoding reports them)."""
    with os.scandir(root) as it:
        return [e.name for e in it if not is_dir_entry(e) and keep(e.name)]


def walk_files(key: str, base: Path, recursive: bool = False,
               keep: Callable[[str], bool] | None = None) -> Iterator[tuple[str, Path]]:
    """``(key/relative path, file)`` of the files under ``base`` (or ``base`` itself when it
    is a file) whose path relative to ``base`` passes ``keep``; symlinks are followed, as
    the readers open them. Order is the directory's: callers sort.

    Symlinks that lead nowhere (dangling, or a loop) are left out: nothing can be read there
    (the reader reports them by name), and the manifest could not ``stat`` them. A directory
    reached twice (a symlink to a parent) is walked once, so a loop cannot recurse forever."""
    if base.is_file():
        yield key, base
        return
    if not base.is_dir():
        raise IngestError(base, key, "directory not found")
    todo, seen = [base], {_dir_id(base)}
    while todo:
        folder = todo.pop()
        with os.scandir(folder) as it:
            for entry in it:
                path = Path(entry.path)
                if is_dir_entry(entry):
                    if recursive and _dir_id(path) not in seen:
                        seen.add(_dir_id(path))
                        todo.append(path)
                    continue
                if entry.is_symlink() and not path.exists():
                    continue
                rel = path.relative_to(base).as_posix()
                if keep is None or keep(rel):
                    yield f"{key}/{rel}", path


def _dir_id(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


@dataclass(frozen=True)
class PlanSettings:
    """Settings shared by every source of a domain (the task's params section holds them).

    ``seed``: the train/test split and the row subset; ``chunk_size``: rows per chunk handed
    to the dataset writer (peak memory); ``max_train`` / ``max_test``: the most rows of each
    split (None = all). A split with more rows keeps a seeded random subset of that many, in
    file order, chosen before decoding (so a cap also bounds the decoding time).
    """

    out_shape: tuple[int, int]
    seed: int = 0
    chunk_size: int = 4096
    max_train: int | None = None
    max_test: int | None = None

    def __post_init__(self) -> None:
        if self.chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0 (got {self.chunk_size})")
        for name in ("max_train", "max_test"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be > 0 or None (got {v})")

    def cap(self, split: str) -> int | None:
        return {"train": self.max_train, "test": self.max_test}[split]

    def subset(self, split: str, n: int) -> np.ndarray | None:
        """Sorted positions of the rows of ``split`` to keep out of ``n``, or None (all).

        Seeded by (seed, split), independent of the seeded train/test split itself."""
        cap = self.cap(split)
        if cap is None or n <= cap:
            return None
        rng = np.random.default_rng([self.seed, 1 if split == "train" else 2])
        return np.sort(rng.choice(n, size=cap, replace=False))

    def rows_meta(self, split: str, available: int) -> dict[str, Any]:
        """meta.json entries saying how many rows the source offered and the cap applied."""
        return {"rows_available": int(available), "rows_cap": self.cap(split),
                "rows_selected": int(min(available, self.cap(split) or available))}


def random_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions 0..n-1 -> (train, test), both sorted; ``round(fraction * n)`` test items,
    at least one each when the fraction is positive and n >= 2. Seeded: same split every run."""
    n_test = int(round(test_fraction * n))
    if test_fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def first_bad_or(known_bad: list[BadInput], skip_bad: bool) -> list[BadInput]:
    """Fail fast while planning: without ``skip_bad`` the first problem found raises."""
    if known_bad and not skip_bad:
        raise known_bad[0].error()
    return known_bad
