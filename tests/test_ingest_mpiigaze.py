"""MPIIGaze reader: v5 and v7.3 .mat files, resize, mirroring, equalisation, splits, bad inputs.

Fixtures are written here in MPIIGaze's layout: ``Data/Normalized/pXX/dayYY.mat`` with
``data.left`` / ``data.right`` structs (image N x 36 x 60 uint8, gaze N x 3, pose N x 3) and a
``filenames`` cell array; v5 via scipy.io.savemat, v7.3 as MATLAB writes it with HDF5 (a
512-byte MATLAB header, dimensions reversed, strings as references to uint16 char arrays).
Evaluation lists: ``Evaluation Subset/sample list for eye image/pXX.txt``.
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
from PIL import Image
from scipy.spatial.transform import Rotation

from simgan.core.dataset import write_dataset
from simgan.core.ingest.common import IngestError, equalize_batch, resize_batch
from simgan.gaze.readers.mpiigaze import (
    EVAL_DIR,
    NORMALIZED,
    MpiiGazeSource,
    mirror_rvec,
    parse_eval_list,
    read_day,
    read_filenames,
)
from simgan.gaze.readers.sources import plan_splits


def eye_images(n: int, seed: int) -> np.ndarray:
    """Asymmetric eyes: a dark block on the image left (where the inner corner is)."""
    rng = np.random.default_rng(seed)
    img = np.full((n, 36, 60), 180, np.uint8)
    img[:, 10:26, 3:20] = 20
    img += rng.integers(0, 20, size=img.shape, dtype=np.uint8)
    return img


def gazes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p, y = rng.uniform(-0.3, 0.3, n), rng.uniform(-0.4, 0.4, n)
    return np.stack([-np.cos(p) * np.sin(y), -np.sin(p), -np.cos(p) * np.cos(y)], 1)


def day_content(n: int, seed: int):
    eyes = {}
    for k, eye in enumerate(("left", "right")):
        eyes[eye] = {
            "gaze": gazes(n, seed + 10 * k),
            "image": eye_images(n, seed + 10 * k),
            "pose": np.random.default_rng(seed + k).normal(0, 0.2, (n, 3)),
        }
    return [f"{i + 1:04d}.jpg" for i in range(n)], eyes


def save_v5(path, names, eyes, drop=None):
    cell = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cell[i, 0] = name
    data = {eye: {k: v for k, v in fields.items() if f"{eye}.{k}" != drop}
            for eye, fields in eyes.items()}
    scipy.io.savemat(path, {"data": data, "filenames": cell})


def save_v73(path, names, eyes, drop=None):
    """As MATLAB's -v7.3 writes: HDF5 with a MATLAB user block, arrays transposed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        data = f.create_group("data")
        data.attrs["MATLAB_class"] = np.bytes_("struct")
        for eye, fields in eyes.items():
            g = data.create_group(eye)
            g.attrs["MATLAB_class"] = np.bytes_("struct")
            for k, v in fields.items():
                if f"{eye}.{k}" == drop:
                    continue
                ds = g.create_dataset(k, data=np.ascontiguousarray(v.T))
                ds.attrs["MATLAB_class"] = np.bytes_("uint8" if v.dtype == np.uint8 else "double")
        refs = f.create_group("#refs#")
        ref_list = []
        for i, name in enumerate(names):
            chars = np.array([ord(c) for c in name], dtype=np.uint16).reshape(-1, 1)
            ds = refs.create_dataset(f"s{i}", data=chars)
            ds.attrs["MATLAB_class"] = np.bytes_("char")
            ref_list.append(ds.ref)
        fn = f.create_dataset("filenames", data=np.array([ref_list], dtype=h5py.ref_dtype))
        fn.attrs["MATLAB_class"] = np.bytes_("cell")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5"
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116, b" ") + bytes(8) + b"\x00\x02IM")


def make_dataset(root, layout, fmt="v5", eval_lists=None):
    """layout: {person: {day: n}}; eval_lists: {person: [lines]}."""
    for p, days in layout.items():
        d = root / NORMALIZED / f"p{p:02d}"
        d.mkdir(parents=True)
        for day, n in days.items():
            names, eyes = day_content(n, seed=100 * p + day)
            (save_v73 if fmt == "v73" else save_v5)(d / f"day{day:02d}.mat", names, eyes)
    if eval_lists is not None:
        (root / EVAL_DIR).mkdir(parents=True)
        for p, lines in eval_lists.items():
            (root / EVAL_DIR / f"p{p:02d}.txt").write_text("\n".join(lines) + "\n")
    return root


