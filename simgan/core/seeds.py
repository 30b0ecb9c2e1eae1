"""The spread over refiner seeds: one comparison.json per seed in; mean, sd and the worst seed
of every headline figure out (seeds.json), and the same as a table (seeds.md).

Why: the refiner seed changes the refined training set and nothing else, and one seed's gain
can be luck (hand: +6.5 points with seed 0, +2.9 on average over seeds 0-2). A seed that
failed is reported as failed, never averaged away: dropping it silently would flatter the
mean. Pure functions on plain dicts (the comparison.json structure written by
``stages/compare.py``); the DVC experiments that produce them are ``stages/seeds.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SOURCES = ("synthetic", "refined", "real")
REALISM_PAIRS = ("refined_vs_real", "synthetic_vs_real")
RELATIVE = "refined_vs_synthetic_relative_pct"


@dataclass(frozen=True)
class SeedRun:
    """One seed's outcome: its comparison.json, or why there is none (``error``).

    ``stages_run``: the pipeline stages its experiment executed (None: not known, e.g. the
    workspace), the evidence that unchanged stages were reused."""

    seed: int
    comparison: Mapping[str, Any] | None
    experiment: str = ""
    error: str | None = None
    stages_run: tuple[str, ...] | None = None

    @property
    def failed(self) -> bool:
        return self.comparison is None


def lookup(tree: Mapping[str, Any] | None, path: str) -> float | None:
    """``tree["a"]["b"]`` for ``path`` "a.b", as a finite float; None when absent (an
    evaluation without numbers, e.g. an unlabelled real test set) or not a number."""
    node: Any = tree
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        return None
    return float(node) if math.isfinite(node) else None


def spread(values: Mapping[int, float | None], higher_is_better: bool | None = None
           ) -> dict[str, Any]:
    """Mean, sample sd (n - 1; None below two values) and n over the seeds that have a value;
    with a direction, also the worst value and its seed (highest error, lowest %)."""
    got = {seed: v for seed, v in sorted(values.items()) if v is not None}
    n = len(got)
    mean = sum(got.values()) / n if n else None
    sd = (math.sqrt(sum((v - mean) ** 2 for v in got.values()) / (n - 1))
          if n > 1 and mean is not None else None)
    out: dict[str, Any] = {"mean": mean, "sd": sd, "n": n}
    if higher_is_better is not None:
        pick = min if higher_is_better else max
        worst_seed = pick(got, key=lambda s: got[s]) if got else None
        out["worst"] = got[worst_seed] if worst_seed is not None else None
        out["worst_seed"] = worst_seed
    return out


def summarize(runs: Sequence[SeedRun], *, task: str, headline: str, higher_is_better: bool,
              columns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """seeds.json: the headline per source (refined with its worst seed), realism AUCs and
    accuracies, refined vs synthetic, label preservation and every table column, each as
    mean and sd over the seeds that finished; the failed seeds listed under ``failed``."""
    ok = [r for r in runs if not r.failed]

    def over(path: str, direction: bool | None = None) -> dict[str, Any]:
        return spread({r.seed: lookup(r.comparison, path) for r in ok}, direction)

    summary: dict[str, Any] = {
        s: over(f"sources.{s}.real_test.{headline}", higher_is_better) for s in SOURCES}
    for pair in REALISM_PAIRS:
        summary[f"realism_auc_{pair}"] = over(f"realism.{pair}.auc")
        summary[f"realism_accuracy_{pair}"] = over(f"realism.{pair}.accuracy")
    summary[RELATIVE] = over(RELATIVE, higher_is_better)
    preservation_keys = dict.fromkeys(
        k for r in ok for k in (r.comparison or {}).get("label_preservation", {}))
    summary["label_preservation"] = {
        k: over(f"label_preservation.{k}") for k in preservation_keys}
    summary["table"] = {
        f"{split}.{key}": {s: over(f"sources.{s}.{split}.{key}") for s in SOURCES}
        for split, key in table_cells(headline, columns)}
    return {
        "task": task,
        "metric": f"real_test.{headline}",
        "higher_is_better": higher_is_better,
        "seeds": [r.seed for r in runs],
        "failed": [r.seed for r in runs if r.failed],
        "per_seed": {str(r.seed): per_seed(r, headline) for r in runs},
        "summary": summary,
    }


def table_cells(headline: str, columns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(split, key) of comparison.md's table: the task's columns on real test, then its
    headline on synthetic test."""
    return [("real_test", key) for key, _ in columns] + [("synthetic_test", headline)]


def per_seed(run: SeedRun, headline: str) -> dict[str, Any]:
    """One seed's row of seeds.json: where it came from, and its figures or its error."""
    row: dict[str, Any] = {"status": "failed" if run.failed else "ok",
                           "experiment": run.experiment}
    if run.stages_run is not None:
        row["stages_run"] = list(run.stages_run)
    if run.failed:
        row["error"] = run.error or "unknown error"
        return row
    for s in SOURCES:
        row[s] = lookup(run.comparison, f"sources.{s}.real_test.{headline}")
    row[RELATIVE] = lookup(run.comparison, RELATIVE)
    for pair in REALISM_PAIRS:
        row[f"realism_auc_{pair}"] = lookup(run.comparison, f"realism.{pair}.auc")
    return row


