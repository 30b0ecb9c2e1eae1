"""Kernel distance between image sets, KID-style, in a fixed random convolutional feature space.

KID (Binkowski et al. 2018) is the unbiased estimate of the squared maximum mean discrepancy
(MMD^2) between two sets of features under the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets, with the subsets' standard deviation
as the error bar. It is 0 in expectation when both sets come from one distribution (the
estimate can go slightly negative), and unlike FID it is unbiased at small sample sizes.

KID uses Inception features; no pretrained network can be downloaded here, and ImageNet
features would say little about 35x55 grey eyes or depth crops anyway. The feature space is a
convolutional network with FIXED random weights (seeded, never trained, so it cannot be fitted
to either set): per scale a 3x3 conv with stride 2, He-normal weights made DC-free (each
kernel minus its mean), no bias, a ReLU, and each channel's spatial mean as a feature; the
default widths (16, 32, 64, 128) give 240 features with receptive fields of 3, 7, 15 and 31 px.
They are filter-rectify-pool texture energies of random band-pass detectors: a random-features
embedding of the distribution of local structure (noise, texture, blur, edges, contrast),
where refined-vs-real differences live. DC-free filters matter: with ordinary random filters
the features are dominated by each patch's mean brightness, and 4 grey levels of added noise
on smooth test eyes left KID unchanged while a DC-free bank saw it at 30 error bars. A
uniform brightness offset is seen at the image border (zero padding is a mid-grey canvas)
and through clipping; contrast scales the features. Stride 2 from the first layer keeps it
cheap (a full-resolution first layer cost 10x). Values are comparable only within one feature
space (same widths and seed): compare pairs and ratios, not numbers from other papers.
:func:`simgan.core.refiner.selection.image_statistics` is deliberately not used: checkpoint
selection minimises an MMD on those statistics, so they would flatter the refiner.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from simgan.core.amp import torch_threads
from simgan.core.images import pick_device, to_tensor
from simgan.core.params import KidParams

_BATCH = 512  # images per feature batch
_BLOCK = 1024  # kernel rows per block (memory O(block x n))


class KidResult(BaseModel):
    """KID (mean of unbiased MMD^2 over subsets) and its error bar (std over subsets)."""

    model_config = ConfigDict(frozen=True)

    mean: float
    std: float
    subset_size: int
    n_subsets: int


@torch.inference_mode()
def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 of feature rows x (m, d) and y (n, d), cubic polynomial kernel:
    sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (n(n-1)) - 2 mean k(x_i, y_j).
    """
    x, y = x.double(), y.double()
    d, m, n = x.shape[1], len(x), len(y)
    kxx, kyy, kxy = _kernel(x, x, d), _kernel(y, y, d), _kernel(x, y, d)
    off_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    off_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(off_x + off_y - 2 * kxy.mean())


@torch.inference_mode()
def kid(
    fa: torch.Tensor, fb: torch.Tensor, n_subsets: int, subset_size: int, seed: int
) -> KidResult:
    """KID of feature sets fa and fb: :func:`mmd2_unbiased` on ``n_subsets`` random subsets of
    ``subset_size`` rows of each (capped at half the smaller set, so subsets differ)."""
    m = _subset_size(subset_size, len(fa), len(fb))
    rng = np.random.default_rng(seed)
    sa, sb = _indicators(len(fa), len(fb), n_subsets, m, rng, fa.device)
    return kid_from_indicators(fa, fb, sa, sb)


@torch.inference_mode()
def kid_from_indicators(
    fa: torch.Tensor, fb: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor,
    within_a: torch.Tensor | None = None,
) -> KidResult:
    """KID over the subsets given as 0/1 rows of sa (k, len(fa)) and sb (k, len(fb)).

    Every subset's kernel sums come from blockwise products S K S^T with the full kernels,
    never a per-subset loop; ``within_a`` (:func:`within_sums`) can be passed when fa is
    compared with several sets.
    """
    fa, fb = fa.double(), fb.double()
    m = int(sa[0].sum())
    within_a = within_sums(fa, sa) if within_a is None else within_a
    across = _subset_sums(fa, fb, sa, sb)
    mmd2 = (within_a + within_sums(fb, sb)) / (m * (m - 1)) - 2 * across / (m * m)
    return KidResult(
        mean=float(mmd2.mean()),
        std=float(mmd2.std()) if len(mmd2) > 1 else 0.0,
        subset_size=m,
        n_subsets=len(mmd2),
    )


