"""Fuzz suite of the readers: seeded bad (and some valid) inputs, each with its exact outcome.

Every generated input is a small dataset in the reader's real format (the fixture builders of
the reader tests) with one thing changed: a truncation, a wrong type, NaN/inf/huge numbers,
a wrong arity, bit depth or size, non-UTF-8 bytes, deep nesting, a missing field, an empty
file, a directory or a symlink loop in place of a file. Each input runs twice, with
``skip_bad`` off and on, and must end in exactly the class its mutation calls for:

- ``bad`` input: off -> an :class:`IngestError` whose message starts with ``<file>: <field>``;
  on -> skipped and counted (the field in ``skipped_bad_by_field``, the file in the examples),
  the good rows written;
- ``error`` (a structural problem, or nothing usable left): an IngestError both ways;
- ``valid`` (a mutation that is in fact valid): accepted both ways, every row written.

:func:`fuzz_counts` gives the outcomes by reader and class (the closing note quotes them;
``python -m tests.test_fuzz_readers`` prints them). The default run is sized for the normal
suite (about 330 inputs); ``test_fuzz_readers_large`` (slow) runs ten times as many.
"""

from __future__ import annotations

import copy
import io
import json
import os
import struct
import tempfile
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.io import savemat

from simgan.core.ingest.common import IngestError, PlanSettings
from simgan.gaze.readers.folder import FolderSource
from simgan.gaze.readers.mpiigaze import EVAL_DIR, NORMALIZED, MpiiGazeSource
from simgan.gaze.readers.sources import plan_splits
from simgan.gaze.readers.unityeyes import UnityEyesSource
from simgan.hand.nyu import CropFormat, NyuSource, plan_nyu_splits, png_name
from tests.test_hand_nyu import H as NYU_H
from tests.test_hand_nyu import W as NYU_W
from tests.test_hand_nyu import joints_for, make_split, write_depth_png
from tests.test_ingest_mpiigaze import day_content, save_v5, save_v73
from tests.test_ingest_unityeyes import H as UE_H
from tests.test_ingest_unityeyes import W as UE_W
from tests.test_ingest_unityeyes import write_sample

SEED = 20240611
PER_READER = {"unityeyes": 100, "mpiigaze": 80, "nyu": 60, "folder": 90}
"""Inputs per reader in the normal suite (330 in all, each run with skip_bad off and on)."""
LARGE_FACTOR = 10

BAD, ERROR, VALID = "bad", "error", "valid"
RAISED, SKIPPED, ACCEPTED = "error", "skipped", "accepted"
Build = Callable[[Path], None]


@dataclass(frozen=True)
class Expect:
    """The outcome an input must have. ``file`` is relative to the input's directory ('' =
    the directory); ``fields``: the field the message names (one of them; a prefix, so
    ``iris_2d`` covers ``iris_2d[3]``); ``rows``: rows written when not raising; ``on``:
    (file, field) of the error with skip_bad on, when it differs."""

    kind: str
    file: str = ""
    fields: tuple[str, ...] = ()
    rows: int = 0
    on: tuple[str, str] | None = None


@dataclass(frozen=True)
class Case:
    reader: str
    mutation: str
    build: Build
    expect: Expect


def bad(file: str, *fields: str, rows: int) -> Expect:
    return Expect(BAD, file, fields, rows)


def error(file: str, *fields: str, on: tuple[str, str] | None = None) -> Expect:
    return Expect(ERROR, file, fields, on=on)


def valid(rows: int) -> Expect:
    return Expect(VALID, rows=rows)


# ----------------------------------------------------------------------------- file tricks


def symlink_loop(path: Path) -> None:
    """``path`` becomes a symlink to itself (ELOOP on open)."""
    path.unlink(missing_ok=True)
    os.symlink(path.name, path)


def make_dir(path: Path) -> None:
    """A directory where a file is expected."""
    path.unlink(missing_ok=True)
    path.mkdir()
    (path / "inside.txt").write_text("x")


def insert_byte(data: bytes, rng: np.random.Generator) -> bytes:
    """A byte >= 0x80 inserted among ASCII bytes: never valid UTF-8 there."""
    pos = int(rng.integers(0, len(data) + 1))
    return data[:pos] + bytes([int(rng.integers(0x80, 0x100))]) + data[pos:]


