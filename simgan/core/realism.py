"""Realism as a classifier two-sample test, with a verdict that says when it cannot tell.

The paper's visual Turing test asked people to tell refined from real (51.7% correct = chance).
Here a small CNN plays the human: it is trained to tell set A (e.g. real) from set B (synthetic
or refined) on one half of a balanced sample and scored on the other, disjoint half.

Read the AUC, not the accuracy: the AUC (0.5 = indistinguishable, 1.0 = perfectly separable)
ranks the held-out scores and needs no threshold; the accuracy thresholds the logit at 0 and
reads 0.5 whenever every logit lands on one side, however well they are ordered. BatchNorm made
that happen (running statistics lagging the final weights: accuracy 0.500 at AUC 0.9995 on
hand depth); a precise-BN pass before scoring (:func:`_precise_bn`) removes the lag. Each
result carries a verdict (:func:`verdict`): distinguishable, indistinguishable, or too few
images to tell with the test-set size that would decide.

The result is deterministic given the seed and the torch thread count (set ``threads`` to pin
it). At the defaults it takes ~10 s for 35x55 eyes on one CPU thread; more threads on a busy
2-core machine made it 10-20x slower (oversubscription).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from scipy.stats import rankdata
from torch import nn

from simgan.core.amp import torch_threads
from simgan.core.images import pick_device, to_tensor
from simgan.core.params import RealismParams

Z95 = 1.959964  # two-sided 95% normal quantile


class RealismResult(BaseModel):
    """Held-out accuracy (95% Wilson interval), ROC AUC (95% interval), test-set size and
    the verdict; ``n_needed`` is the test-set size that would decide when it is too small."""

    model_config = ConfigDict(frozen=True)

    accuracy: float
    ci95_low: float
    ci95_high: float
    n_test: int
    auc: float
    auc_ci95_low: float
    auc_ci95_high: float
    verdict: str
    n_needed: int | None


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

    scores = _fit_and_score(x_train, y_train, x_test, params, rng)
    return summarise(scores, y_test, params.negligible_auc)


def summarise(scores: np.ndarray, labels: np.ndarray, negligible_auc: float) -> RealismResult:
    """Accuracy at logit 0 with its Wilson interval, AUC with its interval, and the verdict."""
    correct = int(((scores > 0) == (labels > 0.5)).sum())
    low, high = _wilson(correct, len(labels))
    auc, se = auc_delong(scores, labels)
    n_pos = int((labels > 0.5).sum())
    n_neg = len(labels) - n_pos
    se_v = max(se, auc_null_se(n_pos, n_neg))
    said, n_needed = verdict(auc, se, n_pos, n_neg, negligible_auc)
    return RealismResult(
        accuracy=correct / len(labels),
        ci95_low=low,
        ci95_high=high,
        n_test=len(labels),
        auc=auc,
        auc_ci95_low=max(0.0, auc - Z95 * se_v),
        auc_ci95_high=min(1.0, auc + Z95 * se_v),
        verdict=said,
        n_needed=n_needed,
    )


def _fit_and_score(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    params: RealismParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """Train the classifier (seeded, threads pinned), recompute its BatchNorm statistics with
    the final weights, and return the held-out logits."""
    device = pick_device(params.device)
    x_train_t, x_test_t = _scale(x_train, x_test, device)
    with (torch_threads(params.threads),
          torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])):
        torch.manual_seed(params.seed)
        net = _Classifier(params.widths, params.first_stride).to(device)
        net = net.to(memory_format=torch.channels_last)
        _train(net, x_train_t, torch.from_numpy(y_train).to(device), params, rng)
        _precise_bn(net, x_train_t, params.batch_size)
        return _predict(net, x_test_t, params.batch_size)


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
def _precise_bn(net: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Recompute every BatchNorm's running statistics on the training set with the final
    weights (equal-weight average over training-size batches, in order).

    Running statistics are an exponential average over past weights; when the last steps
    move the features, eval mode normalises with stale statistics and every logit can land
    on one side of 0 (accuracy 0.5 at AUC ~1). One forward pass fixes it (precise BN, Wu &
    Johnson 2021). Training-size batches keep the eval normalisation what training saw.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    net.train()
    for s in range(0, len(x) - 1, batch_size):
        if len(x) - s >= 2:  # a lone sample has no batch variance
            net(x[s : s + batch_size])
    for bn, momentum in zip(bns, momenta, strict=True):
        bn.momentum = momentum


@torch.no_grad()
def _predict(net: nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    """Logits for every row of x, in eval mode (the precise BatchNorm statistics)."""
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


def auc_delong(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """ROC AUC (Mann-Whitney, ties count half) and its DeLong standard error.

    With midranks, positive i beats V10_i = (rank_i among all - rank_i among positives) / n_neg
    of the negatives and negative j is beaten by V01_j = 1 - (rank_j among all - rank_j among
    negatives) / n_pos of the positives; AUC = mean(V10) = mean(V01) and
    Var(AUC) = var(V10) / n_pos + var(V01) / n_neg (DeLong et al. 1988, sample variances).
    """
    pos = labels > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(scores)
    v10 = (ranks[pos] - rankdata(scores[pos])) / n_neg
    v01 = 1.0 - (ranks[~pos] - rankdata(scores[~pos])) / n_pos
    var = np.var(v10, ddof=1) / n_pos + np.var(v01, ddof=1) / n_neg
    return float(v10.mean()), float(math.sqrt(max(var, 0.0)))


def auc_null_se(n_pos: int, n_neg: int) -> float:
    """SE of the AUC when both sets come from one distribution (exact, Mann-Whitney):
    sqrt((n_pos + n_neg + 1) / (12 n_pos n_neg))."""
    return math.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))


def verdict(
    auc: float, se_delong: float, n_pos: int, n_neg: int, negligible_auc: float
) -> tuple[str, int | None]:
    """'distinguishable', 'indistinguishable (n=...)' or 'too few images to tell (need n >=
    ...)', and that n for the last.

    The interval is AUC +- z se with z = 1.96 and se = max(DeLong SE, null SE): DeLong's is
    0 at perfect separation on a handful of images, and below the null SE it would claim more
    than the rank test can. Distinguishable: the interval lies above 0.5 (even if only just:
    a significant difference is not called indistinguishable). Indistinguishable: otherwise,
    if it lies below ``negligible_auc`` (a = 0.6 by default; AUC 0.6 is accuracy ~0.57 for two
    Gaussians), i.e. any separability is negligible with 95% confidence. Else the test set is
    too small to tell; the n that would decide if the AUC and the per-image variance stayed as
    measured (balanced halves, SE ~ 1/sqrt(n)) is, with h = max(a - A, A - 0.5) the
    half-width that decides and A = max(AUC, 0.5) (held out, below chance is noise),

        n* = max(ceil(n (z se_DeLong / h)^2), n0(h)),
        n0(h) = 2 ceil((2 z^2 + sqrt(4 z^4 + 48 h^2 z^2)) / (24 h^2)),

    n0 solving z^2 (2m + 1) / (12 m^2) < h^2 for m images per set (the null SE). For a = 0.6
    and an AUC of 0.5 that is n* = 130 test images.
    """
    n_test = n_pos + n_neg
    se = max(se_delong, auc_null_se(n_pos, n_neg))
    if auc - Z95 * se > 0.5:
        return "distinguishable", None
    if auc + Z95 * se < negligible_auc:
        return f"indistinguishable (n={n_test})", None
    planned = max(auc, 0.5)
    h = max(negligible_auc - planned, planned - 0.5)
    z2 = Z95 * Z95
    m0 = (2 * z2 + math.sqrt(4 * z2 * z2 + 48 * h * h * z2)) / (24 * h * h)
    n_scaled = n_test * (Z95 * se_delong / h) ** 2
    need = max(math.ceil(n_scaled), 2 * math.ceil(m0), n_test + 1)
    need += need % 2  # balanced halves
    return f"too few images to tell (need n >= {need})", need
