"""The hand task behind the shared stages: params, split plans (builtin, stand-in, NYU),
evaluation in crop or frame px, label preservation with the synthetic-trained estimator."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simgan.core.config import ParamsError, read_yaml, validate
from simgan.core.dataset import open_dataset
from simgan.core.ingest.common import PlanSettings
from simgan.hand.joints import N_JOINTS, keypoints_from_labels
from simgan.hand.task import PRED_COLUMNS, HandParams, HandTask, NyuRealSource, NyuSynthSource
from simgan.tasks import get_task, load_task_params, task_names
from stages.datasets_io import describe_split, ingest_report, params_hash, write_split
from tests.test_hand_nyu import make_split, png_name

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def hand() -> dict:
    return read_yaml(ROOT / "params.yaml")["hand"]


def _params(data: dict) -> HandParams:
    return validate(HandParams, data, "hand")


def _small(data: dict, n: int = 40, size: int = 32) -> dict:
    d = copy.deepcopy(data)
    d["render"].update(n_train=n, n_test=n // 2, chunk_size=16, threads=1)
    d["render"]["hand"]["size"] = size
    d["real"].update(n_train=n, n_test=n // 2, chunk_size=16, threads=1)
    return d


def _error(data: dict) -> str:
    with pytest.raises(ParamsError) as exc:
        _params(data)
    return str(exc.value)


def test_registered_and_the_default_params_are_valid():
    assert task_names() == ["gaze", "hand"]
    assert isinstance(get_task("hand"), HandTask)
    p = load_task_params(ROOT / "params.yaml", "hand")
    assert p.render.source.kind == "builtin" and p.real.source.kind == "standin"
    assert p.evaluate.unit in ("crop_px", "frame_px")


def test_every_key_is_required_inside_the_chosen_source(hand):
    del hand["render"]["hand"]["cube_mm"]
    del hand["real"]["depth"]["edge_jag_px"]
    msg = _error(hand)
    assert "hand.render.hand.cube_mm: missing (expected float)" in msg
    assert "hand.real.depth.edge_jag_px: missing (expected float)" in msg


def _nyu_source(kind: str, path: str = "/data/nyu", **keys) -> dict:
    return {"kind": kind, "path": path, "views": [1], "crop": "joints", "mask_dilate_px": 3,
            "frame_step": 1, "skip_bad": False, "workers": 0, "chunk_frames": 64, **keys}


def test_source_kinds_are_checked(hand):
    bad = copy.deepcopy(hand)
    bad["real"]["source"] = {"kind": "kinect"}
    bad["render"]["source"] = {"kind": "nyu", "path": "/data/nyu"}  # a real kind, not synthetic
    msg = _error(bad)
    assert ("hand.real.source.kind: unknown kind 'kinect'; allowed kinds here: standin, nyu"
            in msg)
    assert ("hand.render.source.kind: unknown kind 'nyu'; allowed kinds here: builtin, nyu_synth"
            in msg)
    no_kind = copy.deepcopy(hand)
    no_kind["render"]["source"] = {"path": "/data/nyu"}
    assert "hand.render.source.kind: missing (expected one of builtin, nyu_synth)" in _error(
        no_kind)


def test_every_key_of_the_nyu_source_is_required(hand):
    data = copy.deepcopy(hand)
    data["render"]["source"] = _nyu_source("nyu_synth")
    data["real"]["source"] = _nyu_source("nyu")
    del data["real"]["source"]["views"]
    del data["render"]["source"]["path"]
    data["real"]["source"]["root"] = "/data/nyu"  # the old key
    msg = _error(data)
    assert "hand.real.source.views: missing (expected tuple)" in msg
    assert "hand.render.source.path: missing (expected Path)" in msg
    assert "hand.real.source.root: unknown key; allowed here: " in msg
    # the crop format is render.hand's: an NYU source has no size of its own
    data = copy.deepcopy(hand)
    data["real"]["source"] = _nyu_source("nyu", size=96)
    assert "hand.real.source.size: unknown key" in _error(data)


def test_standin_needs_the_builtin_renderer(hand):
    mixed = copy.deepcopy(hand)
    mixed["render"]["source"] = _nyu_source("nyu_synth")
    msg = _error(mixed)
    assert "real.source.kind: standin" in msg and "needs render.source.kind: builtin" in msg
    assert "(got nyu_synth)" in msg
    both = copy.deepcopy(hand)
    both["render"]["source"], both["real"]["source"] = (_nyu_source("nyu_synth"),
                                                        _nyu_source("nyu"))
    p = _params(both)
    assert p.real.source.kind == "nyu" and p.real.source.path == Path("/data/nyu")
    builtin_nyu = copy.deepcopy(hand)  # builtin synthetic with NYU real: allowed
    builtin_nyu["real"]["source"] = _nyu_source("nyu")
    assert _params(builtin_nyu).render.source.kind == "builtin"


def test_params_hash_covers_the_whole_section_source_included(hand):
    """meta.json's params_hash is the section as written but for ``threads`` (speed, not
    bytes: tests/test_speed_params.py), so switching the source (or any other key) changes it,
    and the same section always gives the same hash."""
    p = _params(hand)
    for section in (p.render, p.real):
        data = section.model_dump(mode="json")
        written = {k: v for k, v in data.items() if k != "threads"}
        want = hashlib.sha256(json.dumps(written, sort_keys=True).encode()).hexdigest()[:16]
        assert params_hash(section) == want
        assert params_hash(data) == want
    nyu = copy.deepcopy(hand)
    nyu["real"]["source"] = _nyu_source("nyu")
    assert params_hash(_params(nyu).real) != params_hash(p.real)


def test_builtin_and_standin_splits_are_disjoint_and_labelled(hand, tmp_path):
    p = _params(_small(hand))
    task = HandTask()
    syn, real = task.synthetic_splits(p), task.real_splits(p)
    assert {k: v.n for k, v in syn.items()} == {"train": 40, "test": 20}
    train = write_split(tmp_path / "syn_train", syn["train"], {"task": "hand"}, "t")
    test = write_split(tmp_path / "syn_test", syn["test"], {"task": "hand"}, "t")
    rtrain = write_split(tmp_path / "real_train", real["train"], {"task": "hand"}, "t")
    assert train.images.shape == (40, 32, 32) and train.images.dtype == np.uint8
    assert train.labels["id"].tolist() == list(range(40))
    assert test.labels["id"].tolist() == list(range(40, 60))
    assert keypoints_from_labels(rtrain.labels).shape == (40, N_JOINTS, 2)
    assert train.meta["source"] == "builtin-synthetic"
    assert rtrain.meta["source"] == "builtin-standin-real"
    assert not np.array_equal(train.images, rtrain.images)


def _predictions(kp: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(kp.reshape(len(kp), -1), columns=PRED_COLUMNS)


def test_evaluation_in_crop_and_frame_px(hand):
    p = _params(_small(hand))
    task = HandTask()
    rng = np.random.default_rng(0)
    n = 10
    labels = pd.DataFrame({"id": np.arange(n), "crop_scale": np.full(n, 0.25)})
    true = rng.uniform(0, 32, (n, N_JOINTS, 2))
    for j in range(N_JOINTS):
        labels[f"j{j:02d}_u"], labels[f"j{j:02d}_v"] = true[:, j, 0], true[:, j, 1]
    shift = np.zeros_like(true)
    shift[..., 0] = 1.0  # every joint 1 crop px off = 4 frame px off
    shift[0, 0, 0] = 7.0  # one joint of image 0 is 7 crop px (28 frame px) off
    res = task.evaluate(p, _predictions(true + shift), labels)
    s = res.summary
    assert s["pct_joints_within"] == pytest.approx(100 * (n * N_JOINTS - 1) / (n * N_JOINTS))
    assert s["pct_images_within"] == pytest.approx(90.0)
    assert s["mean_crop_px"] == pytest.approx((n * N_JOINTS + 6) / (n * N_JOINTS))
    assert s["mean_frame_px"] == pytest.approx(4 * s["mean_crop_px"])
    assert list(res.curve.columns) == ["threshold", "pct_within", "pct_images_within"]
    assert res.curve["threshold"].tolist() == list(range(21))
    assert res.curve.loc[2, "pct_within"] == pytest.approx(s["pct_joints_within"])
    assert res.curve.loc[0, "pct_within"] == 0.0 and res.curve.loc[7, "pct_images_within"] == 100.0
    assert len(res.per_image) == n and res.per_image.loc[0, "worst_px"] == pytest.approx(7.0)

    frame = copy.deepcopy(_small(hand))
    frame["evaluate"]["unit"] = "frame_px"
    pf = _params(frame)
    rf = task.evaluate(pf, _predictions(true + shift), labels).summary
    assert rf["mean_px"] == pytest.approx(rf["mean_frame_px"])
    assert rf["pct_joints_within"] == pytest.approx(s["pct_joints_within"])  # 4 px in, 28 out
    assert [t for _, t in task.table_columns(pf)][0] == "% joints within 5 frame px"


def test_frame_px_threshold_counts_in_frame_px(hand):
    p = _params({**_small(hand), "evaluate": {**hand["evaluate"], "unit": "frame_px"}})
    labels = pd.DataFrame({"id": [0], "crop_scale": [0.25]})
    true = np.zeros((1, N_JOINTS, 2))
    for j in range(N_JOINTS):
        labels[f"j{j:02d}_u"], labels[f"j{j:02d}_v"] = 0.0, 0.0
    pred = true.copy()
    pred[0, :7, 0] = 1.0  # 4 frame px: within 5
    pred[0, 7:, 0] = 2.0  # 8 frame px: not
    s = HandTask().evaluate(p, _predictions(pred), labels).summary
    assert s["pct_joints_within"] == pytest.approx(50.0)
    assert s["mean_px"] == pytest.approx(6.0)


def test_label_preservation_uses_the_synthetic_trained_estimator(hand, monkeypatch):
    p = _params({**_small(hand), "compare": {**hand["compare"], "preservation_n": 8}})
    task = HandTask()
    n = 12
    synthetic = np.repeat(np.arange(n, dtype=np.uint8), 32 * 32).reshape(n, 32, 32)
    refined = synthetic + 100  # image i holds i (synthetic) or 100 + i (refined)
    labels = pd.DataFrame({"id": np.arange(n), "crop_scale": np.ones(n)})
    kp = np.random.default_rng(1).uniform(0, 32, (n, N_JOINTS, 2))
    for j in range(N_JOINTS):
        labels[f"j{j:02d}_u"], labels[f"j{j:02d}_v"] = kp[:, j, 0], kp[:, j, 1]

    def predict(p, model, x):
        """Exact on synthetic images, 3 px off on refined ones."""
        assert model == "model trained on synthetic"
        code = np.asarray(x)[:, 0, 0].astype(int)
        return _predictions(kp[code % 100] + np.where(code >= 100, 3.0, 0.0)[:, None, None]
                            * np.array([1.0, 0.0]))

    monkeypatch.setattr(task, "predict", predict)
    asked: list[str] = []

    def loader(source: str):
        asked.append(source)
        return f"model trained on {source}"

    out = task.label_preservation(p, synthetic, refined, labels, estimator=loader)
    assert asked == ["synthetic"]
    assert out["n"] == 8
    assert out["synthetic_mean_px"] == pytest.approx(0.0, abs=1e-5)  # float32 labels
    assert out["refined_mean_px"] == pytest.approx(3.0, abs=1e-5)
    assert out["delta_mean_px"] == pytest.approx(3.0, abs=1e-5)
    assert out["delta_pct_joints_within"] == pytest.approx(0.0)  # 3 px is within 5


def _nyu_root(tmp_path: Path, n_train: int = 4) -> Path:
    root = tmp_path / "nyu"
    make_split(root / "train", n_kinects=1, n_frames=n_train)
    make_split(root / "test", n_kinects=1, n_frames=2)
    return root


def _nyu_params(hand: dict, path: str | Path, skip_bad: bool, n_train: int = 8000,
                seed: int = 0) -> HandParams:
    data = copy.deepcopy(hand)
    data["render"]["source"] = _nyu_source("nyu_synth", str(path), skip_bad=skip_bad,
                                           chunk_frames=2)
    data["real"]["source"] = _nyu_source("nyu", str(path), skip_bad=skip_bad, chunk_frames=2)
    data["real"].update(n_train=n_train, seed=seed)
    return _params(data)


def test_nyu_sources_give_the_same_columns_as_the_renderer(hand, tmp_path):
    root = _nyu_root(tmp_path)
    p = _nyu_params(hand, root, skip_bad=False)
    task = HandTask()
    real = task.real_splits(p)
    syn = task.synthetic_splits(p)
    assert {k: v.n for k, v in real.items()} == {"train": 4, "test": 2}
    ds = write_split(tmp_path / "real_train", real["train"], {"task": "hand"}, "t")
    sd = write_split(tmp_path / "syn_test", syn["test"], {"task": "hand"}, "t")
    assert ds.images.shape == (4, 64, 64) and sd.images.shape == (2, 64, 64)
    assert ds.meta["source"] == "nyu-depth" and sd.meta["source"] == "nyu-synthdepth"
    assert keypoints_from_labels(ds.labels).shape == (4, N_JOINTS, 2)
    # the gaze readers' ingest keys, nothing skipped; the old NYU-only keys are gone
    assert ds.meta["skipped_bad"] == 0 and ds.meta["skipped_bad_by_field"] == {}
    assert ds.meta["ingest_files"] == 4 and ds.meta["ingest_rows"] == 4
    assert not any(k.startswith("skipped_when") for k in ds.meta)
    assert ds.meta["rows_available"] == 4 and ds.meta["rows_selected"] == 4
    assert ds.meta["source_params"]["kind"] == "nyu"


def test_nyu_crops_take_the_format_of_render_hand(hand, tmp_path):
    root = _nyu_root(tmp_path)
    data = copy.deepcopy(hand)
    data["render"]["hand"].update(size=32, depth_reference="paper")
    data["real"]["source"] = _nyu_source("nyu", str(root))
    p = _params(data)
    plan = HandTask().real_splits(p)["test"]
    assert plan.image_shape == (32, 32) and "2000 mm" in plan.meta["value_scaling"]
    images, _ = next(plan.chunks())
    assert images.shape == (2, 32, 32)


def test_nyu_relative_path_resolves_against_the_project_root(hand, tmp_path):
    _nyu_root(tmp_path)
    p = _nyu_params(hand, "nyu", skip_bad=False)
    plan = HandTask().real_splits(p, root=tmp_path)["train"]
    assert plan.meta["source_path"] == str(tmp_path / "nyu")
    assert plan.meta["source_params"]["path"] == "nyu"
    with pytest.raises(ValueError, match="directory: missing"):
        HandTask().real_splits(p, root=tmp_path / "elsewhere")


def test_nyu_n_train_caps_rows_with_a_seeded_subset_in_file_order(hand, tmp_path):
    root = _nyu_root(tmp_path, n_train=12)
    task = HandTask()

    def frames(seed: int, n_train: int) -> list[int]:
        p = _nyu_params(hand, root, skip_bad=False, n_train=n_train, seed=seed)
        plan = task.real_splits(p)["train"]
        assert plan.n == min(n_train, 12)
        ds = write_split(tmp_path / f"real_{seed}_{n_train}", plan, {"task": "hand"}, "t")
        assert len(ds) == plan.n and ds.labels["id"].tolist() == list(range(plan.n))
        assert ds.meta["rows_available"] == 12 and ds.meta["rows_cap"] == n_train
        return ds.labels["frame"].tolist()

    a = frames(0, 5)
    assert len(a) == 5 and a == sorted(a) and len(set(a)) == 5 and set(a) <= set(range(1, 13))
    assert frames(0, 5) == a  # seeded: the same subset every run
    want = PlanSettings((64, 64), seed=0, max_train=5).subset("train", 12) + 1  # gaze's rule
    assert a == want.tolist()
    assert frames(3, 5) != a
    assert frames(0, 100) == list(range(1, 13))  # a cap above the split keeps it whole
    # the test split has its own cap (n_test): untouched here
    p = _nyu_params(hand, root, skip_bad=False, n_train=5)
    assert task.real_splits(p)["test"].n == 2


def test_nyu_frames_that_fail_decoding_are_skipped_and_the_dataset_shrinks(hand, tmp_path):
    root = _nyu_root(tmp_path)
    (root / "train" / png_name("depth", 1, 2)).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    p = _nyu_params(hand, root, skip_bad=True)
    plan = HandTask().real_splits(p)["train"]
    assert plan.n == 4 and plan.n_is_upper_bound
    ds = write_split(tmp_path / "real_train", plan, {"task": "hand"}, "t")
    assert len(ds) == 3 and ds.images.shape == (3, 64, 64)
    assert ds.labels["frame"].tolist() == [1, 3, 4]
    meta = json.loads((tmp_path / "real_train" / "meta.json").read_text())
    assert meta["count"] == 3 and meta["ingest_files"] == 4 and meta["ingest_rows"] == 3
    assert meta["skipped_bad"] == 1 and meta["skipped_bad_rows"] == 1
    assert meta["skipped_bad_by_field"] == {"image": 1}
    assert meta["skipped_bad_examples"][0].startswith(
        f"{root / 'train' / png_name('depth', 1, 2)}: image: cannot decode")
    strict = _nyu_params(hand, root, skip_bad=False)
    with pytest.raises(ValueError, match="depth_1_0000002.png: image: cannot decode"):
        write_split(tmp_path / "strict", HandTask().real_splits(strict)["train"], {}, "t")
    assert not (tmp_path / "strict").exists()
    assert open_dataset(tmp_path / "real_train").labels["id"].tolist() == [0, 1, 2]


def test_nyu_bad_inputs_reach_meta_json_mlflow_metrics_and_the_log_line(hand, tmp_path):
    """Planning problems (a missing PNG, a non-finite label row) and a decoding problem go
    into one IngestReport, with the keys, metrics and log line of the gaze readers."""
    from scipy.io import loadmat, savemat

    root = _nyu_root(tmp_path, n_train=6)
    train = root / "train"
    mat = loadmat(train / "joint_data.mat")
    uvd = mat["joint_uvd"].copy()
    uvd[0, 3, 0, 0] = np.nan  # kinect 1, frame 4, an evaluated joint
    savemat(train / "joint_data.mat", {"joint_uvd": uvd, "joint_xyz": mat["joint_xyz"]})
    (train / png_name("depth", 1, 3)).unlink()
    (train / png_name("depth", 1, 2)).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"depth_1_0000003\.png: file: missing"):
        HandTask().real_splits(_nyu_params(hand, "nyu", skip_bad=False), root=tmp_path)

    plan = HandTask().real_splits(_nyu_params(hand, "nyu", skip_bad=True), root=tmp_path)["train"]
    assert plan.n == 4 and plan.n_is_upper_bound and "skipped_when_planning" not in plan.meta
    ds = write_split(tmp_path / "real_train", plan, {"task": "hand"}, "t", root=tmp_path)
    assert ds.labels["frame"].tolist() == [1, 5, 6]
    meta = json.loads((tmp_path / "real_train" / "meta.json").read_text())
    assert meta["skipped_bad"] == 3 and meta["skipped_bad_rows"] == 3
    assert meta["skipped_bad_by_field"] == {"file": 1, "image": 1, "joint_uvd": 1}
    assert meta["ingest_files"] == 4 and meta["ingest_rows"] == 3 and meta["count"] == 3
    # planning problems first (frame order), then decoding; paths relative to the project
    ex = meta["skipped_bad_examples"]
    assert ex[0] == "nyu/train/depth_1_0000003.png: file: missing"
    assert ex[1] == "nyu/train/joint_data.mat: joint_uvd: kinect 1 frame 4: not finite"
    assert ex[2].startswith("nyu/train/depth_1_0000002.png: image: cannot decode")
    report = ingest_report(plan)  # what write_domain logs to MLflow as <split>.<key>
    assert report is plan.late_meta.report
    metrics = report.metrics()
    assert {k: metrics[k] for k in ("ingest_files", "ingest_rows", "skipped_bad",
                                    "skipped_bad_rows")} == {
        "ingest_files": 4.0, "ingest_rows": 3.0, "skipped_bad": 3.0, "skipped_bad_rows": 3.0}
    assert metrics["ingest_seconds"] > 0
    line = describe_split("real", "train", ds, report)
    assert ("SKIPPED 3 bad input(s) (3 rows), by field: {'file': 1, 'image': 1, 'joint_uvd': 1}"
            in line)


def test_the_nyu_profile_switches_both_sources(tmp_path):
    from stages.profile import apply_profile

    apply_profile(ROOT / "params.yaml", ROOT / "configs" / "nyu.yaml", tmp_path / "p.yaml")
    p = load_task_params(tmp_path / "p.yaml", "hand")
    assert isinstance(p.render.source, NyuSynthSource) and isinstance(p.real.source, NyuRealSource)
    assert p.real.source.path == Path("data/sources/NYU")
    assert p.render.hand == load_task_params(ROOT / "params.yaml", "hand").render.hand
