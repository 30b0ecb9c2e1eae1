"""The S+U loop: train a refiner R against a local discriminator D (paper, Algorithm 1).

Schedule (global steps, one progress bar): ``pretrain_refiner_steps`` of self-regularisation
only, ``pretrain_discriminator_steps`` of D alone against the pretrained R, then ``steps``
adversarial steps of ``kg`` refiner updates followed by ``kd`` discriminator updates. D's
"refined" half-batches mix current refined images with a history buffer of earlier ones.

The refiner never sees labels: the function takes images only. Mini-batches are drawn by
sorted random index from (possibly memory-mapped) uint8 arrays.

Resumable: every ``checkpoint_every`` steps ``last.pt`` is replaced atomically with everything
that determines the rest of the run (:meth:`RefinerTrainer.state_dict`), checksummed, the
previous one kept as a fallback (:mod:`simgan.core.checkpoint`). A restart with the same params
and data continues from it; on CPU the result, and the files written from it, equal an
uninterrupted run's bit for bit.

Checkpoint selection without labels: see :class:`simgan.core.refiner.selection.Selector`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from simgan.core import distributed
from simgan.core.amp import Amp, torch_threads
from simgan.core.checkpoint import load_checkpoint, write_checkpoint
from simgan.core.images import to_tensor, to_uint8
from simgan.core.refiner import ranks as rank_state
from simgan.core.refiner.discriminator import PatchDiscriminator
from simgan.core.refiner.history import HistoryBuffer
from simgan.core.refiner.label_targets import DEFAULT_BUDGET_BYTES, LabelTargets
from simgan.core.refiner.losses import (
    REAL,
    REFINED,
    adversarial_loss,
    background_fill,
    interior_detail,
    label_distance,
    r1_penalty,
    self_regularisation,
)
from simgan.core.refiner.net import Refiner, apply_refiner
from simgan.core.refiner.params import (
    CADENCE,
    DiscriminatorParams,
    RefinerNetParams,
    RefinerTrainParams,
    SelectBy,
)
from simgan.core.refiner.selection import Selector

log = logging.getLogger(__name__)

MetricsCallback = Callable[[dict[str, float], int], None]
SamplesCallback = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]
CHECKPOINT = "last.pt"
_FORMAT = 2  # bump when the checkpoint layout changes: old checkpoints are then ignored


@dataclass
class RefinerResult:
    """What ``train_refiner`` returns. ``selection`` holds scalars plus the criterion curve."""

    selected_state: dict[str, torch.Tensor]
    selection: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# helpers


def _fingerprint(
    net: RefinerNetParams,
    disc: DiscriminatorParams,
    params: RefinerTrainParams,
    synthetic: np.ndarray,
    real: np.ndarray,
    select_by: SelectBy,
    label_model: nn.Module | None = None,
) -> str:
    """Hash of everything that determines the run: params (minus cadence), a data sample and
    the weights of the label model, if any."""
    h = hashlib.sha256()
    spec = {
        "format": _FORMAT,
        "net": net.model_dump(mode="json"),
        "disc": disc.model_dump(mode="json"),
        "train": params.model_dump(mode="json", exclude=set(CADENCE)),
        "shapes": [list(synthetic.shape), list(real.shape)],
        "select_by": select_by,
    }
    h.update(json.dumps(spec, sort_keys=True).encode())
    for arr in (synthetic, real):
        rows = np.linspace(0, arr.shape[0] - 1, min(64, arr.shape[0])).astype(np.int64)
        h.update(np.ascontiguousarray(arr[rows]).tobytes())
    if label_model is not None:
        for name, value in sorted(label_model.state_dict().items()):
            h.update(name.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _check_images(synthetic: np.ndarray, real: np.ndarray) -> None:
    for name, arr in (("synthetic", synthetic), ("real", real)):
        if arr.ndim != 3 or arr.dtype != np.uint8:
            raise ValueError(f"{name}: expected uint8 (N, H, W), got {arr.dtype} {arr.shape}")
    if synthetic.shape[1:] != real.shape[1:]:
        raise ValueError(f"image shapes differ: synthetic {synthetic.shape}, real {real.shape}")


def _split(n: int, n_hold: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) sorted index arrays; held-out is a fixed random subset."""
    perm = rng.permutation(n)
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _snapshot(obj: Any) -> Any:
    """A copy of nested dicts/lists/tuples with every tensor copied to the CPU, so a saved
    state neither follows later training steps nor needs the training device to load."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _snapshot(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_snapshot(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_snapshot(v) for v in obj)
    return obj


def _frozen(model: nn.Module | None, device: torch.device) -> nn.Module | None:
    """A copy of the label model in eval mode with no parameter gradients: R is trained
    through it, it is never trained itself (and the caller's module is left as it was)."""
    if model is None:
        return None
    model = copy.deepcopy(model).to(device).eval()
    model.requires_grad_(False)
    return model


def _make_optimizer(
    params: RefinerTrainParams, module: nn.Module, lr: float
) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(module.parameters(), lr=lr, betas=params.adam_betas)
    return torch.optim.SGD(module.parameters(), lr=lr)


@dataclass(frozen=True)
class HeldOut:
    """Which images are trained on and which are held out (selection and samples, never
    trained on): a fixed random subset of each domain, the same for every resume."""

    train_synthetic: np.ndarray  # sorted row indices
    train_real: np.ndarray
    synthetic: np.ndarray  # held-out images
    real: np.ndarray
    sample_count: int  # the first images of each held-out set are the sample grid

    @classmethod
    def draw(cls, synthetic: np.ndarray, real: np.ndarray, params: RefinerTrainParams) -> HeldOut:
        rng = np.random.default_rng([params.seed, 1])
        n_syn = min(params.select_size, synthetic.shape[0] // 5)
        n_real = min(params.select_size, real.shape[0] // 5)
        if n_syn < 1 or n_real < 1:
            raise ValueError("need at least 5 synthetic and 5 real images")
        train_s, hold_s = _split(synthetic.shape[0], n_syn, rng)
        train_r, hold_r = _split(real.shape[0], n_real, rng)
        return cls(
            train_s, train_r,
            np.ascontiguousarray(synthetic[hold_s]), np.ascontiguousarray(real[hold_r]),
            min(params.sample_count, n_syn, n_real),
        )


class _Meter:
    """Running sums of metrics between two log lines (checkpointed with the run).

    ``add`` only queues the (device) tensors: reading a CUDA scalar waits for the GPU, and
    one wait per metric and update would serialise every step. They are read, and summed in
    the order they came (so the sums have the same bits), when the sums are needed."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._queued: list[dict[str, torch.Tensor | float]] = []

    def add(self, values: dict[str, torch.Tensor | float]) -> None:
        self._queued.append(values)

    def _flush(self) -> None:
        for values in self._queued:
            for k, v in values.items():
                self.sums[k] = self.sums.get(k, 0.0) + float(v)
                self.counts[k] = self.counts.get(k, 0) + 1
        self._queued = []

    def pop(self) -> dict[str, float]:
        self._flush()
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return out

    def state_dict(self) -> dict[str, Any]:
        self._flush()
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])
        self._queued = []


class _Rngs:
    """Every random stream of the run: torch's global RNG (weights, noise inputs), a numpy
    Generator (mini-batch indices) and the history buffer's own generator. Separate streams,
    so that e.g. a different buffer size does not shift which images the batches draw."""

    def __init__(self, seed: int, device: torch.device, rank: int = 0) -> None:
        self.device = device
        self.numpy = np.random.default_rng([seed, 2])  # the global batch: same on every rank
        self.buffer = torch.Generator().manual_seed(seed + 3)
        if rank:  # DDP ranks > 0: their own noise and buffer draws (simgan.core.refiner.ranks)
            torch.manual_seed(distributed.rank_seed(seed, rank))
            self.buffer.manual_seed(distributed.rank_seed(seed + 3, rank))

    def state_dict(self) -> dict[str, Any]:
        cuda = self.device.type == "cuda"
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if cuda else None,
            "numpy": self.numpy.bit_generator.state,
            "buffer": self.buffer.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if self.device.type == "cuda" and state["cuda"] is not None:
            torch.cuda.set_rng_state_all(state["cuda"])
        self.numpy.bit_generator.state = state["numpy"]
        self.buffer.set_state(state["buffer"])


# --------------------------------------------------------------------------------------------
# the trainer


class RefinerTrainer:
    """R, D, their optimisers, the history buffer, the RNGs and the run's records, with one
    method per kind of update. :func:`train_refiner` drives it through the schedule.

    The checkpoint is defined once, by ``_STATEFUL`` (objects saved through their own
    ``state_dict``) and ``_VALUES`` (plain attributes): :meth:`state_dict` and
    :meth:`load_state_dict` both read these, so save and resume cannot drift apart.
    """

    _STATEFUL = ("refiner", "discriminator", "opt_r", "opt_d", "buffer", "rngs", "meter")
    _VALUES = ("step", "history", "curve", "best")
    _EMA = "ema"  # checkpointed too when ``ema_decay`` > 0

    def __init__(
        self,
        synthetic: np.ndarray,
        real: np.ndarray,
        net: RefinerNetParams,
        disc: DiscriminatorParams,
        params: RefinerTrainParams,
        select_by: SelectBy = "mmd",
        on_metrics: MetricsCallback | None = None,
        on_samples: SamplesCallback | None = None,
        label_model: nn.Module | None = None,
        reading_cache_bytes: int = DEFAULT_BUDGET_BYTES,
    ) -> None:
        _check_images(synthetic, real)
        if params.lambda_label > 0 and label_model is None:
            raise ValueError("lambda_label > 0 needs a label model (the frozen estimator "
                             "trained on synthetic images)")
        self.synthetic, self.real, self.params = synthetic, real, params
        self.on_metrics, self.on_samples = on_metrics, on_samples
        self.ranks = distributed.setup(params.device)  # one process: just the device
        distributed.check_divisible("train.batch_size", params.batch_size, self.ranks)
        self.device = self.ranks.device
        self.amp = Amp.for_training(self.device, params.precision)
        self.memory_format = (
            torch.channels_last if params.channels_last else torch.contiguous_format
        )
        self.held_out = HeldOut.draw(synthetic, real, params)
        self.label_model = _frozen(label_model, self.device) if params.lambda_label > 0 else None
        if self.label_model is not None:
            self.label_targets = LabelTargets(
                self.label_model, partial(self._load, synthetic), synthetic.shape[0],
                self.held_out.train_synthetic, params.batch_size // self.ranks.world_size,
                reading_cache_bytes,
            )
        self._build_nets(net, disc)
        self.rngs = _Rngs(params.seed, self.device, self.ranks.rank)
        self.buffer = HistoryBuffer(  # per rank: its share of history_size
            distributed.share(params.history_size, self.ranks), (1, *synthetic.shape[1:]),
            self.rngs.buffer, self.device,
        )
        self.selector = Selector(
            self.held_out.synthetic, self.held_out.real, self.device,
            params.select_min_structure, params.select_max_drift, select_by=select_by,
            label_model=self.label_model,
        )
        self.meter = _Meter()
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.curve: list[dict[str, float]] = []
        self.best: dict[str, Any] | None = None  # {"record": ..., "state": ...}
        self.adv_start = params.pretrain_refiner_steps + params.pretrain_discriminator_steps
        self.total = self.adv_start + params.steps
        self.fingerprint = _fingerprint(net, disc, params, synthetic, real, select_by,
                                        self.label_model)

    def _build_nets(self, net: RefinerNetParams, disc: DiscriminatorParams) -> None:
        """R, then D, then their optimisers, from ``seed``: the initial weights depend on it."""
        p, fmt = self.params, self.memory_format
        torch.manual_seed(p.seed)
        self.refiner = Refiner(in_channels=1, **net.model_dump()).to(
            self.device, memory_format=fmt
        )
        self.discriminator = PatchDiscriminator(in_channels=1, **disc.model_dump()).to(
            self.device, memory_format=fmt
        )
        # the weight average (if any) starts as R and is never trained itself
        self.ema: Refiner | None = None
        if p.ema_decay > 0:
            self.ema = copy.deepcopy(self.refiner).requires_grad_(False)
        self.opt_r = _make_optimizer(p, self.refiner, p.lr)
        self.opt_d = _make_optimizer(p, self.discriminator, p.lr_discriminator or p.lr)
        train_r = distributed.wrap(self.refiner, self.ranks)  # DDP under torchrun
        train_d = distributed.wrap(self.discriminator, self.ranks)
        # under autocast if precision is not fp32 (at fp32 amp.wrap returns the module)
        self.fwd_r: nn.Module = self.amp.wrap(
            torch.compile(train_r) if p.compile else train_r  # type: ignore[arg-type]
        )
        self.fwd_d: nn.Module = self.amp.wrap(
            torch.compile(train_d) if p.compile else train_d  # type: ignore[arg-type]
        )
        # D as R's judge: no D gradients, so never through DDP (it would await D's reduction)
        self.judge_d: nn.Module = (
            self.fwd_d if train_d is self.discriminator else self.amp.wrap(self.discriminator)
        )

    # ---- updates

    def _rows(self, pool: np.ndarray) -> np.ndarray:
        """This rank's rows of a mini-batch drawn from ``pool`` (sorted random indices)."""
        b = self.params.batch_size
        pick = self.rngs.numpy.choice(pool.shape[0], b, replace=b > pool.shape[0])
        return distributed.shard(pool[np.sort(pick)], self.ranks)  # this rank's share

    def _load(self, images: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        t = to_tensor(images[rows], self.device)
        return t.contiguous(memory_format=self.memory_format)

    def _batch(self, images: np.ndarray, pool: np.ndarray) -> torch.Tensor:
        return self._load(images, self._rows(pool))

    def refiner_step(self, adversarial: bool) -> dict[str, torch.Tensor]:
        """One update of R: self-regularisation (weight 1 in pretraining, ``lambda_reg`` in
        adversarial steps) plus, if ``adversarial``, the loss of D calling R(x) real."""
        p = self.params
        rows = self._rows(self.held_out.train_synthetic)
        x = self._load(self.synthetic, rows)
        # the terms that keep the label judge the scene R paints; with a depth sensor
        # (which only removes or perturbs depth), or a camera or codec with label_terms:
        # scene, that is its output before those capture stages
        scene, r = self.fwd_r(x, with_scene=True)
        reg = self_regularisation(
            scene, x, p.lambda_reg if adversarial else 1.0, p.reg_feature, p.reg_reduction,
            p.reg_kernel,
        )
        out = {"loss_r_reg": reg.detach()}
        loss = reg
        if p.lambda_interior > 0:
            interior = interior_detail(scene, x, p.interior_margin)
            loss = loss + p.lambda_interior * interior
            out["loss_r_interior"] = interior.detach()
        if p.lambda_background > 0:
            background = background_fill(scene, x, p.background_margin)
            loss = loss + p.lambda_background * background
            out["loss_r_background"] = background.detach()
        if self.label_model is not None:
            target = self.label_targets.read(rows, x)  # the reading of x: once per image
            label = label_distance(self.label_model(scene), target)
            loss = loss + p.lambda_label * label
            out["loss_r_label"] = label.detach()
        if adversarial:
            self.discriminator.requires_grad_(False)
            adv = adversarial_loss(self.judge_d(r), REAL, p.adv_reduction)
            self.discriminator.requires_grad_(True)
            loss = loss + adv
            out["loss_r_adv"] = adv.detach()
        if loss.requires_grad:  # a refiner without conv layers has nothing to pretrain
            self.opt_r.zero_grad(set_to_none=True)
            self.amp.step(loss, self.opt_r)
            self._update_ema()
        out["drift"] = (scene.detach() - x).abs().mean() * 127.5
        return out

    @torch.no_grad()
    def _update_ema(self) -> None:
        """Move the weight average towards R: ema <- decay * ema + (1 - decay) * R."""
        if self.ema is None:
            return
        ema = [t for t in self.ema.state_dict().values() if t.is_floating_point()]
        now = [t for t in self.refiner.state_dict().values() if t.is_floating_point()]
        torch._foreach_lerp_(ema, now, 1.0 - self.params.ema_decay)

    @property
    def output_refiner(self) -> Refiner:
        """The refiner that is scored, sampled and saved: the weight average if there is one."""
        return self.refiner if self.ema is None else self.ema

    def discriminator_step(self) -> dict[str, torch.Tensor]:
        """One update of D on real images against refined ones, half of them from the buffer;
        the other half of this batch's refined images then goes into the buffer."""
        p, buffer = self.params, self.buffer
        x = self._batch(self.synthetic, self.held_out.train_synthetic)
        b = x.shape[0]  # batch_size, or this rank's share of it
        half = b // 2
        y = self._batch(self.real, self.held_out.train_real)
        with torch.no_grad():
            r = self.fwd_r(x)
        fake = torch.cat([r[:half], buffer.sample(b - half)]) if len(buffer) else r
        if p.r1_gamma > 0:
            y.requires_grad_(True)
        logits_real = self.fwd_d(y)
        logits_fake = self.fwd_d(fake.contiguous(memory_format=self.memory_format))
        loss_real = adversarial_loss(logits_real, REAL, p.adv_reduction)
        loss_fake = adversarial_loss(logits_fake, REFINED, p.adv_reduction)
        loss = loss_real + loss_fake
        out: dict[str, torch.Tensor] = {}
        if p.r1_gamma > 0:
            r1 = r1_penalty(logits_real, y)
            loss = loss + 0.5 * p.r1_gamma * r1
            out["loss_d_r1"] = r1.detach()
        self.opt_d.zero_grad(set_to_none=True)
        self.amp.step(loss, self.opt_d)
        buffer.push(r[half:])
        return {
            "loss_d_real": loss_real.detach(),
            "loss_d_refined": loss_fake.detach(),
            "d_acc_real": (logits_real.detach().argmax(1) == REAL).float().mean(),
            "d_acc_refined": (logits_fake.detach().argmax(1) == REFINED).float().mean(),
            **out,
        }

    def train_step(self) -> None:
        """One global step of the schedule (pretrain R, pretrain D, or kg R + kd D updates)."""
        p = self.params
        if self.step < p.pretrain_refiner_steps:
            self.meter.add(self.refiner_step(adversarial=False))
        elif self.step < self.adv_start:
            self.meter.add(self.discriminator_step())
        else:
            for _ in range(p.kg):
                self.meter.add(self.refiner_step(adversarial=True))
            for _ in range(p.kd):
                self.meter.add(self.discriminator_step())
        self.step += 1

    # ---- reporting

    def log(self) -> dict[str, float]:
        """Average the metrics since the last log line into ``history`` and ``on_metrics``."""
        step, metrics = self.step, distributed.average(self.meter.pop(), self.ranks)
        pretrain_r = step <= self.params.pretrain_refiner_steps
        metrics["phase"] = float(0 if pretrain_r else 1 if step <= self.adv_start else 2)
        for stage in (self.output_refiner.sensor, self.output_refiner.camera):
            if stage is not None:  # what the learned capture stages settled on, as they go
                metrics.update(stage.expected())
        self.history.append({"step": float(step), **metrics})
        if self.on_metrics is not None:
            self.on_metrics(metrics, step)
        return metrics

    def selection_due(self, step: int) -> bool:
        s = step - self.adv_start
        if s < 0:
            return False
        if self.params.select_every == 0:
            return step == self.total
        return s % self.params.select_every == 0 or step == self.total

    def select(self, step: int) -> None:
        """Score the current R as a candidate (added to ``curve``); keep it if it is best."""
        record = {"step": step - self.adv_start, "global_step": step}
        record.update(self.selector.score(self.output_refiner))
        record["eligible"] = float(self.selector.eligible(record))
        self.curve.append(record)
        if self.best is None or self.selector.better(record, self.best["record"]):
            self.best = {"record": record, "state": _cpu_state(self.output_refiner)}
        if self.on_metrics is not None:
            metrics = {f"select/{k}": v for k, v in record.items() if k != "global_step"}
            metrics["select/best_step"] = float(self.best["record"]["step"])
            self.on_metrics(metrics, step)

    def samples(self, step: int) -> None:
        """Hand fixed held-out synthetic, refined and real images to ``on_samples``, every
        ``sample_every`` adversarial steps (same noise each time, so grids compare)."""
        every, s = self.params.sample_every, step - self.adv_start
        if self.on_samples is None or every == 0:
            return
        if s < 0 or not (s % every == 0 or step == self.total):
            return
        k = self.held_out.sample_count
        syn, real = self.held_out.synthetic[:k], self.held_out.real[:k]
        shown = self.output_refiner
        with torch.inference_mode():
            was = shown.training
            shown.eval()
            gen = torch.Generator().manual_seed(0)
            refined = to_uint8(apply_refiner(shown, to_tensor(syn, self.device), gen))
            shown.train(was)
        self.on_samples(step, syn, refined, real)

    def result(self) -> RefinerResult:
        """The selected state and the selection record (scoring the current R if no
        candidate was scored, e.g. ``steps == 0`` after pretraining)."""
        if self.best is None:
            self.select(self.step)
        assert self.best is not None
        record = self.best["record"]
        selection = {
            "criterion": "mmd_local_statistics"
            if self.selector.select_by == "mmd"
            else "latest_guarded",
            "selected_step": int(record["step"]),
            "selected_global_step": int(record["global_step"]),
            **{k: v for k, v in record.items() if k not in ("step", "global_step")},
            "eligible": bool(record["eligible"]),
            "last_step": int(self.total - self.adv_start),
            "curve": copy.deepcopy(self.curve),
        }
        for key in ("mmd", "mmd_ratio", "structure", "drift"):
            if not math.isfinite(selection[key]):
                log.warning("selection criterion %s is not finite: %s", key, selection[key])
        return RefinerResult(self.best["state"], selection, self.history)

    # ---- checkpoint

    def state_dict(self) -> dict[str, Any]:
        """Everything that determines the rest of the run, as CPU copies."""
        state = {name: getattr(self, name).state_dict() for name in self._stateful()}
        state.update({name: getattr(self, name) for name in self._VALUES})
        return _snapshot(state)

    def _stateful(self) -> tuple[str, ...]:
        return self._STATEFUL if self.ema is None else (*self._STATEFUL, self._EMA)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (copied first: optimisers keep the tensors they load)."""
        state = _snapshot(state)
        for name in self._stateful():
            getattr(self, name).load_state_dict(state[name])
        for name in self._VALUES:
            setattr(self, name, state[name])

    def save(self, path: Path) -> None:
        """Replace ``path`` (checksummed, atomically, keeping the previous file) with the
        state, tagged with the run's fingerprint."""
        state = rank_state.with_rank_states(
            {"fingerprint": self.fingerprint, **self.state_dict()},
            lambda: _snapshot(rank_state.local_state(self.buffer, self.rngs)), self.ranks,
        )
        if state is not None:  # rank 0 (or the only process) writes
            write_checkpoint(path, state)

    def resume(self, path: Path) -> bool:
        """Continue from ``path`` (or the checkpoint before it, if ``path`` is damaged) if it
        was written by this run (same params and data)."""
        saved = distributed.from_main(
            lambda: load_checkpoint(path, self.fingerprint, "refiner"), self.ranks
        )
        if saved is None:
            return False
        self.load_state_dict(rank_state.for_this_rank(
            saved, self.ranks, self.params.seed, self.params.history_size, self.device))
        log.info("resuming refiner training at step %d/%d", self.step, self.total)
        return True


# --------------------------------------------------------------------------------------------
# the loop


def train_refiner(
    synthetic: np.ndarray,
    real: np.ndarray,
    net: RefinerNetParams,
    disc: DiscriminatorParams,
    params: RefinerTrainParams,
    checkpoint_dir: str | Path,
    on_metrics: MetricsCallback | None = None,
    on_samples: SamplesCallback | None = None,
    select_by: SelectBy = "mmd",
    label_model: nn.Module | None = None,
) -> RefinerResult:
    """Train a refiner on unlabelled ``synthetic`` and ``real`` uint8 (N, H, W) images.

    ``label_model`` (needed when ``params.lambda_label > 0``): a frozen estimator trained on
    synthetic images, mapping a (B, 1, H, W) batch to its label reading; R is penalised by
    how far that reading of R(x) moves from the reading of x, so it may change appearance
    freely but not what the label describes. It sees no labels itself.

    ``select_by`` chooses among the guarded checkpoints (see ``Selector``). Returns the
    selected refiner state (CPU tensors), the selection record and the logged loss history.
    ``on_metrics(metrics, global_step)`` receives the averaged losses every ``log_every``
    steps and the selection criterion (keys ``select/...``) whenever it is evaluated;
    ``on_samples(global_step, synthetic, refined, real)`` receives fixed held-out uint8
    images every ``sample_every`` adversarial steps. Trains with ``params.threads`` CPU threads.
    """
    with torch_threads(params.threads):
        main = distributed.is_main_process()  # the other DDP ranks train and report nothing
        t = RefinerTrainer(synthetic, real, net, disc, params, select_by,
                           on_metrics if main else None, on_samples if main else None, label_model)
        ckpt = Path(checkpoint_dir) / CHECKPOINT
        t.resume(ckpt)
        t.refiner.train()
        t.discriminator.train()
        if t.step == 0 and t.adv_start == 0:
            t.select(0)
            t.samples(0)
        bar = tqdm(total=t.total, initial=t.step, desc="refiner", unit="step", file=sys.stderr,
                   mininterval=1.0, dynamic_ncols=True, disable=not main)
        while t.step < t.total:
            t.train_step()
            bar.update(1)
            if t.step % params.log_every == 0 or t.step == t.total:
                metrics = t.log()
                bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if k != "phase"},
                                refresh=False)
            if t.selection_due(t.step):
                t.select(t.step)
            t.samples(t.step)
            if t.step % params.checkpoint_every == 0 or t.step == t.total:
                t.save(ckpt)
        bar.close()
        return t.result()
