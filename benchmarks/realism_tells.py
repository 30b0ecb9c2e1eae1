"""Which appearance effect gives a gaze image away as not real: the realism test on oracle
images (see ``oracle_refiner.py``) with one effect of the real appearance model switched off.

    python benchmarks/realism_tells.py            # after `make run` (reads data/gaze)
    python benchmarks/realism_tells.py --refined  # what gives the refined eyes away
    python benchmarks/realism_tells.py --camera   # the stand-in's own camera on other scenes
    python benchmarks/realism_tells.py --scene    # several scene effects off at once

The second form measures the default run's refined training set against the real test set:
the AUC of single per-image statistics, then the two-sample test after fixing the found
tells after the fact (black level, JPEG, blur), to see whether they are all there is.
The third puts the synthetic and the refined training images through the stand-in's own camera
(blur, response curve, exposure, noise, JPEG, each drawn per image as for the real images): the
most a camera stage after the refiner (``net.camera``, ``net.codec``) could do, when the scene
itself (texture, lashes, shadow, glints) is left as it is.

Why: refined-vs-real AUC can stay at 1.0 while KID falls 30-fold; the classifier keys on
something the refiner does not make. Each row removes one effect from otherwise perfect
(oracle) refinement and measures how separable the result is from the real test images,
with the pipeline's two-sample test: a row near 1.0 names an effect the refiner must
reproduce for refined images to pass as real. Prints a markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from oracle_refiner import oracle_images  # noqa: E402

from simgan.core.dataset import open_dataset  # noqa: E402
from simgan.tasks import load_task_params  # noqa: E402
from stages.layout import Layout  # noqa: E402

# one effect off per row: the appearance fields set to switch it off
WITHOUT = {
    "nothing (oracle)": {},
    "glints": {"glint_prob": 0.0},
    "jpeg": {"jpeg_quality_min": 100, "jpeg_quality_max": 100},
    "blur": {"blur_sigma_min": 0.0, "blur_sigma_max": 0.0},
    "sensor noise": {"noise_std_min": 0.0, "noise_std_max": 0.0, "shot_noise": 0.0},
    "lashes": {"lash_strength": 0.0},
    "texture": {"texture_strength": 0.0},
    "lid shadow": {"lid_shadow": 0.0},
}

# several scene effects off together (``--scene``): how much of the gap is the four named
# effects, and how much the palette and shading a refiner's conv layers must also make
SCENE_OFF = {
    "glints, lashes, lid shadow (texture on)": {
        "glint_prob": 0.0, "lash_strength": 0.0, "lid_shadow": 0.0},
    "glints, lid shadow (texture and lashes on)": {"glint_prob": 0.0, "lid_shadow": 0.0},
    "lashes, texture (glints and lid shadow on)": {"lash_strength": 0.0, "texture_strength": 0.0},
    "all four: glints, lashes, lid shadow, texture": {
        "glint_prob": 0.0, "lash_strength": 0.0, "lid_shadow": 0.0, "texture_strength": 0.0},
}


def main(n: int = 4000, rows: dict[str, dict] = WITHOUT) -> None:
    from simgan.core.realism import two_sample_test

    p = load_task_params(str(ROOT / "params.yaml"), "gaze")
    real_test = open_dataset(Layout(ROOT, "gaze").real("test")).images
    print("| effect switched off | AUC vs real (95% CI) | accuracy |\n|---|---|---|")
    for name, fields in rows.items():
        app = p.real.appearance.model_copy(update=fields)
        q = p.model_copy(update={"real": p.real.model_copy(update={"appearance": app})})
        r = two_sample_test(real_test, oracle_images(q, n)[0], p.compare.realism)
        print(f"| {name} | {r.auc:.3f} ({r.auc_ci95_low:.3f}-{r.auc_ci95_high:.3f}) | "
              f"{r.accuracy:.3f} |", flush=True)


def per_image_statistics(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics of (N, H, W) grey images that a realism test might key on."""
    lap = 4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
    dx, dy = np.abs(np.diff(x, axis=2)), np.abs(np.diff(x, axis=1))
    border = dx[:, :, 7::8].mean((1, 2)) + dy[:, 7::8].mean((1, 2))
    return {
        "mean grey level": x.mean((1, 2)),
        "standard deviation": x.std((1, 2)),
        "mean absolute Laplacian": np.abs(lap).mean((1, 2)),
        "darkest pixel": x.min((1, 2)),
        "edge jump at 8-px block borders / elsewhere": border / (dx.mean((1, 2)) + dy.mean((1, 2))),
    }