@torch.inference_mode()
def within_sums(f: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """sum_{i != j in subset} k(f_i, f_j) for every subset (0/1 row of s)."""
    f = f.double()
    return _subset_sums(f, f, s, s) - s @ _self_kernel(f)


def kid_against(
    reference: np.ndarray, others: dict[str, np.ndarray], params: KidParams | None = None
) -> dict[str, KidResult]:
    """KID of each of ``others`` (e.g. synthetic, refined) against ``reference`` (real).

    ``others`` are paired sets of one length (refined[i] is synthetic[i] refined): the same
    rows and the same subsets are drawn from each, so their KIDs differ by the sets only.
    uint8 images use the project's [-1, 1] scaling, other dtypes one min/max over all samples.
    Deterministic for given bytes, params and device (torch threads pinned by ``threads``).
    """
    params = params or KidParams()
    lengths = {len(v) for v in others.values()}
    if len(lengths) != 1:
        raise ValueError(f"the sets compared with the reference differ in length: {lengths}")
    rng = np.random.default_rng(params.seed)
    ref = _sample(reference, min(params.n_per_set, len(reference)), rng)
    n_other = lengths.pop()
    rows = np.sort(rng.choice(n_other, size=min(params.n_per_set, n_other), replace=False))
    m = _subset_size(params.subset_size, len(ref), len(rows))
    samples = {k: np.asarray(v[rows]) for k, v in others.items()}
    device = pick_device(params.device)
    sa, sb = _indicators(len(ref), len(rows), params.n_subsets, m, rng, device)
    with torch_threads(params.threads), torch.inference_mode():
        feats = _all_features([ref, *samples.values()], params, device)
        within_ref = within_sums(feats[0], sa)
        pairs = zip(samples, feats[1:], strict=True)
        return {k: kid_from_indicators(feats[0], f, sa, sb, within_ref) for k, f in pairs}


def random_features(x: torch.Tensor, widths: tuple[int, ...], seed: int) -> torch.Tensor:
    """(B, 1, H, W) images in [-1, 1] -> (B, sum(widths)) features of the fixed random network
    (see the module docstring); the weights depend on ``widths`` and ``seed`` only."""
    feats = []
    for weight in _random_weights(widths, seed, x.device):
        x = F.relu(F.conv2d(x, weight, stride=2, padding=1))
        feats.append(x.mean(dim=(2, 3)))
    return torch.cat(feats, dim=1)


def _random_weights(widths: tuple[int, ...], seed: int, device: torch.device) -> list[torch.Tensor]:
    """DC-free conv weights drawn on the CPU from one seeded generator: the same on every
    device and independent of torch's global seed."""
    gen = torch.Generator().manual_seed(seed)
    out, c_in = [], 1
    for c_out in widths:
        w = torch.randn(c_out, c_in, 3, 3, generator=gen) * math.sqrt(2.0 / (9 * c_in))
        out.append((w - w.mean(dim=(2, 3), keepdim=True)).to(device))
        c_in = c_out
    return out


def _all_features(
    sets: list[np.ndarray], params: KidParams, device: torch.device
) -> list[torch.Tensor]:
    """Features of every set, in batches of ``_BATCH`` images."""
    scale = _joint_scale(sets)
    return [
        torch.cat([
            random_features(scale(s[i : i + _BATCH], device), params.widths, params.seed)
            for i in range(0, len(s), _BATCH)
        ])
        for s in sets
    ]


def _joint_scale(sets: list[np.ndarray]):
    """uint8: the project's scaling; else one affine map of the joint min/max to [-1, 1]."""
    if all(s.dtype == np.uint8 for s in sets):
        return to_tensor
    lo = min(float(np.nanmin(s)) for s in sets)
    hi = max(float(np.nanmax(s)) for s in sets)
    k = 2.0 / (hi - lo) if hi > lo else 1.0

    def scale(x: np.ndarray, device: torch.device) -> torch.Tensor:
        t = torch.from_numpy(np.nan_to_num((x.astype(np.float32) - lo) * k - 1.0))
        return t.unsqueeze(1).to(device)

    return scale


def _subset_size(requested: int, n_a: int, n_b: int) -> int:
    """At most half the smaller set, so that subsets differ and their spread means something."""
    if min(n_a, n_b) < 4:
        raise ValueError(f"need at least 4 images per set, got {n_a} and {n_b}")
    return min(requested, n_a // 2, n_b // 2)


def _sample(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n distinct rows, read with sorted indices (memmap-friendly)."""
    return np.asarray(images[np.sort(rng.choice(len(images), size=n, replace=False))])


def _indicators(
    n_a: int, n_b: int, k: int, m: int, rng: np.random.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """k subsets of m rows of each set (without replacement within a subset), as 0/1 rows."""
    sa = np.zeros((k, n_a))
    sb = np.zeros((k, n_b))
    for i in range(k):
        sa[i, rng.choice(n_a, size=m, replace=False)] = 1.0
        sb[i, rng.choice(n_b, size=m, replace=False)] = 1.0
    return torch.from_numpy(sa).to(device), torch.from_numpy(sb).to(device)


def _kernel(x: torch.Tensor, y: torch.Tensor, d: int) -> torch.Tensor:
    return (x @ y.T / d + 1.0) ** 3


def _self_kernel(x: torch.Tensor) -> torch.Tensor:
    """k(x_i, x_i) for every row: the diagonal the unbiased estimate leaves out."""
    return ((x * x).sum(1) / x.shape[1] + 1.0) ** 3


def _subset_sums(
    fa: torch.Tensor, fb: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor
) -> torch.Tensor:
    """sum_{i in A_s, j in B_s} k(a_i, b_j) for every subset s, over blocks of kernel rows."""
    acc = torch.zeros(len(sa), len(fb), dtype=fa.dtype, device=fa.device)
    for r in range(0, len(fa), _BLOCK):
        acc += sa[:, r : r + _BLOCK] @ _kernel(fa[r : r + _BLOCK], fb, fa.shape[1])
    return (acc * sb).sum(1)
