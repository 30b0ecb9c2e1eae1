"""The DVC stage graph, read from DVC itself: which stages to run and what each waits for.

Both runners use it: the Prefect flow (``flows.pipeline``) and the side-by-side runner of
``make run`` (``flows.side_by_side``). DVC stays the source of truth: the graph is DVC's own
index, and whether a stage is out of date is DVC's ``status``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Changes", "changed_stages", "list_stages", "open_repo", "stage_graph",
           "stage_matches_task"]

#: stage name -> the names of the (kept) stages whose outputs it depends on
StageGraph = dict[str, tuple[str, ...]]


@contextlib.contextmanager
def open_repo(root: str | os.PathLike[str], repo: Any = None) -> Any:
    """DVC's repo at ``root``, or ``repo`` as given: a caller asking several questions of one
    state of the project opens it once (each opening parses dvc.yaml and dvc.lock, ~0.5 s)."""
    if repo is not None:
        yield repo
        return
    from dvc.repo import Repo

    with warnings.catch_warnings(), Repo(os.fspath(Path(root).resolve())) as opened:
        # DVC 3.67 triggers pygtrie DeprecationWarnings while building the graph; not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        yield opened


def stage_matches_task(stage_name: str, task_name: str) -> bool | None:
    """Whether a ``foreach``/``matrix`` stage belongs to ``task_name``.

    ``render@gaze`` and ``train_estimator@gaze-synthetic`` (or ``...@synthetic-gaze``) belong
    to ``gaze``. Returns None for a stage without ``@``: it is not generated per task.
    """
    name = stage_name.rsplit(":", 1)[-1]  # "sub/dvc.yaml:render@gaze" -> "render@gaze"
    if "@" not in name:
        return None
    key = name.split("@", 1)[1]
    return f"-{task_name}-" in f"-{key}-"


def stage_graph(
    root: str | os.PathLike[str],
    targets: Sequence[str] | None = None,
    task: str | None = None,
    repo: Any = None,
) -> StageGraph:
    """The stages to run, in dependency order (upstream first), each with its upstream stages.

    ``targets`` restricts the graph to those stages and their ancestors (a ``foreach`` group
    name such as ``render`` means all its items), stopping at frozen stages as ``dvc repro``
    does. ``task`` keeps the stages generated for that task, plus task-independent stages
    (no ``@`` in the name) whose upstream stages are all kept. Stages without a command (data
    tracked with ``dvc add``) are left out: there is nothing to run. Ties keep the order of
    ``dvc.yaml``, so the result is deterministic. ``repo``: an open repo (:func:`open_repo`).
    """
    import networkx as nx

    root_path = Path(root).resolve()
    with open_repo(root_path, repo) as repo:
        stages = list(repo.index.stages)
        position = {stage: index for index, stage in enumerate(stages)}
        names = {stage: _stage_address(stage, root_path) for stage in stages}
        # Edges go from a stage to the stages producing its dependencies (DVC's convention).
        graph = nx.DiGraph(repo.index.graph)
        graph.remove_edges_from([edge for edge in graph.edges if edge[0].frozen])

        wanted: set[Any] = set(graph.nodes)
        targeted: list[Any] = []
        if targets:
            wanted = set()
            for target in targets:
                for stage in _match_target(target, names):
                    targeted.append(stage)
                    wanted.add(stage)
                    wanted.update(nx.descendants(graph, stage))

        upstream_first = nx.lexicographical_topological_sort(
            graph.reverse(copy=False), key=lambda stage: position[stage]
        )
        kept: StageGraph = {}
        kept_set: set[Any] = set()
        for stage in upstream_first:
            if stage not in wanted or not stage.cmd:
                continue
            if task:
                belongs = stage_matches_task(names[stage], task)
                if belongs is False:
                    continue
                if belongs is None and not all(
                    dep in kept_set or not dep.cmd for dep in graph.successors(stage)
                ):
                    continue
            kept[names[stage]] = tuple(
                names[dep] for dep in sorted(graph.successors(stage), key=position.__getitem__)
                if dep in kept_set
            )
            kept_set.add(stage)

        dropped = [names[stage] for stage in targeted if stage not in kept_set and stage.cmd]
        if dropped:
            raise ValueError(
                f"target stage(s) {dropped} are not part of task {task!r}; "
                "pass task=None (--task all) to run them"
            )
        return kept


def list_stages(
    root: str | os.PathLike[str],
    targets: Sequence[str] | None = None,
    task: str | None = None,
) -> list[str]:
    """Stage names (as ``dvc repro`` accepts them) in dependency order, upstream first; see
    :func:`stage_graph` for ``targets`` and ``task``."""
    return list(stage_graph(root, targets=targets, task=task))


class Changes(NamedTuple):
    """What :func:`changed_stages` found."""

    always: set[str]
    stale: set[str]
    #: the output files of the ``always`` stages: if their bytes are the same after those
    #: stages ran, ``stale`` still holds and DVC need not be asked again
    always_outputs: tuple[Path, ...]


def changed_stages(root: str | os.PathLike[str], graph: Mapping[str, Sequence[str]],
                   repo: Any = None) -> Changes:
    """What ``dvc repro`` would run of ``graph``: ``(always, stale, always_outputs)``.

    ``always`` are the ``always_changed`` stages (the manifests, which list a source's files):
    DVC runs them every time, and only their run tells whether their output changed, so they
    run first and this is asked again. ``stale`` are the other stages DVC's ``status`` finds out
    of date (changed deps, params, command or missing outputs) and everything downstream of
    them, since their upstream is about to change; DVC still decides when each runs
    (``--single-item``) and skips it if nothing changed. One in-process status check instead of
    one ``dvc repro`` process per stage, so an up-to-date pipeline costs seconds. ``repo``: an
    open repo (:func:`open_repo`) that has not seen a stage run since it was opened.
    """
    root_path = Path(root).resolve()
    # DVC resolves status targets against the cwd, not the repo's root.
    with contextlib.chdir(root_path), open_repo(root_path, repo) as repo:
        always_stages = [stage for stage in repo.index.stages if stage.always_changed
                         and _stage_address(stage, root_path) in graph]
        always = {_stage_address(stage, root_path) for stage in always_stages}
        outputs = tuple(Path(out.fs_path) for stage in always_stages for out in stage.outs)
        # the whole project's status, filtered below: with targets, DVC parses dvc.yaml and
        # dvc.lock again for each one (25 targets: 12 s instead of 2 s)
        status = repo.status()
    # `dvc status` keys a stage as `dvc.yaml:render@gaze` or `render@gaze`; the graph as the latter
    reported = {key.removeprefix("dvc.yaml:") for key in status}
    stale = {name for name in graph if name not in always and name in reported}
    for name, upstream in graph.items():  # upstream first: one pass propagates
        if name not in always and any(dep in stale for dep in upstream):
            stale.add(name)
    return Changes(always, stale, outputs)


def _stage_address(stage: Any, root: Path) -> str:
    """The stage's name as ``dvc repro`` takes it when run from ``root``.

    DVC's own ``stage.addressing`` is relative to the process's cwd, which is not ``root``.
    """
    relative = Path(os.path.relpath(stage.path, root)).as_posix()
    name = getattr(stage, "name", None)
    if not name:  # a .dvc file
        return relative
    return name if relative == "dvc.yaml" else f"{relative}:{name}"


def _match_target(target: str, names: Mapping[Any, str]) -> list[Any]:
    """Stages named by ``target``: an exact stage name or a ``foreach``/``matrix`` group."""
    target = target.removeprefix("./").removeprefix("dvc.yaml:")
    exact = [stage for stage, name in names.items() if name == target]
    if exact:
        return exact
    group = [stage for stage, name in names.items() if name.split("@", 1)[0] == target]
    if group:
        return group
    raise ValueError(f"unknown stage {target!r}; stages are: {sorted(names.values())}")
