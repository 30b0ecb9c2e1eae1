"""UnityEyes reader: JSON parsing, y flip, gaze conversion, crop, pixels, landmarks, bad inputs.

Fixtures are written here in UnityEyes' own format: ``N.jpg`` + ``N.json`` whose points are
strings "(x, y, z)" in Unity screen coordinates (origin bottom-left, y up) and whose look_vec
is "(x, y, z, 0.0000)" in the camera frame with y up. The drawn eye follows the physical model
the conversion assumes: the iris sits at eyeball + R * (look_x, look_y) on the y-up screen.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from simgan.core.dataset import write_dataset
from simgan.core.ingest.common import IngestError
from simgan.gaze.readers.sources import UnityEyesSource, plan_splits
from simgan.gaze.readers.unityeyes import (
    UnityEyesOptions,
    UnityEyesUnit,
    decode_sample,
    index_names,
    look_vec_to_gaze,
    unity_to_pixel,
)

H, W = 240, 320
EYEBALL_R = 20.0
# eye geometry in image pixels (u right, v down, pixel centres at integers); chosen so that the
# crop box is integer-aligned with exactly 2 source px per output px (crop_scale 1.5):
INNER = (99.8333, 120.0)
OUTER = (173.1667, 120.0)  # span 73.3334 -> crop 110 x 70, px = 2
TOP, BOTTOM = 106.0, 133.0  # lid extremes: bbox centre v = 119.5
EYEBALL = (136.5, 121.0)


def _fmt(p) -> str:
    return "(" + ", ".join(f"{x:.4f}" for x in p) + ")"


def _to_unity(u, v):
    """Image (u, v) at pixel centres -> Unity screen (x, y up, origin bottom-left corner)."""
    return u + 0.5, H - v - 0.5


def eye_points(look):
    """16 interior-margin, 7 caruncle, 32 iris points in image coordinates (v down)."""
    t = np.linspace(0, np.pi, 9)
    cu, half = (INNER[0] + OUTER[0]) / 2, (OUTER[0] - INNER[0]) / 2
    upper = np.stack([cu - half * np.cos(t), 120.0 - (120.0 - TOP) * np.sin(t)], 1)
    t2 = np.linspace(0, np.pi, 9)[1:-1]  # back from the outer to the inner corner
    lower = np.stack([cu + half * np.cos(t2), 120.0 + (BOTTOM - 120.0) * np.sin(t2)], 1)
    interior = np.concatenate([upper, lower])  # 0 inner corner, 8 outer corner
    car = np.stack([INNER[0] - 6 + 3 * np.cos(np.linspace(0, 6, 7)),
                    121 + 3 * np.sin(np.linspace(0, 6, 7))], 1)
    iris_c = (EYEBALL[0] + EYEBALL_R * look[0], EYEBALL[1] - EYEBALL_R * look[1])
    a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    iris = np.stack([iris_c[0] + 8 * np.cos(a), iris_c[1] + 8 * np.sin(a)], 1)
    return interior, car, iris, iris_c


def write_sample(folder, stem, look=(0.0, 0.0, -1.0), fmt="jpg", drop=(), look_text=None):
    """One UnityEyes-style pair; ``drop`` removes JSON keys (dotted for eye_details)."""
    interior, car, iris, iris_c = eye_points(look)
    img = Image.new("RGB", (W, H), (170, 140, 120))
    d = ImageDraw.Draw(img)
    d.polygon([tuple(p) for p in interior], fill=(235, 230, 225))
    d.ellipse([iris_c[0] - 8, iris_c[1] - 8, iris_c[0] + 8, iris_c[1] + 8], fill=(90, 60, 40))
    d.ellipse([iris_c[0] - 3, iris_c[1] - 3, iris_c[0] + 3, iris_c[1] + 3], fill=(10, 10, 10))
    if fmt == "jpg":
        img.save(folder / f"{stem}.jpg", quality=95)
    else:
        img.save(folder / f"{stem}.png")

    def pts(a):
        return [_fmt((*_to_unity(u, v), 9.5)) for u, v in a]

    data = {
        "interior_margin_2d": pts(interior),
        "caruncle_2d": pts(car),
        "iris_2d": pts(iris),
        "eye_details": {
            "look_vec": look_text if look_text is not None else _fmt((*look, 0.0)),
            "pupil_size": "0.0123414",
            "iris_size": "0.9058223",
            "iris_texture": "eyeball_brown",
        },
        "head_pose": "(351.2000, 178.9000, 0.0000)",
        "lighting_details": {"skybox_texture": "cape_hill", "ambient_intensity": "0.8"},
        "eye_region_details": {"primary_skin_texture": "m01_color"},
    }
    for key in drop:
        if key.startswith("eye_details."):
            del data["eye_details"][key.split(".", 1)[1]]
        else:
            del data[key]
    (folder / f"{stem}.json").write_text(json.dumps(data, indent=4))
    return interior, iris_c


def _unit(folder, stem, ext="jpg"):
    return UnityEyesUnit(7, stem, str(folder / f"{stem}.{ext}"), str(folder / f"{stem}.json"))


# ----------------------------------------------------------------------------- conversions


def test_y_flip_uses_image_height_and_pixel_centres():
    # Unity (x, y) = (0.5, H - 0.5) is the centre of the top-left pixel -> (0, 0)
    assert unity_to_pixel(np.array([[0.5, H - 0.5, 3.0]]), H).tolist() == [[0.0, 0.0]]
    assert unity_to_pixel(np.array([[10.5, 0.5]]), H).tolist() == [[10.0, H - 1.0]]


@pytest.mark.parametrize(
    ("look", "pitch_deg", "yaw_deg"),
    [
        ((0.0, 0.0, -1.0), 0.0, 0.0),  # into the camera
        # looking up: UnityEyes y up -> MPIIGaze y down, pitch = asin(-g_y) = +20 deg
        ((0.0, math.sin(math.radians(20)), -math.cos(math.radians(20))), 20.0, 0.0),
        # looking toward the camera's +x (image right): yaw = atan2(-0.5, 0.866) = -30 deg
        ((0.5, 0.0, -math.sqrt(0.75)), 0.0, -30.0),
        # by hand: g = (0.3, 0.2, -0.9327) / 0.999965; pitch = asin(-0.2000070) = -11.5374,
        # yaw = atan2(-0.3, 0.9327) = -17.8306
        ((0.3, -0.2, -0.9327), -11.5374, -17.8306),
    ],
)
def test_look_vec_to_mpiigaze_angles(tmp_path, look, pitch_deg, yaw_deg):
    write_sample(tmp_path, "1", look=look)
    _, lab, _ = decode_sample(_unit(tmp_path, "1"), UnityEyesOptions())
    assert math.degrees(lab["pitch"][0]) == pytest.approx(pitch_deg, abs=2e-3)
    assert math.degrees(lab["yaw"][0]) == pytest.approx(yaw_deg, abs=2e-3)
    g = np.array([lab["gaze_x"][0], lab["gaze_y"][0], lab["gaze_z"][0]])
    assert np.linalg.norm(g) == pytest.approx(1.0)
    assert g[2] < 0  # toward the camera, as in MPIIGaze
    assert look_vec_to_gaze(np.array([1.0, 2.0, 3.0, 0.0])).tolist() == [1.0, -2.0, 3.0]


def test_pupil_offset_points_along_the_gaze_like_the_renderer(tmp_path):
    """The builtin renderer puts the pupil at eyeball + R * (g_x, g_y) (v down): so must the
    converted UnityEyes labels, or the two synthetic sources would disagree."""
    look = (0.35, 0.25, -math.sqrt(1 - 0.35**2 - 0.25**2))
    write_sample(tmp_path, "1", look=look)
    _, lab, _ = decode_sample(_unit(tmp_path, "1"), UnityEyesOptions())
    # eyeball centre in crop coordinates: x0 = 136.5 + 0.5 - 55, y0 = 119.5 + 0.5 - 35, px = 2
    eb = ((EYEBALL[0] + 0.5 - 82.0) / 2 - 0.5, (EYEBALL[1] + 0.5 - 85.0) / 2 - 0.5)
    du, dv = lab["pupil_u"][0] - eb[0], lab["pupil_v"][0] - eb[1]
    r_crop = EYEBALL_R / 2
    assert du == pytest.approx(r_crop * lab["gaze_x"][0], abs=0.05)
    assert dv == pytest.approx(r_crop * lab["gaze_y"][0], abs=0.05)


# ----------------------------------------------------------------------------- crop, pixels


def test_crop_box_and_landmarks_by_hand(tmp_path):
    interior, iris_c = write_sample(tmp_path, "3", fmt="png")
    img, lab, _ = decode_sample(_unit(tmp_path, "3", "png"), UnityEyesOptions())
    # centre (136.5, 119.5) at pixel centres -> corners +0.5; width 1.5 * 73.3334 = 110
    assert lab["crop_px"][0] == pytest.approx(2.0, abs=1e-5)
    assert lab["crop_x0"][0] == pytest.approx(137.0 - 55.0, abs=1e-4)
    assert lab["crop_y0"][0] == pytest.approx(120.0 - 35.0, abs=1e-4)
    assert lab["crop_inside"][0] == 1.0
    # lm00 = inner corner, lm08 = outer corner: (u + 0.5 - x0) / px - 0.5
    assert lab["lm00_u"][0] == pytest.approx((INNER[0] + 0.5 - 82) / 2 - 0.5, abs=1e-4)
    assert lab["lm08_u"][0] == pytest.approx((OUTER[0] + 0.5 - 82) / 2 - 0.5, abs=1e-4)
    assert lab["lm04_v"][0] == pytest.approx((TOP + 0.5 - 85) / 2 - 0.5, abs=1e-3)
    assert lab["lm04_v"][0] < lab["lm00_v"][0] < lab["lm12_v"][0]  # 1-7 upper, 9-15 lower lid
    assert lab["pupil_u"][0] == pytest.approx((iris_c[0] + 0.5 - 82) / 2 - 0.5, abs=1e-3)
    assert lab["iris_radius"][0] == pytest.approx(4.0, abs=1e-3)
    assert lab["id"].dtype == np.int64 and lab["id"][0] == 7
    assert lab["ue_head_pose_0"][0] == pytest.approx(351.2)


def test_decoded_pixels_match_an_independent_resampling(tmp_path):
    """At exactly 2 source px per output px, PIL's antialiased bilinear is the separable
    [1, 3, 3, 1] / 8 filter at stride 2: recompute it with numpy on the PNG's luma."""
    write_sample(tmp_path, "3", fmt="png")
    img, lab, _ = decode_sample(_unit(tmp_path, "3", "png"), UnityEyesOptions())
    assert img.shape == (1, 35, 55) and img.dtype == np.uint8
    gray = np.asarray(Image.open(tmp_path / "3.png").convert("L"), dtype=np.float64)
    x0, y0 = 82, 85
    k = np.array([1, 3, 3, 1]) / 8.0
    region = gray[y0 - 1 : y0 + 71, x0 - 1 : x0 + 111]
    rows = np.stack([region[2 * i : 2 * i + 4] for i in range(35)])  # (35, 4, 112)
    v = np.einsum("k,ikw->iw", k, rows)
    cols = np.stack([v[:, 2 * j : 2 * j + 4] for j in range(55)], axis=1)  # (35, 55, 4)
    ref = np.einsum("k,ijk->ij", k, cols)
    assert np.abs(img[0].astype(float) - ref).max() <= 1.0
    # and the darkest spot is the pupil at the label
    r, c = np.unravel_index(np.argmin(img[0]), img[0].shape)
    assert abs(c - lab["pupil_u"][0]) <= 1.5 and abs(r - lab["pupil_v"][0]) <= 1.5


