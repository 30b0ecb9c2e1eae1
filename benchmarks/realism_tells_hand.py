"""What gives a depth crop away as not real: the hand counterpart of ``realism_tells.py``.

    python benchmarks/realism_tells_hand.py            # oracle rows (after `make run`)
    python benchmarks/realism_tells_hand.py --refined  # per-image statistics of refined depth
    python benchmarks/realism_tells_hand.py --sensor   # the trained refiner's sensor alone

Why: refined-vs-real AUC on depth stays at 0.96-1.00 while KID falls to 0.07-0.5x
synthetic's. The first form builds the *oracle* refiner on the built-in hand domains (the
synthetic training set's own geometry, pose and labels, seen through the stand-in Kinect
model) and switches one sensor artefact off per row: a row near 1.0 names an artefact a
refiner must reproduce for refined depth to pass. A last row adds the stand-in's pose
distribution, to see how much of the gap is content a label-preserving refiner must not
change. The second form scores single per-image statistics of the default run's refined
training set against the real test set (AUC of the statistic used alone, either way round).
The third (``--sensor``, for a refiner with ``net.depth_sensor``) puts the raw synthetic
training images through the pipeline's trained refiner's learned depth sensor only, skipping its
conv layers: how much of refined depth's realism the sensor buys alone, and how much the scene
R paints before it adds. Prints markdown tables.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.realism_tells import auc_either_way  # noqa: E402
from simgan.core.dataset import open_dataset  # noqa: E402
from simgan.tasks import load_task_params  # noqa: E402
from stages.layout import Layout  # noqa: E402

# one artefact off per row: the RealDepthParams fields that switch it off
WITHOUT = {
    "nothing (oracle)": {},
    "jagged edges": {"edge_jag_px": 0.0},
    "edge holes": {"edge_hole_prob": 0.0},
    "grazing dropout": {"grazing_drop_prob": 0.0},
    "projector shadows": {"shadows": False},
    "flying pixels": {"flying_prob": 0.0},
    "disparity noise": {"disparity_noise_min": 0.0, "disparity_noise_max": 0.0},
    "disparity quantisation": {"disparity_step": 0.0},
}


def oracle_depth(p, n: int, depth=None, pose=None) -> np.ndarray:
    """The first ``n`` synthetic training images' geometry seen by the stand-in sensor
    ``depth`` (default: the real section's); ``pose``: another pose distribution."""
    from simgan.hand.render import render_hands, synthetic_domain
    from simgan.hand.standin import apply_kinect_artifacts

    depth = depth or p.real.depth
    domain = replace(synthetic_domain(), sensor=partial(apply_kinect_artifacts, p=depth))
    if pose is not None:
        domain = replace(domain, pose=pose)
    return render_hands(p.render.hand, n, p.render.seed, domain=domain, threads=2)[0]


def _neighbours(fg: np.ndarray) -> np.ndarray:
    """Number of 4-neighbours in ``fg`` (B, H, W) bool, outside the image counted as not."""
    p = np.pad(fg, ((0, 0), (1, 1), (1, 1)))
    return (p[:, :-2, 1:-1].astype(np.int8) + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:])


