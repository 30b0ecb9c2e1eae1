"""Label-free checkpoint selection: score candidate refiners on held-out *images* only.

Adversarial training does not converge to a point, so which checkpoint to keep matters; real
labels would leak the test domain into training, hence a criterion on image statistics plus
guards against refiners that move the structures the label describes (:class:`Selector`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simgan.core.images import to_tensor
from simgan.core.refiner.losses import label_shift
from simgan.core.refiner.net import scene_and_refined
from simgan.core.refiner.params import SelectBy


def _histograms(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Per-row normalised histograms of ``values`` (B, N) over bins between ``edges``."""
    nb = edges.numel() - 1
    idx = torch.bucketize(values.contiguous(), edges[1:-1].contiguous())  # 0 .. nb-1
    h = torch.zeros(values.shape[0], nb, device=values.device, dtype=values.dtype)
    h.scatter_add_(1, idx, torch.ones_like(values))
    return h / values.shape[1]


def image_statistics(x: torch.Tensor) -> list[torch.Tensor]:
    """Local image statistics of (B, 1, H, W) images in [-1, 1], in four groups (B, d_g).

    1. intensity histogram (16 bins over [-1, 1]): brightness, contrast, saturation, glints;
    2. gradient-magnitude histogram (12 log-spaced bins): edge sharpness, blur, noise;
    3. log band energies of a 4-level Laplacian pyramid: the power spectrum by octave (noise
       and texture at fine scales, blur, shading at coarse scales);
    4. mean and standard deviation.
    """
    x = x.float()
    b = x.shape[0]
    flat = x.reshape(b, -1)
    g1 = _histograms(flat.clamp(-1, 1), torch.linspace(-1, 1, 17, device=x.device))
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    mag = (dx[..., :-1, :] ** 2 + dy[..., :, :-1] ** 2).sqrt().reshape(b, -1)
    edges = torch.cat([torch.zeros(1), torch.logspace(-3, 0.5, 12)]).to(x.device)
    edges[-1] = float("inf")
    g2 = _histograms(mag, edges)
    bands = []
    cur = x
    for _ in range(4):
        if min(cur.shape[-2:]) < 2:
            bands.append(torch.zeros(b, device=x.device))
            continue
        low = F.avg_pool2d(cur, 2, ceil_mode=True)
        up = F.interpolate(low, size=cur.shape[-2:], mode="bilinear", align_corners=False)
        bands.append(((cur - up) ** 2).mean(dim=(1, 2, 3)).add(1e-8).log())
        cur = low
    g3 = torch.stack(bands, 1)
    g4 = torch.stack([flat.mean(1), flat.std(1)], 1)
    return [g1, g2, g3, g4]