def image_bytes(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def png_with_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR claims another size (CRC fixed), pixel data unchanged."""
    assert data[12:16] == b"IHDR"
    ihdr = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def gray_modes(gray: np.ndarray) -> dict[str, tuple[bytes, str, bool]]:
    """The same picture in other modes and bit depths: name -> (bytes, ext, valid)."""
    g16 = gray.astype(np.uint16) * 257
    rgb = Image.fromarray(np.stack([gray] * 3, -1), "RGB")
    big = gray.astype(np.int32) * 70000
    nan = gray.astype(np.float32)
    nan[0, 0] = np.nan
    return {
        "16-bit gray PNG": (image_bytes(Image.fromarray(g16), "PNG"), "png", True),
        "32-bit int within 16 bits (TIFF)": (image_bytes(Image.fromarray(g16.astype(np.int32)),
                                                         "TIFF"), "png", True),
        "32-bit int beyond 16 bits (TIFF)": (image_bytes(Image.fromarray(big), "TIFF"), "png",
                                             False),
        "float image (TIFF)": (image_bytes(Image.fromarray(gray.astype(np.float32)), "TIFF"),
                               "png", False),
        "NaN float image (TIFF)": (image_bytes(Image.fromarray(nan), "TIFF"), "png", False),
        "1-bit PNG": (image_bytes(Image.fromarray(gray > 128), "PNG"), "png", True),
        "palette PNG": (image_bytes(rgb.convert("P"), "PNG"), "png", True),
        "gray+alpha PNG": (image_bytes(rgb.convert("LA"), "PNG"), "png", True),
        "RGBA PNG": (image_bytes(rgb.convert("RGBA"), "PNG"), "png", True),
        "CMYK JPEG": (image_bytes(rgb.convert("CMYK"), "JPEG"), "jpg", True),
    }


# ----------------------------------------------------------------------------- UnityEyes


class UnityEyesBase:
    """One good UnityEyes pair (``1``) and the mutated one (``2``), in UnityEyes' format."""

    def __init__(self, cache: Path):
        write_sample(cache, "0")
        self.data = json.loads((cache / "0.json").read_text())
        self.jpg = (cache / "0.jpg").read_bytes()
        self.gray = np.asarray(Image.open(cache / "0.jpg").convert("L"))

    def build(self, data: Any = None, raw: bytes | None = None, image: bytes | None = None,
              ext: str = "jpg", post: Callable[[Path], None] | None = None) -> Build:
        def run(d: Path) -> None:
            (d / "1.json").write_text(json.dumps(self.data, indent=4))
            (d / "1.jpg").write_bytes(self.jpg)
            text = raw if raw is not None else json.dumps(
                self.data if data is None else data, indent=4).encode()
            (d / "2.json").write_bytes(text)
            (d / f"2.{ext}").write_bytes(self.jpg if image is None else image)
            if post is not None:
                post(d)
        return run

    def points(self, key: str) -> np.ndarray:
        return np.array([[float(x) for x in s.strip("()").split(",")] for s in self.data[key]])


def _fmt(values) -> str:
    return "(" + ", ".join(str(v) for v in values) + ")"


def _set(data: dict, path: str, value: Any) -> dict:
    out = copy.deepcopy(data)
    keys = path.split(".")
    target = out
    for k in keys[:-1]:
        target = target[k]
    if value is _DROP:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return out


_DROP = object()
UE_BAD_IF_WRONG = ("interior_margin_2d", "iris_2d", "eye_details", "eye_details.look_vec")
UE_OPTIONAL = ("head_pose", "eye_details.pupil_size", "eye_details.iris_size")
UE_ROWS = 2


def ue_cases(base: UnityEyesBase, rng: np.random.Generator) -> list[Callable[[], Case]]:
    """The mutation families; each call draws its parameters from ``rng``."""
    raw = json.dumps(base.data, indent=4).encode()
    d = base.data

    def case(name: str, build: Build, expect: Expect) -> Case:
        return Case("unityeyes", name, build, expect)

    def truncate() -> Case:
        p = int(rng.integers(0, len(raw)))
        return case("json truncated", base.build(raw=raw[:p]), bad("2.json", "json", rows=1))

    def non_utf8() -> Case:
        return case("json with a non-UTF-8 byte", base.build(raw=insert_byte(raw, rng)),
                    bad("2.json", "json", rows=1))

    def deep() -> Case:
        if rng.random() < 0.5:
            n = int(rng.integers(5000, 100000))
            return case("json nested deeply", base.build(raw=b"[" * n + b"]" * n),
                        bad("2.json", "json", rows=1))
        n = int(rng.integers(2, 100))
        nested: Any = "(0, 0, -1, 0)"
        for _ in range(n):
            nested = [nested]
        return case("look_vec nested in lists", base.build(_set(d, "eye_details.look_vec", nested)),
                    bad("2.json", "eye_details.look_vec", rows=1))

    def huge_int() -> Case:
        key = str(rng.choice(["eye_details.pupil_size", "eye_details.iris_size"]))
        digits = int(rng.integers(310, 20000))
        text = raw.decode().replace(json.dumps(_get(d, key)), "9" * digits, 1).encode()
        field = "json" if digits > 4300 else key
        return case(f"integer of {digits} digits", base.build(raw=text),
                    bad("2.json", field, rows=1))

    def wrong_type() -> Case:
        key = str(rng.choice([*UE_BAD_IF_WRONG, *UE_OPTIONAL]))
        kinds = {"int": 3, "float": 0.5, "list of ints": [1] * 16, "dict": {"a": 1},
                 "bool": True, "garbage string": "abc", "null": None, "empty list": []}
        kind = str(rng.choice(list(kinds)))
        value = kinds[kind]
        ok = key in UE_OPTIONAL and (value is None or (
            key != "head_pose" and kind in ("int", "float", "bool")))
        expect = valid(UE_ROWS) if ok else bad("2.json", key, rows=1)
        return case(f"{key} as {kind}", base.build(_set(d, key, value)), expect)

    def missing() -> Case:
        key = str(rng.choice([*UE_BAD_IF_WRONG, *UE_OPTIONAL, "caruncle_2d", "lighting_details"]))
        expect = bad("2.json", key, rows=1) if key in UE_BAD_IF_WRONG else valid(UE_ROWS)
        return case(f"{key} missing", base.build(_set(d, key, _DROP)), expect)

    def number() -> Case:
        key = str(rng.choice(["interior_margin_2d", "iris_2d", "eye_details.look_vec"]))
        value = float(rng.choice([np.nan, np.inf, -np.inf, 1e200, -1e200, 2.0]))
        if key == "eye_details.look_vec":
            vec = [0.1, -0.2, -0.9, 0.0]
            comp = int(rng.integers(0, 4))
            vec[comp] = vec[comp] * value if abs(value) == 2.0 else value
            # w (the 4th value) is not read; finite components of any size normalise
            ok = comp == 3 or np.isfinite(value)
            expect = valid(UE_ROWS) if ok else bad("2.json", key, rows=1)
            return case(f"look_vec[{comp}] = {value}", base.build(_set(d, key, _fmt(vec))), expect)
        pts = base.points(key)
        i, comp = int(rng.integers(0, len(pts))), int(rng.integers(0, 3))
        pts[i, comp] = pts[i, comp] + value if abs(value) == 2.0 else value
        # x, y must be finite and on the 320x240 image; z must only be finite
        on_image = comp == 2 or (0 <= pts[i, comp] <= (UE_W, UE_H)[comp])
        ok = np.isfinite(value) and on_image
        expect = valid(UE_ROWS) if ok else bad("2.json", key, rows=1)
        return case(f"{key}[{i}][{comp}] = {value}",
                    base.build(_set(d, key, [_fmt(p) for p in pts])), expect)

    def arity() -> Case:
        key = str(rng.choice(["interior_margin_2d", "iris_2d", "eye_details.look_vec",
                              "head_pose"]))
        k = int(rng.integers(1, 6))
        numbers = ["1.5", "2.5", "-3.5", "0.0", "7.0"][:k]
        if key in ("interior_margin_2d", "iris_2d"):
            pts = list(_get(d, key))
            i = int(rng.integers(0, len(pts) - 1))
            x = pts[i].strip("()").split(",")
            pts[i] = _fmt((x + ["0.0", "0.0"])[:k])
            if rng.random() < 0.5 and k == 2:  # and a neighbour with 4: the total is right
                pts[i + 1] = _fmt(pts[i + 1].strip("()").split(",") + ["0.0"])
            ok = k == 3
            expect = valid(UE_ROWS) if ok else bad("2.json", key, rows=1)
            return case(f"{key}[{i}] with {k} numbers", base.build(_set(d, key, pts)), expect)
        ok = k == 3 or (k == 4 and key == "eye_details.look_vec")
        if key == "eye_details.look_vec":
            numbers = ["0.1", "-0.2", "-0.9", "0.0", "1.0"][:k]
            ok = ok and k >= 3
        expect = valid(UE_ROWS) if ok else bad("2.json", key, rows=1)
        return case(f"{key} with {k} numbers", base.build(_set(d, key, _fmt(numbers))), expect)

    def shift() -> Case:
        key = str(rng.choice(["interior_margin_2d", "iris_2d"]))
        pts = base.points(key)
        dx, dy = rng.integers(-400, 400, size=2)
        if rng.random() < 0.5:
            dx, dy = dx // 20, dy // 20
        pts[:, 0] += dx
        pts[:, 1] += dy
        inside = ((pts[:, 0] >= 0) & (pts[:, 0] <= UE_W) & (pts[:, 1] >= 0)
                  & (pts[:, 1] <= UE_H)).all()
        expect = valid(UE_ROWS) if inside else bad("2.json", key, rows=1)
        return case(f"{key} moved by ({dx}, {dy})",
                    base.build(_set(d, key, [_fmt(p) for p in pts])), expect)

    def image() -> Case:
        modes = gray_modes(base.gray)
        kind = str(rng.choice(["truncated", "garbage", "empty", "smaller", "larger", *modes]))
        if kind in modes:
            data, ext, ok = modes[kind]
            expect = valid(UE_ROWS) if ok else bad(f"2.{ext}", "image", rows=1)
            return case(kind, base.build(image=data, ext=ext), expect)
        if kind == "truncated":
            data = base.jpg[: int(rng.integers(0, len(base.jpg) - 200))]
        elif kind == "garbage":
            data = rng.integers(0, 256, size=int(rng.integers(1, 3000)), dtype=np.uint8).tobytes()
        elif kind == "empty":
            data = b""
        else:
            size = (160, 120) if kind == "smaller" else (400, 300)
            data = image_bytes(Image.fromarray(base.gray).resize(size), "JPEG")
            # smaller: the eye's points fall off the image; larger: they stay on it
            expect = valid(UE_ROWS) if kind == "larger" else bad("2.json", "interior_margin_2d",
                                                                 rows=1)
            return case(f"image {kind}", base.build(image=data), expect)
        return case(f"image {kind}", base.build(image=data), bad("2.jpg", "image", rows=1))

    def filesystem() -> Case:
        kind = str(rng.choice(["json dir", "image dir", "json loop", "image loop",
                               "json gone", "image gone", "json dangling link"]))
        target, other = ("2.json", "2.jpg") if kind.startswith("json") else ("2.jpg", "2.json")

        def post(dd: Path) -> None:
            if kind.endswith("dir"):
                make_dir(dd / target)
            elif kind.endswith("loop"):
                symlink_loop(dd / target)
            elif kind.endswith("gone"):
                (dd / target).unlink()
            else:
                (dd / target).unlink()
                os.symlink("nowhere.json", dd / target)

        # a directory or a missing file: the partner is reported, missing its pair
        if kind.endswith(("dir", "gone")):
            expect = bad(other, "json" if target.endswith("json") else "image", rows=1)
        else:
            expect = bad(target, "json" if target.endswith("json") else "image", rows=1)
        return case(kind, base.build(post=post), expect)

    def all_bad() -> Case:
        def post(dd: Path) -> None:
            (dd / "1.json").write_bytes(raw[: int(rng.integers(0, len(raw)))])
            (dd / "2.json").write_text("[]")

        return case("every file bad", base.build(post=post),
                    error("1.json", "json", on=("", "rows")))

    def valid_variant() -> Case:
        look = rng.normal(size=3) * float(rng.choice([1e-3, 1.0, 1e6]))
        spaced = [s.replace(",", " ,  ") for s in d["iris_2d"]]
        data = _set(_set(d, "eye_details.look_vec", _fmt([*look, 0.0])), "iris_2d", spaced)
        return case("valid: any look_vec length, spaces", base.build(data), valid(UE_ROWS))

    return [truncate, non_utf8, deep, huge_int, wrong_type, missing, number, arity, shift,
            image, filesystem, all_bad, valid_variant]


def _get(data: dict, path: str) -> Any:
    for k in path.split("."):
        data = data[k]
    return data


def ingest_unityeyes(root: Path, skip_bad: bool) -> Counter:
    src = UnityEyesSource(path=root, test_fraction=0.0, skip_bad=skip_bad)
    return _drain(plan_splits(src))


# ----------------------------------------------------------------------------- MPIIGaze

MP_ROWS = 16  # p00/day01 (3 samples) + p00/day02 (3, mutated) + p01/day01 (2), both eyes
MP_DAY = f"{NORMALIZED}/p00/day02.mat"
MP_LIST = f"{EVAL_DIR}/p01.txt"


def mp_layout(d: Path, write_day02: Callable[[Path], None] | None = None) -> None:
    """p00: day01 good, day02 (by ``write_day02``); p01: day01 good (the test person)."""
    for p, day, n in ((0, 1, 3), (1, 1, 2)):
        (d / NORMALIZED / f"p{p:02d}").mkdir(parents=True, exist_ok=True)
        names, eyes = day_content(n, seed=10 * p + day)
        save_v5(d / NORMALIZED / f"p{p:02d}" / f"day{day:02d}.mat", names, eyes)
    if write_day02 is not None:
        write_day02(d / MP_DAY)


def mp_day(mutate: Callable[[list, dict], tuple[list, dict]] | None = None,
           fmt: str = "v5") -> Callable[[Path], None]:
    def write(path: Path) -> None:
        names, eyes = day_content(3, seed=7)
        if mutate is not None:
            names, eyes = mutate(names, eyes)
        (save_v73 if fmt == "v73" else save_v5)(path, names, eyes)
    return write


def mp_eval_layout(d: Path, lines_p01: bytes | None) -> None:
    """p00 and p01 with one day of 3 samples each and their evaluation lists (1 test eye
    each); p01's list is ``lines_p01`` (None: no file)."""
    for p in (0, 1):
        (d / NORMALIZED / f"p{p:02d}").mkdir(parents=True)
        names, eyes = day_content(3, seed=p)
        save_v5(d / NORMALIZED / f"p{p:02d}" / "day01.mat", names, eyes)
    (d / EVAL_DIR).mkdir(parents=True)
    (d / EVAL_DIR / "p00.txt").write_text("day01/0001.jpg left\n")
    if lines_p01 is not None:
        (d / MP_LIST).write_bytes(lines_p01)


def mp_cases(cache: Path, rng: np.random.Generator) -> list[Callable[[], Case]]:
    def case(name: str, build: Build, expect: Expect) -> Case:
        return Case("mpiigaze", name, build, expect)

    def day_case(name: str, write: Callable[[Path], None], expect: Expect) -> Case:
        return case(name, lambda d: mp_layout(d, write), expect)

    fmt = lambda: str(rng.choice(["v5", "v73"]))  # noqa: E731

    def truncate() -> Case:
        f = fmt()
        tmp = cache / f"day.{f}.mat"
        mp_day(fmt=f)(tmp)
        data = tmp.read_bytes()
        p = int(rng.integers(0, len(data) - 16))

        def write(path: Path) -> None:
            path.write_bytes(data[:p])
        return day_case(f"{f} truncated at {p}", write,
                        bad(MP_DAY, "file", "filenames", "data", rows=MP_ROWS - 6))

    def field_type() -> Case:
        eye, field, f = str(rng.choice(["left", "right"])), str(rng.choice(["gaze", "pose"])), fmt()
        kind = str(rng.choice(["text", "complex"]))

        def mutate(names, eyes):
            if kind == "text":
                value = np.array([["abc"] * 3] * 3) if f == "v5" else np.array([[b"abc"] * 3] * 3)
            else:
                value = np.full((3, 3), 1 + 2j)
            eyes[eye][field] = value
            return names, eyes
        return day_case(f"{f} data.{eye}.{field} as {kind}", mp_day(mutate, f),
                        bad(MP_DAY, f"data.{eye}.{field}", rows=MP_ROWS - 6))

    def gaze_value() -> Case:
        eye, j, f = str(rng.choice(["left", "right"])), int(rng.integers(0, 3)), fmt()
        kind = str(rng.choice(["nan", "inf", "zero", "tiny", "huge", "huger"]))
        values = {"nan": [0.1, np.nan, -0.9], "inf": [np.inf, 0, -1], "zero": [0, 0, 0],
                  "tiny": [1e-12, 0, -1e-12], "huge": [1e200, -1e200, -1e201],
                  "huger": [1e300, 1e300, -1e308]}

        def mutate(names, eyes):
            eyes[eye]["gaze"][j] = values[kind]
            return names, eyes
        ok = kind.startswith("huge")
        expect = valid(MP_ROWS) if ok else bad(MP_DAY, f"data.{eye}.gaze", rows=MP_ROWS - 1)
        return day_case(f"{f} gaze {kind}", mp_day(mutate, f), expect)

    def pose_value() -> Case:
        eye, j, f = str(rng.choice(["left", "right"])), int(rng.integers(0, 3)), fmt()
        value = float(rng.choice([np.nan, np.inf, 1e300, 7.0, 0.5, -0.3]))

        def mutate(names, eyes):
            eyes[eye]["pose"][j] = [value, 0.0, 0.0]
            return names, eyes
        ok = abs(value) <= 2 * np.pi
        expect = valid(MP_ROWS) if ok else bad(MP_DAY, f"data.{eye}.pose", rows=MP_ROWS - 1)
        return day_case(f"{f} pose {value}", mp_day(mutate, f), expect)

    def image() -> Case:
        eye, f = str(rng.choice(["left", "right"])), fmt()
        kind = str(rng.choice(["uint16", "float64", "40x60", "36x61", "one more", "2-D"]))

        def mutate(names, eyes):
            img = eyes[eye]["image"]
            eyes[eye]["image"] = {
                "uint16": img.astype(np.uint16), "float64": img.astype(np.float64),
                "40x60": np.zeros((3, 40, 60), np.uint8), "36x61": np.zeros((3, 36, 61), np.uint8),
                "one more": np.zeros((4, 36, 60), np.uint8), "2-D": img[:, :, 0]}[kind]
            return names, eyes
        return day_case(f"{f} data.{eye}.image {kind}", mp_day(mutate, f),
                        bad(MP_DAY, f"data.{eye}.image", rows=MP_ROWS - 6))

    def missing() -> Case:
        eye, field = str(rng.choice(["left", "right"])), str(rng.choice(["image", "gaze", "pose"]))
        f = fmt()

        def write(path: Path) -> None:
            names, eyes = day_content(3, seed=7)
            (save_v73 if f == "v73" else save_v5)(path, names, eyes, drop=f"{eye}.{field}")
        return day_case(f"{f} data.{eye}.{field} missing", write,
                        bad(MP_DAY, f"data.{eye}.{field}", rows=MP_ROWS - 6))

    def names() -> Case:
        f = fmt()
        kind = str(rng.choice(["empty", "duplicate", "blank name", "control char", "4 names",
                               "v5 numbers", "v73 codes > 0xFFFF", "v73 negative codes",
                               "v73 float codes", "v73 group"]))
        def write(path: Path) -> None:
            n_, eyes = day_content(3, seed=7)
            if kind == "empty":
                n_ = []
            elif kind == "duplicate":
                n_ = ["0001.jpg", "0001.jpg", "0003.jpg"]
            elif kind == "blank name":
                n_ = ["0001.jpg", " ", "0003.jpg"]
            elif kind == "control char":
                n_ = ["0001.jpg", "00\x0702.jpg", "0003.jpg"]
            elif kind == "4 names":
                n_ = [*n_, "0004.jpg"]
            if kind == "v5 numbers":
                savemat(path, {"data": eyes, "filenames": np.arange(3.0)[:, None]})
                return
            if kind.startswith("v73"):
                save_v73(path, n_, eyes)
                _break_h5_names(path, kind)
                return
            (save_v73 if f == "v73" else save_v5)(path, n_, eyes)
        if kind == "4 names":  # planned from 4 names, the images hold 3: the day is bad
            expect = bad(MP_DAY, "data.left.image", rows=MP_ROWS - 6)
        else:
            expect = bad(MP_DAY, "filenames", rows=MP_ROWS - 6)
        return day_case(f"filenames: {kind}", write, expect)

    def filesystem() -> Case:
        kind = str(rng.choice(["directory", "symlink loop", "empty", "garbage"]))

        def write(path: Path) -> None:
            if kind == "directory":
                make_dir(path)
            elif kind == "symlink loop":
                symlink_loop(path)
            elif kind == "empty":
                path.write_bytes(b"")
            else:
                path.write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
        return day_case(f"day file: {kind}", write, bad(MP_DAY, "file", rows=MP_ROWS - 6))

    def eval_list() -> Case:
        good = b"day01/0002.jpg right\n"
        kind = str(rng.choice(["non-UTF-8", "malformed line", "unknown sample", "directory",
                               "missing", "symlink loop", "empty", "CRLF and blank lines"]))
        if kind == "non-UTF-8":
            lines, expect = insert_byte(good, rng), bad(MP_LIST, "file", rows=6)
        elif kind == "malformed line":
            junk = str(rng.choice(["day01/0001.jpg up", "x", "a/b/c left", "day01 0001.jpg left"]))
            lines, expect = good + junk.encode() + b"\n", bad(MP_LIST, "line 2", rows=12)
        elif kind == "unknown sample":
            lines, expect = good + b"day07/0001.jpg left\n", bad(MP_LIST, "line 2", rows=12)
        elif kind in ("directory", "missing", "symlink loop"):
            lines, expect = None, bad(MP_LIST, "file", rows=6)
        else:  # an empty list: that person has no test samples; CRLF and blank lines: fine
            lines = b"" if kind == "empty" else b"\r\n" + good.replace(b"\n", b"\r\n") + b"\n"
            expect = valid(12)

        def build(d: Path) -> None:
            mp_eval_layout(d, lines)
            if kind == "directory":
                make_dir(d / MP_LIST)
            elif kind == "symlink loop":
                symlink_loop(d / MP_LIST)
        return case(f"eval list: {kind}", build, expect)

    def all_bad() -> Case:
        def build(d: Path) -> None:
            mp_layout(d, lambda p: p.write_bytes(b"garbage"))
            (d / NORMALIZED / "p00" / "day01.mat").write_bytes(b"")
        return case("every train day bad", build,
                    error(f"{NORMALIZED}/p00/day01.mat", "file", on=("", "rows")))

    def valid_variant() -> Case:
        f = fmt()

        def mutate(names, eyes):
            for eye in eyes:
                eyes[eye]["gaze"] = eyes[eye]["gaze"] * float(rng.uniform(0.01, 100))
            return names, eyes
        return day_case(f"valid: {f}, gaze of any length", mp_day(mutate, f), valid(MP_ROWS))

    return [truncate, field_type, gaze_value, pose_value, image, missing, names, filesystem,
            eval_list, all_bad, valid_variant]


def _break_h5_names(path: Path, kind: str) -> None:
    """Spoil a v7.3 file's ``filenames`` as ``kind`` says."""
    with h5py.File(path, "r+") as f:
        if kind == "v73 group":
            del f["filenames"]
            f.create_group("filenames")
            return
        codes = {"v73 codes > 0xFFFF": np.array([[0x110000], [65]], np.uint32),
                 "v73 negative codes": np.array([[-5], [65]], np.int32),
                 "v73 float codes": np.array([[48.0], [49.5]])}[kind]
        del f["#refs#/s1"]
        ds = f["#refs#"].create_dataset("s1", data=codes)
        refs = f["filenames"][()]
        refs[0, 1] = ds.ref
        f["filenames"][...] = refs


def ingest_mpiigaze(root: Path, skip_bad: bool) -> Counter:
    if (root / EVAL_DIR).is_dir():
        src = MpiiGazeSource(path=root, split="eval_list", skip_bad=skip_bad)
    else:
        src = MpiiGazeSource(path=root, split="persons", test_persons=["p01"], skip_bad=skip_bad)
    return _drain(plan_splits(src))


# ----------------------------------------------------------------------------- NYU

NYU_FMT = CropFormat(size=32, cube_mm=300.0, depth_reference="cube")
NYU_PNG = f"train/{png_name('depth', 1, 2)}"
NYU_MAT = "train/joint_data.mat"


class NyuBase:
    """train/ (frames 1, 2 of Kinect 1; frame 2 mutated) and test/ (1 frame), NYU's format."""

    def __init__(self, cache: Path):
        make_split(cache / "train", n_kinects=1, n_frames=2, synth=False)
        make_split(cache / "test", n_kinects=1, n_frames=1, synth=False)
        self.files = {p.relative_to(cache).as_posix(): p.read_bytes()
                      for p in cache.rglob("*") if p.is_file()}
        self.png = self.files[NYU_PNG]
        self.uvd = np.stack([joints_for(1, f, 2) for f in (1, 2)])[None]
        # joint_data.mat holds joint_uvd, joint_xyz, then names the reader does not load: a
        # cut after the first two leaves every label it reads intact
        savemat(cache / "labels_only.mat", {"joint_uvd": self.uvd, "joint_xyz": self.uvd * 0.5})
        self.labels_end = (cache / "labels_only.mat").stat().st_size

    def build(self, post: Callable[[Path], None] | None = None) -> Build:
        def run(d: Path) -> None:
            for rel, data in self.files.items():
                (d / rel).parent.mkdir(parents=True, exist_ok=True)
                (d / rel).write_bytes(data)
            if post is not None:
                post(d)
        return run


def nyu_cases(base: NyuBase, rng: np.random.Generator) -> list[Callable[[], Case]]:
    from simgan.hand.joints import NYU_EVAL_JOINTS

    def case(name: str, post: Callable[[Path], None], expect: Expect) -> Case:
        return Case("nyu", name, base.build(post), expect)

    def png(data: bytes) -> Callable[[Path], None]:
        return lambda d: (d / NYU_PNG).write_bytes(data)

    def truncate() -> Case:
        p = int(rng.integers(0, len(base.png) - 20))
        return case(f"PNG truncated at {p}", png(base.png[:p]), bad(NYU_PNG, "image", rows=2))

    def mode() -> Case:
        kind = str(rng.choice(["L", "I;16", "P", "LA", "1", "RGBA"]))
        depth = np.asarray(Image.open(io.BytesIO(base.png)))
        im = Image.fromarray(depth[..., 1]) if kind != "I;16" else Image.fromarray(
            depth[..., 1].astype(np.uint16) * 256 + depth[..., 2])
        if kind == "RGBA":
            im = Image.fromarray(depth, "RGB").convert("RGBA")
        elif kind != "I;16":
            im = im.convert(kind)
        expect = valid(3) if kind == "RGBA" else bad(NYU_PNG, "mode", rows=2)
        return case(f"PNG mode {kind}", png(image_bytes(im, "PNG")), expect)

    def size() -> Case:
        w, h = int(rng.integers(200, 700)), int(rng.integers(200, 500))
        if (w, h) == (NYU_W, NYU_H):
            w += 1

        def post(d: Path) -> None:
            write_depth_png(d / NYU_PNG, np.full((h, w), 700, np.uint16))
        return case(f"PNG {w}x{h}", post, bad(NYU_PNG, "size", rows=2))

    def bomb() -> Case:
        w, h = int(rng.integers(14000, 60000)), int(rng.integers(14000, 60000))
        return case(f"PNG header claims {w}x{h}", png(png_with_size(base.png, w, h)),
                    bad(NYU_PNG, "image", rows=2))

    def joint() -> Case:
        j = int(rng.integers(0, 36))
        comp = int(rng.integers(0, 3))
        choices = {0: [np.nan, np.inf, -5.0, 700.0, 1e300, 639.5, 100.0, -0.5],
                   1: [np.nan, -np.inf, 480.5, -0.6, 479.5, 0.0, 1e300],
                   2: [0.0, -10.0, 50.0, 20000.0, 1e300, np.nan, 5000.0, 150.0]}[comp]
        value = float(rng.choice(choices))
        uvd = base.uvd.copy()
        uvd[0, 1, j, comp] = value
        limit = {0: (-0.5, NYU_W - 0.5), 1: (-0.5, NYU_H - 0.5), 2: (100.0, 10000.0)}[comp]
        plausible = bool(np.isfinite(value) and limit[0] <= value <= limit[1])
        # only the 14 evaluated joints are read
        ok = plausible or j not in NYU_EVAL_JOINTS

        def post(d: Path) -> None:
            savemat(d / NYU_MAT, {"joint_uvd": uvd, "joint_xyz": uvd * 0.5})
        expect = valid(3) if ok else bad(NYU_MAT, "joint_uvd", rows=2)
        return case(f"joint {j} [{comp}] = {value}", post, expect)

    def filesystem() -> Case:
        kind = str(rng.choice(["missing", "directory", "symlink loop", "empty"]))

        def post(d: Path) -> None:
            path = d / NYU_PNG
            {"missing": path.unlink, "directory": lambda: make_dir(path),
             "symlink loop": lambda: symlink_loop(path),
             "empty": lambda: path.write_bytes(b"")}[kind]()
        field = "file" if kind == "missing" else "image"
        return case(f"PNG {kind}", post, bad(NYU_PNG, field, rows=2))

    def labels_file() -> Case:
        kind = str(rng.choice(["truncated", "garbage", "missing", "directory", "2 kinect axes",
                               "text labels", "no joint_xyz"]))
        data = base.files[NYU_MAT]
        cut = int(rng.integers(0, len(data) - 8))

        def post(d: Path) -> None:
            path = d / NYU_MAT
            if kind == "truncated":
                path.write_bytes(data[:cut])
            elif kind == "garbage":
                path.write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
            elif kind == "missing":
                path.unlink()
            elif kind == "directory":
                make_dir(path)
            elif kind == "2 kinect axes":
                savemat(path, {"joint_uvd": base.uvd[..., :2], "joint_xyz": base.uvd})
            elif kind == "text labels":
                savemat(path, {"joint_uvd": np.array(["abc"] * 4), "joint_xyz": base.uvd})
            else:
                savemat(path, {"joint_uvd": base.uvd})
        fields = ("file", "joint_uvd", "joint_xyz")
        if kind == "truncated" and cut >= base.labels_end:
            return case(f"joint_data.mat cut at {cut}, after the labels", post, valid(3))
        return case(f"joint_data.mat {kind}", post, error(NYU_MAT, *fields))

    def all_bad() -> Case:
        def post(d: Path) -> None:
            for f in (1, 2):
                (d / "train" / png_name("depth", 1, f)).write_bytes(base.png[:100])
        return case("every train frame bad", post,
                    error(f"train/{png_name('depth', 1, 1)}", "image", on=("train", "rows")))

    def no_usable_frame() -> Case:
        uvd = base.uvd.copy()
        uvd[0, :, NYU_EVAL_JOINTS[0], 2] = -1.0

        def post(d: Path) -> None:
            savemat(d / NYU_MAT, {"joint_uvd": uvd, "joint_xyz": uvd})
        return case("no frame with plausible labels", post,
                    error(NYU_MAT, "joint_uvd", on=("train", "frames")))

    return [truncate, mode, size, bomb, joint, filesystem, labels_file, all_bad,
            no_usable_frame]


def ingest_nyu(root: Path, skip_bad: bool) -> Counter:
    src = NyuSource(path=root, skip_bad=skip_bad)
    return _drain(plan_nyu_splits(src, "depth", NYU_FMT, PlanSettings((32, 32))))


# ----------------------------------------------------------------------------- folder

FO_LABELS = "labels.csv"


class FolderBase:
    """a.png and b.png (64x40, b mutated) and labels.csv naming both."""

    def __init__(self, cache: Path):
        rng = np.random.default_rng(0)
        self.gray = rng.integers(0, 256, (40, 64), dtype=np.uint8)
        self.png = image_bytes(Image.fromarray(self.gray), "PNG")
        self.labels = pd.DataFrame({"file": ["a.png", "b.png"], "gaze_x": [0.1, -0.2],
                                    "gaze_y": [0.0, 0.1], "gaze_z": [-1.0, -0.9]})

    def build(self, labels: pd.DataFrame | bytes | None = None, image: bytes | None = None,
              ext: str = "png", post: Callable[[Path], None] | None = None,
              labelled: bool = True) -> Build:
        def run(d: Path) -> None:
            (d / "a.png").write_bytes(self.png)
            (d / f"b.{ext}").write_bytes(self.png if image is None else image)
            table = self.labels if labels is None else labels
            if isinstance(table, pd.DataFrame):
                if ext != "png":
                    table = table.assign(file=table["file"].str.replace("b.png", f"b.{ext}"))
                table = table.to_csv(index=False).encode()
            if labelled:
                (d / FO_LABELS).write_bytes(table)
            if post is not None:
                post(d)
        return run


def folder_cases(base: FolderBase, rng: np.random.Generator) -> list[Callable[[], Case]]:
    def case(name: str, build: Build, expect: Expect) -> Case:
        return Case("folder", name, build, expect)

    def truncate() -> Case:
        p = int(rng.integers(0, len(base.png) - 30))
        return case(f"image truncated at {p}", base.build(image=base.png[:p]),
                    bad("b.png", "image", rows=1))

    def modes() -> Case:
        table = gray_modes(base.gray)
        kind = str(rng.choice([*table, "garbage", "empty"]))
        if kind in table:
            data, ext, ok = table[kind]
            expect = valid(2) if ok else bad(f"b.{ext}", "image", rows=1)
            return case(kind, base.build(image=data, ext=ext), expect)
        data = b"" if kind == "empty" else rng.integers(0, 256, 999, dtype=np.uint8).tobytes()
        return case(f"image {kind}", base.build(image=data), bad("b.png", "image", rows=1))

    def gaze() -> Case:
        col = str(rng.choice(["gaze_x", "gaze_y", "gaze_z"]))
        value = rng.choice(np.array(["nan", "inf", "abc", "", "1e200", "-1e300", "0.5", "zero"],
                                    dtype=object))
        table = base.labels.astype(object)
        table.loc[1, col] = value
        if value == "zero":  # all three 0 (or below the smallest double): no direction
            table.loc[1, ["gaze_x", "gaze_y", "gaze_z"]] = ["0", "-0.0", "1e-400"]
        ok = value in ("1e200", "-1e300", "0.5")
        field = "gaze_x/gaze_y/gaze_z"
        expect = valid(2) if ok else bad(FO_LABELS, field, rows=1)
        return case(f"{col} = {value!r}", base.build(labels=table), expect)

    def angles() -> Case:
        pitch = rng.choice(np.array(["1e6", "2.0", "-1.6", "nan", "x", "0.3", "1.5"], dtype=object))
        yaw = rng.choice(np.array(["4.0", "-3.2", "3.0", "7", "nan", "0.1"], dtype=object))
        table = pd.DataFrame({"file": ["a.png", "b.png"], "pitch": ["0.1", pitch],
                              "yaw": ["0.0", yaw]})
        p_ok = pitch in ("0.3", "1.5")
        y_ok = yaw in ("3.0", "0.1")
        expect = valid(2) if p_ok and y_ok else bad(FO_LABELS, "pitch/yaw", rows=1)
        return case(f"pitch {pitch}, yaw {yaw}", base.build(labels=table), expect)

    def pupil() -> Case:
        u = rng.choice(np.array(["10", "63.5", "-0.5", "-3", "200", "abc", "", "inf"],
                                dtype=object))
        v = rng.choice(np.array(["5", "39.5", "40", "1e9", ""], dtype=object))
        table = base.labels.assign(pupil_u=["1", u], pupil_v=["1", v])
        nums = [float(x) if x not in ("", "abc") else None for x in (u, v)]
        if u == "abc":
            ok = False
        elif nums[0] is None and nums[1] is None:
            ok = True
        elif None in nums:
            ok = False
        else:
            ok = -0.5 <= nums[0] <= 63.5 and -0.5 <= nums[1] <= 39.5
        expect = valid(2) if ok else bad(FO_LABELS, "pupil_u/pupil_v", rows=1)
        return case(f"pupil ({u!r}, {v!r})", base.build(labels=table), expect)

    def labels_structure() -> Case:
        csv = base.labels.to_csv(index=False).encode()
        kind = str(rng.choice(["directory", "symlink loop", "non-UTF-8", "empty", "extra field",
                               "no gaze columns", "duplicate row", "no file column"]))
        post = None
        data: bytes | pd.DataFrame = csv
        field = "csv"
        if kind == "directory" or kind == "symlink loop":
            field = FO_LABELS
            post = (lambda d: make_dir(d / FO_LABELS)) if kind == "directory" else (
                lambda d: symlink_loop(d / FO_LABELS))
        elif kind == "non-UTF-8":
            data = csv.replace(b"b.png", b"b\xff.png")
        elif kind == "empty":
            data = b""
        elif kind == "extra field":
            data = csv + b"c.png,0,0,-1,5\n"
        elif kind == "no gaze columns":
            data, field = base.labels[["file", "gaze_x"]], "gaze_x/gaze_y/gaze_z or pitch/yaw"
        elif kind == "duplicate row":
            data, field = pd.concat([base.labels, base.labels.iloc[1:]]), "file"
        else:
            data, field = base.labels.drop(columns="file"), "file"
        return case(f"labels.csv: {kind}", base.build(labels=data, post=post),
                    error(FO_LABELS, field))

    def rows() -> Case:
        kind = str(rng.choice(["no row for b", "row for a ghost", "short row"]))
        if kind == "no row for b":
            return case(kind, base.build(labels=base.labels.iloc[:1]),
                        bad(FO_LABELS, "file", rows=1))
        if kind == "row for a ghost":
            ghost = pd.concat([base.labels, base.labels.iloc[:1].assign(file="ghost.png")])
            return case(kind, base.build(labels=ghost), bad(FO_LABELS, "file", rows=2))
        data = base.labels.to_csv(index=False).encode().rstrip(b"\n").rsplit(b",", 1)[0] + b"\n"
        return case(kind, base.build(labels=data), bad(FO_LABELS, "gaze_x/gaze_y/gaze_z", rows=1))

    def filesystem() -> Case:
        kind = str(rng.choice(["image dir", "image loop", "unlabelled image dir",
                               "unlabelled image loop"]))
        labelled = not kind.startswith("unlabelled")
        loop = kind.endswith("loop")

        def post(d: Path) -> None:
            (symlink_loop if loop else make_dir)(d / "b.png")
        if loop:
            expect = bad("b.png", "image", rows=1)
        else:  # a directory is no image: its labels row names no image (or nothing to read)
            expect = bad(FO_LABELS, "file", rows=1) if labelled else valid(1)
        return case(kind, base.build(post=post, labelled=labelled), expect)

    def all_bad() -> Case:
        def post(d: Path) -> None:
            (d / "a.png").write_bytes(base.png[:50])
            (d / "b.png").write_bytes(b"")
        return case("every image bad", base.build(post=post),
                    error("a.png", "image", on=("", "rows")))

    return [truncate, modes, gaze, angles, pupil, labels_structure, rows, filesystem, all_bad]


def ingest_folder(root: Path, skip_bad: bool) -> Counter:
    return _drain(plan_splits(FolderSource(path=root, test_fraction=0.0, skip_bad=skip_bad)))


# ----------------------------------------------------------------------------- the runner


def _drain(plans: dict) -> Counter:
    """Consume every split; rows written, bad inputs skipped, by field, and the examples;
    ``not unit gaze``: rows whose gaze label is not a finite unit vector (an overflowed norm
    once stored (0, 0, 0))."""
    out: Counter = Counter()
    for plan in plans.values():
        for images, labels in plan.chunks():
            out["rows"] += images.shape[0]
            if "gaze_x" in labels:
                g = labels[["gaze_x", "gaze_y", "gaze_z"]].to_numpy(np.float64)
                norm = np.linalg.norm(g, axis=1)
                out["not unit gaze"] += int((~(np.abs(norm - 1) < 1e-9)).sum())
        report = plan.late_meta.report
        out["skipped"] += report.skipped
        for f, k in report.by_field.items():
            out[f"field:{f}"] += k
        for e in report.examples:
            out[f"example:{e}"] += 1
    return out


INGEST = {"unityeyes": ingest_unityeyes, "mpiigaze": ingest_mpiigaze, "nyu": ingest_nyu,
          "folder": ingest_folder}


def generate(reader: str, n: int, seed: int, cache: Path) -> list[Case]:
    """``n`` cases of one reader: its mutation families in turn, parameters from the seed."""
    rng = np.random.default_rng([seed, sorted(INGEST).index(reader)])
    cache.mkdir(parents=True, exist_ok=True)
    families = {"unityeyes": lambda: ue_cases(UnityEyesBase(cache), rng),
                "mpiigaze": lambda: mp_cases(cache, rng),
                "nyu": lambda: nyu_cases(NyuBase(cache), rng),
                "folder": lambda: folder_cases(FolderBase(cache), rng)}[reader]()
    return [families[i % len(families)]() for i in range(n)]


def observe(case: Case, root: Path, skip_bad: bool) -> tuple[str, str]:
    """Run one input; (observed class, '' or what differs from the expectation)."""
    e = case.expect
    want = {BAD: SKIPPED if skip_bad else RAISED, ERROR: RAISED, VALID: ACCEPTED}[e.kind]
    try:
        got = INGEST[case.reader](root, skip_bad)
    except IngestError as err:
        file, fields = (e.on[0], (e.on[1],)) if (e.on and skip_bad) else (e.file, e.fields)
        path = str(root / file) if file else str(root)
        named = any(str(err).startswith(f"{path}: {f}") for f in fields)
        why = "" if want == RAISED and named else f"raised {err}"
        return RAISED, why
    except Exception:  # noqa: BLE001 - anything else is a crash: reported, not raised
        return "crash", traceback.format_exc(limit=3)
    observed = SKIPPED if got["skipped"] else ACCEPTED
    if got["not unit gaze"]:
        return observed, f"{got['not unit gaze']} row(s) with a gaze that is not a unit vector"
    if observed != want:
        return observed, f"{observed} ({dict(got)}), expected {want}"
    if got["rows"] != e.rows:
        return observed, f"{got['rows']} rows, expected {e.rows}"
    if observed == SKIPPED:
        path = str(root / e.file)
        if not any(k.startswith(f"field:{f}") for k in got for f in e.fields):
            return observed, f"skipped fields {[k for k in got if k.startswith('field:')]}"
        if not any(k.startswith(f"example:{path}: ") for k in got):
            return observed, f"no skipped example names {path}"
    return observed, ""


def run_fuzz(per_reader: dict[str, int], seed: int, work: Path
             ) -> tuple[Counter, list[str]]:
    """Every case with skip_bad off and on: counts by (reader, observed class), failures."""
    counts: Counter = Counter()
    failures: list[str] = []
    for reader, n in per_reader.items():
        for i, case in enumerate(generate(reader, n, seed, work / f"cache-{reader}")):
            root = work / reader / f"{i:05d}"
            root.mkdir(parents=True)
            case.build(root)
            for skip_bad in (False, True):
                observed, why = observe(case, root, skip_bad)
                counts[(reader, observed)] += 1
                if why:
                    failures.append(f"{reader} #{i} {case.mutation} (skip_bad={skip_bad}): {why}")
    return counts, failures


def fuzz_counts(counts: Counter) -> str:
    """The outcome table: inputs by reader, and runs by reader and class."""
    lines = [f"{'reader':10} {'inputs':>6} {'error':>6} {'skipped':>7} {'accepted':>8}"]
    for reader in INGEST:
        runs = [counts[(reader, c)] for c in (RAISED, SKIPPED, ACCEPTED)]
        lines.append(f"{reader:10} {sum(runs) // 2:>6} {runs[0]:>6} {runs[1]:>7} {runs[2]:>8}")
    total = [sum(counts[(r, c)] for r in INGEST) for c in (RAISED, SKIPPED, ACCEPTED)]
    lines.append(f"{'total':10} {sum(total) // 2:>6} {total[0]:>6} {total[1]:>7} {total[2]:>8}")
    return "\n".join(lines)


def _check(per_reader: dict[str, int], work: Path) -> Counter:
    counts, failures = run_fuzz(per_reader, SEED, work)
    print("\n" + fuzz_counts(counts))
    assert not failures, f"{len(failures)} wrong outcome(s):\n" + "\n".join(failures[:15])
    assert not any(c == "crash" for _, c in counts)
    for reader in per_reader:  # every reader shows every class
        assert all(counts[(reader, c)] > 0 for c in (RAISED, SKIPPED, ACCEPTED)), reader
    return counts


def test_fuzz_readers(tmp_path):
    counts = _check(PER_READER, tmp_path)
    assert sum(counts.values()) == 2 * sum(PER_READER.values()) >= 600


@pytest.mark.slow
def test_fuzz_readers_large(tmp_path):
    _check({r: n * LARGE_FACTOR for r, n in PER_READER.items()}, tmp_path)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        counts, failures = run_fuzz(PER_READER, SEED, Path(tmp))
    print(fuzz_counts(counts))
    print("\n".join(failures) or "no wrong outcome")