def depth_statistics(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics of (N, H, W) uint8 depth codes (0 = background) that a realism
    test might key on: amount of hand, holes and specks, edge raggedness, interior texture."""
    fg = x > 0
    nb = _neighbours(fg)
    area = fg.sum((1, 2)).astype(np.float64)
    boundary = (fg & (nb < 4)).sum((1, 2))
    xf = x.astype(np.float32)
    interior = fg & (nb == 4)
    inner = interior[:, 1:-1, 1:-1]
    lap = np.abs(4 * xf[:, 1:-1, 1:-1] - xf[:, :-2, 1:-1] - xf[:, 2:, 1:-1]
                 - xf[:, 1:-1, :-2] - xf[:, 1:-1, 2:])
    dx = np.abs(np.diff(xf, axis=2))
    both = fg[:, :, 1:] & fg[:, :, :-1]
    safe = np.maximum(area, 1.0)
    codes = np.where(fg, xf, np.nan)
    with np.errstate(invalid="ignore"):
        return {
            "foreground pixels": area,
            "holes (background, >= 3 foreground neighbours)": ((~fg) & (nb >= 3)).sum((1, 2)),
            "specks (foreground, <= 1 foreground neighbour)": (fg & (nb <= 1)).sum((1, 2)),
            "boundary / sqrt(area)": boundary / np.sqrt(safe),
            "mean foreground code": np.nanmean(codes, (1, 2)),
            "sd of foreground codes": np.nanstd(codes, (1, 2)),
            "darkest foreground code": np.nanmin(np.where(fg, xf, np.inf), (1, 2)),
            "interior |Laplacian|": (lap * inner).sum((1, 2)) / np.maximum(inner.sum((1, 2)), 1),
            "interior: share of flat horizontal steps": ((dx == 0) & both).sum((1, 2))
            / np.maximum(both.sum((1, 2)), 1),
            "large jumps inside the hand (> 20 codes)": ((dx > 20) & both).sum((1, 2)),
        }


def oracle_rows(p, real: np.ndarray) -> None:
    from simgan.core.realism import two_sample_test

    n = len(real)
    rows = {name: {"depth": p.real.depth.model_copy(update=fields)}
            for name, fields in WITHOUT.items()}
    rows["nothing, with the stand-in's pose distribution"] = {"pose": p.real.depth.pose}
    print("| artefact switched off | AUC vs real (95% CI) | accuracy |\n|---|---|---|")
    for name, kwargs in rows.items():
        r = two_sample_test(real, oracle_depth(p, n, **kwargs), p.compare.realism)
        print(f"| {name} | {r.auc:.3f} ({r.auc_ci95_low:.3f}-{r.auc_ci95_high:.3f}) | "
              f"{r.accuracy:.3f} |", flush=True)


def refined_rows(p, layout: Layout, real: np.ndarray, n: int = 4000) -> None:
    sets = {"real": real, "refined": open_dataset(layout.refined()).images[:n],
            "synthetic": open_dataset(layout.synthetic("train")).images[:n],
            "oracle": oracle_depth(p, len(real))}
    stats = {k: depth_statistics(np.asarray(v).reshape(-1, *real.shape[-2:]))
             for k, v in sets.items()}
    print("| per-image statistic | AUC refined vs real | synthetic vs real | oracle vs real | "
          "real mean | refined mean | synthetic mean |\n|---|---|---|---|---|---|---|")
    for name, real_values in stats["real"].items():
        aucs = [auc_either_way(real_values, stats[k][name])
                for k in ("refined", "synthetic", "oracle")]
        print(f"| {name} | {aucs[0]:.3f} | {aucs[1]:.3f} | {aucs[2]:.3f} | "
              f"{np.mean(real_values):.2f} | {np.mean(stats['refined'][name]):.2f} | "
              f"{np.mean(stats['synthetic'][name]):.2f} |", flush=True)


def stat_table(real: np.ndarray, sets: dict[str, np.ndarray]) -> None:
    """Per-image statistics of each set against real: one column of means per set, with each
    statistic's AUC against real (either way round)."""
    stats = {"real": depth_statistics(real)}
    stats.update({k: depth_statistics(v.reshape(-1, *real.shape[-2:])) for k, v in sets.items()})
    print("| per-image statistic | real | " + " | ".join(f"{k} (AUC)" for k in sets) + " |")
    print("|---" * (len(sets) + 2) + "|")
    for stat, real_values in stats["real"].items():
        cells = [f"{np.mean(stats[k][stat]):.2f} "
                 f"({auc_either_way(real_values, stats[k][stat]):.3f})" for k in sets]
        print(f"| {stat} | {np.mean(real_values):.2f} | " + " | ".join(cells) + " |", flush=True)


def kept_rows(real: np.ndarray, paths: list[str]) -> None:
    """The statistics of refined sets saved by ``ablate_refiner.py --keep``."""
    stat_table(real, {Path(path).stem: np.load(path) for path in paths})


def sensor_rows(p, layout: Layout, real: np.ndarray, n: int = 4000) -> None:
    """Two-sample test and per-image statistics of synthetic depth through the trained
    refiner's sensor alone, next to the refined set (conv layers and sensor)."""
    import torch

    from simgan.core.images import to_tensor, to_uint8
    from simgan.core.realism import two_sample_test
    from simgan.core.refiner.net import load_refiner
    from stages.artifacts import load_torch

    refiner = load_refiner(load_torch(layout.refiner_model))
    if refiner.sensor is None:
        raise SystemExit(f"{layout.refiner_model}: the refiner has no depth sensor "
                         "(hand.refiner.net.depth_sensor: false)")
    synthetic = np.asarray(open_dataset(layout.synthetic("train")).images[:n])
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        sensed = np.concatenate([to_uint8(refiner.sensor(to_tensor(synthetic[i : i + 256]), gen))
                                 for i in range(0, n, 256)])
    sets = {"synthetic through the sensor alone": sensed,
            "refined (the pipeline's)": np.asarray(open_dataset(layout.refined()).images[:n])}
    print("learned amounts:", {k: round(v, 3) for k, v in refiner.sensor.expected().items()})
    print("| set | AUC vs real (95% CI) | accuracy |\n|---|---|---|")
    for name, images in sets.items():
        r = two_sample_test(real, images[: len(real)], p.compare.realism)
        print(f"| {name} | {r.auc:.3f} ({r.auc_ci95_low:.3f}-{r.auc_ci95_high:.3f}) | "
              f"{r.accuracy:.3f} |", flush=True)
    stat_table(real, sets)


def main() -> None:
    """No argument: the oracle table. ``--refined``: the pipeline's refined set. ``--sensor``:
    its refiner's depth sensor alone on synthetic depth. ``--kept
    A.npy B.npy ...``: sets saved by ``ablate_refiner.py --keep``."""
    p = load_task_params(str(ROOT / "params.yaml"), "hand")
    layout = Layout(ROOT, "hand")
    real = np.asarray(open_dataset(layout.real("test")).images)
    args = sys.argv[1:]
    if args[:1] == ["--kept"]:
        kept_rows(real, args[1:])
    elif "--refined" in args:
        refined_rows(p, layout, real)
    elif "--sensor" in args:
        sensor_rows(p, layout, real)
    else:
        oracle_rows(p, real)


if __name__ == "__main__":
    main()
