"""Can the conv refiner learn the eye *scene* when the capture is right? A bound for gaze realism.

    python benchmarks/capture_bound_gaze.py --check           # the fixed capture alone
    python benchmarks/capture_bound_gaze.py --seeds 0 [--name ROW] [--set KEY=VALUE ...]

Why: refined eyes stay at realism AUC 1.000 (docs/science.md). Two things must both be right
for them to pass: the capture (blur, tone, exposure, noise, JPEG; the learned camera and the
codec stages) and the scene (the conv layers: colours of skin, sclera and iris, limbus, crease,
texture). This script takes the capture out of the question: R's learned camera is replaced by
the stand-in real camera's own settings distributions, fixed (not learned), followed by the
stand-in's JPEG (``net.codec`` at its quality range). Then the conv layers train as usual, and
whatever realism gap remains is the scene's.

``--check`` runs the fixed capture on the synthetic training scenes with no conv layers: it must
land near the numpy bound of ``realism_tells.py --camera`` (AUC 0.947), or the torch copy of
the capture is not faithful. Training rows go to ``reports/ablations/gaze.jsonl`` like
``ablate_refiner.py``'s (same columns).

This is a bound, not an option: on real data the target camera is not known exactly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import ablate_refiner  # noqa: E402

from simgan.core.refiner import camera as camera_module  # noqa: E402
from simgan.core.refiner import net as net_module  # noqa: E402
from simgan.core.refiner.settings import LR_GAIN  # noqa: E402
from simgan.tasks import load_task_params  # noqa: E402

UNIFORM_SPREAD = 1.7
"""Logit spread whose logit-normal has about the standard deviation of a uniform range."""
OFFSET_SPREAD = 0.5
"""Offset range +-40 at logit spread 0.5: sd ~10 grey levels, the stand-in's brightness_std."""


def standin_camera_class(app) -> type:
    """A LearnedCamera whose settings follow the stand-in's capture ranges, frozen."""

    ranges = (
        ("blur_sigma", app.blur_sigma_min, app.blur_sigma_max),
        ("gamma", app.gamma_min, app.gamma_max),
        ("gain", app.contrast_min, app.contrast_max),
        ("offset", -4.0 * app.brightness_std, 4.0 * app.brightness_std),
        ("read_noise", app.noise_std_min, app.noise_std_max),
        ("shot_noise", app.shot_noise * 0.999, app.shot_noise * 1.001),
    )
    table = tuple((name, lo, hi, 0.5 * (lo + hi)) for name, lo, hi in ranges)  # start: mid

    class StandinCamera(camera_module.LearnedCamera):
        def __init__(self) -> None:
            camera_module.LearnedSettings.__init__(self, table, 1.0, "camera")
            spread = torch.full((len(table),), UNIFORM_SPREAD)
            spread[3] = OFFSET_SPREAD
            with torch.no_grad():
                self.mu.zero_()
                self.log_spread.copy_(spread.log() / LR_GAIN)
            self.requires_grad_(False)

    return StandinCamera


def patch(app) -> None:
    net_module.LearnedCamera = standin_camera_class(app)


def check(n: int = 4000) -> None:
    from simgan.core.dataset import open_dataset
    from simgan.core.realism import two_sample_test
    from simgan.core.refiner.apply import refine_images
    from stages.layout import Layout

    p = load_task_params(str(ROOT / "params.yaml"), "gaze")
    patch(p.real.appearance)
    layout = Layout(ROOT, "gaze")
    real = open_dataset(layout.real("test")).images
    syn = open_dataset(layout.synthetic("train")).images[:n]
    q = p.real.appearance
    capture = net_module.Refiner(scene=False, camera=True, codec=True,
                                 codec_quality=(q.jpeg_quality_min, q.jpeg_quality_max))
    shot = np.concatenate(list(refine_images(capture, syn, 256)))
    r = two_sample_test(real, shot, p.compare.realism)
    print(f"| synthetic scenes through the fixed stand-in capture (torch) | {r.auc:.3f} "
          f"({r.auc_ci95_low:.3f}-{r.auc_ci95_high:.3f}) | {r.accuracy:.3f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--name", default="conv layers + the stand-in's fixed capture (bound)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--keep", metavar="DIR", help="save refined samples (ablate_refiner.py)")
    ap.add_argument("--select-by", choices=("mmd", "latest"), help="as ablate_refiner.py's")
    args = ap.parse_args()
    if args.check:
        check()
        return
    app = load_task_params(str(ROOT / "params.yaml"), "gaze").real.appearance
    patch(app)
    quality = f"[{app.jpeg_quality_min}, {app.jpeg_quality_max}]"
    sys.argv = [sys.argv[0], "--task", "gaze", "--name", args.name, "--seeds",
                *map(str, args.seeds), "--set", "net.camera=true", "--set", "net.codec=true",
                "--set", f"net.codec_quality={quality}", *sum((["--set", s] for s in args.set),
                                                              []),
                *(["--keep", args.keep] if args.keep else []),
                *(["--select-by", args.select_by] if args.select_by else [])]
    ablate_refiner.main()


if __name__ == "__main__":
    main()
