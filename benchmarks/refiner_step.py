"""The project's refiner step against a plain PyTorch loop written here, on the same machine.

One S+U step is ``kg`` refiner updates then ``kd`` discriminator updates, the latter on real
images against refined ones of which half come from a history buffer. The project's step is
:meth:`simgan.core.refiner.trainer.RefinerTrainer.train_step` (batch drawing from uint8
arrays, metrics, the buffer, the optimisers). The reference is :class:`PlainLoop`: the same R
and D modules, optimisers, losses, batch size and buffer rule, in plain torch (a numpy draw of
rows, a float conversion, a list-free tensor buffer), with none of the project's machinery.
Both freeze D's parameters during R's update, as any GAN loop does (CycleGAN's
``set_requires_grad``), so the two do the same arithmetic: the ratio is the machinery's cost.

Not in either step: checkpoint selection, sample grids, checkpoints and log lines, which run
every few dozen steps (``select_every``, ``checkpoint_every``...), and the label-consistency
term (``lambda_label`` is set to 0: it adds a frozen estimator's forward/backward to both).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.flop_counter import FlopCounterMode

from simgan.core.refiner.discriminator import PatchDiscriminator
from simgan.core.refiner.net import Refiner
from simgan.core.refiner.params import DiscriminatorParams, RefinerNetParams, RefinerTrainParams
from simgan.core.refiner.trainer import RefinerTrainer
from simgan.tasks import load_task_params

#: what both steps leave out (see the module docstring) and what makes them comparable
BENCH_TRAIN = {"pretrain_refiner_steps": 0, "pretrain_discriminator_steps": 0,
               "steps": 1_000_000, "lambda_label": 0.0, "compile": False, "device": "cpu",
               "select_size": 16, "precision": "fp32"}
PAPER_BATCH = 64
"""configs/paper.yaml trains at batch 512; the benchmark runs the paper's nets at 64 so that
``make bench`` stays within minutes on 2 cores (a step's cost is linear in the batch)."""


@dataclass(frozen=True)
class StepConfig:
    """One size to compare: image shape, nets and the schedule fields the step reads."""

    name: str
    image_shape: tuple[int, int]
    net: RefinerNetParams
    disc: DiscriminatorParams
    train: RefinerTrainParams

    def record(self) -> dict[str, Any]:
        """What results.json says about this size (everything that sets the step's cost)."""
        t = self.train
        return {"image": list(self.image_shape), "net": self.net.model_dump(mode="json"),
                "discriminator": self.disc.model_dump(mode="json"),
                "batch_size": t.batch_size, "kg": t.kg, "kd": t.kd, "optimizer": t.optimizer,
                "history_size": t.history_size, "channels_last": t.channels_last,
                "lambda_label": t.lambda_label, "threads": torch.get_num_threads()}


def _sized(name: str, shape: tuple[int, int], section: Any, **train: Any) -> StepConfig:
    return StepConfig(name, shape, section.net, section.discriminator,
                      section.train.model_copy(update={**BENCH_TRAIN, **train}))


def step_configs(root: Path, tiny: bool = False) -> list[StepConfig]:
    """The default eye and hand sizes of ``params.yaml`` and the paper's eye sizes of
    ``configs/paper.yaml`` (nets, optimiser, buffer; batch :data:`PAPER_BATCH`). ``tiny``:
    the same three with nets, images and batches shrunk so that a test runs in seconds."""
    gaze = load_task_params(root / "params.yaml", "gaze")
    hand = load_task_params(root / "params.yaml", "hand")
    eye = (gaze.render.eye.height, gaze.render.eye.width)
    side = hand.render.hand.size
    paper = yaml.safe_load((root / "configs" / "paper.yaml").read_text())["gaze"]["refiner"]
    paper_section = gaze.refiner.model_copy(update={
        "net": gaze.refiner.net.model_copy(update=paper["net"]),
        "discriminator": DiscriminatorParams(**{**gaze.refiner.discriminator.model_dump(),
                                               "spectral_norm": False, **paper["discriminator"]}),
    })
    paper_train = {k: v for k, v in paper["train"].items()
                   if k in ("kg", "kd", "optimizer", "lr", "history_size")}
    configs = [
        _sized("eye default", eye, gaze.refiner),
        _sized("eye paper", eye, paper_section, **paper_train, batch_size=PAPER_BATCH),
        _sized("hand default", (side, side), hand.refiner),
    ]
    if not tiny:
        return configs
    small_net = {"width": 4, "blocks": 1}
    small_disc = {"widths": (4, 4, 4, 4)}
    return [StepConfig(c.name, (16, 24), c.net.model_copy(update=small_net),
                       c.disc.model_copy(update=small_disc),
                       c.train.model_copy(update={"batch_size": 8, "history_size": 64}))
            for c in configs]


def _images(cfg: StepConfig, seed: int) -> np.ndarray:
    n = max(256, 4 * cfg.train.batch_size)
    return np.random.default_rng(seed).integers(0, 256, (n, *cfg.image_shape), dtype=np.uint8)


def project_step(cfg: StepConfig) -> RefinerTrainer:
    """The project's trainer on random images, past pretraining (its next step is S+U)."""
    t = RefinerTrainer(_images(cfg, 0), _images(cfg, 1), cfg.net, cfg.disc, cfg.train,
                       select_by="latest")
    t.refiner.train()
    t.discriminator.train()
    return t


class PlainLoop:
    """The reference: the S+U step as a plain PyTorch script would write it."""

    def __init__(self, cfg: StepConfig) -> None:
        p = cfg.train
        if p.reg_feature != "identity" or p.reg_reduction != "mean":
            raise ValueError("the reference implements psi = identity with a per-pixel mean")
        self.p, self.syn, self.real = p, _images(cfg, 0), _images(cfg, 1)
        self.fmt = torch.channels_last if p.channels_last else torch.contiguous_format
        torch.manual_seed(p.seed)
        self.R = Refiner(in_channels=1, **cfg.net.model_dump()).to(memory_format=self.fmt)
        self.D = PatchDiscriminator(in_channels=1, **cfg.disc.model_dump()).to(
            memory_format=self.fmt)
        self.opt_r = self._opt(self.R, p.lr)
        self.opt_d = self._opt(self.D, p.lr_discriminator or p.lr)
        self.pool = torch.empty(p.history_size, 1, *cfg.image_shape)
        self.filled = 0
        self.rng = np.random.default_rng(0)

    def _opt(self, net: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        if self.p.optimizer == "adam":
            return torch.optim.Adam(net.parameters(), lr=lr, betas=self.p.adam_betas)
        return torch.optim.SGD(net.parameters(), lr=lr)

    def _batch(self, images: np.ndarray) -> torch.Tensor:
        rows = np.sort(self.rng.choice(images.shape[0], self.p.batch_size, replace=False))
        x = torch.from_numpy(images[rows]).float().unsqueeze(1) / 127.5 - 1
        return x.contiguous(memory_format=self.fmt)

    def _adv(self, logits: torch.Tensor, target: int) -> torch.Tensor:
        b, _, h, w = logits.shape
        if self.p.adv_reduction == "image":
            labels = torch.full((b,), target, dtype=torch.long)
            return F.cross_entropy(logits.mean(dim=(2, 3)), labels) * (h * w)
        labels = torch.full((b, h, w), target, dtype=torch.long)
        if self.p.adv_reduction == "sum":
            return F.cross_entropy(logits, labels, reduction="sum") / b
        return F.cross_entropy(logits, labels)

    def _r_update(self) -> None:
        x = self._batch(self.syn)
        r = self.R(x)
        self.D.requires_grad_(False)
        loss = self._adv(self.D(r), 1) + self.p.lambda_reg * (r - x).abs().mean()
        self.D.requires_grad_(True)
        self.opt_r.zero_grad()
        loss.backward()
        self.opt_r.step()

    def _d_update(self) -> None:
        b = self.p.batch_size
        half = b // 2
        x, y = self._batch(self.syn), self._batch(self.real)
        with torch.no_grad():
            r = self.R(x)
        fake = r
        if self.filled:
            old = self.pool[torch.randint(self.filled, (b - half,))]
            fake = torch.cat([r[:half], old]).contiguous(memory_format=self.fmt)
        loss = self._adv(self.D(y), 1) + self._adv(self.D(fake), 0)
        self.opt_d.zero_grad()
        loss.backward()
        self.opt_d.step()
        new = r[half:]
        free = min(self.pool.shape[0] - self.filled, new.shape[0])
        self.pool[self.filled : self.filled + free] = new[:free]
        self.filled += free
        if free < new.shape[0]:
            slots = torch.randperm(self.pool.shape[0])[: new.shape[0] - free]
            self.pool[slots] = new[free:]

    def train_step(self) -> None:
        for _ in range(self.p.kg):
            self._r_update()
        for _ in range(self.p.kd):
            self._d_update()


def step_flops(trainer: RefinerTrainer) -> int:
    """FLOPs of one project step (forward and backward; torch's FLOP counter)."""
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    return int(counter.get_total_flops())


def compare(cfg: StepConfig, warmup: int, repeat: int, steps: int) -> dict[str, Any]:
    """Median seconds per step of the project and of the reference, timed in alternation
    (``repeat`` rounds of ``steps`` steps each, the order swapped every round so that neither
    always runs second), after ``warmup`` steps of each; the ratio reference / project
    (>= 1: the project is at least as fast). Each step's CPU time is recorded too: on a
    shared machine the CPU-time ratio is the steadier one (another process's burst lengthens
    wall time, not this process's CPU time)."""
    flops = step_flops(project_step(cfg))  # on a trainer of its own: the counter's hooks
    project, plain = project_step(cfg), PlainLoop(cfg)  # never touch the timed ones
    runners = {"project": project.train_step, "reference": plain.train_step}
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    seconds: dict[str, list[float]] = {k: [] for k in runners}
    cpu: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(repeat):
        for name in (("project", "reference") if i % 2 == 0 else ("reference", "project")):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                runners[name]()
            seconds[name].append((time.perf_counter() - t0) / steps)
            cpu[name].append((time.process_time() - c0) / steps)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "name": cfg.name, "config": cfg.record(),
        "warmup_steps": warmup, "repeat": repeat, "steps_per_timing": steps,
        "project_s_per_step": med["project"], "reference_s_per_step": med["reference"],
        "ratio": med["reference"] / med["project"],
        "ratio_cpu_time": med_cpu["reference"] / med_cpu["project"],
        "flops_per_step": flops, "gflops_per_s": flops / med["project"] / 1e9,
        "images_per_s": cfg.train.batch_size / med["project"],
        "seconds": seconds, "cpu_seconds": cpu,
    }
