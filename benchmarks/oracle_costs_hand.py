"""What a perfect depth refiner would pay in the refiner's own terms: the label-consistency
term, the self-regularisation and the selection guards, for the *oracle* (the synthetic
training set's geometry seen through the stand-in Kinect) next to refined sets.

    python benchmarks/oracle_costs_hand.py                       # after `make run`
    python benchmarks/oracle_costs_hand.py --label-model lm.pt   # another label model's reading
    python benchmarks/oracle_costs_hand.py --kept A.npy B.npy    # sets from ablate_refiner --keep
    python benchmarks/oracle_costs_hand.py --preservation        # compare's label check on them

Why: refined depth stays far from real (AUC 0.94-1.00) while the oracle reaches 0.59. If the
objective or the guards charge the oracle more than what the refiner reached, the refiner is
held back by them, not by its capacity. ``--label-model`` takes a state dict of the hourglass
(``torch.save(model.state_dict(), path)``, e.g. a sensor-blind one); default: the pipeline's
synthetic-trained hourglass, the default label model. ``--preservation`` scores the sets with
``compare``'s label-preservation measure instead (the synthetic-trained estimator's error against
the synthetic labels, on the first ``-n`` images): the oracle's row is what that measure charges
a refiner that moved no joint. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.realism_tells_hand import oracle_depth  # noqa: E402
from simgan.core import torchfile  # noqa: E402
from simgan.core.dataset import open_dataset  # noqa: E402
from simgan.core.refiner.losses import label_shift  # noqa: E402
from simgan.core.refiner.selection import (  # noqa: E402
    drift_grey_levels,
    structure_similarity,
    within_guards,
)
from simgan.tasks import get_task, load_task_params  # noqa: E402
from stages.layout import Layout  # noqa: E402


def to_unit(codes: np.ndarray) -> torch.Tensor:
    """uint8 depth codes (N, H, W) or (N, 1, H, W) -> (N, 1, H, W) floats in [-1, 1]."""
    x = np.asarray(codes, dtype=np.float32)
    return torch.from_numpy(x.reshape(len(x), 1, *x.shape[-2:]) / 127.5 - 1.0)


@torch.inference_mode()
def refiner_costs(label_model: torch.nn.Module, decode, synthetic: torch.Tensor,
                  candidate: torch.Tensor, batch: int = 256) -> dict[str, float]:
    """Means over the images of what the refiner's terms see when R(x) = ``candidate`` for
    x = ``synthetic`` (both (N, 1, H, W) in [-1, 1]): the label model's heatmap shift (the
    label term before its weight), the shift of its decoded joints (px of the crop), the mean
    |R(x) - x| in grey levels (the drift guard; the L1 self-regularisation is it / 127.5)
    and the blurred correlation (the structure guard)."""
    heat, joints, drift, structure = [], [], [], []
    for i in range(0, len(synthetic), batch):
        x, r = synthetic[i:i + batch], candidate[i:i + batch]
        hx, hr = label_model(x), label_model(r)
        heat.append(label_shift(hr, hx))
        uv = (decode(hr) - decode(hx)) * label_model.stride
        joints.append(uv.norm(dim=-1).mean(1))
        drift.append(drift_grey_levels(r, x))
        structure.append(structure_similarity(r, x))
    return {name: float(torch.cat(v).mean()) for name, v in
            (("label shift", heat), ("joint shift px", joints), ("drift", drift),
             ("structure", structure))}


def preservation_rows(task, p, layout: Layout, sets: dict[str, torch.Tensor], n: int) -> None:
    """``compare``'s label preservation (the synthetic-trained estimator on synthetic images
    and on each set's versions of them, against the synthetic labels) on the first ``n``."""
    data = open_dataset(layout.synthetic("train"))
    synthetic = np.asarray(data.images[:n])
    labels = data.labels.iloc[:n].reset_index(drop=True)

    def estimator(source: str):
        return task.load_estimator(p, torchfile.load(layout.estimator_model(source))["state_dict"])

    p = p.model_copy(update={"compare": p.compare.model_copy(update={"preservation_n": n})})
    print("| set | synthetic: mean px | set: mean px | change (px) | % joints within 5 px: "
          "synthetic -> set |\n|---|---|---|---|---|")
    for name, images in sets.items():
        codes = np.rint((images[:, 0].numpy() + 1.0) * 127.5).astype(np.uint8)
        out = task.label_preservation(p, synthetic, codes, labels, estimator)
        print(f"| {name} | {out['synthetic_mean_px']:.3f} | {out['refined_mean_px']:.3f} | "
              f"{out['delta_mean_px']:+.3f} | {out['synthetic_pct_joints_within']:.1f} -> "
              f"{out['refined_pct_joints_within']:.1f} |", flush=True)


def main() -> None:
    from simgan.hand.estimator import decode_heatmaps

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--label-model", type=Path, help="hourglass state dict (default: the "
                    "pipeline's synthetic-trained one)")
    ap.add_argument("--kept", nargs="*", default=[], help="refined sets (.npy) to add")
    ap.add_argument("-n", type=int, default=1024, help="images per set")
    ap.add_argument("--preservation", action="store_true",
                    help="compare's label-preservation measure of each set")
    args = ap.parse_args()
    task, layout = get_task("hand"), Layout(ROOT, "hand")
    p = load_task_params(str(ROOT / "params.yaml"), "hand")
    state = (torch.load(args.label_model, weights_only=True) if args.label_model
             else torchfile.load(layout.estimator_model("synthetic"))["state_dict"])
    label_model = task.label_model(p, state).eval()
    synthetic = to_unit(open_dataset(layout.synthetic("train")).images[:args.n])
    sets = {"oracle": to_unit(oracle_depth(p, args.n)),
            "pipeline's refined set": to_unit(open_dataset(layout.refined()).images[:args.n])}
    sets.update({Path(k).stem: to_unit(np.load(k)[:args.n]) for k in args.kept})
    if args.preservation:
        preservation_rows(task, p, layout, sets, args.n)
        return
    t = p.refiner.train
    print(f"guards: structure >= {t.select_min_structure}, drift <= {t.select_max_drift}; "
          f"label term weight {t.lambda_label}, self-regularisation {t.lambda_reg}\n")
    print("| set | label shift (x weight) | joint shift px | drift | structure | guards |\n"
          "|---|---|---|---|---|---|")
    for name, images in sets.items():
        c = refiner_costs(label_model, decode_heatmaps, synthetic, images)
        ok = within_guards(c, t.select_min_structure, t.select_max_drift)
        print(f"| {name} | {c['label shift']:.3f} ({c['label shift'] * t.lambda_label:.1f}) | "
              f"{c['joint shift px']:.2f} | {c['drift']:.2f} | {c['structure']:.4f} | "
              f"{'pass' if ok else 'fail'} |", flush=True)


if __name__ == "__main__":
    main()
