"""The review page's HTML from plain data (stages.review gathers it): pure string functions.

One file that opens anywhere, offline: CSS inline, figures as base64 data: URIs, no script.
Every number comes from the task's comparison.json (seeds.json when `make seeds` ran), so the
page and comparison.md cannot disagree; a task without reports is shown as "not run".
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from simgan.core.headline import headline_metrics

SOURCES = ("synthetic", "refined", "real")
PAIRS = ("synthetic_vs_real", "refined_vs_real")

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 70em; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: .5em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
.na { color: #999; } .notrun { color: #a33; font-weight: bold; }
.warn { background: #fff4d6; padding: .4em .8em; border-left: 4px solid #e0a800; }
img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: .85em; }
.meta { color: #555; font-size: .9em; }
nav a { margin-right: 1em; }
"""


@dataclass(frozen=True)
class TaskReport:
    """What the page shows of one task; ``comparison`` None means the task has not run."""

    name: str
    comparison: Mapping[str, Any] | None
    params: Mapping[str, Any] | None = None
    curves_png: bytes | None = None
    difference_png: bytes | None = None
    seeds: Mapping[str, Any] | None = None
    notes: Sequence[str] = field(default_factory=tuple)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 2) -> str:
    """A number cell's text; n/a for a missing value."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return '<span class="na">n/a</span>'
    return f"{value:.{digits}f}"


def img_tag(png: bytes, alt: str) -> str:
    """An <img> holding its PNG as a data: URI (the page needs no other file)."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str) -> str:
    """A table; header texts are escaped, cells are HTML already (numbers, n/a spans)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def table_spec(comparison: Mapping[str, Any]) -> dict[str, Any]:
    """The task's columns and headline as compare recorded them; for a comparison.json
    written before compare recorded them, every number of the real-test entries, raw."""
    if "table" in comparison:
        return dict(comparison["table"])
    keys = dict.fromkeys(k for s in SOURCES
                         for k, v in comparison["sources"][s]["real_test"].items()
                         if isinstance(v, (int, float)) and k != "n")
    first = next(iter(keys), "n")
    return {"columns": [[k, k] for k in keys] or [["n", "n"]], "headline": first,
            "higher_is_better": None}


def results_table(comparison: Mapping[str, Any]) -> str:
    """comparison.md's table: one row per training source, the task's columns on real test,
    its headline on synthetic test."""
    spec = table_spec(comparison)
    columns = [tuple(c) for c in spec["columns"]]
    header = ["trained on", *(f"real test: {t}" for _, t in columns),
              f"synthetic test: {columns[0][1]}"]
    rows = []
    for s in SOURCES:
        entry = comparison["sources"][s]
        rows.append([esc(s), *(num(entry["real_test"].get(k)) for k, _ in columns),
                     num(entry["synthetic_test"].get(columns[0][0]))])
    return table(header, rows, "results")


def relative_line(comparison: Mapping[str, Any]) -> str:
    spec = table_spec(comparison)
    relative = comparison.get("refined_vs_synthetic_relative_pct")
    if relative is None:
        return "<p>Refined vs synthetic on real test: not available (no labelled real test).</p>"
    better = {True: " (higher is better)", False: " (lower is better)"}.get(
        spec["higher_is_better"], "")
    headline = f" ({esc(spec['headline'])})" if spec["higher_is_better"] is not None else ""
    return (f"<p>Refined vs synthetic on real test{headline}: "
            f"<b>{relative:+.1f}%</b>{better}.</p>")


def unavailable_list(comparison: Mapping[str, Any]) -> str:
    missing = comparison.get("unavailable") or {}
    if not missing:
        return ""
    items = "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in missing.items())
    return f"<p>n/a cells:</p><ul>{items}</ul>"


def realism_table(comparison: Mapping[str, Any]) -> str:
    """AUC with its 95% interval and verdict, then KID, per pair; the KID ratio below."""
    realism, kid = comparison["realism"], comparison.get("kid", {})
    rows = []
    for pair in PAIRS:
        v, k = realism[pair], kid.get(pair)
        rows.append([
            esc(pair.replace("_", " ")), num(v["auc"], 3),
            f"{num(v['auc_ci95_low'], 3)}-{num(v['auc_ci95_high'], 3)}",
            num(v["accuracy"], 3), esc(v["n_test"]), esc(v["verdict"]),
            f"{k['mean']:.3e} &plusmn; {k['std']:.1e}" if k else num(None),
        ])
    out = table(["pair", "AUC", "AUC 95% CI", "accuracy", "n test", "verdict", "KID"], rows,
                "realism")
    ratio = comparison.get("kid_ratio_refined_over_synthetic")
    return out + (f"<p>KID refined&rarr;real / synthetic&rarr;real: <b>{num(ratio, 3)}</b> "
                  "(below 1: refinement moved the images towards real). AUC 0.5 = "
                  "indistinguishable, 1.0 = perfectly separable.</p>")


def preservation_table(comparison: Mapping[str, Any]) -> str:
    rows = [[esc(k), num(v, 3)] for k, v in comparison["label_preservation"].items()]
    return table(["label preservation", "value"], rows, "preservation")


def refiner_line(comparison: Mapping[str, Any]) -> str:
    r = comparison.get("refiner") or {}
    if not r:
        return ""
    line = (f"<p>Refiner: adversarial step {esc(r.get('selected_step'))} of "
            f"{esc(r.get('last_step'))} ({esc(r.get('criterion', '?'))}); structure "
            f"{num(r.get('structure'), 3)}, mean change {num(r.get('drift'))} gray levels.</p>")
    if r.get("identity"):
        line += (f'<p class="warn"><b>The refiner made no change</b>: '
                 f"{esc(r.get('identity_reason'))}.</p>")
    return line


def seeds_table(seeds: Mapping[str, Any]) -> str:
    """Per-seed figures from seeds.json: one row per seed, then mean &plusmn; sd."""
    columns = [*SOURCES, "refined_vs_synthetic_relative_pct", "realism_auc_refined_vs_real"]
    titles = [*(f"{s} ({seeds['metric']})" for s in SOURCES), "refined vs synthetic %",
              "AUC refined vs real"]
    rows = []
    for seed, row in seeds["per_seed"].items():
        if row.get("status") != "ok":
            rows.append([esc(seed), esc(row.get("experiment")),
                         f'<span class="notrun">failed: {esc(row.get("error"))}</span>',
                         *([""] * (len(columns) - 1))])
            continue
        rows.append([esc(seed), esc(row.get("experiment")), *(num(row.get(c)) for c in columns)])
    summary = seeds["summary"]

    def pm(stat: Mapping[str, Any] | None) -> str:
        if not stat or not stat.get("n"):
            return num(None)
        sd = stat.get("sd")
        return num(stat["mean"]) + ("" if sd is None else f" &plusmn; {sd:.2f}")
    rows.append(["<b>mean &plusmn; sd</b>", "", *(pm(summary.get(c)) for c in columns)])
    return table(["seed", "experiment", *titles], rows, "seeds")


def params_block(params: Mapping[str, Any] | None) -> str:
    if params is None:
        return '<p class="na">no params section</p>'
    text = esc(yaml.safe_dump(dict(params), sort_keys=False))
    return ("<details><summary>this task's section of params.yaml</summary>"
            f"<pre>{text}</pre></details>")


def task_section(report: TaskReport) -> str:
    """One task's part of the page; a short "not run" notice when it has no comparison."""
    title = f'<h2 id="{esc(report.name)}">{esc(report.name)}</h2>'
    notes = "".join(f'<p class="warn">{esc(n)}</p>' for n in report.notes)
    if report.comparison is None:
        return (f'{title}<p class="notrun">not run</p>{notes}'
                f"<p>reports/{esc(report.name)}/comparison.json is missing: "
                f"<code>make run TASKS={esc(report.name)}</code> builds it.</p>")
    c = report.comparison
    parts = [title, notes, "<h3>Estimators tested on real images</h3>", results_table(c),
             relative_line(c), unavailable_list(c)]
    if report.curves_png:
        parts.append(img_tag(report.curves_png, f"{report.name}: cumulative curves"))
    parts += ["<h3>Refiner</h3>", refiner_line(c)]
    if report.difference_png:
        parts.append(img_tag(report.difference_png,
                             f"{report.name}: synthetic, refined, difference, real"))
    parts += ["<h3>Realism</h3>", realism_table(c),
              "<h3>Label preservation</h3>", preservation_table(c)]
    if report.seeds:
        parts += [f"<h3>Refiner seeds ({esc(', '.join(map(str, report.seeds['seeds'])))})</h3>",
                  seeds_table(report.seeds)]
    parts += ["<h3>Params</h3>", params_block(report.params)]
    return "\n".join(p for p in parts if p)


