"""What every reader checks before it keeps a row, on hand-computed cases: gaze normalised
without overflow, bit depths converted (or refused), coordinates of the right arity and on
the image, label ranges, symlink loops, and no dataset made of nothing.

The seeded fuzz suite (tests/test_fuzz_readers.py) throws hundreds of such inputs at the
readers; these tests pin the exact values and messages.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from simgan.core.ingest.common import IngestError, to_gray, walk_files
from simgan.gaze.labels import gaze_columns, gaze_problems
from simgan.gaze.readers.folder import FolderSource
from simgan.gaze.readers.mpiigaze import NORMALIZED, MpiiGazeSource
from simgan.gaze.readers.sources import UnityEyesSource, plan_splits
from simgan.gaze.readers.unityeyes import UnityEyesOptions, UnityEyesUnit, decode_sample
from simgan.hand.nyu import label_problems
from simgan.tasks import watch
from stages.datasets_io import write_split
from tests.test_ingest_mpiigaze import day_content, make_dataset, save_v5
from tests.test_ingest_unityeyes import write_sample

# ----------------------------------------------------------------------------- gaze


def test_a_huge_gaze_is_normalised_exactly_not_to_zero():
    # (3e200, 0, -4e200): the plain norm overflows (9e400 = inf); scaled, it is 5e200
    cols = gaze_columns(np.array([[3e200, 0.0, -4e200], [1e308, 1e308, 1e308]]))
    assert cols["gaze_x"].tolist() == pytest.approx([0.6, 1 / np.sqrt(3)], abs=1e-15)
    assert cols["gaze_z"][0] == pytest.approx(-0.8, abs=1e-15)
    assert gaze_problems(np.array([[3e200, 0.0, -4e200], [1e-10, 0.0, 0.0], [np.inf, 0, 1]])
                         ).tolist() == ["", "zero-length vector", "NaN or infinite component"]


def test_scaling_by_a_power_of_two_keeps_ordinary_labels_bit_for_bit():
    v = np.random.default_rng(0).normal(size=(1000, 3)) * np.array([[1e-3], [1.0], [1e3]] * 333
                                                                    + [[5.0]])
    plain = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert np.array_equal(gaze_columns(v)["gaze_y"], plain[:, 1])


# ----------------------------------------------------------------------------- bit depth


@pytest.mark.parametrize(
    ("array", "gray"),
    [
        (np.array([[128 * 257, 65535]], np.uint16), [128, 255]),  # I;16: * 255 / 65535
        (np.array([[200, 100]], np.int32), [200, 100]),  # 32-bit holding 8-bit values: as is
        (np.array([[257 * 10, 0]], np.int32), [10, 0]),  # 32-bit holding 16-bit values
    ],
)
def test_deep_images_are_scaled_not_clipped(array, gray):
    assert np.asarray(to_gray(Image.fromarray(array), "x.png")).tolist() == [gray]


@pytest.mark.parametrize(
    ("array", "problem"),
    [(np.array([[70000, 0]], np.int32), r"x\.png: image: 32-bit integer pixels in \[0, 70000\]"),
     (np.array([[0.5, np.nan]], np.float32), r"x\.png: image: 32-bit float pixels")],
)
def test_images_without_a_known_scale_are_refused(array, problem):
    with pytest.raises(IngestError, match=problem):
        to_gray(Image.fromarray(array), "x.png")


def test_a_16_bit_unityeyes_render_gives_the_8_bit_crop(tmp_path):
    write_sample(tmp_path, "1", fmt="png")
    gray = np.asarray(Image.open(tmp_path / "1.png").convert("L"))
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "2.png")  # I;16
    (tmp_path / "2.json").write_text((tmp_path / "1.json").read_text())
    crops = [decode_sample(UnityEyesUnit(0, s, str(tmp_path / f"{s}.png"),
                                         str(tmp_path / f"{s}.json")), UnityEyesOptions())[0]
             for s in ("1", "2")]
    assert np.abs(crops[0].astype(int) - crops[1].astype(int)).max() <= 1
    assert crops[1].max() > 200 and crops[1].min() < 60  # not all white, not all black


# ----------------------------------------------------------------------------- UnityEyes


def _unit(d, stem="1"):
    return UnityEyesUnit(0, stem, str(d / f"{stem}.jpg"), str(d / f"{stem}.json"))


def _edit_json(d, key, value):
    data = json.loads((d / "1.json").read_text())
    data[key] = value
    (d / "1.json").write_text(json.dumps(data))
    return data


def test_a_point_with_two_numbers_beside_one_with_four_is_named_not_shifted(tmp_path):
    write_sample(tmp_path, "1")
    pts = json.loads((tmp_path / "1.json").read_text())["interior_margin_2d"]
    x, y, z = pts[3].strip("()").split(",")
    pts[3], pts[4] = f"({x}, {y})", pts[4].replace(")", ", 1.0)")  # 48 numbers in all
    _edit_json(tmp_path, "interior_margin_2d", pts)
    with pytest.raises(IngestError, match=r"1\.json: interior_margin_2d\[3\]: 2 numbers"):
        decode_sample(_unit(tmp_path), UnityEyesOptions())


def test_landmarks_off_the_image_are_refused_not_cropped_black(tmp_path):
    write_sample(tmp_path, "1")
    pts = json.loads((tmp_path / "1.json").read_text())["interior_margin_2d"]
    far = [p.replace("(", "(1000") for p in pts]  # x + 1000 * 10^k: right of the 320 px image
    _edit_json(tmp_path, "interior_margin_2d", far)
    with pytest.raises(IngestError, match=r"1\.json: interior_margin_2d: 16 point\(s\) outside "
                                          r"the 320x240 image"):
        decode_sample(_unit(tmp_path), UnityEyesOptions())


@pytest.mark.parametrize(
    ("text", "problem"),
    [("[" * 100000 + "]" * 100000, "nested too deeply"),
     ('{"a": ' + "9" * 5000 + "}", "unreadable: Exceeds the limit")],
)
def test_json_past_the_parsers_limits_is_a_bad_file(tmp_path, text, problem):
    write_sample(tmp_path, "1")
    (tmp_path / "1.json").write_text(text)
    with pytest.raises(IngestError, match=rf"1\.json: json: {problem}"):
        decode_sample(_unit(tmp_path), UnityEyesOptions())


def test_a_huge_integer_pupil_size_names_its_field(tmp_path):
    write_sample(tmp_path, "1")
    data = json.loads((tmp_path / "1.json").read_text())
    data["eye_details"]["pupil_size"] = 10**400  # parses, but no float holds it
    (tmp_path / "1.json").write_text(json.dumps(data))
    with pytest.raises(IngestError, match=r"1\.json: eye_details\.pupil_size: expected a finite"):
        decode_sample(_unit(tmp_path), UnityEyesOptions())


def test_symlink_loops_are_bad_files_and_left_out_of_the_manifest(tmp_path):
    for i in (1, 2):
        write_sample(tmp_path, str(i))
    os.symlink("3.jpg", tmp_path / "3.jpg")  # a loop beside a real JSON
    (tmp_path / "3.json").write_text((tmp_path / "1.json").read_text())
    os.symlink(".", tmp_path / "sub")  # a directory loop
    plan = plan_splits(UnityEyesSource(path=tmp_path, test_fraction=0.0, skip_bad=True))["train"]
    assert sum(len(lab) for _, lab in plan.chunks()) == 2
    assert plan.late_meta()["skipped_bad_by_field"] == {"image": 1}
    names = sorted(n for n, _ in walk_files("path", tmp_path, recursive=True))
    assert names == ["path/1.jpg", "path/1.json", "path/2.jpg", "path/2.json", "path/3.json"]


# ----------------------------------------------------------------------------- MPIIGaze


def test_an_empty_filenames_list_is_skipped_with_its_rows_counted(tmp_path):
    root = make_dataset(tmp_path, {1: {1: 2}})
    (tmp_path / NORMALIZED / "p00").mkdir()
    _, eyes = day_content(3, seed=0)
    save_v5(tmp_path / NORMALIZED / "p00" / "day01.mat", [], eyes)
    src = dict(path=root, split="persons", test_persons=["p01"])
    with pytest.raises(IngestError, match=r"p00/day01\.mat: filenames: empty"):
        plan_splits(MpiiGazeSource(**src))
    plans = plan_splits(MpiiGazeSource(**src, skip_bad=True))
    with pytest.raises(IngestError, match=r": rows: no usable row: 1 bad input"):
        list(plans["train"].chunks())  # p00, the only train person, had nothing else
    assert plans["train"].late_meta()["skipped_bad_rows"] == 6  # 3 images of each eye


def test_left_and_right_eyes_of_another_size_are_named(tmp_path):
    root = make_dataset(tmp_path, {1: {1: 2}})
    (tmp_path / NORMALIZED / "p00").mkdir()
    names, eyes = day_content(2, seed=0)
    eyes["right"]["image"] = np.zeros((2, 40, 60), np.uint8)
    save_v5(tmp_path / NORMALIZED / "p00" / "day01.mat", names, eyes)
    plan = plan_splits(MpiiGazeSource(path=root, split="persons", test_persons=["p01"]))
    with pytest.raises(IngestError, match=r"day01\.mat: data\.right\.image: eyes of 40x60 px, "
                                          r"MPIIGaze's normalised eyes are 36x60"):
        list(plan["train"].chunks())


# ----------------------------------------------------------------------------- NYU


def test_nyu_label_ranges_by_hand():
    uvd = np.tile([320.0, 240.0, 700.0], (1, 6, 14, 1))
    uvd[0, 1, 3] = [639.5, 479.5, 100.0]  # on the last pixel centre, nearest depth: fine
    uvd[0, 2, 3, 0] = 640.0  # half a pixel past the right edge
    uvd[0, 3, 0, 1] = -0.6
    uvd[0, 4, 5, 2] = 10001.0
    uvd[0, 5, 5, 2] = np.nan
    assert label_problems(uvd)[0].tolist() == [
        "", "", "a joint off the 640x480 frame", "a joint off the 640x480 frame",
        "depth outside [100, 10000] mm", "not finite"]


# ----------------------------------------------------------------------------- folders


def _folder(tmp_path, **columns):
    Image.new("L", (64, 40), 90).save(tmp_path / "a.png")
    Image.new("L", (64, 40), 90).save(tmp_path / "b.png")
    pd.DataFrame({"file": ["a.png", "b.png"], **columns}).to_csv(tmp_path / "labels.csv",
                                                                 index=False)
    return FolderSource(path=tmp_path, test_fraction=0.0)


@pytest.mark.parametrize(
    ("columns", "message"),
    [({"pitch": [0.1, 1e6], "yaw": [0.0, 0.0]}, r"pitch/yaw: pitch outside \[-pi/2, pi/2\]"),
     ({"pitch": [0.1, 0.0], "yaw": [0.0, -3.2]}, r"pitch/yaw: yaw outside \[-pi, pi\]"),
     ({"gaze_x": [0, 0], "gaze_y": [0, 0], "gaze_z": [-1, -1], "pupil_u": [3, "left"],
       "pupil_v": [3, 4]}, r"pupil_u/pupil_v: not a number: pupil_u = 'left'"),
     ({"gaze_x": [0, 0], "gaze_y": [0, 0], "gaze_z": [-1, -1], "pupil_u": [3, 64.0],
       "pupil_v": [3, 4]}, r"pupil_u/pupil_v: \(64, 4\) outside the 64x40 image")],
)
def test_folder_labels_out_of_range_name_their_column_and_row(tmp_path, columns, message):
    plan = plan_splits(_folder(tmp_path, **columns))["train"]
    with pytest.raises(IngestError, match=rf"labels\.csv: {message}.* \(row 2, b\.png\)"):
        list(plan.chunks())


def test_a_labels_csv_directory_is_an_error_not_an_unlabelled_folder(tmp_path):
    src = _folder(tmp_path, pitch=[0, 0], yaw=[0, 0])
    (tmp_path / "labels.csv").unlink()
    (tmp_path / "labels.csv").mkdir()
    with pytest.raises(IngestError, match=r"labels\.csv: labels\.csv: not a regular file"):
        plan_splits(src.model_copy(update={"skip_bad": True}))


def test_a_split_whose_every_file_is_bad_is_an_error_not_an_empty_dataset(tmp_path):
    src = _folder(tmp_path, gaze_x=[np.nan, np.nan], gaze_y=[0, 0], gaze_z=[-1, -1])
    plan = plan_splits(src.model_copy(update={"skip_bad": True}))["train"]
    out = tmp_path / "out"
    with pytest.raises(IngestError, match=rf"^{tmp_path}: rows: no usable row: 2 bad "
                                          r"input\(s\) skipped, none kept \(by field "
                                          r"\{'gaze_x/gaze_y/gaze_z': 2\}; first: "):
        write_split(out, plan, {}, "render")  # what the render stage calls
    assert not out.exists()



def test_render_with_skip_bad_and_every_file_bad_exits_1_in_one_line(tmp_path, monkeypatch,
                                                                     capsys):
    """The reported failure: ``render@gaze`` on an all-bad UnityEyes folder with skip_bad
    wrote a 0-image dataset and exited 0."""
    import sys

    import yaml

    from stages import common, render
    from tests.test_manifest import ROOT

    eyes = tmp_path / "inputs" / "ue"
    eyes.mkdir(parents=True)
    for i in (1, 2):
        write_sample(eyes, str(i))
        (eyes / f"{i}.json").write_text("{ truncated")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["gaze"]["render"]["source"] = {
        "kind": "unityeyes", "path": "inputs/ue", "workers": 0, "skip_bad": True,
        "crop_scale": 1.5, "fast_jpeg": True, "equalize": False, "test_fraction": 0.0}
    watch(params, {"gaze"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.setattr(sys, "argv", ["render", "--task", "gaze"])
    monkeypatch.setattr(common, "_limit_threads", lambda: None)
    with pytest.raises(SystemExit) as exit_:
        common.main("render", render.run)
    assert exit_.value.code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"stages.render: IngestError: {eyes}: rows: no usable row: "
                           "2 bad input(s) skipped, none kept (by field {'json': 2}")
    assert not (tmp_path / "data" / "gaze" / "synthetic" / "train").exists()  # no dataset
