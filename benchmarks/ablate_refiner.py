"""Refiner ablations over seeds: one row = params overrides of ``<task>.refiner``, run for
every seed on the datasets the pipeline already wrote (run `make run` first).

    python benchmarks/ablate_refiner.py --task gaze --name label1000 \
        --set train.lambda_label=1000 --seeds 0 1 2

Per seed: train the refiner (its own checkpoint dir), refine the synthetic train set, train
the task's estimator on it, test it on the real test set (the pipeline's metric), and score
realism (classifier two-sample test, refined vs real). Real labels are used only for that final
test, as in the pipeline. Rows are appended to ``reports/ablations/<task>.jsonl``; the table
printed at the end (mean +/- sd over seeds per row) is what docs/science.md and docs/hand.md
quote. Failed seeds are recorded as failed, not dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simgan.core.dataset import open_dataset  # noqa: E402
from simgan.tasks import get_task, load_task_params  # noqa: E402
from stages.layout import Layout  # noqa: E402


def _override(data: dict, model, key: str, value: str, where: str) -> None:
    """Set ``data[...key]`` (a dump of ``model``; dotted keys walk sub-sections) to YAML
    ``value``, refusing keys ``model`` does not have (dumps may leave old defaults out)."""
    *path, leaf = key.split(".")
    for part in path:
        data, model = data[part], getattr(model, part)
    allowed = list(type(model).model_fields)
    if leaf not in allowed:
        raise SystemExit(f"{key}: not a key of {where} (allowed: {allowed})")
    data[leaf] = yaml.safe_load(value)


def with_overrides(params, task: str, overrides: list[str], section: str = "refiner"):
    """``params`` with ``key=value`` overrides of ``section`` (values are YAML)."""
    data = params.model_dump(mode="json")
    for item in overrides:
        key, _, value = item.partition("=")
        _override(data[section], getattr(params, section), key, value, f"{task}.{section}")
    return type(params).model_validate(data)


def label_model_state(task, p, layout: Layout, work: Path) -> dict | None:
    """The refiner's label model, as ``train_refiner`` gets it: the pipeline's
    synthetic-trained estimator, or (when ``refiner.label_model`` asks for augmentation, e.g.
    ``--set label_model.blur_jitter=1.5``) one trained here on the synthetic training set with
    it. Synthetic labels only, as in the pipeline."""
    from simgan.core import torchfile

    if p.refiner.train.lambda_label <= 0:
        return None
    syn = open_dataset(layout.synthetic("train"))
    t0 = time.perf_counter()
    model = task.train_label_model(p, syn.images, syn.labels, work / "label_model")
    if model is None:
        return torchfile.load(layout.estimator_model("synthetic"))["state_dict"]
    real_test = open_dataset(layout.real("test"))
    evaluation = task.evaluate(p, task.predict(p, model, real_test.images), real_test.labels)
    # a control, not a refiner result: the label model itself on the real test set
    print(json.dumps({"label_model": p.refiner.label_model.model_dump(),
                      "seconds": time.perf_counter() - t0,
                      task.headline: evaluation.summary[task.headline]}), flush=True)
    return model.state_dict()


def run_seed(task, p, layout: Layout, seed: int, work: Path, label_state: dict | None,
             estimator_set: list[str], keep: Path | None = None,
             select_by: str | None = None) -> dict:
    """One seed of one row: the refiner, the refined set, the estimator, its real-test error.
    ``keep``: save the first 1,000 refined images there (.npy), to look at or measure."""
    from simgan.core.refiner.apply import refine_images
    from simgan.core.refiner.trainer import train_refiner

    p = p.model_copy(update={"refiner": p.refiner.model_copy(update={
        "train": p.refiner.train.model_copy(update={"seed": seed})})})
    syn = open_dataset(layout.synthetic("train"))
    real_train, real_test = open_dataset(layout.real("train")), open_dataset(layout.real("test"))
    label_model = None if label_state is None else task.label_model(p, label_state)
    t0 = time.perf_counter()
    result = train_refiner(syn.images, real_train.images, p.refiner.net,
                           p.refiner.discriminator, p.refiner.train, work / "refiner",
                           select_by=select_by or task.refiner_select_by(p),
                           label_model=label_model)
    t_refiner = time.perf_counter() - t0
    from simgan.core.refiner.net import load_refiner, refiner_file

    refiner = load_refiner(refiner_file(result.selected_state, p.refiner.net, result.selection))
    refined = np.concatenate(list(refine_images(refiner, syn.images, p.refine.batch_size)))
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        np.save(keep, refined[:1000])
    t1 = time.perf_counter()
    q = with_overrides(p, task.name, estimator_set, "estimator")
    model = task.train_estimator(q, refined, syn.labels, work / "estimator", None)
    t_est = time.perf_counter() - t1
    evaluation = task.evaluate(p, task.predict(p, model, real_test.images), real_test.labels)
    sel = result.selection
    return {
        "seed": seed, "status": "ok", task.headline: evaluation.summary[task.headline],
        "summary": evaluation.summary,
        **realism_figures(p, real_test.images, syn.images, refined),
        "selected_step": sel["selected_step"], "structure": sel["structure"],
        "drift": sel["drift"], "mmd_ratio": sel["mmd_ratio"],
        "label_shift": sel.get("label_shift"),
        "seconds_refiner": t_refiner, "seconds_estimator": t_est,
    }


def realism_figures(p, real: np.ndarray, synthetic: np.ndarray, candidate: np.ndarray) -> dict:
    """How far ``candidate`` (refined ``synthetic``, row for row) is from ``real``: the
    pipeline's two-sample test and its KID ratio over synthetic's (None without a gap)."""
    from simgan.core.kid import kid_against
    from simgan.core.realism import two_sample_test

    realism = two_sample_test(real, candidate, p.compare.realism)
    kids = kid_against(real, {"synthetic": synthetic, "candidate": candidate}, p.compare.kid)
    gap = kids["synthetic"].mean
    return {"realism_auc": realism.auc, "realism_accuracy": realism.accuracy,
            "kid_ratio": kids["candidate"].mean / gap if gap > 0 else None}


def table(rows: list[dict], headline: str) -> str:
    """Mean +/- sd over seeds for every row name, in the order first seen."""
    names = list(dict.fromkeys(r["name"] for r in rows))
    keys = (headline, "realism_auc", "kid_ratio", "drift", "structure", "selected_step")
    out = [f"| row | n ok / failed | {' | '.join(keys)} |", "|---" * (len(keys) + 2) + "|"]
    for name in names:
        ok = [r for r in rows if r["name"] == name and r["status"] == "ok"]
        failed = sum(1 for r in rows if r["name"] == name and r["status"] != "ok")
        cells = []
        for k in keys:
            v = np.array([r[k] for r in ok if r.get(k) is not None], dtype=float)
            cells.append(f"{v.mean():.3g} +/- {v.std(ddof=1) if len(v) > 1 else 0:.2g}"
                         if len(v) else "n/a")
        out.append(f"| {name} | {len(ok)} / {failed} | {' | '.join(cells)} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--name", required=True, help="row name in the table")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override of <task>.refiner, e.g. train.lambda_label=1000")
    ap.add_argument("--estimator-set", action="append", default=[], metavar="KEY=VALUE",
                    help="train the refined-trained estimator with this override of "
                    "<task>.estimator (e.g. a control with augmentation)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="save each seed's first 1,000 refined images as DIR/<name>-<seed>.npy")
    ap.add_argument("--select-by", choices=("mmd", "latest"),
                    help="override the task's checkpoint rule (selection.py): near real the "
                    "mmd can stop ranking checkpoints")
    args = ap.parse_args()
    task = get_task(args.task)
    p = with_overrides(load_task_params(args.params, args.task), args.task, args.set)
    out = ROOT / "reports" / "ablations" / f"{args.task}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    layout = Layout(ROOT, args.task)
    with tempfile.TemporaryDirectory() as tmp:
        label_state = label_model_state(task, p, layout, Path(tmp))
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                keep = (None if args.keep is None else
                        args.keep / f"{''.join(c if c.isalnum() else '_' for c in args.name)}"
                        f"-{seed}.npy")
                row = run_seed(task, p, layout, seed, Path(tmp), label_state,
                               args.estimator_set, keep, args.select_by)
            except Exception as exc:  # a failed seed is a result too
                traceback.print_exc()
                row = {"seed": seed, "status": f"failed: {type(exc).__name__}: {exc}"}
        row.update(name=args.name,
                   overrides=args.set + [f"estimator:{o}" for o in args.estimator_set]
                   + ([f"select_by:{args.select_by}"] if args.select_by else []))
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    print(table(rows, task.headline))


if __name__ == "__main__":
    main()
