"""Stages side by side: the scheduling on hand-made graphs, then real DVC on a toy project.

The toy stages record when they start and end, so the test sees that two stages overlapped in
time, that a stage never started before its upstream ended, and that DVC recorded every stage
in dvc.lock (a second run has nothing to do).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from flows.environment import project_environment
from flows.side_by_side import run_side_by_side, threads_per_stage
from flows.stage_graph import changed_stages, stage_graph

ROOT = Path(__file__).resolve().parents[1]


def _fake_runner(durations: dict[str, float], fail: set[str] = frozenset()):
    """A start() whose stages sleep, log (name, start, end) and fail when named in ``fail``."""
    pool = ThreadPoolExecutor(max_workers=8)
    spans: dict[str, tuple[float, float]] = {}
    lock = threading.Lock()

    def body(name: str) -> dict[str, object]:
        began = time.monotonic()
        time.sleep(durations.get(name, 0.05))
        with lock:
            spans[name] = (began, time.monotonic())
        if name in fail:
            raise RuntimeError(f"{name} broke")
        return {"status": "ran"}

    def start(name: str) -> Future:
        return pool.submit(body, name)

    return start, spans


def test_independent_stages_overlap_and_dependents_wait() -> None:
    graph = {"a": (), "b": (), "c": ("a",), "d": ("b", "c")}
    start, spans = _fake_runner({"a": 0.3, "b": 0.3, "c": 0.1, "d": 0.05})
    outcomes, errors = run_side_by_side(graph, start, 2, poll_seconds=0.01, log=lambda _: None)
    assert not errors
    assert [o["status"] for o in outcomes.values()] == ["ran"] * 4
    # a and b ran at the same time; c after a; d after both b and c
    assert spans["b"][0] < spans["a"][1] and spans["a"][0] < spans["b"][1]
    assert spans["c"][0] >= spans["a"][1]
    assert spans["d"][0] >= max(spans["b"][1], spans["c"][1])


def test_never_more_than_max_parallel_at_once() -> None:
    graph = {name: () for name in "abcdef"}
    start, spans = _fake_runner(dict.fromkeys("abcdef", 0.15))
    run_side_by_side(graph, start, 2, poll_seconds=0.01, log=lambda _: None)
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2


def test_after_a_failure_running_stages_finish_and_nothing_new_starts() -> None:
    graph = {"a": (), "slow": (), "after_a": ("a",), "later": ()}
    start, spans = _fake_runner({"a": 0.05, "slow": 0.4, "later": 0.05}, fail={"a"})
    outcomes, errors = run_side_by_side(graph, start, 2, poll_seconds=0.01, log=lambda _: None)
    assert set(errors) == {"a"} and "a broke" in str(errors["a"])
    assert outcomes["a"]["status"] == "failed"
    assert outcomes["slow"]["status"] == "ran"  # was running: allowed to finish
    assert outcomes["after_a"]["status"] == "not run"
    assert outcomes["later"]["status"] == "not run"
    assert "later" not in spans


def test_max_parallel_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_parallel must be >= 1"):
        run_side_by_side({"a": ()}, lambda name: Future(), 0)


def test_threads_split_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert threads_per_stage(1) == cores
    assert threads_per_stage(cores) == 1
    assert threads_per_stage(cores * 4) == 1


# ------------------------------------------------------------------ real DVC, toy project

STEP = """\
import json, os, sys, time
name, seconds, out, inputs = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
began = time.time()
time.sleep(seconds)
text = "".join(open(p).read() for p in inputs) + name + "\\n"
with open(out, "w") as handle:
    handle.write(text)
with open("spans.jsonl", "a") as log:
    log.write(json.dumps({"stage": name, "start": began, "end": time.time(),
                          "threads": os.environ.get("SIMGAN_THREADS")}) + "\\n")
"""

DVC_YAML = """\
stages:
  listing:
    cmd: cat source.txt > listing.txt
    always_changed: true
    outs: [{listing.txt: {cache: false}}]
  left:
    cmd: python step.py left 3 left.txt listing.txt
    deps: [step.py, listing.txt]
    outs: [left.txt]
  right:
    cmd: python step.py right 3 right.txt listing.txt
    deps: [step.py, listing.txt]
    outs: [right.txt]
  join:
    cmd: python step.py join 0 join.txt left.txt right.txt
    deps: [step.py, left.txt, right.txt]
    outs: [join.txt]