def overview_table(reports: Sequence[TaskReport]) -> str:
    """One row per task: headline.json's numbers (the same ones `dvc metrics show` lists)."""
    columns = ("synthetic", "refined", "real", "refined_vs_synthetic_pct", "auc_refined",
               "kid_ratio", "preservation_px", "selected_step")
    rows = []
    for r in reports:
        if r.comparison is None:
            rows.append([esc(r.name), '<span class="notrun">not run</span>',
                         *([""] * len(columns))])
            continue
        spec = table_spec(r.comparison)
        h = headline_metrics(r.comparison, spec["headline"], spec.get("preservation", ""))
        rows.append([f'<a href="#{esc(r.name)}">{esc(r.name)}</a>', esc(h["metric"]),
                     *(num(h.get(c), 0 if c == "selected_step" else 3 if "auc" in c else 2)
                       for c in columns)])
    return table(["task", "measure on real test", "synthetic", "refined", "real",
                  "refined vs synthetic %", "AUC refined vs real", "KID ratio",
                  "label preservation (px)", "refiner step"], rows, "overview")


def page(reports: Sequence[TaskReport], commit: str) -> str:
    """The whole page: a header with the commit, a link per task, one section per task."""
    nav = " ".join(f'<a href="#{esc(r.name)}">{esc(r.name)}</a>' for r in reports)
    sections = "\n".join(task_section(r) for r in reports)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>simgan review</title>"
        f"<style>{CSS}</style></head><body>\n"
        "<h1>SimGAN: synthetic vs refined vs real</h1>\n"
        f'<p class="meta">built at commit <code>{esc(commit)}</code> &middot; one '
        "self-contained file (no network needed); details in reports/&lt;task&gt;/comparison.md"
        "</p>\n"
        f"<nav>{nav}</nav>\n<h2>At a glance</h2>\n{overview_table(reports)}\n"
        f"{sections}\n</body></html>\n"
    )
