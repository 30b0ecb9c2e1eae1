"""NYU ingestion on fixtures written here: depth PNGs with mm in G and B, joint_data.mat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.io import savemat

from simgan.core.ingest.common import BadInput, IngestError, IngestReport
from simgan.hand.joints import NYU_EVAL_JOINTS, NYU_FX, joint_columns
from simgan.hand.nyu import (
    CropFormat,
    NyuSource,
    crop_from_centre,
    decode_depth_png,
    iter_nyu_chunks,
    plan_nyu,
    png_name,
    read_joint_data,
    select_joints,
)

H, W = 480, 640
HAND_MM, WALL_MM = 700, 1500
FMT = CropFormat(size=64, cube_mm=300.0, depth_reference="cube")


def source(**keys) -> NyuSource:
    """NYU source keys; ``path`` is the task's business (plan_nyu gets the split directory)."""
    return NyuSource(path=Path("unused"), **keys)


def write_depth_png(path: Path, mm: np.ndarray, red: int = 77) -> None:
    """NYU encoding: R unused (here a constant), G = high byte, B = low byte of mm."""
    mm = np.asarray(mm, dtype=np.uint16)
    rgb = np.stack([np.full(mm.shape, red, np.uint8), (mm >> 8).astype(np.uint8),
                    (mm & 0xFF).astype(np.uint8)], -1)
    Image.fromarray(rgb, "RGB").save(path)


def joints_for(kinect: int, frame: int, n_frames: int) -> np.ndarray:
    """(36, 3) uvd: the 14 evaluated joints on a ring around (320 + 10 kinect, 240 + frame) at
    700 mm (their mean is the ring's centre); the others far away (they must be ignored)."""
    uvd = np.full((36, 3), [5.0, 5.0, 3000.0])
    ang = np.linspace(0, 2 * np.pi, 14, endpoint=False)
    cu, cv = 320.0 + 10 * kinect, 240.0 + frame
    uvd[list(NYU_EVAL_JOINTS), 0] = cu + 40 * np.cos(ang)
    uvd[list(NYU_EVAL_JOINTS), 1] = cv + 40 * np.sin(ang)
    uvd[list(NYU_EVAL_JOINTS), 2] = HAND_MM
    return uvd


def make_split(root: Path, n_kinects: int = 2, n_frames: int = 3, synth: bool = True) -> Path:
    """A split directory: per frame and view a wall at 1500 mm and a 'hand' square at 700 mm
    around the joints' centre with a 9x9 hole (no reading) 20 px right of the centre, and the
    synthetic render (hand only)."""
    root.mkdir(parents=True, exist_ok=True)
    uvd = np.zeros((n_kinects, n_frames, 36, 3))
    for k in range(1, n_kinects + 1):
        for f in range(1, n_frames + 1):
            uvd[k - 1, f - 1] = joints_for(k, f, n_frames)
            cu, cv = 320 + 10 * k, 240 + f
            depth = np.full((H, W), WALL_MM, np.uint16)
            depth[cv - 50 : cv + 51, cu - 50 : cu + 51] = HAND_MM
            depth[cv - 4 : cv + 5, cu + 16 : cu + 25] = 0  # missing readings inside the hand
            write_depth_png(root / png_name("depth", k, f), depth)
            if synth:
                s = np.zeros((H, W), np.uint16)
                s[cv - 45 : cv + 46, cu - 45 : cu + 46] = HAND_MM
                write_depth_png(root / png_name("synthdepth", k, f), s)
    savemat(root / "joint_data.mat", {"joint_uvd": uvd, "joint_xyz": uvd * 0.5,
                                      "joint_names": np.array(["x"] * 36, dtype=object)})
    return root


@pytest.fixture()
def split(tmp_path: Path) -> Path:
    return make_split(tmp_path / "train")


# --- decoding --------------------------------------------------------------------------------


def test_png_depth_is_g_shifted_8_or_b(tmp_path: Path) -> None:
    mm = np.array([[0, 1, 255], [256, 1000, 65535]], np.uint16)
    write_depth_png(tmp_path / "d.png", mm, red=200)
    got = decode_depth_png(tmp_path / "d.png")
    assert got.dtype == np.uint16 and got.tolist() == mm.tolist()
    # hand-computed: G = 3, B = 232 -> 3 * 256 + 232 = 1000 mm
    rgb = np.zeros((1, 1, 3), np.uint8)
    rgb[0, 0] = [9, 3, 232]
    Image.fromarray(rgb, "RGB").save(tmp_path / "one.png")
    assert decode_depth_png(tmp_path / "one.png")[0, 0] == 1000


