"""Which appearance effect gives a gaze image away as not real: the realism test on oracle
images (see ``oracle_refiner.py``) with one effect of the real appearance model switched off.

    python benchmarks/realism_tells.py            # after `make run` (reads data/gaze)

Why: refined-vs-real AUC can stay at 1.0 while KID falls 30-fold; the classifier keys on
something the refiner does not make. Each row removes one effect from otherwise perfect
(oracle) refinement and measures how separable the result is from the real test images,
with the pipeline's two-sample test: a row near 1.0 names an effect the refiner must
reproduce for refined images to pass as real. Prints a markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path

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


def main(n: int = 4000) -> None:
    from simgan.core.realism import two_sample_test

    p = load_task_params(str(ROOT / "params.yaml"), "gaze")
    real_test = open_dataset(Layout(ROOT, "gaze").real("test")).images
    print("| effect switched off | AUC vs real (95% CI) | accuracy |\n|---|---|---|")
    for name, fields in WITHOUT.items():
        app = p.real.appearance.model_copy(update=fields)
        q = p.model_copy(update={"real": p.real.model_copy(update={"appearance": app})})
        r = two_sample_test(real_test, oracle_images(q, n)[0], p.compare.realism)
        print(f"| {name} | {r.auc:.3f} ({r.auc_ci95_low:.3f}-{r.auc_ci95_high:.3f}) | "
              f"{r.accuracy:.3f} |", flush=True)


if __name__ == "__main__":
    main()