"""


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    root = tmp_path / "toy"
    root.mkdir()
    (root / "step.py").write_text(STEP)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "source.txt").write_text("listing\n")  # what the always-run stage lists: DVC
    # does not see it (like a file source's files), only the listing stage's output
    env = {**os.environ, **project_environment(root)}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, env=env)
    return root


def _side_by_side(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **project_environment(root), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "flows.side_by_side", "--root", str(root), *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=240,
    )


def test_graph_edges_and_what_is_out_of_date(toy: Path) -> None:
    graph = stage_graph(toy)
    assert graph == {"listing": (), "left": ("listing",), "right": ("listing",),
                     "join": ("left", "right")}
    always, stale, outputs = changed_stages(toy, graph)
    assert always == {"listing"}
    assert outputs == (toy.resolve() / "listing.txt",)
    assert stale == {"left", "right", "join"}  # outputs missing, and join downstream of them


def test_disjoint_dvc_stages_run_at_the_same_time_and_land_in_dvc_lock(toy: Path) -> None:
    done = _side_by_side(toy, "--max-parallel", "2", "join")
    assert done.returncode == 0, done.stdout + done.stderr
    spans = {s["stage"]: s for s in map(json.loads, (toy / "spans.jsonl").read_text().splitlines())}
    left, right, join = spans["left"], spans["right"], spans["join"]
    assert left["start"] < right["end"] and right["start"] < left["end"], "no overlap"
    assert join["start"] >= max(left["end"], right["end"])
    assert {left["threads"], right["threads"]} == {str(threads_per_stage(2))}
    assert (toy / "join.txt").read_text() == "listing\nleft\nlisting\nright\njoin\n"
    lock = (toy / "dvc.lock").read_text()
    assert all(f"  {name}:" in lock for name in ("left", "right", "join"))
    # Everything recorded: a second run finds only the always-changed listing to run.
    again = _side_by_side(toy, "--max-parallel", "2", "join")
    assert again.returncode == 0, again.stderr
    assert "1 of 4 stage(s) to run" in again.stdout and "listing" in again.stdout
    assert len((toy / "spans.jsonl").read_text().splitlines()) == 3
    # What the listing lists changed: its output changes, so DVC is asked again and the
    # stages downstream of it run.
    (toy / "source.txt").write_text("listing v2\n")
    changed = _side_by_side(toy, "--max-parallel", "2", "join")
    assert changed.returncode == 0, changed.stderr
    assert "3 of 4 stage(s) to run" in changed.stdout
    assert (toy / "join.txt").read_text() == "listing v2\nleft\nlisting v2\nright\njoin\n"


def test_a_failing_stage_fails_the_run_and_names_it(toy: Path) -> None:
    (toy / "dvc.yaml").write_text(DVC_YAML.replace("python step.py right 3",
                                                   "python -c 'raise SystemExit(3)' #"))
    done = _side_by_side(toy, "--max-parallel", "2", "join")
    assert done.returncode == 1
    assert "stage right failed" in done.stderr and "exit code" in done.stderr
    assert not (toy / "join.txt").exists()


def test_the_longest_chain_starts_first() -> None:
    # "side" is first in graph order, but "head" leads a chain of three stages
    graph = {"side": (), "head": (), "mid": ("head",), "tail": ("mid",)}
    start, spans = _fake_runner(dict.fromkeys(graph, 0.05))
    order: list[str] = []
    run_side_by_side(graph, start, 1, poll_seconds=0.01,
                     log=lambda line: order.append(line.split()[1]) if line.startswith("start")
                     else None)
    # then "side" and "tail" both head one stage: graph order decides
    assert order == ["head", "mid", "side", "tail"]


def test_side_by_side_is_chosen_by_the_threads_of_the_recipes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flows.side_by_side import default_max_parallel, recipe_threads

    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("SIMGAN_THREADS", raising=False)
    assert recipe_threads(ROOT / "params.yaml") == 1  # the default recipe: one thread
    monkeypatch.chdir(ROOT)
    assert default_max_parallel() == cores  # so every core runs a stage
    monkeypatch.setenv("SIMGAN_THREADS", "2")
    assert default_max_parallel() == max(1, cores // 2)
    assert default_max_parallel(threads=cores) == 1
    # a recipe that trains with 3 threads leaves room for fewer stages; no file: 1
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["hand"]["estimator"]["threads"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert recipe_threads(tmp_path / "params.yaml") == 3
    assert recipe_threads(tmp_path / "missing.yaml") == 1