def test_joint_data_read_and_the_14_evaluated_joints_selected(split: Path) -> None:
    data = read_joint_data(split / "joint_data.mat")
    assert data.uvd.shape == (2, 3, 36, 3) and data.n_kinects == 2 and data.n_frames == 3
    np.testing.assert_allclose(data.xyz, data.uvd * 0.5)
    idx = np.broadcast_to(np.arange(36, dtype=float)[:, None], (36, 3))
    assert select_joints(idx)[:, 0].tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30,
                                                  31, 32]


# --- cropping and labels ---------------------------------------------------------------------


def test_crop_from_joints_labels_and_pixels_hand_computed(split: Path) -> None:
    p = source(views=(1,))
    plan = plan_nyu(split, "depth", p)
    assert len(plan) == 3 and plan.kinect.tolist() == [1, 1, 1] and plan.frame.tolist() == [1, 2, 3]
    images, labels = next(iter_nyu_chunks(plan, p, FMT))
    assert images.shape == (3, 64, 64) and images.dtype == np.uint8
    side = 300.0 * NYU_FX / HAND_MM  # 252.0 Kinect px -> 64 crop px
    assert labels["crop_scale"].iloc[0] == pytest.approx(64 / side)
    assert labels["ref_depth_mm"].tolist() == [HAND_MM] * 3
    # the joints' centre is the crop centre; a joint 40 px to the right lands 40 * 64/side right
    u = labels[[f"j{k:02d}_u" for k in range(14)]].to_numpy()
    v = labels[[f"j{k:02d}_v" for k in range(14)]].to_numpy()
    np.testing.assert_allclose(u.mean(1), 31.5, atol=1e-9)
    np.testing.assert_allclose(v.mean(1), 31.5, atol=1e-9)
    np.testing.assert_allclose(u[:, 0], 31.5 + 40 * 64 / side, atol=1e-9)
    assert (labels[[f"j{k:02d}_d" for k in range(14)]].to_numpy() == HAND_MM).all()
    # hand at the cube centre: code (700 + 150 - 700) * 255 / 300 = 127.5 -> 128 (half to even)
    assert images[0, 31, 31] == 128 and images[0, 32, 32] == 128
    # the wall at 1500 mm is outside the cube: background 0; the hand square is 101 px wide
    assert images[0, 0, 0] == 0 and images[0, 31, 0] == 0
    width = (images[0, 31] > 0).sum()
    assert abs(width - 101 * 64 / side) <= 2
    # the hole (0 mm) 20 +- 4.5 Kinect px right of the centre: crop u 36.6 +- 1.1 -> background
    assert 31.5 + 20 * 64 / side == pytest.approx(36.58, abs=0.01)
    assert (images[0, 31:33, 36:38] == 0).all() and (images[0, 31:33, 34] == 128).all()
    assert labels["file"].tolist() == [png_name("depth", 1, f) for f in (1, 2, 3)]
    assert list(labels.columns[:43]) == ["id", *joint_columns()]


def test_crop_geometry_matches_the_renderer_convention() -> None:
    c = crop_from_centre(100.0, 50.0, 588.03, 300.0, 60)  # 300 Kinect px -> 60 px
    assert (c.left, c.top, c.scale_u) == pytest.approx((-50.0, 50.0 - 150.0 * 587.07 / 588.03,
                                                        0.2))


def test_views_and_frame_selection(split: Path) -> None:
    p = source(views=(2, 1), frame_step=2)
    plan = plan_nyu(split, "depth", p)
    assert list(zip(plan.frame.tolist(), plan.kinect.tolist(), strict=True)) == [
        (1, 2), (1, 1), (3, 2), (3, 1)]
    _, labels = next(iter_nyu_chunks(plan, p, FMT))
    assert labels["kinect"].tolist() == [2, 1, 2, 1]
    assert labels["id"].tolist() == [0, 1, 2, 3]
    with pytest.raises(IngestError, match="view 3 requested"):
        plan_nyu(split, "depth", source(views=(3,)))


def test_take_keeps_the_chosen_rows_in_file_order(split: Path) -> None:
    p = source(views=(1, 2))
    plan = plan_nyu(split, "depth", p)  # (frame, view): (1,1) (1,2) (2,1) (2,2) (3,1) (3,2)
    part = plan.take(np.array([1, 4, 5]))
    assert list(zip(part.frame.tolist(), part.kinect.tolist(), strict=True)) == [
        (1, 2), (3, 1), (3, 2)]
    np.testing.assert_array_equal(part.uvd, plan.uvd[[1, 4, 5]])
    assert plan.take(None) is plan
    _, labels = next(iter_nyu_chunks(part, p, FMT))
    assert labels["file"].tolist() == [png_name("depth", 2, 1), png_name("depth", 1, 3),
                                       png_name("depth", 2, 3)]
    assert labels["id"].tolist() == [0, 1, 2]


