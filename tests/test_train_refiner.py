"""The S+U loop on tiny sizes: resume equals uninterrupted, the trainer's state round-trips,
the buffer fills, selection is label-free, a saved refiner loads back; the estimator learns a
trivial mapping and resumes; refine_images streams."""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch

from simgan.core.checkpoint import read_checkpoint
from simgan.core.epochs import split_indices
from simgan.core.refiner.apply import refine_images
from simgan.core.refiner.net import Refiner, load_refiner, refiner_file
from simgan.core.refiner.params import DiscriminatorParams, RefinerNetParams, RefinerTrainParams
from simgan.core.refiner.selection import Selector
from simgan.core.refiner.trainer import CHECKPOINT, RefinerTrainer, train_refiner
from simgan.gaze.estimator import (
    EstimatorParams,
    build_gaze_cnn,
    predict,
    train_estimator,
)
from stages.artifacts import save_torch

H, W = 12, 16


class Killed(Exception):
    """Stands in for a SIGKILL in the middle of a run."""


def _images(seed: int, n: int, offset: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, size=(n, H, W))
    return np.clip(base + offset, 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: threading only adds overhead (and the CI box is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return _images(0, 80, 0), _images(1, 80, 40)


NET = RefinerNetParams(width=4, blocks=1, noise_channels=1)
DISC = DiscriminatorParams(widths=(4, 4, 4, 4))


def _params(**kw) -> RefinerTrainParams:
    base = dict(
        batch_size=8,
        pretrain_refiner_steps=2,
        pretrain_discriminator_steps=2,
        steps=6,
        lr=1e-3,
        history_size=20,
        select_every=2,
        select_size=16,
        checkpoint_every=3,
        log_every=1,
        sample_every=3,
        sample_count=4,
        device="cpu",
        seed=3,
    )
    base.update(kw)
    return RefinerTrainParams(**base)


def _equal_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _equal(a: object, b: object) -> bool:
    """Deep equality of nested dicts/lists/tuples of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    return a == b


def _die_at(step: int) -> Callable[[dict[str, float], int], None]:
    """An ``on_metrics`` callback that kills the run when ``step`` (or epoch) is reported."""

    def die(metrics: dict[str, float], reported: int) -> None:
        if reported == step:
            raise Killed

    return die


def _kill(syn: np.ndarray, real: np.ndarray, p: RefinerTrainParams, checkpoint_dir: Path,
          step: int) -> None:
    """Train until a kill at ``step``: the checkpoints before it are on disk."""
    with pytest.raises(Killed):
        train_refiner(syn, real, NET, DISC, p, checkpoint_dir, on_metrics=_die_at(step))


def _last(checkpoint_dir: Path) -> dict:
    """The final checkpoint of a finished run (R and D after the last step)."""
    return read_checkpoint(checkpoint_dir / CHECKPOINT)


def test_resume_after_kill_equals_uninterrupted(data, tmp_path: Path) -> None:
    syn, real = data
    p = _params()
    full = train_refiner(syn, real, NET, DISC, p, tmp_path / "a")

    _kill(syn, real, p, tmp_path / "b", 5)
    seen: list[int] = []
    resumed = train_refiner(
        syn, real, NET, DISC, p, tmp_path / "b", on_metrics=lambda m, s: seen.append(s)
    )
    assert min(seen) == 4  # continued after the checkpoint at step 3, did not restart
    assert _equal(_last(tmp_path / "a"), _last(tmp_path / "b"))  # nets, optimisers, RNGs, ...
    assert _equal_states(full.selected_state, resumed.selected_state)
    assert full.history == resumed.history
    assert full.selection == resumed.selection


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refiner_sha256(result, path: Path) -> str:
    """The sha256 of the model file train_refiner.py writes from ``result``."""
    save_torch(path, refiner_file(result.selected_state, NET, result.selection))
    return _sha256(path)


@pytest.mark.parametrize("damage", [False, True])
def test_resumed_run_writes_the_same_bytes(data, tmp_path: Path, damage: bool, caplog) -> None:
    """The files, not only their tensors (dvc.lock hashes bytes). The kill comes after the
    selection scored candidates, so the checkpoint holds records that the resumed run reads
    back. A truncated last.pt falls back to last.prev.pt with a WARNING, and ends the same."""
    syn, real = data
    p = _params(steps=10)  # 14 steps; checkpoints at 3, 6, 9, 12, 14
    full = train_refiner(syn, real, NET, DISC, p, tmp_path / "a")

    _kill(syn, real, p, tmp_path / "b", 11)
    last = tmp_path / "b" / CHECKPOINT
    if damage:
        last.write_bytes(last.read_bytes()[:1000])
    seen: list[int] = []
    with caplog.at_level(logging.WARNING):
        resumed = train_refiner(syn, real, NET, DISC, p, tmp_path / "b",
                                on_metrics=lambda m, s: seen.append(s))
    assert min(seen) == (7 if damage else 10)  # resumed after step 6 (last.prev.pt) or 9
    warning = f"refiner checkpoint {last} is unusable (unreadable, 1000 bytes: RuntimeError"
    assert (warning in caplog.text) == damage
    assert _sha256(tmp_path / "a" / CHECKPOINT) == _sha256(last)
    assert (_refiner_sha256(full, tmp_path / "a" / "refiner.pt")
            == _refiner_sha256(resumed, tmp_path / "b" / "refiner.pt"))


def test_changed_params_start_afresh_and_finished_run_is_reused(data, tmp_path: Path) -> None:
    syn, real = data
    first = train_refiner(syn, real, NET, DISC, _params(), tmp_path)
    calls: list[int] = []
    again = train_refiner(
        syn, real, NET, DISC, _params(), tmp_path, on_metrics=lambda m, s: calls.append(s)
    )
    assert calls == [] and _equal_states(first.selected_state, again.selected_state)
    assert first.selection == again.selection
    last = _last(tmp_path)["refiner"]
    train_refiner(syn, real, NET, DISC, _params(seed=4), tmp_path)
    assert not _equal_states(last, _last(tmp_path)["refiner"])


def test_cadence_keeps_a_checkpoint_and_select_by_does_not(data, tmp_path: Path) -> None:
    """Reporting cadence does not change what is computed, the selection rule does (it
    decides which state ``best`` holds), so only the latter starts afresh."""
    syn, real = data

    _kill(syn, real, _params(), tmp_path, 5)
    seen: list[int] = []
    train_refiner(syn, real, NET, DISC, _params(log_every=2, sample_every=0), tmp_path,
                  on_metrics=lambda m, s: seen.append(s))
    assert min(seen) == 4  # resumed from step 3
    seen.clear()
    train_refiner(syn, real, NET, DISC, _params(), tmp_path, select_by="latest",
                  on_metrics=lambda m, s: seen.append(s))
    assert min(seen) == 1  # started afresh


def test_trainer_state_round_trips(data) -> None:
    """load_state_dict(state_dict()) into a fresh trainer continues exactly like the original
    (torch's global RNG is part of the state, so each continues right after its load), and a
    state_dict is a snapshot that later steps do not change."""
    syn, real = data
    p = _params(pretrain_refiner_steps=1, pretrain_discriminator_steps=1)
    a = RefinerTrainer(syn, real, NET, DISC, p)
    for _ in range(4):  # into the adversarial phase: buffer, Adam moments, meter all in use
        a.train_step()
    a.select(a.step)
    state, before = a.state_dict(), a.state_dict()
    assert len(state["buffer"]["data"]) == 3 * (p.batch_size // 2)  # 1 + 2 D steps so far

    def continued(t: RefinerTrainer) -> dict:
        t.load_state_dict(state)
        assert _equal(t.state_dict(), state)
        t.train_step()
        t.train_step()
        t.log()
        return t.state_dict()

    after_a = continued(a)
    after_b = continued(RefinerTrainer(syn, real, NET, DISC, p))
    assert _equal(after_a, after_b)
    assert after_a["step"] == 6 and len(after_a["history"]) == 1
    assert not _equal(after_a["refiner"], state["refiner"])
    assert _equal(state, before)  # unchanged by the steps after it was taken


def test_saved_refiner_loads_with_the_same_outputs(data, tmp_path: Path) -> None:
    syn, real = data
    res = train_refiner(syn, real, NET, DISC, _params(), tmp_path)
    path = tmp_path / "refiner.pt"
    torch.save(refiner_file(res.selected_state, NET, res.selection), path)
    saved = torch.load(path, weights_only=True)  # tensors and plain values only
    assert list(saved) == ["state_dict", "net", "selection"]  # the format refine.py reads
    loaded = load_refiner(saved)
    assert not loaded.training
    direct = Refiner(**NET.model_dump())
    direct.load_state_dict(res.selected_state)
    assert not torch.equal(res.selected_state["tail.weight"], torch.zeros(1, 4, 1, 1))
    x = torch.rand(3, 1, H, W) * 2 - 1
    out = loaded(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, direct(x, generator=torch.Generator().manual_seed(0)))


def test_buffer_fills_during_training(data, tmp_path: Path) -> None:
    syn, real = data
    train_refiner(syn, real, NET, DISC, _params(), tmp_path)
    saved = read_checkpoint(tmp_path / "last.pt")
    # 2 pretraining + 6 adversarial D steps push b/2 = 4 images each: 32 > capacity 20
    assert saved["buffer"]["count"] == 20


def test_selection_reports_curve_and_samples(data, tmp_path: Path) -> None:
    syn, real = data
    samples: list[tuple[int, tuple[int, ...]]] = []
    res = train_refiner(
        syn,
        real,
        NET,
        DISC,
        _params(),
        tmp_path,
        on_samples=lambda s, a, b, c: samples.append((s, b.shape)),
    )
    steps = [c["step"] for c in res.selection["curve"]]
    assert steps == [0, 2, 4, 6]
    assert res.selection["selected_step"] in steps
    assert {"mmd", "mmd_ratio", "structure", "drift", "eligible"} <= res.selection.keys()
    assert samples[0] == (4, (4, H, W)) and samples[-1][0] == 10


def test_selection_never_takes_labels() -> None:
    """No label array reaches the refiner; ``label_model`` is a frozen estimator, a function
    of images (trained on synthetic labels by another stage)."""
    for fn in (train_refiner, RefinerTrainer.__init__, Selector.__init__, Selector.score):
        names = [n for n in inspect.signature(fn).parameters if n != "label_model"]
        assert not any("label" in n or "target" in n for n in names), fn


def test_selector_distance_orders_domains() -> None:
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.linspace(40, 200, W)[None, None, :], 64, 0).repeat(H, 1)
    noisy = np.clip(smooth + rng.normal(0, 25, smooth.shape), 0, 255).astype(np.uint8)
    sel = Selector(smooth.astype(np.uint8), noisy, torch.device("cpu"), 0.9, 255.0)
    ident = sel.score(Refiner(width=2, blocks=0))
    assert ident["mmd"] == pytest.approx(sel.mmd_synthetic)
    assert ident["structure"] == pytest.approx(1.0) and ident["drift"] == 0.0
    same = Selector(noisy, noisy, torch.device("cpu"), 0.9, 255.0)
    assert same.mmd_synthetic < 1e-5 < sel.mmd_synthetic


class _Contrast(torch.nn.Module):
    """A stand-in refiner that stretches contrast by ``gain`` (clamped to the image range)."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.gain).clamp(-1, 1)


def test_selector_ranks_refiners_across_a_gap_wider_than_the_real_spread() -> None:
    """Real images with a uniform histogram (as histogram-equalised crops have) sit in a tight
    cluster far from flat synthetic ones. Refiners that stretch the contrast part of the way
    must score between the identity and the real images, in order; with a kernel scaled to
    the real spread alone gains 2 and 4 scored as the identity (1.002, 0.997)."""
    rng = np.random.default_rng(0)
    flat = np.clip(128 + rng.normal(0, 2, (128, H, W)), 0, 255).astype(np.uint8)
    uniform = rng.integers(0, 256, (128, H, W), dtype=np.uint8)
    sel = Selector(flat, uniform, torch.device("cpu"), 0.0, 255.0)
    ratios = [sel.score(_Contrast(g))["mmd_ratio"] for g in (1.0, 2.0, 4.0, 8.0)]
    assert ratios[0] == pytest.approx(1.0)
    assert all(a - b > 0.03 for a, b in zip(ratios, ratios[1:], strict=False)), ratios


def test_selection_rules_rank_guarded_checkpoints() -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (32, H, W), dtype=np.uint8)
    by_mmd = Selector(imgs, imgs, torch.device("cpu"), 0.99, 5.0)
    latest = Selector(imgs, imgs, torch.device("cpu"), 0.99, 5.0, select_by="latest")
    identity = {"mmd": 0.5, "structure": 1.0, "drift": 0.0}
    trained = {"mmd": 0.8, "structure": 0.995, "drift": 2.0}
    drifted = {"mmd": 0.1, "structure": 0.999, "drift": 11.0}  # fails the drift guard
    assert not by_mmd.better(trained, identity) and latest.better(trained, identity)
    assert not latest.better(drifted, trained) and not by_mmd.better(drifted, identity)
    with pytest.raises(ValueError, match="select_by"):
        Selector(imgs, imgs, torch.device("cpu"), 0.99, 5.0, select_by="best")


def test_train_params_are_strict() -> None:
    with pytest.raises(pydantic.ValidationError):
        RefinerTrainParams(unknown=1)
    with pytest.raises(pydantic.ValidationError):
        RefinerTrainParams(kg=0)
    with pytest.raises(pydantic.ValidationError):
        DiscriminatorParams(widths=(4, 4), kernels=(3,), strides=(1, 1))


def test_refine_images_streams_chunks() -> None:
    images = _images(2, 10, 0)
    chunks = list(refine_images(Refiner(width=4, blocks=1), images, 4, "cpu"))
    assert [c.shape[0] for c in chunks] == [4, 4, 2]
    assert np.array_equal(np.concatenate(chunks), images)  # fresh residual R is the identity


GH, GW = 24, 32  # smallest convenient size the gaze CNN's unpadded layout accepts


def _gaze_data(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Brightness encodes the horizontal gaze component: a mapping a tiny CNN must learn."""
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 1, n).astype(np.float32)
    images = np.broadcast_to((v * 255).astype(np.uint8)[:, None, None], (n, GH, GW)).copy()
    g = np.stack([v - 0.5, np.zeros_like(v), -np.ones_like(v)], 1)
    return images, (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)


EST = EstimatorParams(
    widths=(8, 8, 8, 8, 8),
    fc_hidden=16,
    batch_norm=False,
    epochs=6,
    batch_size=32,
    lr=1e-2,
    val_fraction=0.2,
    device="cpu",
    seed=1,
)


def test_estimator_learns_trivial_mapping_and_resumes(tmp_path: Path) -> None:
    images, targets = _gaze_data(320)
    state, history = train_estimator(images, targets, EST, tmp_path / "a")
    # the output starts at the mean gaze (about 14 degrees off on validation)
    assert history[-1]["val_angle_deg"] < 5.0 and history[-1]["val_loss"] < history[0]["val_loss"]
    model = build_gaze_cnn(EST, (GH, GW))
    model.load_state_dict(state)
    pred = predict(model, images, 64, "cpu")
    assert pred.shape == (320, 3) and np.allclose(np.linalg.norm(pred, axis=1), 1, atol=1e-5)
    angle = np.degrees(np.arccos(np.clip((pred * targets).sum(1), -1, 1)))
    assert angle.mean() < 5.0

    with pytest.raises(Killed):
        train_estimator(images, targets, EST, tmp_path / "b", _die_at(3))
    state_b, history_b = train_estimator(images, targets, EST, tmp_path / "b")
    assert _equal_states(state, state_b)
    assert history == history_b
    # the files' bytes: the checkpoint, and the model file train_estimator.py writes
    assert _sha256(tmp_path / "a" / CHECKPOINT) == _sha256(tmp_path / "b" / CHECKPOINT)
    for name, s in (("a", state), ("b", state_b)):
        model.load_state_dict(s)
        save_torch(tmp_path / name / "model.pt", {"state_dict": model.state_dict(), "n_train": 320})
    assert _sha256(tmp_path / "a" / "model.pt") == _sha256(tmp_path / "b" / "model.pt")


def test_validation_split_is_deterministic_and_disjoint() -> None:
    tr, va = split_indices(100, 0.1, 7)
    tr2, va2 = split_indices(100, 0.1, 7)
    assert np.array_equal(va, va2) and len(va) == 10
    assert not set(tr) & set(va) and len(tr) + len(va) == 100


# ---------------------------------------------------------------------------- label consistency


class _LeftRightReading(torch.nn.Module):
    """A frozen 'estimator' whose reading is the mean of the left and of the right half:
    something a refiner can move, and that a label-consistency term should hold in place."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1] // 2
        return self.scale * torch.stack([x[..., :w].mean((1, 2, 3)), x[..., w:].mean((1, 2, 3))], 1)


def test_label_distance_is_the_mean_squared_l2_over_the_batch():
    from simgan.core.refiner.trainer import label_distance

    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    assert float(label_distance(a, b)) == pytest.approx((1.0 + 4.0) / 2)
    heat = torch.zeros(1, 2, 3, 3)
    heat[0, 1, 1, 1] = 3.0
    assert float(label_distance(heat, torch.zeros_like(heat))) == pytest.approx(9.0)


def test_label_consistency_needs_a_model_and_holds_the_reading(data, tmp_path):
    synthetic, real = data  # real is 40 gray levels brighter: R is pushed to brighten
    with pytest.raises(ValueError, match="label model"):
        train_refiner(synthetic, real, NET, DISC, _params(lambda_label=1.0), tmp_path / "x")
    reading = _LeftRightReading()
    shifts = {}
    for weight in (0.0, 1000.0):
        params = _params(lambda_label=weight, steps=20, select_every=0, lr=3e-3)
        result = train_refiner(synthetic, real, NET, DISC, params, tmp_path / f"w{weight}",
                               label_model=reading)
        refiner = Refiner(in_channels=1, **NET.model_dump())
        refiner.load_state_dict(result.selected_state)
        refiner.eval()
        x = torch.from_numpy(synthetic[:64]).float().div(127.5).sub(1).unsqueeze(1)
        with torch.no_grad():
            r = refiner(x, generator=torch.Generator().manual_seed(0))
            shifts[weight] = float((reading(r) - reading(x)).abs().mean())
        if weight > 0:
            assert "label_shift" in result.selection
            assert any("loss_r_label" in row for row in result.history)
    assert shifts[1000.0] < 0.5 * shifts[0.0], shifts
    assert reading.scale.requires_grad  # the caller's module is not frozen in place ...
    assert reading.scale.grad is None  # ... and never received a gradient


def test_label_model_weights_are_part_of_the_fingerprint(data, tmp_path):
    synthetic, real = data
    params = _params(lambda_label=1.0, steps=2)
    a, b = _LeftRightReading(), _LeftRightReading()
    with torch.no_grad():
        b.scale.fill_(2.0)
    ta = RefinerTrainer(synthetic, real, NET, DISC, params, label_model=a)
    tb = RefinerTrainer(synthetic, real, NET, DISC, params, label_model=b)
    assert ta.fingerprint != tb.fingerprint


def test_identity_reason_names_step_zero_and_negligible_change():
    from simgan.core.refiner.identity import identity_reason

    curve = [{"step": 0, "eligible": 1.0}, {"step": 40, "eligible": 0.0},
             {"step": 80, "eligible": 0.0}]
    step0 = identity_reason({"selected_step": 0, "last_step": 80, "drift": 0.0, "curve": curve})
    assert step0 is not None and "adversarial step 0" in step0 and "2 later" in step0
    tiny = identity_reason({"selected_step": 40, "last_step": 80, "drift": 0.3, "curve": curve})
    assert tiny is not None and "0.30 gray levels" in tiny
    assert identity_reason({"selected_step": 40, "last_step": 80, "drift": 2.0}) is None
    # no adversarial training asked for (steps: 0): step 0 is the only candidate, not a failure
    assert identity_reason({"selected_step": 0, "last_step": 0, "drift": 1.0}) is None


def test_weight_average_follows_each_refiner_update_by_the_decay(data) -> None:
    """ema <- d * ema + (1 - d) * R after every R update, checked by hand on one update; the
    average is what selection scores and keeps, and it is part of the checkpoint."""
    syn, real = data
    d = 0.75
    p = _params(ema_decay=d, pretrain_refiner_steps=0, pretrain_discriminator_steps=0, kg=1)
    t = RefinerTrainer(syn, real, NET, DISC, p)
    assert t.output_refiner is t.ema and t.ema is not t.refiner
    before = {k: v.clone() for k, v in t.refiner.state_dict().items()}
    t.train_step()  # one adversarial step: one update of R (kg=1), then one of D
    after = t.refiner.state_dict()
    for k, v in t.ema.state_dict().items():
        torch.testing.assert_close(v, d * before[k] + (1 - d) * after[k], rtol=0, atol=1e-7)
    assert not torch.equal(after["tail.weight"], before["tail.weight"])
    t.select(t.step)
    assert _equal_states(t.best["state"], {k: v.cpu() for k, v in t.ema.state_dict().items()})
    assert _equal(t.state_dict()["ema"], t.ema.state_dict())


def test_weight_average_off_leaves_runs_as_before(data, tmp_path: Path) -> None:
    """At 0 the key is left out of dumps (params hashes and resume fingerprints of earlier runs
    hold), the checkpoint has no average, and selection keeps R itself."""
    syn, real = data
    assert "ema_decay" not in _params().model_dump()
    assert _params(ema_decay=0.5).model_dump()["ema_decay"] == 0.5
    t = RefinerTrainer(syn, real, NET, DISC, _params())
    assert t.output_refiner is t.refiner and "ema" not in t.state_dict()
    with pytest.raises(pydantic.ValidationError, match="ema_decay"):
        _params(ema_decay=1.0)


def test_resume_with_a_weight_average_equals_uninterrupted(data, tmp_path: Path) -> None:
    syn, real = data
    p = _params(ema_decay=0.9)
    full = train_refiner(syn, real, NET, DISC, p, tmp_path / "a")
    _kill(syn, real, p, tmp_path / "b", 5)
    resumed = train_refiner(syn, real, NET, DISC, p, tmp_path / "b")
    assert _equal(_last(tmp_path / "a"), _last(tmp_path / "b"))
    assert _equal_states(full.selected_state, resumed.selected_state)
    plain = train_refiner(syn, real, NET, DISC, _params(), tmp_path / "c")
    assert not _equal_states(full.selected_state, plain.selected_state)


def test_r1_penalty_enters_the_discriminator_update_with_weight_half_gamma(data) -> None:
    """With SGD, one D update moves D's weights by -lr * (grad of the two CE terms + gamma/2 *
    grad R1): the same batches at gamma 0, g and 2g give weight changes whose R1 parts are in
    the ratio 1:2, and the penalty is recorded. R and the refiner's update are untouched."""
    syn, real = data

    def first_d_step(gamma: float) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        p = _params(r1_gamma=gamma, optimizer="sgd", pretrain_refiner_steps=0,
                    pretrain_discriminator_steps=1)
        t = RefinerTrainer(syn, real, NET, DISC, p)
        t.train_step()  # the one D-pretraining step
        return {k: v.clone() for k, v in t.discriminator.state_dict().items()}, t.log()

    plain, log0 = first_d_step(0.0)
    once, log1 = first_d_step(0.5)
    twice, log2 = first_d_step(1.0)
    assert "loss_d_r1" not in log0 and log1["loss_d_r1"] > 0
    assert log1["loss_d_r1"] == pytest.approx(log2["loss_d_r1"], rel=1e-6)  # same D, same y
    moved = False
    for k in plain:
        d1, d2 = once[k] - plain[k], twice[k] - plain[k]
        torch.testing.assert_close(d2, 2 * d1, rtol=1e-3, atol=1e-7)
        moved |= bool(d1.abs().max() > 0)
    assert moved


def test_r1_off_is_left_out_of_dumps(data) -> None:
    assert "r1_gamma" not in _params().model_dump()
    assert _params(r1_gamma=2.0).model_dump()["r1_gamma"] == 2.0
    with pytest.raises(pydantic.ValidationError, match="r1_gamma"):
        _params(r1_gamma=-1.0)


@pytest.mark.parametrize(("setting", "keys", "record"), [
    ({"lambda_interior": 5.0, "interior_margin": 2},
     {"lambda_interior", "interior_margin"}, "loss_r_interior"),
    ({"lambda_background": 10.0, "background_margin": 1},
     {"lambda_background", "background_margin"}, "loss_r_background"),
])
def test_depth_ties_are_recorded_and_off_by_default(data, setting, keys, record) -> None:
    """The interior-detail and empty-background ties add their own loss record to R's
    updates; off (0), their keys are left out of dumps, so earlier params hashes and
    fingerprints hold."""
    syn, real = data
    assert not keys & set(_params().model_dump())
    p = _params(**setting, pretrain_refiner_steps=1, pretrain_discriminator_steps=0)
    assert {k: p.model_dump()[k] for k in keys} == setting
    t = RefinerTrainer(syn, real, NET, DISC, p)
    t.train_step()
    assert record in t.log()
    plain = RefinerTrainer(syn, real, NET, DISC, _params(pretrain_refiner_steps=1))
    plain.train_step()
    assert record not in plain.log()