# ----------------------------------------------------------------------------- .mat formats


@pytest.mark.parametrize("fmt", ["v5", "v73"])
def test_reads_both_mat_versions_exactly(tmp_path, fmt):
    names, eyes = day_content(4, seed=3)
    path = tmp_path / "day01.mat"
    (save_v73 if fmt == "v73" else save_v5)(path, names, eyes)
    assert path.read_bytes()[:10] == (b"MATLAB 7.3" if fmt == "v73" else b"MATLAB 5.0")
    day = read_day(path)
    assert day.filenames == names and read_filenames(path) == names
    for eye in ("left", "right"):
        assert day.eyes[eye].images.dtype == np.uint8
        assert np.array_equal(day.eyes[eye].images, eyes[eye]["image"])
        assert np.allclose(day.eyes[eye].gaze, eyes[eye]["gaze"])
        assert np.allclose(day.eyes[eye].pose, eyes[eye]["pose"])


@pytest.mark.parametrize("fmt", ["v5", "v73"])
def test_one_sample_day_keeps_its_sample_axis(tmp_path, fmt):
    names, eyes = day_content(1, seed=5)
    (save_v73 if fmt == "v73" else save_v5)(tmp_path / "d.mat", names, eyes)
    day = read_day(tmp_path / "d.mat")
    assert day.eyes["right"].images.shape == (1, 36, 60) and day.eyes["right"].gaze.shape == (1, 3)


@pytest.mark.parametrize("fmt", ["v5", "v73"])
def test_mat_without_a_field_names_the_file_and_field(tmp_path, fmt):
    names, eyes = day_content(2, seed=1)
    path = tmp_path / "day03.mat"
    (save_v73 if fmt == "v73" else save_v5)(path, names, eyes, drop="right.gaze")
    with pytest.raises(IngestError, match=r"day03\.mat: data\.right\.gaze: missing"):
        read_day(path)


# ----------------------------------------------------------------------------- pixels, geometry


def test_resize_matches_pil_and_keeps_constants():
    imgs = eye_images(3, seed=0)
    out = resize_batch(imgs, (35, 55))
    assert out.shape == (3, 35, 55) and out.dtype == np.uint8
    for i in range(3):
        ref = np.asarray(Image.fromarray(imgs[i]).resize((55, 35), Image.Resampling.BILINEAR))
        assert np.abs(out[i].astype(int) - ref.astype(int)).max() <= 1
    assert (resize_batch(np.full((1, 36, 60), 77, np.uint8), (35, 55)) == 77).all()


def test_equalisation_by_hand():
    img = np.array([[[10, 10, 20, 30]]], dtype=np.uint8)
    # hist 10:2, 20:1, 30:1 -> cdf 2, 3, 4; (cdf - 2) * 255 / (4 - 2) -> 0, 127.5 -> 128, 255
    assert equalize_batch(img).tolist() == [[[0, 0, 128, 255]]]
    flat = np.full((1, 2, 2), 9, np.uint8)
    assert (equalize_batch(flat) == 9).all()


def test_mirroring_right_eyes_by_hand(tmp_path):
    root = make_dataset(tmp_path, {0: {1: 2}, 1: {1: 2}})
    plans = plan_splits(MpiiGazeSource(path=root, split="persons", test_persons=["p01"]))
    imgs, lab = next(plans["test"].chunks())
    assert lab["eye"].tolist() == ["left", "left", "right", "right"]
    assert lab["mirrored"].tolist() == [0.0, 0.0, 1.0, 1.0]
    _, eyes = day_content(2, seed=101)
    raw = eyes["right"]
    # dark block was on the image left; after the flip it is on the right
    assert imgs[2, 12:24, 40:52].mean() < 60 and imgs[2, 12:24, 3:15].mean() > 150
    assert imgs[0, 12:24, 3:15].mean() < 60
    g = raw["gaze"][0]
    assert lab["gaze_x"][2] == pytest.approx(-g[0]) and lab["gaze_y"][2] == pytest.approx(g[1])
    assert lab["pitch"][2] == pytest.approx(math.asin(-g[1]))
    assert lab["yaw"][2] == pytest.approx(-math.atan2(-g[0], -g[2]))
    r = raw["pose"][0]
    assert [lab[f"head_rvec_{k}"][2] for k in range(3)] == pytest.approx([r[0], -r[1], -r[2]])
    # left eyes untouched
    assert lab["gaze_x"][0] == pytest.approx(eyes["left"]["gaze"][0][0])