def test_crop_format_is_given_not_read_from_the_source(split: Path) -> None:
    p = source(views=(1,))
    plan = plan_nyu(split, "depth", p)
    small, labels = next(iter_nyu_chunks(plan, p, CropFormat(32, 300.0, "cube")))
    paper, _ = next(iter_nyu_chunks(plan, p, CropFormat(64, 300.0, "paper")))
    assert small.shape == (3, 32, 32) and paper.shape == (3, 64, 64)
    side = 300.0 * NYU_FX / HAND_MM
    assert labels["crop_scale"].iloc[0] == pytest.approx(32 / side)
    # paper coding: (2000 - 700) * 255 / 2000 = 165.75 -> 166 at the hand
    assert paper[0, 31, 31] == 166


def test_synthetic_source_and_synth_mask_crop(split: Path) -> None:
    p = source(views=(1,), crop="synth_mask", mask_dilate_px=2)
    images, labels = next(iter_nyu_chunks(plan_nyu(split, "depth", p), p, FMT))
    # centre from the mask (the same square centre), the wall cleared, the hand kept
    np.testing.assert_allclose(labels["ref_depth_mm"], HAND_MM)
    row = images[0, 25] > 0  # a row clear of the hole
    side = 300.0 * NYU_FX / HAND_MM
    assert abs(row.sum() - (91 + 4) * 64 / side) <= 2  # mask 91 px + 2 px dilation each side
    synth, _ = next(iter_nyu_chunks(plan_nyu(split, "synthdepth", p), p, FMT))
    assert (synth[:, 31, 31] == 128).all()


def test_process_pool_gives_the_same_chunks(split: Path) -> None:
    p0 = source(views=(1, 2), chunk_frames=2)
    p2 = p0.model_copy(update={"workers": 2})
    a = list(iter_nyu_chunks(plan_nyu(split, "depth", p0), p0, FMT))
    b = list(iter_nyu_chunks(plan_nyu(split, "depth", p2), p2, FMT))
    assert [x[0].shape[0] for x in a] == [2, 2, 2]
    for (ia, la), (ib, lb) in zip(a, b, strict=True):
        assert np.array_equal(ia, ib) and la.equals(lb)
    # chunk_size regroups the same rows for the writer, whatever the decoding task size
    c = list(iter_nyu_chunks(plan_nyu(split, "depth", p2), p2, FMT, chunk_size=4))
    assert [x[0].shape[0] for x in c] == [4, 2]
    assert np.array_equal(np.concatenate([x[0] for x in c]), np.concatenate([x[0] for x in a]))
    la = pd.concat([x[1] for x in a], ignore_index=True)
    assert pd.concat([x[1] for x in c], ignore_index=True).equals(la)
    assert la["id"].tolist() == list(range(6))


# --- bad inputs ------------------------------------------------------------------------------


def test_missing_png_errors_with_file_and_field_or_is_skipped_and_counted(split: Path) -> None:
    (split / png_name("depth", 1, 2)).unlink()
    with pytest.raises(IngestError, match=r"depth_1_0000002\.png: file: missing") as err:
        plan_nyu(split, "depth", source())
    assert (err.value.file, err.value.field) == (str(split / png_name("depth", 1, 2)), "file")
    p = source(skip_bad=True)
    plan = plan_nyu(split, "depth", p)
    assert plan.frame.tolist() == [1, 3]
    assert plan.skipped == [BadInput(str(split / png_name("depth", 1, 2)), "file", "missing", 1)]
    # the planning problem is counted in the run's report first, as the driver's known_bad
    report = IngestReport()
    chunks = list(iter_nyu_chunks(plan, p, FMT, report))
    assert sum(c[0].shape[0] for c in chunks) == 2
    assert (report.units, report.rows, report.skipped, report.skipped_rows) == (2, 2, 1, 1)
    assert report.meta()["skipped_bad_examples"] == [
        f"{split / png_name('depth', 1, 2)}: file: missing"]
    assert report.seconds > 0
    # a row cap keeps the planning problems of the whole split (what planning found)
    assert plan.take(np.array([1])).skipped == plan.skipped


