"""The ceiling of refinement on the built-in gaze domains: an *oracle refiner* that shades the
synthetic training set's own geometry with the stand-in real appearance model.

    python benchmarks/oracle_refiner.py            # after `make run` (reads data/gaze)

Why: the realism targets (refined vs real AUC) and the gaze gain only mean something next to
what a perfect label-preserving refiner would reach. The oracle images have exactly the
synthetic labels and exactly the real appearance model; what still separates them from the
real test images is the content the refiner must not change (the synthetic gaze and pose
distribution). Prints and appends to ``reports/ablations/gaze.jsonl`` (row ``oracle``):
the real-test error of an estimator trained on oracle images, the realism AUC and KID ratio
of oracle vs real, computed exactly as ``benchmarks/ablate_refiner.py`` does for a refiner.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ablate_refiner import realism_figures  # noqa: E402

from simgan.core.dataset import open_dataset  # noqa: E402
from simgan.tasks import get_task, load_task_params  # noqa: E402
from stages.layout import Layout  # noqa: E402


def oracle_images(p, n: int) -> tuple[np.ndarray, pd.DataFrame]:
    """The first ``n`` synthetic training images' geometry, shaded as the real domain, and
    their labels (the synthetic ones, if the geometry is the synthetic set's)."""
    from simgan.gaze.render import iter_eye_chunks, synthetic_domain
    from simgan.gaze.task import real_domain

    synthetic, real = synthetic_domain(p.render.eye), real_domain(p.real.appearance)
    oracle = replace(synthetic, shade=real.shade)  # same seed code: same geometry per block
    chunks = iter_eye_chunks(p.render.eye, n, p.render.seed, p.render.chunk_size,
                             domain=oracle)
    images, labels = zip(*chunks, strict=True)
    return np.concatenate(images), pd.concat(labels, ignore_index=True)


def main() -> None:
    task, layout = get_task("gaze"), Layout(ROOT, "gaze")
    p = load_task_params(str(ROOT / "params.yaml"), "gaze")
    syn, real_test = open_dataset(layout.synthetic("train")), open_dataset(layout.real("test"))
    t0 = time.perf_counter()
    oracle, labels = oracle_images(p, len(syn.images))
    if not np.array_equal(labels["gaze_x"].to_numpy(), syn.labels["gaze_x"].to_numpy()):
        raise SystemExit("oracle geometry differs from the synthetic set's: params changed "
                         "since `make run`?")
    with tempfile.TemporaryDirectory() as tmp:
        model = task.train_estimator(p, oracle, syn.labels, Path(tmp), None)
    evaluation = task.evaluate(p, task.predict(p, model, real_test.images), real_test.labels)
    row = {
        "name": "oracle", "seed": None, "status": "ok",
        "mean_deg": evaluation.summary["mean_deg"], "summary": evaluation.summary,
        **realism_figures(p, real_test.images, syn.images, oracle),
        "seconds": time.perf_counter() - t0,
    }
    out = ROOT / "reports" / "ablations" / "gaze.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