@pytest.mark.parametrize(("crop_scale", "reduce"), [(1.5, 1), (3.0, 2), (6.0, 4)])
def test_fast_jpeg_path_matches_full_decode(tmp_path, crop_scale, reduce):
    """px = 2, 4, 8 source px per output px: the decoder may shrink 1x, 2x, 4x (keeping >= 2)."""
    from simgan.gaze.readers.unityeyes import jpeg_reduction

    write_sample(tmp_path, "4", look=(0.2, -0.1, -0.97))
    assert jpeg_reduction(2.0 * crop_scale / 1.5) == reduce
    fast, lab, _ = decode_sample(_unit(tmp_path, "4"),
                                 UnityEyesOptions(crop_scale=crop_scale, fast_jpeg=True))
    slow, lab2, _ = decode_sample(_unit(tmp_path, "4"),
                                  UnityEyesOptions(crop_scale=crop_scale, fast_jpeg=False))
    assert np.abs(fast.astype(int) - slow.astype(int)).mean() < 1.5
    assert np.abs(fast.astype(int) - slow.astype(int)).max() <= 12
    assert lab["pupil_u"] == lab2["pupil_u"]
    # the darkest spot near the label is the pupil (the widest crop also shows black padding)
    u, v = round(lab["pupil_u"][0]), round(lab["pupil_v"][0])
    win = fast[0, v - 4 : v + 5, u - 4 : u + 5]
    r, c = np.unravel_index(np.argmin(win), win.shape)
    assert abs(u - 4 + c - lab["pupil_u"][0]) <= 1.5 and abs(v - 4 + r - lab["pupil_v"][0]) <= 1.5


