"""Stacked hourglass network (Newell et al. 2016) regressing one heatmap per joint.

The paper's hand estimator: 2 stacks, 64x64 heatmaps from 224x224 depth crops. Layout here:
a stem that reduces the input by ``stem_stride`` (1, 2 or 4: conv and, for 4, a max-pool),
then per stack an hourglass of ``depth`` pooling levels built from pre-activation bottleneck
residual modules, a 1x1 head to ``joints`` heatmaps, and (between stacks) the features and
heatmaps mapped back and added to the stack's input, so the next stack refines the previous
estimate (intermediate supervision: every stack's heatmaps are returned and trained).

Sizes: Newell et al. use width 256, depth 4, stride 4 (256 px in, 64 px heatmaps): that is
``PAPER`` (for 224 px crops it gives 56 px heatmaps). The CPU default
(:class:`simgan.hand.estimator.PoseEstimatorParams`) is narrow (width 32, depth 2, stride 4: 16x16
heatmaps for 64 px crops), chosen by measured training throughput (docs/hand.md).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PAPER: dict[str, Any] = {"stacks": 2, "width": 256, "depth": 4, "stem_stride": 4}


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-conv1x1 (c/2), BN-ReLU-conv3x3, BN-ReLU-conv1x1 (c),
    plus the input (through a 1x1 conv if the width changes)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = max(c_out // 2, 1)
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, mid, 1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1,
                                                                  bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, c_out, 1),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Hourglass(nn.Module):
    """One hourglass: a skip branch at this resolution plus a pooled branch that recurses
    ``depth - 1`` more times, upsampled (nearest) and added back."""

    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.up = Residual(width, width)
        self.down = Residual(width, width)
        self.inner = Hourglass(depth - 1, width) if depth > 1 else Residual(width, width)
        self.back = Residual(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.back(self.inner(self.down(F.max_pool2d(x, 2, ceil_mode=True))))
        return self.up(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class StackedHourglass(nn.Module):
    """(B, C, H, W) in [-1, 1] -> list of ``stacks`` heatmap tensors (B, joints, H/s, W/s)."""

    def __init__(
        self,
        in_channels: int = 1,
        joints: int = 14,
        stacks: int = 2,
        width: int = 32,
        depth: int = 3,
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        if stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4, got {stem_stride}")
        if stacks < 1 or depth < 1 or width < 2:
            raise ValueError(f"need stacks >= 1, depth >= 1, width >= 2; got {stacks}, {depth}, "
                             f"{width}")
        self.stride = stem_stride
        half = max(width // 2, 1)
        k, s = (7, 2) if stem_stride >= 2 else (3, 1)
        stem: list[nn.Module] = [
            nn.Conv2d(in_channels, half, k, stride=s, padding=k // 2, bias=False),
            nn.BatchNorm2d(half), nn.ReLU(inplace=True), Residual(half, width),
        ]
        if stem_stride == 4:
            stem.append(nn.MaxPool2d(2, ceil_mode=True))
        stem.append(Residual(width, width))
        self.stem = nn.Sequential(*stem)
        self.hourglasses = nn.ModuleList(Hourglass(depth, width) for _ in range(stacks))
        self.features = nn.ModuleList(
            nn.Sequential(Residual(width, width), nn.Conv2d(width, width, 1, bias=False),
                          nn.BatchNorm2d(width), nn.ReLU(inplace=True))
            for _ in range(stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(width, joints, 1) for _ in range(stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(joints, width, 1) for _ in range(stacks - 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for i, (hg, feat, head) in enumerate(
            zip(self.hourglasses, self.features, self.heads, strict=True)
        ):
            f = feat(hg(x))
            h = head(f)
            out.append(h)
            if i < len(self.merge_features):
                x = x + self.merge_features[i](f) + self.merge_heatmaps[i](h)
        return out


class LastStack(nn.Module):
    """A trained hourglass that returns only its final heatmaps (B, joints, H/s, W/s): one
    tensor out, which is what a served model (and MLflow's signature inference) expects."""

    def __init__(self, model: StackedHourglass) -> None:
        super().__init__()
        self.model = model
        self.stride = model.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[-1]