def structure_similarity(
    refined: torch.Tensor, synthetic: torch.Tensor, blur: int = 5
) -> torch.Tensor:
    """Per-image Pearson correlation of the blurred images: 1 = same layout.

    Invariant to brightness/contrast changes and, through the blur, to noise and fine texture,
    which the refiner is meant to change; it drops when R moves or erases structures (the
    pupil, the iris, the lids), i.e. when it changes what the label describes.
    """
    a = F.avg_pool2d(refined.float(), blur, 1, blur // 2, count_include_pad=False).flatten(1)
    c = F.avg_pool2d(synthetic.float(), blur, 1, blur // 2, count_include_pad=False).flatten(1)
    a = a - a.mean(1, keepdim=True)
    c = c - c.mean(1, keepdim=True)
    return (a * c).sum(1) / (a.norm(dim=1) * c.norm(dim=1)).clamp_min(1e-8)


def drift_grey_levels(refined: torch.Tensor, synthetic: torch.Tensor) -> torch.Tensor:
    """Per-image mean |R(x) - x| in grey levels (B,): what the drift guard bounds."""
    return (refined - synthetic).abs().flatten(1).mean(1) * 127.5


def within_guards(record: dict[str, float], min_structure: float, max_drift: float) -> bool:
    """Whether a scored candidate passes the guards: mean structure >= ``min_structure`` and
    mean drift <= ``max_drift``."""
    return record["structure"] >= min_structure and record["drift"] <= max_drift


class Selector:
    """Label-free checkpoint criterion: how real do refined images look, without moving structure.

    On a fixed held-out subset of synthetic images X and of real *train* images Y (images
    only, never labels, and never used for training), each candidate refiner R is scored by

    - ``mmd``: the squared maximum mean discrepancy between the local-statistics features
      (:func:`image_statistics`) of R(X) and of Y, with a sum of three Gaussian kernels
      (bandwidths 0.5x, 1x, 2x the median pairwise distance of the features of X and Y
      pooled) on features whose four groups are each scaled to unit total variance over X and
      Y pooled, so each group weighs the same and a gap much wider than Y's own spread still
      ranks candidates (docs/science.md, "Label-free checkpoint selection"). Kernel, scaling
      and Y are fixed at the start, so scores are comparable across checkpoints;
      ``mmd_synthetic`` (R = identity) is the domain gap to beat and
      ``mmd_ratio = mmd / mmd_synthetic``.
    - guards against label-destroying refiners: ``structure`` (mean
      :func:`structure_similarity` between R(X) and X) must be >= ``min_structure`` and
      ``drift`` (mean |R(x) - x| in gray levels) <= ``max_drift``. With a learned depth
      sensor (or ``label_terms: scene``) they judge R's output before its capture stages
      (``scene_and_refined``), the mmd what comes out.

    The selected checkpoint is the eligible one with the lowest ``mmd`` (``select_by="mmd"``,
    the default) or the latest eligible one (``"latest"``: the guards alone decide, for data
    where the mmd ranking was measured not to follow downstream quality, see docs/hand.md); if
    none is eligible, the one with the highest ``structure``. The candidate at adversarial
    step 0 (the pretrained refiner) is always scored, so "adversarial training did not help"
    can win.

    Calibration (offline, with real labels): docs/science.md, "Label-free checkpoint selection".
    """

    def __init__(
        self,
        synthetic: np.ndarray,
        real: np.ndarray,
        device: torch.device,
        min_structure: float,
        max_drift: float,
        batch_size: int = 256,
        select_by: SelectBy = "mmd",
        label_model: nn.Module | None = None,
    ) -> None:
        if select_by not in ("mmd", "latest"):
            raise ValueError(f"select_by must be 'mmd' or 'latest', got {select_by!r}")
        self.select_by = select_by
        self.device = device
        self.batch_size = batch_size
        self.min_structure = min_structure
        self.max_drift = max_drift
        self.synthetic = synthetic
        self.label_model = label_model
        # the estimator's reading of the held-out synthetic images, fixed: computed once
        self.label_readings = self._readings(synthetic) if label_model is not None else []
        real_groups, synthetic_groups = self._stats(real), self._stats(synthetic)
        # scale and bandwidth from real and synthetic pooled: from the real images alone, a
        # domain gap much wider than the real spread (e.g. histogram-equalised real crops)
        # puts every refined image beyond every kernel's reach, and the mmd stops ranking
        pooled = [torch.cat(pair, 0) for pair in zip(real_groups, synthetic_groups, strict=True)]
        self.scales = [g.var(0).sum().clamp_min(1e-12).sqrt() for g in pooled]
        self.center = [g.mean(0) for g in real_groups]
        self.real_feats = self._embed(real_groups)
        synthetic_feats = self._embed(synthetic_groups)
        pooled_feats = torch.cat([self.real_feats, synthetic_feats], 0)  # rows embed alone
        d2 = torch.cdist(pooled_feats, pooled_feats).pow(2)
        med = d2[~torch.eye(d2.shape[0], dtype=torch.bool)].median().clamp_min(1e-6)
        self.bandwidths = [med * f for f in (0.25, 1.0, 4.0)]  # squared: (0.5, 1, 2) x median
        self.k_real = self._kernel(self.real_feats, self.real_feats).mean()
        self.mmd_synthetic = self._mmd(synthetic_feats)

    def _stats(self, images: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        parts: list[list[torch.Tensor]] = []
        for s in range(0, images.shape[0], self.batch_size):
            chunk = images[s : s + self.batch_size]
            t = chunk if isinstance(chunk, torch.Tensor) else to_tensor(chunk, self.device)
            parts.append(image_statistics(t))
        return [torch.cat(g, 0) for g in zip(*parts, strict=True)]

    def _embed(self, groups: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(
            [(g - c) / s for g, c, s in zip(groups, self.center, self.scales, strict=True)], 1
        )

    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * bw)) for bw in self.bandwidths)

    def _mmd(self, feats: torch.Tensor) -> float:
        k_xx = self._kernel(feats, feats).mean()
        k_xy = self._kernel(feats, self.real_feats).mean()
        return float(k_xx + self.k_real - 2 * k_xy)

    @torch.inference_mode()
    def _readings(self, images: np.ndarray) -> list[torch.Tensor]:
        """The label model's reading of ``images``, batch by batch as :meth:`score` walks them."""
        assert self.label_model is not None
        return [self.label_model(to_tensor(images[s : s + self.batch_size], self.device))
                for s in range(0, images.shape[0], self.batch_size)]

    @torch.inference_mode()
    def score(self, refiner: nn.Module) -> dict[str, float]:
        """Criterion values of ``refiner`` on the held-out images (see class doc)."""
        was_training = refiner.training
        refiner.eval()
        refined, structure, drift, shift, out_drift = [], [], [], [], []
        gen = torch.Generator().manual_seed(0)  # same noise for every candidate
        for i, s in enumerate(range(0, self.synthetic.shape[0], self.batch_size)):
            x = to_tensor(self.synthetic[s : s + self.batch_size], self.device)
            painted, r = scene_and_refined(refiner, x, gen)
            apart = painted is not r  # the label terms judge a scene before the capture
            r = r.float()
            scene = painted.float() if apart else r
            refined.append(r)
            # the guards judge the scene R painted: a depth sensor after it only removes or
            # perturbs depth (the stand-in's own sensor fails them, docs/hand.md), a camera
            # or codec only blurs, tones, adds noise or compresses
            structure.append(structure_similarity(scene, x))
            drift.append(drift_grey_levels(scene, x))
            if apart:
                out_drift.append(drift_grey_levels(r, x))
            if self.label_model is not None:
                shift.append(label_shift(self.label_model(scene), self.label_readings[i]))
        refiner.train(was_training)
        mmd = self._mmd(self._embed(self._stats(torch.cat(refined))))
        record = {
            "mmd": mmd,
            "mmd_synthetic": self.mmd_synthetic,
            "mmd_ratio": mmd / max(self.mmd_synthetic, 1e-12),
            "structure": float(torch.cat(structure).mean()),
            "drift": float(torch.cat(drift).mean()),
        }
        if out_drift:  # a scene apart: the change of what comes out, after the capture
            record["output_drift"] = float(torch.cat(out_drift).mean())
        if shift:  # how far the frozen estimator's reading moved (reported, not a guard)
            record["label_shift"] = float(torch.cat(shift).mean())
        return record

    def eligible(self, record: dict[str, float]) -> bool:
        return within_guards(record, self.min_structure, self.max_drift)

    def better(self, record: dict[str, float], best: dict[str, float] | None) -> bool:
        """Whether ``record`` (scored after ``best``) beats ``best``: eligible first, then lower
        mmd (or, with ``select_by="latest"``, the later one) / higher structure."""
        if best is None:
            return True
        ok, best_ok = self.eligible(record), self.eligible(best)
        if ok != best_ok:
            return ok
        if ok:
            return self.select_by == "latest" or record["mmd"] < best["mmd"]
        return record["structure"] > best["structure"]