def auc_either_way(a: np.ndarray, b: np.ndarray) -> float:
    """How well one per-image statistic separates sets ``a`` and ``b`` used alone as the
    score: its AUC, whichever side scores higher (a statistic can tell either way round)."""
    from simgan.core.realism import auc_delong

    scores = np.r_[a, b].astype(np.float64)
    labels = np.r_[np.ones(len(a)), np.zeros(len(b))]
    auc = auc_delong(scores, labels)[0]
    return max(auc, 1.0 - auc)


def grey(images, n: int) -> np.ndarray:
    """The first ``n`` images of a dataset as float32 (N, H, W), 0-255."""
    return np.asarray(images[:n], dtype=np.float32).reshape(-1, *images.shape[-2:])


def as_images(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Float grey images rounded to uint8 in the layout of dataset images ``like``."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, *like.shape[1:])


def refined_tells(n: int = 4000) -> None:
    from simgan.core.realism import two_sample_test
    from simgan.gaze.standin import gaussian_blur, jpeg_like

    p = load_task_params(str(ROOT / "params.yaml"), "gaze")
    layout = Layout(ROOT, "gaze")
    real = open_dataset(layout.real("test")).images

    sets = {"real": grey(real, n), "refined": grey(open_dataset(layout.refined()).images, n),
            "synthetic": grey(open_dataset(layout.synthetic("train")).images, n)}
    stats = {k: per_image_statistics(v) for k, v in sets.items()}
    print("| per-image statistic | AUC refined vs real | AUC synthetic vs real | real mean | "
          "refined mean |\n|---|---|---|---|---|")
    for name, real_values in stats["real"].items():
        aucs = [auc_either_way(real_values, stats[other][name])
                for other in ("refined", "synthetic")]
        print(f"| {name} | {aucs[0]:.3f} | {aucs[1]:.3f} | {real_values.mean():.2f} | "
              f"{stats['refined'][name].mean():.2f} |", flush=True)
    rng = np.random.default_rng(0)
    app = p.real.appearance

    def jpeg(x: np.ndarray) -> np.ndarray:
        q = rng.integers(app.jpeg_quality_min, app.jpeg_quality_max + 1, len(x))
        return jpeg_like(np.clip(x, 0.0, 255.0), q)

    def lift(x: np.ndarray) -> np.ndarray:
        return 30.0 + x * (1.0 - 30.0 / 255.0)

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_blur(x, np.full(len(x), 0.7, np.float32))

    fixes = {"black level lifted to 30": lift, "+ the stand-in's JPEG": lambda x: jpeg(lift(x)),
             "+ 0.7 px blur first": lambda x: jpeg(lift(blur(x)))}
    print("\n| refined images, fixed after the fact | AUC vs real | accuracy |\n|---|---|---|")
    for name, fix in fixes.items():
        r = two_sample_test(real, as_images(fix(sets["refined"].copy()), real),
                            p.compare.realism)
        print(f"| {name} | {r.auc:.3f} | {r.accuracy:.3f} |", flush=True)


def camera_bound(n: int = 4000) -> None:
    from simgan.core.realism import two_sample_test
    from simgan.gaze.standin import capture

    p = load_task_params(str(ROOT / "params.yaml"), "gaze")
    layout = Layout(ROOT, "gaze")
    real = open_dataset(layout.real("test")).images
    scenes = {"synthetic": open_dataset(layout.synthetic("train")).images,
              "refined (default run)": open_dataset(layout.refined()).images}
    print("| scene, through the stand-in's camera | AUC vs real (95% CI) | accuracy |\n"
          "|---|---|---|")
    for name, images in scenes.items():
        shot = capture(grey(images, n), np.random.default_rng(5), p.real.appearance)
        r = two_sample_test(real, as_images(shot, real), p.compare.realism)
        print(f"| {name} | {r.auc:.3f} ({r.auc_ci95_low:.3f}-{r.auc_ci95_high:.3f}) | "
              f"{r.accuracy:.3f} |", flush=True)


if __name__ == "__main__":
    if "--refined" in sys.argv[1:]:
        refined_tells()
    elif "--camera" in sys.argv[1:]:
        camera_bound()
    elif "--scene" in sys.argv[1:]:
        main(rows=SCENE_OFF)
    else:
        main()