def test_mirrored_pose_is_the_reflected_rotation():
    rng = np.random.default_rng(0)
    s = np.diag([-1.0, 1.0, 1.0])
    for r in rng.normal(0, 0.5, (5, 3)):
        want = s @ Rotation.from_rotvec(r).as_matrix() @ s
        got = Rotation.from_rotvec(mirror_rvec(r)).as_matrix()
        assert np.allclose(got, want)


def test_gaze_angles_by_hand(tmp_path):
    """g = (0.2, -0.1, -0.9747): pitch = asin(0.1) = 5.7392 deg, yaw = atan2(-0.2, 0.9747)
    = -11.5960 deg; mirrored (right eye): yaw +11.5960 deg, pitch unchanged."""
    d = tmp_path / NORMALIZED / "p00"
    d.mkdir(parents=True)
    names, eyes = day_content(1, seed=0)
    for eye in ("left", "right"):
        eyes[eye]["gaze"] = np.array([[0.2, -0.1, -0.9747]])
    save_v5(d / "day01.mat", names, eyes)
    make_dataset(tmp_path, {1: {1: 1}})
    plans = plan_splits(MpiiGazeSource(path=tmp_path, split="persons", test_persons=["p01"]))
    _, lab = next(plans["train"].chunks())
    assert np.degrees(lab["pitch"]).tolist() == pytest.approx([5.7392, 5.7392], abs=1e-3)
    assert np.degrees(lab["yaw"]).tolist() == pytest.approx([-11.5960, 11.5960], abs=1e-3)


# ----------------------------------------------------------------------------- splits


def test_eval_list_chooses_the_test_samples(tmp_path):
    root = make_dataset(
        tmp_path, {0: {1: 3, 2: 2}, 1: {1: 2}}, fmt="v73",
        eval_lists={0: ["day01/0002.jpg left", "day02/0001.jpg right", "day01/0003.jpg right"],
                    1: ["day01/0001.jpg left\r"]},
    )
    plans = plan_splits(MpiiGazeSource(path=root))  # split: auto -> eval_list
    assert plans["test"].meta["split_mode"] == "eval_list"
    assert (plans["test"].n, plans["train"].n) == (4, 2 * 7 - 4)
    _, test = next(plans["test"].chunks())
    assert sorted(zip(test["file"], test["eye"], strict=True)) == sorted([
        ("p00/day01/0002.jpg", "left"), ("p00/day01/0003.jpg", "right"),
        ("p00/day02/0001.jpg", "right"), ("p01/day01/0001.jpg", "left")])
    train = np.concatenate([c[1]["id"] for c in plans["train"].chunks()])
    assert set(train).isdisjoint(test["id"]) and len(set(train) | set(test["id"])) == 14


def test_eval_list_parsing_and_bad_lines(tmp_path):
    p = tmp_path / "p00.txt"
    p.write_text("day01/0001.jpg left\n\nday02/0010.jpg right\n")
    assert parse_eval_list(p) == [("day01", "0001.jpg", "left"), ("day02", "0010.jpg", "right")]
    p.write_text("day01/0001.jpg left\nday01/0002.jpg both\n")
    with pytest.raises(IngestError, match=r"p00\.txt: line 2: expected"):
        parse_eval_list(p)


def test_eval_list_entry_without_sample_raises_or_is_counted(tmp_path):
    root = make_dataset(tmp_path, {0: {1: 2}}, eval_lists={0: ["day01/0001.jpg left",
                                                                "day09/0001.jpg left"]})
    with pytest.raises(IngestError, match=r"p00\.txt: line 2: day09/0001\.jpg left is in no"):
        plan_splits(MpiiGazeSource(path=root))
    plans = plan_splits(MpiiGazeSource(path=root, skip_bad=True))
    ds = write_dataset(tmp_path / "t", plans["test"].chunks(), plans["test"].n, (35, 55), "uint8",
                       plans["test"].meta, allow_fewer=True, late_meta=plans["test"].late_meta)
    assert len(ds) == 1 and ds.meta["skipped_bad"] == 1


