"""Realism as a classifier two-sample test.

The paper's visual Turing test asked people to tell refined from real (51.7% correct = chance).
Here a small CNN plays the human: it is trained to tell set A (e.g. real) from set B (synthetic
or refined) on one half of a balanced sample and scored on the other, disjoint half. Held-out
accuracy near 0.5 means the sets are indistinguishable to this classifier; near 1.0 means the
refiner still leaves a signature. The result is deterministic given the seed and the torch
thread count (set ``threads`` to pin it). At the defaults it takes ~10 s for 35x55 eyes on one
CPU thread; more threads on a busy 2-core machine made it 10-20x slower (oversubscription).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from scipy.stats import rankdata
from torch import nn

from simgan.core.images import pick_device, to_tensor
from simgan.core.params import RealismParams


class RealismResult(BaseModel):
    """Held-out accuracy with a 95% Wilson interval, test-set size and ROC AUC."""

    model_config = ConfigDict(frozen=True)

    accuracy: float
    ci95_low: float
    ci95_high: float
    n_test: int
    auc: float


def two_sample_test(
    a_uint8: np.ndarray, b_uint8: np.ndarray, params: RealismParams | None = None
) -> RealismResult:
    """Train a CNN to tell A (label 1) from B (label 0); score it on held-out halves.

    Each set contributes the same number of images m = min(n_per_set, len(A), len(B)),
    drawn without replacement (sorted indices, so memmaps read only those rows); the first
    half of each draw trains, the second half tests. uint8 images use the project's
    [-1, 1] scaling; other dtypes (depth) are scaled jointly by the min/max of both samples,
    so a difference in range between the sets stays visible to the classifier.
    """
    params = params or RealismParams()
    if a_uint8.shape[1:] != b_uint8.shape[1:] or a_uint8.ndim != 3:
        raise ValueError(f"need two (N, H, W) sets of one shape: {a_uint8.shape}, {b_uint8.shape}")
    m = min(params.n_per_set, len(a_uint8), len(b_uint8))
    if m < 4:
        raise ValueError(f"need at least 4 images per set, got {m}")
    rng = np.random.default_rng(params.seed)
    a = _sample(a_uint8, m, rng)
    b = _sample(b_uint8, m, rng)
    half = m // 2
    x_train = np.concatenate([a[:half], b[:half]])
    y_train = np.concatenate([np.ones(half), np.zeros(half)]).astype(np.float32)
    x_test = np.concatenate([a[half:], b[half:]])
    y_test = np.concatenate([np.ones(m - half), np.zeros(m - half)])

    device = pick_device(params.device)
    x_train_t, x_test_t = _scale(x_train, x_test, device)
    threads_before = torch.get_num_threads()
    if params.threads is not None:
        torch.set_num_threads(params.threads)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(params.seed)
            net = _Classifier(params.widths, params.first_stride).to(device)
            net = net.to(memory_format=torch.channels_last)
            _train(net, x_train_t, torch.from_numpy(y_train).to(device), params, rng)
            scores = _predict(net, x_test_t, params.batch_size)
    finally:
        torch.set_num_threads(threads_before)

    correct = int(((scores > 0) == (y_test > 0.5)).sum())
    low, high = _wilson(correct, len(y_test))
    return RealismResult(
        accuracy=correct / len(y_test),
        ci95_low=low,
        ci95_high=high,
        n_test=len(y_test),
        auc=_auc(scores, y_test),
    )


class _Classifier(nn.Module):
    """conv3x3-BN-ReLU blocks (stride 2 after the first), global average pool, one logit.

    Pooling over positions makes it a bank of local texture detectors, which is where
    refined-vs-real differences live (noise, blur, artefacts), and keeps it size-agnostic.
    """

    def __init__(self, widths: tuple[int, ...], first_stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for i, c_out in enumerate(widths):
            stride = first_stride if i == 0 else 2
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


def _sample(images: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """m distinct rows in random order, read with sorted indices (memmap-friendly)."""
    idx = np.sort(rng.choice(len(images), size=m, replace=False))
    rows = np.asarray(images[idx])
    return rows[rng.permutation(m)]


def _scale(
    train: np.ndarray, test: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both splits to (N, 1, H, W) float32 in [-1, 1] with one shared scaling."""
    if train.dtype == np.uint8 and test.dtype == np.uint8:
        return to_tensor(train, device), to_tensor(test, device)
    lo = float(min(np.nanmin(train), np.nanmin(test)))
    hi = float(max(np.nanmax(train), np.nanmax(test)))
    scale = 2.0 / (hi - lo) if hi > lo else 1.0

    def conv(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.nan_to_num((x.astype(np.float32) - lo) * scale - 1.0))
        return t.unsqueeze(1).to(device).contiguous(memory_format=torch.channels_last)

    return conv(train), conv(test)


def _train(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: RealismParams,
    rng: np.random.Generator,
) -> None:
    """Plain Adam on BCE for a fixed number of epochs (no early stopping: no peeking)."""
    opt = torch.optim.Adam(net.parameters(), lr=params.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    n = len(x)
    net.train()
    for _ in range(params.epochs):
        order = torch.from_numpy(rng.permutation(n)).to(x.device)
        for s in range(0, n - 1, params.batch_size):  # skip a lone last sample (BatchNorm)
            batch = order[s : s + params.batch_size]
            if len(batch) < 2:
                continue
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[batch]), y[batch])
            loss.backward()
            opt.step()


@torch.no_grad()
def _predict(net: nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    """Logits for every row of x, in eval mode (running BatchNorm statistics)."""
    net.eval()
    step = max(batch_size, 256)
    return torch.cat([net(x[s : s + step]) for s in range(0, len(x), step)]).cpu().numpy()


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval: stays inside [0, 1] and is sane at accuracies near 0 or 1."""
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends, not 1 - 1e-16
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney U statistic (average ranks, so ties count half)."""
    pos = labels > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
