"""Mixed precision, training threads and host-to-device copies: fp32 is today's path (same
module, same backward, same params dumps and hashes), bf16 trains the refiner and both
estimators on a CPU (finite losses, moving weights, bf16 convolutions), fp16 is refused on a
CPU and its loss scaler skips a step whose gradients overflowed; trainers use their recipe's
threads and give the caller its own back; CPU batches are not copied."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from simgan.core.amp import Amp, PrecisionError, check_precision
from simgan.core.refiner.params import DiscriminatorParams, RefinerNetParams, RefinerTrainParams
from simgan.core.refiner.trainer import RefinerTrainer, _Meter
from simgan.core.transfer import to_device
from simgan.gaze.estimator import EstimatorParams, train_estimator
from simgan.hand.estimator import PoseEstimatorParams, train_pose_estimator
from stages.datasets_io import params_hash

CPU = torch.device("cpu")


def test_fp32_is_the_module_itself_and_a_plain_backward_step():
    amp = Amp.for_training(CPU, "fp32")
    net = nn.Linear(3, 1)
    assert amp.wrap(net) is net and not amp.scaler.is_enabled()
    twin = nn.Linear(3, 1)
    twin.load_state_dict(net.state_dict())
    w0 = net.weight.detach().clone()
    x = torch.arange(6.0).reshape(2, 3)
    opt, opt2 = torch.optim.SGD(net.parameters(), 0.1), torch.optim.SGD(twin.parameters(), 0.1)
    amp.step(net(x).sum(), opt)
    twin(x).sum().backward()
    opt2.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    # d/dw of sum(x @ w) = column sums of x = [3, 5, 7]: w moved by -0.1 * that
    assert torch.allclose(net.weight, w0 - 0.1 * torch.tensor([[3.0, 5.0, 7.0]]))


def test_fp32_leaves_dumps_and_hashes_as_before_and_other_precisions_change_them():
    fp32, bf16 = RefinerTrainParams(), RefinerTrainParams(precision="bf16")
    assert "precision" not in fp32.model_dump() and "precision" not in fp32.model_dump_json()
    assert bf16.model_dump()["precision"] == "bf16"
    before = {k: v for k, v in fp32.model_dump(mode="json").items()}
    assert params_hash(fp32) == params_hash(before)  # as if the key did not exist
    assert params_hash(bf16) != params_hash(fp32)  # a numerics change: not a speed key
    assert "precision" not in EstimatorParams().model_dump()
    assert PoseEstimatorParams(precision="bf16").model_dump()["precision"] == "bf16"


def test_a_bad_precision_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"precision[\s\S]*'fp32', 'bf16' or 'fp16'"):
        RefinerTrainParams(precision="fp8")


def test_fp16_is_refused_on_a_cpu_and_bf16_accepted():
    with pytest.raises(PrecisionError, match="precision: fp16 needs a CUDA device"):
        check_precision(CPU, "fp16")
    check_precision(CPU, "bf16")
    with pytest.raises(PrecisionError):
        RefinerTrainer(*_eye_data(), RefinerNetParams(width=4, blocks=1), _disc(),
                       _train(precision="fp16"))


def test_fp16_loss_scaling_skips_an_overflowing_step_and_lowers_the_scale():
    amp = Amp(CPU, "fp16")  # the constructor does not refuse: the scaler logic runs on a CPU
    assert amp.scaler.is_enabled()
    net = nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), 0.1)
    scale = amp.scaler.get_scale()
    w0 = net.weight.detach().clone()
    amp.step(net(torch.ones(1, 2)).sum() * float("inf"), opt)  # inf gradients: no update
    assert torch.equal(net.weight, w0) and amp.scaler.get_scale() == scale / 2
    opt.zero_grad()
    amp.step(net(torch.ones(1, 2)).sum(), opt)  # finite: unscaled gradient 1 per weight
    assert torch.allclose(net.weight, w0 - 0.1)


def _eye_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (80, 12, 16), dtype=np.uint8),
            rng.integers(0, 256, (80, 12, 16), dtype=np.uint8))


def _disc() -> DiscriminatorParams:
    return DiscriminatorParams(widths=(4, 4, 4, 4))


def _train(**kw) -> RefinerTrainParams:
    return RefinerTrainParams(batch_size=8, pretrain_discriminator_steps=0, steps=4,
                              history_size=16, select_size=16, device="cpu", **kw)


def test_bf16_refiner_steps_run_in_bf16_with_finite_losses_and_moving_weights():
    trainer = RefinerTrainer(*_eye_data(), RefinerNetParams(width=4, blocks=1), _disc(),
                             _train(precision="bf16"))
    seen: list[torch.dtype] = []
    trainer.refiner.head[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    r0 = {k: v.clone() for k, v in trainer.refiner.state_dict().items()}
    d0 = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    for _ in range(3):
        trainer.train_step()
    metrics = trainer.log()
    assert torch.bfloat16 in seen  # the convolutions ran in bf16
    assert trainer.refiner.head[0].weight.dtype == torch.float32  # master weights stay fp32
    assert trainer.buffer.data.dtype == torch.float32 and len(trainer.buffer) > 0
    assert all(np.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(v, r0[k]) for k, v in trainer.refiner.state_dict().items())
    assert any(not torch.equal(v, d0[k]) for k, v in trainer.discriminator.state_dict().items())


def test_bf16_estimators_train_to_finite_losses_and_differ_from_fp32(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (48, 35, 55), dtype=np.uint8)
    targets = rng.normal(size=(48, 3)).astype(np.float32)
    kw = dict(widths=(4, 4, 4, 4, 4), fc_hidden=8, epochs=1, batch_size=16, device="cpu")
    bf16, hist = train_estimator(images, targets, EstimatorParams(precision="bf16", **kw),
                                 tmp_path / "bf16")
    fp32, _ = train_estimator(images, targets, EstimatorParams(**kw), tmp_path / "fp32")
    assert np.isfinite(hist[0]["train_loss"]) and np.isfinite(hist[0]["val_loss"])
    assert any(not torch.equal(bf16[k], fp32[k]) for k in fp32)  # other numerics
    depth = rng.integers(0, 256, (24, 16, 16), dtype=np.uint8)
    kp = rng.uniform(0, 16, (24, 14, 2)).astype(np.float32)
    pose = PoseEstimatorParams(width=4, depth=1, epochs=1, batch_size=8, device="cpu",
                               precision="bf16")
    _, hist = train_pose_estimator(depth, kp, pose, tmp_path / "pose")
    assert np.isfinite(hist[0]["train_loss"]) and np.isfinite(hist[0]["val_mean_px"])


def test_cpu_batches_are_not_copied():
    t = torch.arange(4.0)
    assert to_device(t, "cpu") is t
    assert to_device(t, CPU) is t


def test_the_meter_sums_queued_scalars_in_order_like_an_eager_sum():
    meter = _Meter()
    values = [0.1, 0.2, 0.30000000000000004, 1e-17]
    for v in values:
        meter.add({"a": torch.tensor(v, dtype=torch.float64), "b": v})
    eager = 0.0
    for v in values:
        eager += v
    state = meter.state_dict()
    assert state == {"sums": {"a": eager, "b": eager}, "counts": {"a": 4, "b": 4}}
    assert meter.pop() == {"a": eager / 4, "b": eager / 4}
    assert meter.pop() == {}


_PROBED: set[int] = set()


class _ThreadProbe(nn.Module):
    """A stand-in label model that records the torch thread count it runs under (in a module
    global: the trainer deep-copies the module it is given, with its attributes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _PROBED.add(torch.get_num_threads())
        return x.flatten(1).mean(1, keepdim=True)


@pytest.fixture
def caller_threads():
    """The caller runs with 3 threads (any count other than the recipes' 1 and 2 below)."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def test_torch_threads_is_the_recipes_and_the_caller_gets_its_own_back(caller_threads,
                                                                          tmp_path):
    from simgan.core.amp import torch_threads
    from simgan.core.refiner.trainer import train_refiner

    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == caller_threads
    with torch_threads(None):  # no key: the caller's count
        assert torch.get_num_threads() == caller_threads
    _PROBED.clear()
    train_refiner(*_eye_data(), RefinerNetParams(width=4, blocks=1), _disc(),
                  _train(threads=2, lambda_label=1.0), tmp_path / "refiner",
                  label_model=_ThreadProbe())
    assert {2} == _PROBED  # selection's readings and every training step
    assert torch.get_num_threads() == caller_threads


def test_estimators_train_with_their_threads_key(caller_threads, tmp_path, monkeypatch):
    calls: list[int] = []
    original = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), original(n)))
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (32, 35, 55), dtype=np.uint8)
    targets = rng.normal(size=(32, 3)).astype(np.float32)
    train_estimator(images, targets, EstimatorParams(widths=(4, 4, 4, 4, 4), fc_hidden=8,
                                                     epochs=1, batch_size=16, device="cpu",
                                                     threads=1), tmp_path / "gaze")
    depth = rng.integers(0, 256, (16, 16, 16), dtype=np.uint8)
    kp = rng.uniform(0, 16, (16, 14, 2)).astype(np.float32)
    train_pose_estimator(depth, kp, PoseEstimatorParams(width=4, depth=1, epochs=1, batch_size=8,
                                                        device="cpu", threads=2),
                         tmp_path / "pose")
    assert calls == [1, caller_threads, 2, caller_threads]


def test_threads_is_part_of_the_recipe():
    """Unlike a speed key, the thread count changes what a checkpoint may resume from (it
    changes the trained bytes); it defaults to 1 for every trainer."""
    from simgan.core.epochs import params_fingerprint

    data = _eye_data()
    one, two = (RefinerTrainer(*data, RefinerNetParams(width=4, blocks=1), _disc(),
                               _train(threads=n)).fingerprint for n in (1, 2))
    assert one != two
    images, targets = data[0], np.zeros((80, 3), np.float32)
    assert (params_fingerprint(EstimatorParams(threads=1), images, targets, 1)
            != params_fingerprint(EstimatorParams(threads=2), images, targets, 1))
    assert RefinerTrainParams().threads == 1
    assert EstimatorParams().threads == 1 and PoseEstimatorParams().threads == 1
    with pytest.raises(ValueError, match="threads"):
        RefinerTrainParams(threads=0)
