"""SimGAN's two losses: the local adversarial loss and self-regularisation.

Label convention for the discriminator's (B, 2, h, w) logit map: class 1 = real, class 0 =
refined. D minimises ``adversarial_loss(D(y), REAL) + adversarial_loss(D(R(x)), REFINED)``;
R minimises ``adversarial_loss(D(R(x)), REAL) + self_regularisation(R(x), x, lambda)`` (the
paper's -log(1 - D(R(x))) with D(.) = probability of "refined" is the same quantity).

Scaling: the adversarial loss is, as in the paper, the cross-entropy *summed over the h*w
patches* and averaged over the batch (eye D: 9x14 = 126 patches, so ~87 at chance). With
``reduction="mean"`` the self-regularisation is the mean absolute difference per pixel, so
``lambda`` weighs one pixel's L1 against the whole patch sum; ``reduction="sum"`` sums over
pixels (averaged over the batch), which is ``H*W`` (1925 for eyes) times larger for the same
``lambda``. The CPU design trial used lambda 0.5 with "mean". Only the ratio of the two terms
matters to Adam.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from simgan.core.images import READING_ABOVE

REAL = 1
REFINED = 0

Feature = Literal["identity", "local_mean"]
Reduction = Literal["mean", "sum"]
AdversarialReduction = Literal["sum", "mean", "image"]


def adversarial_loss(
    logits: torch.Tensor, target: int, patch_reduction: AdversarialReduction = "sum"
) -> torch.Tensor:
    """Cross-entropy of ``logits`` (B, 2, h, w) against class ``target``, batch-averaged.

    ``"sum"`` (the paper) and ``"mean"``: one decision per patch, summed or averaged over the
    patches. ``"image"``: one decision per image, from the patch logits averaged over the
    patches (the evidence of every patch added up, as the realism classifier adds up its
    local features), times the patch count so that it weighs as much as ``"sum"`` against
    the other terms (both are h*w*log 2 at chance). Why: each patch of a refined eye may hold
    too little evidence for D to call (the default's D sits at chance per patch while the
    classifier separates whole images); summed evidence it can call, and R then learns from it.
    """
    b = logits.shape[0]
    logits = logits.float()
    if patch_reduction == "image":
        patches = logits.shape[2] * logits.shape[3]
        pooled = logits.mean(dim=(2, 3))
        return -F.log_softmax(pooled, dim=1)[:, target].sum() * patches / b
    # log-softmax over the class channel; picking the target channel is the per-patch CE
    ce = -F.log_softmax(logits, dim=1)[:, target]
    per_image = ce.flatten(1).sum(1) if patch_reduction == "sum" else ce.flatten(1).mean(1)
    return per_image.sum() / b


def features(x: torch.Tensor, feature: Feature = "identity", kernel: int = 3) -> torch.Tensor:
    """psi(x): the image itself, or its local mean over ``kernel`` x ``kernel`` windows.

    The local mean lets R change texture and noise freely (they average out) while still
    tying low-frequency content, i.e. the geometry that carries the label, to the input.
    """
    if feature == "identity":
        return x
    if feature == "local_mean":
        return F.avg_pool2d(x, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    raise ValueError(f"unknown self-regularisation feature {feature!r}")


def self_regularisation(
    refined: torch.Tensor,
    synthetic: torch.Tensor,
    lam: float,
    feature: Feature = "identity",
    reduction: Reduction = "mean",
    kernel: int = 3,
) -> torch.Tensor:
    """``lam * |psi(R(x)) - psi(x)|_1``: per-pixel mean or per-image sum, batch-averaged."""
    diff = (features(refined, feature, kernel) - features(synthetic, feature, kernel)).abs()
    per_image = diff.flatten(1).mean(1) if reduction == "mean" else diff.flatten(1).sum(1)
    return lam * per_image.mean()


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def interior_mask(synthetic: torch.Tensor, margin: int) -> torch.Tensor:
    """Pixels of ``synthetic`` (B, 1, H, W) whose (2 margin + 1)^2 neighbourhood holds no
    "no reading" pixel: the inside of a depth surface, ``margin`` px from its silhouette."""
    support = (synthetic > READING_ABOVE).float()
    k = 2 * margin + 1
    return -F.max_pool2d(-support, k, stride=1, padding=margin)  # erosion; outside counts in


def interior_detail(refined: torch.Tensor, synthetic: torch.Tensor, margin: int) -> torch.Tensor:
    """Mean over pixels and batch of ``|Lap R(x) - Lap x|`` inside the synthetic surface
    (:func:`interior_mask`), 0 elsewhere.

    Why: a depth sensor errs at discontinuities (holes, jagged and flying edges) and reads the
    inside of a surface smoothly, while an adversarially trained refiner spreads the texture it
    invents for the edge over the whole hand (docs/hand.md, "What gives refined depth away").
    This ties only the interior's fine detail to the synthetic input; the silhouette, within
    ``margin`` px, and the low frequencies stay free.
    """
    lap = _LAPLACIAN.to(refined.device, refined.dtype).view(1, 1, 3, 3)
    c = refined.shape[1]
    lap = lap.expand(c, 1, 3, 3)

    def detail(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), lap, groups=c)

    mask = interior_mask(synthetic, margin)
    diff = (detail(refined.float()) - detail(synthetic.float())).abs() * mask
    return diff.flatten(1).mean(1).mean()


def far_background_mask(synthetic: torch.Tensor, margin: int) -> torch.Tensor:
    """"No reading" pixels of ``synthetic`` (B, 1, H, W) whose (2 margin + 1)^2 neighbourhood
    holds no reading either: the background more than ``margin`` px from the silhouette."""
    reading = (synthetic > READING_ABOVE).float()
    k = 2 * margin + 1
    return 1.0 - F.max_pool2d(reading, k, stride=1, padding=margin)  # outside reads nothing


def background_fill(refined: torch.Tensor, synthetic: torch.Tensor, margin: int) -> torch.Tensor:
    """Mean over pixels and batch of ``|R(x) - x|`` on the far background of x
    (:func:`far_background_mask`), 0 elsewhere.

    Why: a depth sensor reads nothing where nothing is, and the crop removes what lies behind
    the hand, so the background far from the hand is missing depth in real crops too. The label
    term does not see it (the hourglass reads the hand), and one refiner seed lifted the whole
    background into a grey haze (docs/hand.md, item 11). The band of ``margin`` px around the
    silhouette, where flying pixels and eroded edges belong, stays free.
    """
    mask = far_background_mask(synthetic, margin)
    return ((refined.float() - synthetic.float()).abs() * mask).flatten(1).mean(1).mean()


def r1_penalty(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Squared gradient norm of D's realness on real ``images`` (R1), averaged over the batch.

    Realness is the real-minus-refined logit of every patch, summed over the patch map: the
    quantity whose gradient moves an image towards "real". Penalising it on real images keeps
    D flat around the real data, so that it cannot win by a sharp, noisy boundary, which is
    what R's updates would otherwise follow. ``logits`` must come from ``images`` with
    ``requires_grad``; the graph is kept so that the penalty trains D.
    """
    realness = (logits[:, REAL] - logits[:, REFINED]).float().sum()
    (grad,) = torch.autograd.grad(realness, images, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def label_shift(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image squared L2 distance (B,) between two label readings (B, ...) of a frozen
    estimator: for unit gaze vectors ~ the squared angle in radians, for heatmaps their
    summed squares. What the label-consistency term penalises and selection reports."""
    return (a.float() - b.float()).pow(2).flatten(1).sum(1)


def label_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The batch mean of :func:`label_shift`: the label-consistency term before its weight."""
    return label_shift(a, b).mean()