def test_person_disjoint_split_without_eval_list(tmp_path):
    root = make_dataset(tmp_path, {0: {1: 2}, 1: {1: 2}, 2: {1: 1, 2: 1}, 3: {1: 1}})
    plans = plan_splits(MpiiGazeSource(path=root, test_fraction=0.5), seed=4)
    meta = plans["test"].meta
    assert meta["split_mode"] == "persons" and len(meta["test_persons"]) == 2
    test = next(plans["test"].chunks())[1]
    train = next(plans["train"].chunks())[1]
    assert set(test["person"]).isdisjoint(train["person"])
    assert {f"p{p:02d}" for p in test["person"]} == set(meta["test_persons"])
    again = plan_splits(MpiiGazeSource(path=root, test_fraction=0.5), seed=4)
    assert again["test"].meta["test_persons"] == meta["test_persons"]
    with pytest.raises(IngestError, match="test_persons"):
        plan_splits(MpiiGazeSource(path=root, split="persons", test_persons=["p07"]))


def test_dataset_has_the_task_columns(tmp_path):
    root = make_dataset(tmp_path, {0: {1: 3}, 1: {1: 2}})
    src = MpiiGazeSource(path=root, test_persons=["p01"], equalize=True)
    plan = plan_splits(src, chunk_size=4)["train"]
    ds = write_dataset(tmp_path / "o", plan.chunks(), plan.n, (35, 55), "uint8", plan.meta)
    for c in ("id", "gaze_x", "gaze_y", "gaze_z", "pitch", "yaw", "pupil_u", "pupil_v"):
        assert c in ds.labels.columns
    assert ds.labels["id"].tolist() == list(range(6))  # left eyes 0-2, right eyes 3-5
    assert ds.images.shape == (6, 35, 55)
    assert all(ds.images[i].min() == 0 and ds.images[i].max() == 255 for i in range(6))


# ----------------------------------------------------------------------------- bad inputs


