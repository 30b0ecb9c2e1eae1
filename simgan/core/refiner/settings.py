"""Per-image settings drawn from learned distributions: the common part of the refiner's
learned capture stages (:mod:`~simgan.core.refiner.camera`,
:mod:`~simgan.core.refiner.depth_sensor`).

Each setting is ``low + (high - low) * sigmoid(mu + exp(log_spread) * eps)`` with
``eps ~ N(0, 1)`` per image (a logit-normal: from a point mass to a near-uniform spread over
the range); ``mu`` and ``log_spread`` are learned by the reparameterisation trick, so the
adversarial loss moves both where a setting sits and how much it varies between images.
"""

from __future__ import annotations

import math

import torch
from torch import nn

Setting = tuple[str, float, float, float]
"""(name, low, high, starting value)."""

LR_GAIN = 100.0
"""The learned parameters are stored divided by this: Adam moves each parameter by about the
learning rate per step, which is sized for conv weights (1e-4); the settings' logits must travel
units, not hundredths, within a few hundred steps."""


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
           ) -> torch.Tensor:
    """Standard normal draws from ``generator`` (on its own device) or the global RNG, on
    ``device``: the draws are the generator's whatever device the images are on."""
    return torch.randn(shape, generator=generator, device=_draw_device(generator, device)
                       ).to(device)


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
            ) -> torch.Tensor:
    """U(0, 1) draws, from the same stream as :func:`normal`."""
    return torch.rand(shape, generator=generator, device=_draw_device(generator, device)
                      ).to(device)


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Draw on the generator's own device, so that a seed gives the same numbers whatever
    device the images are on."""
    return generator.device if generator is not None else device


class LearnedSettings(nn.Module):
    """The learned distributions of ``table``'s settings; subclasses apply them to images.

    ``prefix`` names the settings in logs (``<prefix>_<name>`` at eps = 0 and
    ``<prefix>_<name>_spread``)."""

    def __init__(self, table: tuple[Setting, ...], start_spread: float, prefix: str) -> None:
        super().__init__()
        self.table, self.prefix = table, prefix
        low = torch.tensor([s[1] for s in table])
        high = torch.tensor([s[2] for s in table])
        start = [_logit((s[3] - s[1]) / (s[2] - s[1])) for s in table]
        self.register_buffer("low", low, persistent=False)
        self.register_buffer("high", high, persistent=False)
        self.mu = nn.Parameter(torch.tensor(start) / LR_GAIN)
        self.log_spread = nn.Parameter(torch.full((len(table),), math.log(start_spread))
                                       / LR_GAIN)

    def draw(self, b: int, generator: torch.Generator | None, device: torch.device
             ) -> torch.Tensor:
        """The standard normal draws of ``b`` images' settings, (B, number of settings)."""
        return normal((b, len(self.table)), generator, device)

    def settings(self, eps: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image settings (each (B,)) for standard normal draws ``eps``."""
        logit = LR_GAIN * self.mu + torch.exp(LR_GAIN * self.log_spread) * eps
        values = self.low + (self.high - self.low) * torch.sigmoid(logit)
        return {name: values[:, i] for i, (name, *_) in enumerate(self.table)}

    @torch.no_grad()
    def pin(self, values: dict[str, float]) -> None:
        """Set the named settings to ``values`` (strictly inside their ranges) and every
        spread to ~0: the stage then applies exactly those settings to every image (tests,
        and bounds such as "this stage at the stand-in's own amounts")."""
        names = [s[0] for s in self.table]
        for name, v in values.items():
            _, low, high, _ = self.table[names.index(name)]
            self.mu[names.index(name)] = _logit((v - low) / (high - low)) / LR_GAIN
        self.log_spread.fill_(-30.0 / LR_GAIN)

    def expected(self) -> dict[str, float]:
        """The settings at eps = 0 and their spreads: what the logs and reports show."""
        with torch.no_grad():
            mid = self.settings(torch.zeros(1, len(self.table), device=self.mu.device))
            spread = torch.exp(LR_GAIN * self.log_spread)
        out = {f"{self.prefix}_{k}": float(v[0]) for k, v in mid.items()}
        out.update({f"{self.prefix}_{name}_spread": float(s)
                    for (name, *_), s in zip(self.table, spread, strict=True)})
        return out