def test_planning_problems_are_counted_by_field_in_the_report(split: Path) -> None:
    """One missing PNG and one non-finite label row: two skipped rows, by field."""
    data = read_joint_data(split / "joint_data.mat")
    uvd = data.uvd.copy()
    uvd[1, 2, 0, 0] = np.inf  # kinect 2, frame 3, an evaluated joint
    savemat(split / "joint_data.mat", {"joint_uvd": uvd, "joint_xyz": data.xyz})
    (split / png_name("depth", 1, 2)).unlink()
    p = source(views=(1, 2), skip_bad=True)
    plan = plan_nyu(split, "depth", p)
    assert list(zip(plan.frame.tolist(), plan.kinect.tolist(), strict=True)) == [
        (1, 1), (1, 2), (2, 2), (3, 1)]
    report = IngestReport()
    images = np.concatenate([c[0] for c in iter_nyu_chunks(plan, p, FMT, report, 3)])
    assert images.shape[0] == 4
    meta = report.meta()
    assert meta["skipped_bad"] == 2 and meta["skipped_bad_rows"] == 2
    assert meta["skipped_bad_by_field"] == {"file": 1, "joint_uvd": 1}
    assert meta["ingest_files"] == 4 and meta["ingest_rows"] == 4  # frames x views decoded
    ex = meta["skipped_bad_examples"]
    assert ex[0].startswith(f"{split / png_name('depth', 1, 2)}: file: missing")
    assert ex[1] == f"{split / 'joint_data.mat'}: joint_uvd: kinect 2 frame 3: not finite"
    metrics = report.metrics()
    assert metrics["skipped_bad"] == 2.0 and metrics["ingest_files"] == 4.0
    # each run counts afresh: the same plan through a new report gives the same counts
    again = IngestReport()
    list(iter_nyu_chunks(plan, p, FMT, again))
    assert again.meta() == meta
    # without skip_bad the first problem (frame-major order) raises, naming file and field
    with pytest.raises(IngestError, match=r"depth_1_0000002\.png: file: missing"):
        plan_nyu(split, "depth", source(views=(1, 2)))
    strict = source(views=(1, 2))  # a plan holding problems, decoded without skip_bad
    with pytest.raises(IngestError, match=r"depth_1_0000002\.png: file: missing"):
        list(iter_nyu_chunks(plan, strict, FMT))


def test_bad_labels(split: Path) -> None:
    data = read_joint_data(split / "joint_data.mat")
    uvd = data.uvd.copy()
    uvd[0, 2, 3, 1] = np.nan  # kinect 1, frame 3, an evaluated joint
    uvd[0, 0, 1, 1] = np.nan  # a joint that is not evaluated: harmless
    savemat(split / "joint_data.mat", {"joint_uvd": uvd, "joint_xyz": data.xyz})
    with pytest.raises(IngestError,
                       match=r"joint_data\.mat: joint_uvd: kinect 1 frame 3: not finite"):
        plan_nyu(split, "depth", source())
    assert len(plan_nyu(split, "depth", source(skip_bad=True))) == 2

    savemat(split / "joint_data.mat", {"joint_uvd": uvd})
    with pytest.raises(IngestError, match=r"joint_data\.mat: joint_xyz: missing"):
        read_joint_data(split / "joint_data.mat")
    savemat(split / "joint_data.mat", {"joint_uvd": uvd[..., :2], "joint_xyz": data.xyz})
    with pytest.raises(IngestError, match=r"joint_uvd: expected shape"):
        read_joint_data(split / "joint_data.mat")
    (split / "joint_data.mat").write_bytes(b"not a mat file")
    with pytest.raises(IngestError, match=r"joint_data\.mat: file: cannot read"):
        read_joint_data(split / "joint_data.mat")
    (split / "joint_data.mat").unlink()
    with pytest.raises(IngestError, match=r"joint_data\.mat: file: missing"):
        plan_nyu(split, "depth", source())


@pytest.mark.parametrize("workers", [0, 1])
def test_undecodable_pngs_error_or_are_skipped_when_decoding(split: Path, workers: int) -> None:
    Image.fromarray(np.zeros((H, W), np.uint8), "L").save(split / png_name("depth", 1, 1))
    (split / png_name("depth", 1, 3)).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    p = source(workers=workers)
    plan = plan_nyu(split, "depth", p)  # cheap checks pass: the files exist
    with pytest.raises(IngestError, match=r"depth_1_0000001\.png: mode: expected an RGB PNG"):
        list(iter_nyu_chunks(plan, p, FMT))
    p = source(workers=workers, skip_bad=True)
    report = IngestReport()
    chunks = list(iter_nyu_chunks(plan_nyu(split, "depth", p), p, FMT, report))
    assert sum(c[0].shape[0] for c in chunks) == 1
    assert chunks[0][1]["frame"].tolist() == [2] and chunks[0][1]["id"].tolist() == [0]
    assert (report.units, report.rows, report.skipped, report.skipped_rows) == (3, 1, 2, 2)
    assert dict(report.by_field) == {"mode": 1, "image": 1}
    assert report.examples[0].startswith(
        f"{split / png_name('depth', 1, 1)}: mode: expected an RGB PNG")
    assert report.examples[1].startswith(
        f"{split / png_name('depth', 1, 3)}: image: cannot decode")


def test_params_are_strict() -> None:
    with pytest.raises(ValueError):
        source(views=(1, 1))
    with pytest.raises(ValueError):
        source(views=(4,))
    with pytest.raises(ValueError):
        source(view=(1,))