def test_missing_directories_are_errors(tmp_path):
    with pytest.raises(IngestError, match=r"nowhere: path: directory not found"):
        plan_splits(MpiiGazeSource(path=tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match=r"empty: Data/Normalized: directory not found"):
        plan_splits(MpiiGazeSource(path=tmp_path / "empty"))


@pytest.mark.parametrize(("value", "problem"), [(np.nan, "NaN"), (0.0, "zero-length")])
def test_bad_gaze_sample_raises_or_only_that_sample_is_skipped(tmp_path, value, problem):
    root = make_dataset(tmp_path, {1: {1: 2}})
    d = tmp_path / NORMALIZED / "p00"
    d.mkdir(parents=True)
    names, eyes = day_content(3, seed=0)
    eyes["left"]["gaze"][1] = [value, value, value] if value == 0.0 else [0.1, value, -0.9]
    save_v5(d / "day01.mat", names, eyes)
    src = dict(path=root, split="persons", test_persons=["p01"])
    plan = plan_splits(MpiiGazeSource(**src))["train"]
    with pytest.raises(IngestError, match=rf"day01\.mat: data\.left\.gaze: {problem}.*"
                                          r"\(sample 1, 0002\.jpg\)"):
        list(plan.chunks())
    plan = plan_splits(MpiiGazeSource(**src, skip_bad=True))["train"]
    ds = write_dataset(tmp_path / "o", plan.chunks(), plan.n, (35, 55), "uint8", plan.meta,
                       allow_fewer=True, late_meta=plan.late_meta)
    assert len(ds) == 5 and ds.meta["skipped_bad"] == 1 and ds.meta["skipped_bad_rows"] == 1
    assert "p00/day01/0002.jpg" in set(ds.labels["file"])  # the right eye of that frame stays


def test_mat_without_fields_is_skipped_whole_and_counted(tmp_path):
    root = make_dataset(tmp_path, {1: {1: 2}})
    d = tmp_path / NORMALIZED / "p00"
    d.mkdir(parents=True)
    names, eyes = day_content(3, seed=0)
    save_v5(d / "day01.mat", names, eyes, drop="left.image")
    src = dict(path=root, split="persons", test_persons=["p01"])
    with pytest.raises(IngestError, match=r"day01\.mat: data\.left\.image: missing"):
        list(plan_splits(MpiiGazeSource(**src))["train"].chunks())
    # the only day of the train split is bad: with skip_bad that is no dataset, an error
    plan = plan_splits(MpiiGazeSource(**src, skip_bad=True))["train"]
    with pytest.raises(IngestError, match=r"p00/day01\.mat: data\.left\.image: missing"
                                          r"\)\. Fix or remove"):
        write_dataset(tmp_path / "none", plan.chunks(), plan.n, (35, 55), "uint8", plan.meta,
                      allow_fewer=True, late_meta=plan.late_meta)
    assert not (tmp_path / "none").exists()
    names, eyes = day_content(2, seed=1)
    save_v5(d / "day02.mat", names, eyes)  # a good day beside it: kept, the bad one counted
    plan = plan_splits(MpiiGazeSource(**src, skip_bad=True))["train"]
    ds = write_dataset(tmp_path / "o", plan.chunks(), plan.n, (35, 55), "uint8", plan.meta,
                       allow_fewer=True, late_meta=plan.late_meta)
    assert len(ds) == 4 and ds.meta["skipped_bad"] == 1 and ds.meta["skipped_bad_rows"] == 6
    assert ds.meta["skipped_bad_by_field"] == {"data.left.image": 1}


def test_unreadable_mat_raises_or_is_counted_while_planning(tmp_path):
    root = make_dataset(tmp_path, {0: {1: 2}, 1: {1: 2}})
    (tmp_path / NORMALIZED / "p00" / "day02.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    src = dict(path=root, split="persons", test_persons=["p01"])
    with pytest.raises(IngestError, match=r"p00/day02\.mat: file: not a readable MATLAB"):
        plan_splits(MpiiGazeSource(**src))
    plan = plan_splits(MpiiGazeSource(**src, skip_bad=True))["train"]
    ds = write_dataset(tmp_path / "o", plan.chunks(), plan.n, (35, 55), "uint8", plan.meta,
                       allow_fewer=True, late_meta=plan.late_meta)
    assert len(ds) == 4 and ds.meta["skipped_bad_by_field"] == {"file": 1}


def _rows(plan) -> pd.DataFrame:
    return pd.concat([lab for _, lab in plan.chunks()], ignore_index=True)


def test_a_row_cap_keeps_a_seeded_subset_across_days_and_eyes(tmp_path):
    # train: p00 (2 days, 3 + 2 samples, both eyes) = 10 rows; test: p01 = 4 rows
    root = make_dataset(tmp_path, {0: {1: 3, 2: 2}, 1: {1: 2}})
    src = MpiiGazeSource(path=root, split="persons", test_persons=["p01"])
    full = plan_splits(src)
    capped = plan_splits(src, seed=5, max_train=7, max_test=100)
    assert (full["train"].n, capped["train"].n, capped["test"].n) == (10, 7, 4)
    meta = capped["train"].meta
    assert (meta["rows_available"], meta["rows_cap"], meta["rows_selected"]) == (10, 7, 7)
    all_rows, kept = _rows(full["train"]), _rows(capped["train"])
    assert len(kept) == 7 and kept["id"].is_unique
    # the subset, in the same (file) order, with the same pixels and labels as uncapped
    pos = all_rows.index[all_rows["id"].isin(kept["id"])]
    assert all_rows.loc[pos, "id"].tolist() == kept["id"].tolist()
    assert np.allclose(all_rows.loc[pos, "pitch"], kept["pitch"])
    assert set(kept["eye"]) == {"left", "right"} and set(kept["day"]) == {1, 2}
    again = _rows(plan_splits(src, seed=5, max_train=7)["train"])
    other = _rows(plan_splits(src, seed=6, max_train=7)["train"])
    assert again["id"].tolist() == kept["id"].tolist() != other["id"].tolist()
    assert _rows(capped["test"])["id"].tolist() == _rows(full["test"])["id"].tolist()