def test_index_sorts_numerically_and_pairs_files():
    idx = index_names("/d", ["10.jpg", "2.json", "2.jpg", "10.json", "1.jpg", "notes.txt",
                             "b.json", "b.png"])
    assert [str(s) for s in idx.stems] == ["1", "2", "10", "b"]
    units = idx.units()[0:4]
    assert units[0].annotation is None and units[0].image == "/d/1.jpg"
    assert units[2].image == "/d/10.jpg" and units[2].annotation == "/d/10.json"
    assert units[3].image == "/d/b.png" and [u.id for u in units] == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- whole source


def test_plan_writes_a_dataset_with_the_gaze_columns(tmp_path):
    src_dir = tmp_path / "ue"
    src_dir.mkdir()
    for i in range(1, 6):
        write_sample(src_dir, str(i), look=(0.05 * i, -0.03 * i, -1.0))
    plans = plan_splits(UnityEyesSource(path=src_dir, test_fraction=0.4), seed=1, chunk_size=2)
    assert (plans["train"].n, plans["test"].n) == (3, 2)
    ds = write_dataset(tmp_path / "out", plans["train"].chunks(), plans["train"].n, (35, 55),
                       "uint8", plans["train"].meta, late_meta=plans["train"].late_meta)
    need = ["id", "gaze_x", "gaze_y", "gaze_z", "pitch", "yaw", "pupil_u", "pupil_v"]
    assert all(c in ds.labels.columns for c in need)
    assert ds.labels["id"].dtype == np.int64
    assert all(ds.labels[c].dtype == np.float64 for c in need[1:])
    assert ds.meta["skipped_bad"] == 0 and ds.meta["labelled"] is True
    test_ids = set(plans["test"].chunks().__next__()[1]["id"])
    assert test_ids.isdisjoint(ds.labels["id"])