# ------------------------------------------------------------------------------ seeds.md


def pm(stat: Mapping[str, Any], digits: int = 2) -> str:
    """``mean ± sd``; one seed: its value and "(1 seed)"; fewer values than seeds: "(n=k)"."""
    if not stat.get("n"):
        return "n/a"
    mean = f"{stat['mean']:.{digits}f}"
    if stat["sd"] is None:
        return f"{mean} (1 seed)"
    return f"{mean} ± {stat['sd']:.{digits}f}"


def render_markdown(report: Mapping[str, Any], columns: Sequence[tuple[str, str]],
                    seed_param: str) -> str:
    """seeds.md from seeds.json (so the two cannot disagree): the comparison table with
    mean ± sd per cell, refined vs synthetic, realism, label preservation, failures, and
    one row per seed with the stages its experiment ran."""
    s, headline = report["summary"], report["metric"].split(".", 1)[1]
    ok = [x for x in report["seeds"] if x not in report["failed"]]
    direction = "higher" if report["higher_is_better"] else "lower"
    worst = s["refined"]
    lines = [
        f"# {report['task']}: refiner seeds {', '.join(map(str, report['seeds']))}",
        "",
        f"One pipeline run per value of `{seed_param}`; mean ± sd (sample sd) over the "
        f"{len(ok)} seed(s) that finished. Only the refined estimator depends on the refiner "
        "seed: the synthetic and real ones are the same in every seed.",
        "",
        *_failed_lines(report),
        *_table(report, columns),
        "",
        f"Worst seed (refined, real test {headline}, {direction} is better): "
        + (f"{worst['worst']:.2f} (seed {worst['worst_seed']})." if worst["n"] else "n/a."),
        "",
        f"Refined vs synthetic on real test ({headline}): {pm(s[RELATIVE], 1)} % "
        f"({direction} is better).",
        "",
        "## Realism (classifier two-sample test, 0.5 = indistinguishable)",
        "",
        "| pair | accuracy | AUC |",
        "|---|---|---|",
        *[f"| {p.replace('_', ' ')} | {pm(s[f'realism_accuracy_{p}'], 3)} | "
          f"{pm(s[f'realism_auc_{p}'], 3)} |" for p in REALISM_PAIRS],
        "",
        "## Label preservation",
        "",
        *[f"- {k}: {pm(v, 3)}" for k, v in s["label_preservation"].items()],
        "",
        *_per_seed_table(report),
        "",
    ]
    return "\n".join(lines)


def _failed_lines(report: Mapping[str, Any]) -> list[str]:
    if not report["failed"]:
        return []
    rows = report["per_seed"]
    return [f"**Failed: seed {seed}** ({rows[str(seed)]['experiment']}): "
            f"{rows[str(seed)]['error']}. Not in the means below." for seed in report["failed"]
            ] + [""]


def _table(report: Mapping[str, Any], columns: Sequence[tuple[str, str]]) -> list[str]:
    """comparison.md's table, each cell mean ± sd over the seeds."""
    headline = report["metric"].split(".", 1)[1]
    titles = dict(columns)
    cells = table_cells(headline, columns)
    head = [f"{split.replace('_', ' ')}: {titles[key]}" for split, key in cells]
    lines = ["| trained on | " + " | ".join(head) + " |", "|---" * (len(cells) + 1) + "|"]
    for source in SOURCES:
        row = [pm(report["summary"]["table"][f"{split}.{key}"][source]) for split, key in cells]
        lines.append(f"| {source} | " + " | ".join(row) + " |")
    return lines


def _per_seed_table(report: Mapping[str, Any]) -> list[str]:
    headline = report["metric"].split(".", 1)[1]
    lines = [
        "## Per seed",
        "",
        "| seed | experiment | synthetic | refined | real | refined vs synthetic (%) | "
        "AUC refined vs real | stages run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed in report["seeds"]:
        row = report["per_seed"][str(seed)]
        ran = (", ".join(row["stages_run"]) if "stages_run" in row
               else "(workspace)" if row["experiment"] == "workspace" else "n/a")
        if row["status"] == "failed":
            lines.append(f"| {seed} | {row['experiment']} | failed | failed | failed | "
                         f"| | {ran} |")
            continue
        nums = [_num(row[k]) for k in (*SOURCES, RELATIVE, "realism_auc_refined_vs_real")]
        lines.append(f"| {seed} | {row['experiment']} | " + " | ".join(nums) + f" | {ran} |")
    return lines + ["", f"(synthetic, refined, real: real test {headline})"]


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
