"""The paper's gaze estimator: a small CNN regressing the 3D gaze vector from a 35x55 eye.

Paper layout: conv3x3 32, conv3x3 32, conv3x3 64, maxpool3x3 s2, conv3x3 80, conv3x3 192,
maxpool2x2 s2, FC 9600 (the flattened 192x5x10 map: convs are unpadded), FC 1000, FC 3.
Conv widths and the hidden FC size are arguments so the CPU default can be narrower; the
flatten size is found with a dummy forward, so any width or input size works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from simgan.gaze.estimator_params import PAPER_FC_HIDDEN, PAPER_WIDTHS


def _conv(c_in: int, c_out: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU(inplace=True))
    return layers


class GazeCNN(nn.Module):
    """(B, 1, H, W) in [-1, 1] -> raw gaze vector (B, out_dim); normalise it to predict.

    ``batch_norm`` (not in the paper) makes the net reach a given loss in fewer epochs, which
    matters on a CPU budget of about a minute per estimator. ``standardize`` (not in the paper)
    scales each input image to zero mean and unit deviation inside the model, so predictions
    ignore global brightness and contrast, which differ wildly between real webcam images.
    """

    def __init__(
        self,
        widths: Sequence[int] = PAPER_WIDTHS,
        fc_hidden: int = PAPER_FC_HIDDEN,
        in_channels: int = 1,
        input_shape: tuple[int, int] = (35, 55),
        out_dim: int = 3,
        batch_norm: bool = False,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        self.standardize = standardize
        if len(widths) != 5:
            raise ValueError(f"widths needs the 5 conv widths of the paper layout, got {widths}")
        w1, w2, w3, w4, w5 = widths
        self.features = nn.Sequential(
            *_conv(in_channels, w1, batch_norm),
            *_conv(w1, w2, batch_norm),
            *_conv(w2, w3, batch_norm),
            nn.MaxPool2d(3, 2),
            *_conv(w3, w4, batch_norm),
            *_conv(w4, w5, batch_norm),
            nn.MaxPool2d(2, 2),
        )
        self.features.eval()  # the dummy forward must not touch BatchNorm running stats
        with torch.no_grad():
            self.flat_size = int(self.features(torch.zeros(1, in_channels, *input_shape)).numel())
        self.features.train()
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.flat_size, fc_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(fc_hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.standardize:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
            x = (x - mean) / std
        return self.head(self.features(x))


GazeNet = GazeCNN
"""Alias: the name the task module uses."""