def test_workers_do_not_change_the_bytes(tmp_path):
    for i in range(1, 9):
        write_sample(tmp_path, str(i), look=(0.04 * i, 0.02 * i, -1.0))
    outs = []
    for workers in (0, 2):
        plan = plan_splits(UnityEyesSource(path=tmp_path, test_fraction=0.0, workers=workers),
                           chunk_size=3)["train"]
        chunks = list(plan.chunks())
        assert [c[0].shape[0] for c in chunks] == [3, 3, 2]
        outs.append((np.concatenate([c[0] for c in chunks]),
                     np.concatenate([c[1]["pitch"].to_numpy() for c in chunks])))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])


# ----------------------------------------------------------------------------- bad inputs


def _bad_folder(tmp_path):
    d = tmp_path / "ue"
    d.mkdir()
    write_sample(d, "1")
    write_sample(d, "2")  # truncated below
    data = (d / "2.jpg").read_bytes()
    (d / "2.jpg").write_bytes(data[: len(data) // 2])
    write_sample(d, "3", drop=("eye_details.look_vec",))
    write_sample(d, "4", look_text="(nan, 0.1000, -0.9000, 0.0000)")
    write_sample(d, "5", look_text="(0.0000, 0.0000, 0.0000, 0.0000)")
    write_sample(d, "6")
    (d / "6.json").unlink()
    write_sample(d, "7")
    return d


@pytest.mark.parametrize(
    ("stem", "file", "field"),
    [
        ("2", "2.jpg", "image"),
        ("3", "3.json", "eye_details.look_vec"),
        ("4", "4.json", "eye_details.look_vec"),
        ("5", "5.json", "eye_details.look_vec"),
        ("6", "6.jpg", "json"),
    ],
)
def test_each_bad_input_raises_naming_file_and_field(tmp_path, stem, file, field):
    d = _bad_folder(tmp_path)
    ext = "jpg"
    unit = UnityEyesUnit(0, stem, str(d / f"{stem}.{ext}"),
                         None if stem == "6" else str(d / f"{stem}.json"))
    with pytest.raises(IngestError) as info:
        decode_sample(unit, UnityEyesOptions())
    msg = str(info.value)
    assert msg.startswith(str(d / file) + f": {field}: "), msg


def test_first_bad_file_stops_the_run_without_skip_bad(tmp_path):
    d = _bad_folder(tmp_path)
    plan = plan_splits(UnityEyesSource(path=d, test_fraction=0.0))["train"]
    with pytest.raises(IngestError, match=r"2\.jpg: image: cannot decode"):
        list(plan.chunks())


def test_skip_bad_counts_every_skipped_file_in_meta(tmp_path):
    d = _bad_folder(tmp_path)
    plan = plan_splits(UnityEyesSource(path=d, test_fraction=0.0, skip_bad=True))["train"]
    assert plan.n == 7 and plan.n_is_upper_bound
    ds = write_dataset(tmp_path / "out", plan.chunks(), plan.n, (35, 55), "uint8", plan.meta,
                       allow_fewer=True, late_meta=plan.late_meta)
    assert len(ds) == 2 and ds.meta["count"] == 2
    assert ds.labels["file"].tolist() == ["1.jpg", "7.jpg"]
    assert ds.meta["skipped_bad"] == 5 and ds.meta["ingest_files"] == 7
    assert ds.meta["skipped_bad_by_field"] == {"eye_details.look_vec": 3, "image": 1, "json": 1}
    assert any("4.json: eye_details.look_vec: NaN" in e for e in ds.meta["skipped_bad_examples"])
    assert plan.late_meta.report.metrics()["ingest_files_per_s"] > 0


def test_missing_directory_is_an_error_naming_it(tmp_path):
    with pytest.raises(IngestError, match=r"nowhere: path: directory not found"):
        plan_splits(UnityEyesSource(path=tmp_path / "nowhere"))
