"""Folder reader: any size and mode -> 35x55 gray, labels.csv (vector or angles), unlabelled
folders, splits, bad inputs; and the driver's chunking with skipped files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from simgan.core.dataset import write_dataset
from simgan.core.ingest.common import IngestError, NoLabelsError
from simgan.gaze.labels import require_gaze_labels
from simgan.gaze.readers.folder import FolderOptions, FolderSource, decode_image, index_folder
from simgan.gaze.readers.sources import (
    BuiltinSource,
    RealSource,
    StandinSource,
    SyntheticSource,
    plan_splits,
)


def _write(folder, name, img: Image.Image):
    img.save(folder / name)


def _write_all(plan, path):
    return write_dataset(path, plan.chunks(), plan.n, plan.image_shape, plan.dtype, plan.meta,
                         allow_fewer=plan.n_is_upper_bound, late_meta=plan.late_meta)


# ----------------------------------------------------------------------------- pixels


@pytest.mark.parametrize(
    ("name", "make", "gray"),
    [
        ("rgb.png", lambda: Image.new("RGB", (120, 80), (200, 100, 50)), 124),  # 601 luma
        ("rgba.png", lambda: Image.new("RGBA", (33, 21), (200, 100, 50, 7)), 124),  # alpha off
        ("l.jpg", lambda: Image.new("L", (640, 480), 90), 90),
        ("la.png", lambda: Image.new("LA", (55, 35), (61, 255)), 61),
        ("p.png", lambda: Image.new("RGB", (70, 40), (200, 100, 50)).convert(
            "P", palette=Image.Palette.ADAPTIVE), 124),
        ("i16.png", lambda: Image.fromarray(np.full((30, 50), 128 * 257, np.uint16)), 128),
        ("one.png", lambda: Image.new("1", (11, 7), 1), 255),
        ("cmyk.jpg", lambda: Image.new("RGB", (60, 40), (200, 100, 50)).convert("CMYK"), 124),
    ],
)
def test_any_mode_and_size_becomes_35x55_gray(tmp_path, name, make, gray):
    _write(tmp_path, name, make())
    out, _ = decode_image(str(tmp_path / name), (35, 55), "stretch")
    assert out.shape == (35, 55) and out.dtype == np.uint8
    assert abs(int(np.median(out)) - gray) <= 2


def test_resize_modes_and_pupil_mapping(tmp_path):
    # 110 x 70 source (2 px per output px when stretched), dark disc centred at (60, 30)
    a = np.full((70, 110), 200, np.uint8)
    vv, uu = np.mgrid[0:70, 0:110]
    a[(uu - 60) ** 2 + (vv - 30) ** 2 <= 16] = 0
    _write(tmp_path, "e.png", Image.fromarray(a))
    pd.DataFrame({"file": ["e.png"], "pitch": [0.1], "yaw": [-0.2], "pupil_u": [60.0],
                  "pupil_v": [30.0]}).to_csv(tmp_path / "labels.csv", index=False)
    plans = plan_splits(FolderSource(path=tmp_path, test_fraction=0.0))
    img, lab = next(plans["train"].chunks())
    # (u + 0.5) * 55 / 110 - 0.5
    assert lab["pupil_u"][0] == pytest.approx(29.75) and lab["pupil_v"][0] == pytest.approx(14.75)
    r, c = np.unravel_index(np.argmin(img[0]), img[0].shape)
    assert abs(c - 29.75) <= 1 and abs(r - 14.75) <= 1
    # center_crop of a 2:1 image keeps the middle 55:35 part
    wide = np.zeros((35, 110), np.uint8)
    wide[:, 55] = 255
    _write(tmp_path, "w.png", Image.fromarray(wide))
    out, box = decode_image(str(tmp_path / "w.png"), (35, 55), "center_crop")
    assert box == (27.5, 0.0, 82.5, 35.0)
    assert int(np.argmax(out[10])) in (27, 28)


# ----------------------------------------------------------------------------- labels


def test_labels_from_vectors_and_from_angles_by_hand(tmp_path):
    for name in ("a.png", "b.png"):
        _write(tmp_path, name, Image.new("L", (60, 36), 100))
    # non-unit vector: normalised; g = (0, -0.5, -0.5)/0.7071 -> pitch = asin(0.7071) = 45 deg
    pd.DataFrame({"file": ["b.png", "a.png"], "gaze_x": [0.0, 0.3], "gaze_y": [-0.5, 0.0],
                  "gaze_z": [-0.5, -0.3]}).to_csv(tmp_path / "labels.csv", index=False)
    _, lab = next(plan_splits(FolderSource(path=tmp_path, test_fraction=0.0))["train"].chunks())
    assert lab["file"].tolist() == ["a.png", "b.png"]  # sorted by name, rows matched by file
    assert math.degrees(lab["pitch"][1]) == pytest.approx(45.0)
    assert math.degrees(lab["yaw"][0]) == pytest.approx(-45.0)  # atan2(-0.3, 0.3)
    assert lab["gaze_x"][0] == pytest.approx(math.sqrt(0.5))
    assert np.isnan(lab["pupil_u"]).all()
    # pitch 0.1, yaw -0.2 -> g = (-cos .1 sin -.2, -sin .1, -cos .1 cos -.2)
    pd.DataFrame({"file": ["a.png", "b.png"], "pitch": [0.1, 0.0], "yaw": [-0.2, 0.0]}).to_csv(
        tmp_path / "labels.csv", index=False)
    _, lab = next(plan_splits(FolderSource(path=tmp_path, test_fraction=0.0))["train"].chunks())
    assert [lab["gaze_x"][0], lab["gaze_y"][0], lab["gaze_z"][0]] == pytest.approx(
        [0.197677, -0.099833, -0.975170], abs=1e-6)
    assert lab["pitch"][0] == pytest.approx(0.1) and lab["yaw"][0] == pytest.approx(-0.2)


def test_unlabelled_folder_is_valid_but_says_it_has_no_labels(tmp_path):
    for i in range(5):
        _write(tmp_path, f"{i}.jpg", Image.new("RGB", (90, 60), (i * 40, 80, 80)))
    plans = plan_splits(FolderSource(path=tmp_path, test_fraction=0.4), seed=3)
    assert plans["train"].meta["labelled"] is False and plans["train"].n == 3
    ds = _write_all(plans["train"], tmp_path / "out")
    assert list(ds.labels.columns) == ["id", "file"] and ds.meta["labelled"] is False
    with pytest.raises(NoLabelsError, match=r"real/test: no gaze labels .* evaluation"):
        require_gaze_labels(ds.labels, "real/test", "evaluation")


def test_test_path_is_the_test_split(tmp_path):
    a, b = tmp_path / "train", tmp_path / "test"
    a.mkdir()
    b.mkdir()
    for d, n in ((a, 3), (b, 2)):
        for i in range(n):
            _write(d, f"{i}.png", Image.new("L", (55, 35), 10 * i))
    with pytest.raises(ValueError, match="test_fraction must be 0"):
        FolderSource(path=a, test_path=b)
    plans = plan_splits(FolderSource(path=a, test_path=b, test_fraction=0.0))
    assert (plans["train"].n, plans["test"].n) == (3, 2)
    _, lab = next(plans["test"].chunks())
    assert lab["id"].tolist() == [3, 4]


def test_source_union_dispatches_on_kind():
    from pydantic import TypeAdapter

    syn = TypeAdapter(SyntheticSource)
    real = TypeAdapter(RealSource)
    assert isinstance(syn.validate_python({"kind": "builtin"}), BuiltinSource)
    assert isinstance(real.validate_python({"kind": "standin"}), StandinSource)
    assert isinstance(real.validate_python({"kind": "folder", "path": "x"}), FolderSource)
    with pytest.raises(ValueError, match="unityeyes"):
        real.validate_python({"kind": "unityeyes", "path": "x"})
    with pytest.raises(ValueError, match="extra"):
        syn.validate_python({"kind": "folder", "path": "x", "colour": 1})
    with pytest.raises(ValueError, match="not read from files"):
        plan_splits(BuiltinSource())
    rel = FolderSource(path="data/eyes").with_root("/proj")
    assert str(rel.path) == "/proj/data/eyes"


# ----------------------------------------------------------------------------- bad inputs


def _bad_folder(tmp_path):
    d = tmp_path / "f"
    d.mkdir()
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png", "f.png"):
        _write(d, name, Image.new("RGB", (64, 40), (120, 60, 30)))
    data = (d / "b.png").read_bytes()
    (d / "b.png").write_bytes(data[: len(data) // 2])
    pd.DataFrame({
        "file": ["a.png", "b.png", "c.png", "d.png", "ghost.png", "f.png"],
        "gaze_x": [0.1, 0.1, np.nan, 0.0, 0.1, 0.2],
        "gaze_y": [0.0, 0.0, 0.0, 0.0, 0.0, 0.1],
        "gaze_z": [-1.0, -1.0, -1.0, 0.0, -1.0, -1.0],
    }).to_csv(d / "labels.csv", index=False)  # e.png has no row
    return d


@pytest.mark.parametrize(
    ("only", "pattern"),
    [
        ("b.png", r"f/b\.png: image: cannot decode"),
        ("c.png", r"labels\.csv: gaze_x/gaze_y/gaze_z: NaN .*\(row 3, c\.png\)"),
        ("d.png", r"labels\.csv: gaze_x/gaze_y/gaze_z: zero-length vector \(row 4, d\.png\)"),
        ("e.png", r"labels\.csv: file: no row for image 'e\.png'"),
    ],
)
def test_each_bad_input_raises_naming_file_and_field(tmp_path, only, pattern):
    from simgan.gaze.readers.folder import decode

    d = _bad_folder(tmp_path)
    unit = next(u for u in index_folder(d).units if u.path.endswith(only))
    with pytest.raises(IngestError, match=pattern):
        decode(unit, FolderOptions())


def test_orphan_label_row_fails_the_plan_without_skip_bad(tmp_path):
    d = _bad_folder(tmp_path)
    with pytest.raises(IngestError, match=r"labels\.csv: file: row 5: no image named 'ghost\.png'"):
        plan_splits(FolderSource(path=d, test_fraction=0.0))


def test_skip_bad_counts_everything_and_keeps_the_good(tmp_path):
    d = _bad_folder(tmp_path)
    for workers in (0, 1):
        plan = plan_splits(FolderSource(path=d, test_fraction=0.0, skip_bad=True,
                                        workers=workers), chunk_size=1)["train"]
        ds = _write_all(plan, tmp_path / f"out{workers}")
        assert ds.labels["file"].tolist() == ["a.png", "f.png"]
        assert ds.meta["skipped_bad"] == 5  # b, c, d, e and the ghost row
        assert ds.meta["skipped_bad_rows"] == 4  # the ghost row names no image
        assert ds.meta["skipped_bad_by_field"] == {
            "file": 2, "image": 1, "gaze_x/gaze_y/gaze_z": 2}


def test_structural_csv_problems_always_raise(tmp_path):
    _write(tmp_path, "a.png", Image.new("L", (5, 5)))
    pd.DataFrame({"file": ["a.png"], "angle": [0.1]}).to_csv(tmp_path / "labels.csv",
                                                             index=False)
    with pytest.raises(IngestError, match=r"labels\.csv: gaze_x/gaze_y/gaze_z or pitch/yaw: "
                                          r"columns missing"):
        plan_splits(FolderSource(path=tmp_path, skip_bad=True))


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(IngestError, match=r"nope: path: directory not found"):
        plan_splits(FolderSource(path=tmp_path / "nope"))


def test_a_row_cap_keeps_a_seeded_subset_in_file_order(tmp_path):
    for i in range(8):
        _write(tmp_path, f"{i}.png", Image.new("L", (55, 35), 10 * i))
    plans = plan_splits(FolderSource(path=tmp_path, test_fraction=0.25), seed=2, max_train=4,
                        max_test=1)
    assert (plans["train"].n, plans["test"].n) == (4, 1)
    assert plans["train"].meta["rows_available"] == 6 and plans["test"].meta["rows_cap"] == 1
    train = next(plans["train"].chunks())[1]["file"].tolist()
    assert train == sorted(train, key=lambda f: int(f[:-4])) and len(set(train)) == 4
    uncapped = plan_splits(FolderSource(path=tmp_path, test_fraction=0.25), seed=2)
    assert set(train) < set(next(uncapped["train"].chunks())[1]["file"])
