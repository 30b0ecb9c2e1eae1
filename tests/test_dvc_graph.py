"""dvc.yaml against the code: every project module a stage's command imports is a dep of the
stage, no stage depends on another task's package, code deps are not stale, the paths the
stages read and write (stages/layout.py) are the ones dvc.yaml declares, and checkpoints
(resume state) are neither DVC outputs nor in git.

Imports are read from the source (every ``import`` statement, also inside functions, since a
deferred import still runs), followed transitively, plus the one dynamic import the project
has: the task registry (:mod:`simgan.tasks`) loads the package of the stage's ``--task``.
"""

from __future__ import annotations

import ast
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from simgan.tasks import _REGISTRY, task_names
from stages.layout import CHECKPOINTS, MANIFEST_STAGES, SOURCES, Layout

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("simgan", "stages", "flows")
CODE_ROOTS = ("simgan/", "stages/", "flows/")


# ------------------------------------------------------------------------------ imports


def module_file(name: str) -> Path | None:
    """The file of project module ``name`` (a module or a package's __init__), or None."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(name: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py too."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@cache
def direct_imports(name: str) -> frozenset[str]:
    """Project modules imported anywhere in module ``name``'s source."""
    path = module_file(name)
    assert path is not None, name
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [mod] + [f"{mod}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            for part in _with_parents(target):
                if module_file(part) is not None:
                    found.add(part)
    found.discard(name)
    return frozenset(found)


def registered_module(task: str) -> str:
    return _REGISTRY[task].split(":")[0]


def import_closure(start: str, task: str | None) -> set[str]:
    """Every project module that running ``start`` (for ``task``) can import."""
    seen: set[str] = set()
    todo = list(_with_parents(start))
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        todo.extend(direct_imports(name))
        if name == "simgan.tasks" and task is not None:
            todo.extend(_with_parents(registered_module(task)))
    return seen


def task_package(task: str) -> str:
    """The directory of a task's package, e.g. simgan/gaze."""
    return "/".join(registered_module(task).split(".")[:2])


# ------------------------------------------------------------------------------ dvc.yaml


@cache
def stages() -> dict[str, dict]:
    """Resolved stages (foreach/matrix expanded by DVC itself): name -> cmd, deps, outs."""
    from dvc.repo import Repo

    out: dict[str, dict] = {}
    with Repo(str(ROOT)) as repo:
        for stage in repo.index.stages:
            if not hasattr(stage, "cmd"):
                continue
            out[stage.addressing] = {
                "cmd": stage.cmd,
                "deps": [str(Path(d.def_path)) for d in stage.deps if not _is_params(d)],
                "outs": [str(Path(o.def_path)) for o in stage.outs],
            }
    return out


def _is_params(dep) -> bool:
    from dvc.dependency.param import ParamsDependency

    return isinstance(dep, ParamsDependency)


def parse_cmd(cmd: str) -> tuple[str, str | None, str | None]:
    """``python -m stages.x --task t [--source s]`` -> (module, task, source)."""
    args = shlex.split(cmd)
    assert args[:2] == ["python", "-m"], f"stage command is not `python -m ...`: {cmd}"
    def opt(flag: str) -> str | None:
        return args[args.index(flag) + 1] if flag in args else None
    return args[2], opt("--task"), opt("--source")


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def rel(name: str) -> str:
    path = module_file(name)
    assert path is not None
    return str(path.relative_to(ROOT))


STAGES = sorted(stages())


#: stages over every task at once (no --task): they import no task package (checked by
#: test_stage_depends_on_no_other_task, for which every task is "another") and list every
#: task's inputs themselves
CROSS_TASK = {"review"}


def test_every_stage_runs_a_stage_module_for_a_known_task():
    assert STAGES, "no stages resolved from dvc.yaml"
    for name in STAGES:
        module, task, _ = parse_cmd(stages()[name]["cmd"])
        assert module_file(module) is not None, f"{name}: {module} is not a project module"
        if name in CROSS_TASK:
            assert task is None, f"{name} is a cross-task stage but has --task {task}"
        else:
            assert task in task_names(), f"{name}: --task {task} is not registered"


def test_review_reads_every_tasks_reports_and_writes_an_uncached_page():
    """review's deps name each task's files it reads (a new task adds them), its out is the
    page, not cached (a view of cached outputs), and its params are every task's section."""
    from dvc.repo import Repo

    from stages.review import PAGE

    deps = stages()["review"]["deps"]
    for task in task_names():
        lay = Layout(ROOT, task)
        for path in (lay.reports / "comparison.json", lay.reports / "curves.png",
                     lay.synthetic("train"), lay.refined(), lay.real("test")):
            assert str(path.relative_to(ROOT)) in deps, f"review: {path} is not a dep"
    assert stages()["review"]["outs"] == [str(PAGE)]
    with Repo(str(ROOT)) as repo:
        review = next(s for s in repo.index.stages if s.addressing == "review")
        assert [o.use_cache for o in review.outs] == [False]
        params = {key for d in review.deps if _is_params(d) for key in d.params}
    assert params == set(task_names())


def test_render_and_real_depend_on_their_manifest_from_the_tasks_manifest_stage():
    """Each stage reading a source depends on its own manifest (a changed file reruns what
    reads it, nothing else), written by the task's manifest stage. The default draws both
    domains of every task (manifests.static), so no stage runs every time and a no-op
    `dvc repro` runs nothing."""
    from dvc.repo import Repo

    for task in task_names():
        lay = Layout(ROOT, task)
        manifests = [str(lay.manifest(stage).relative_to(ROOT)) for stage in MANIFEST_STAGES]
        assert stages()[f"manifest@{task}"]["outs"] == manifests
        for stage, path in zip(MANIFEST_STAGES, manifests, strict=True):
            readers = sorted(n for n, s in stages().items() if path in s["deps"])
            assert readers == [f"{stage}@{task}"], (path, readers)
    with Repo(str(ROOT)) as repo:
        assert [s.addressing for s in repo.index.stages if s.always_changed] == []


def _resolved(root: Path) -> dict[str, dict]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {s.name: {"cmd": s.cmd, "always": s.always_changed,
                               "deps": [str(d.def_path) for d in s.deps if not _is_params(d)],
                               "params": sorted(k for d in s.deps if _is_params(d)
                                                for k in d.params),
                               "outs": [str(o.def_path) for o in s.outs]}
                for s in repo.index.stages if hasattr(s, "cmd")}


def test_a_watched_task_gets_the_same_manifest_stage_run_every_time(tmp_path):
    """manifests.watch: [gaze] turns manifest@gaze into watch@gaze, which DVC runs every time
    (its files are outside DVC's view), with the same command, deps, params and outs (one
    definition in dvc.yaml, YAML anchors); hand keeps its static stage."""
    from dvc.repo import Repo

    from simgan.core.config import read_yaml
    from simgan.tasks import watch

    Repo.init(str(tmp_path), no_scm=True)
    (tmp_path / "dvc.yaml").write_bytes((ROOT / "dvc.yaml").read_bytes())
    params = read_yaml(ROOT / "params.yaml")
    watch(params, {"gaze"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    default, watched = _resolved(ROOT), _resolved(tmp_path)
    assert "manifest@gaze" not in watched and watched["watch@gaze"]["always"] is True
    assert {**watched["watch@gaze"], "always": False} == default["manifest@gaze"]
    assert watched["manifest@hand"] == default["manifest@hand"]
    assert sorted(watched) == sorted(["watch@gaze", *(n for n in default if n != "manifest@gaze")])


@pytest.mark.parametrize("name", STAGES)
def test_stage_deps_cover_every_imported_module(name: str):
    stage = stages()[name]
    module, task, _ = parse_cmd(stage["cmd"])
    missing = sorted(rel(m) for m in import_closure(module, task)
                     if not covered(rel(m), stage["deps"]))
    assert not missing, (
        f"{name} imports modules that are not among its deps in dvc.yaml (an edit to them "
        f"would leave stale results): {missing}")


@pytest.mark.parametrize("name", STAGES)
def test_stage_depends_on_no_other_task(name: str):
    stage = stages()[name]
    module, task, _ = parse_cmd(stage["cmd"])
    others = [task_package(t) for t in task_names() if t != task]
    wrong_deps = [d for d in stage["deps"]
                  if any(covered(d, [o]) or covered(o, [d]) for o in others)]
    assert not wrong_deps, f"{name} (task {task}) depends on another task's code: {wrong_deps}"
    wrong_imports = sorted(rel(m) for m in import_closure(module, task)
                           if any(covered(rel(m), [o]) for o in others))
    assert not wrong_imports, f"{name} (task {task}) imports another task's code: {wrong_imports}"


@pytest.mark.parametrize("name", STAGES)
def test_code_deps_are_imported(name: str):
    """A code dep that the stage never imports reruns it for nothing (and hides a rename)."""
    stage = stages()[name]
    module, task, _ = parse_cmd(stage["cmd"])
    files = [rel(m) for m in import_closure(module, task)]
    stale = [d for d in stage["deps"]
             if d.startswith(CODE_ROOTS) and not any(covered(f, [d]) for f in files)]
    assert not stale, f"{name}: code deps that the stage does not import: {stale}"


def test_core_knows_no_task():
    """The shared core imports no task package (a task plugs in through the registry)."""
    core = sorted(p for p in (ROOT / "simgan" / "core").rglob("*.py"))
    packages = [task_package(t) for t in task_names()]
    for path in core:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        bad = sorted(rel(m) for m in import_closure(name, None)
                     if any(covered(rel(m), [p]) for p in packages))
        assert not bad, f"{path.relative_to(ROOT)} imports task code: {bad}"


def test_tasks_import_no_other_task():
    for task in task_names():
        others = [task_package(t) for t in task_names() if t != task]
        pkg = ROOT / task_package(task)
        for path in sorted(pkg.rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            bad = sorted(rel(m) for m in import_closure(name, None)
                         if any(covered(rel(m), [o]) for o in others))
            assert not bad, f"{path.relative_to(ROOT)} imports another task's code: {bad}"


def test_layout_paths_are_declared_in_dvc_yaml():
    """stages/layout.py (where stages read and write) and dvc.yaml (what DVC tracks) agree."""
    outs = {o for s in stages().values() for o in s["outs"]}
    deps = {d for s in stages().values() for d in s["deps"]}
    declared = outs | deps
    for task in task_names():
        lay = Layout(ROOT, task)
        paths = [lay.synthetic("train"), lay.synthetic("test"), lay.real("train"),
                 lay.real("test"), lay.refined(), lay.refiner_model.parent]
        for source in SOURCES:
            paths += [lay.train_set(source), lay.estimator_model(source).parent,
                      lay.eval_dir(source) / "metrics.json"]
        paths += [lay.manifest(stage) for stage in MANIFEST_STAGES]
        for path in paths:
            r = str(path.relative_to(ROOT))
            assert r in outs, f"{task}: {r} (stages/layout.py) is not an output in dvc.yaml"
            assert r in declared
    # and every output dvc.yaml declares lies in a task's data/, models/ or reports/
    for o in outs:
        assert o.split("/")[0] in ("data", "models", "reports"), o


def test_checkpoints_are_resume_state_outside_dvc_and_git():
    """Checkpoints are no DVC output (an uncached one changes dvc.lock on every run and makes
    queued experiments, which start without it, retrain unchanged stages), and git and DVC
    ignore them."""
    from dvc.repo import Repo

    declared = {p for s in stages().values() for p in s["outs"] + s["deps"]}
    with Repo(str(ROOT)) as repo:
        for task in task_names():
            lay = Layout(ROOT, task)
            for path in [lay.refiner_checkpoints,
                         *(lay.estimator_checkpoints(s) for s in SOURCES)]:
                r = str(path.relative_to(ROOT))
                assert r.startswith(f"{CHECKPOINTS}/{task}/"), r
                assert not any(covered(r, [d]) or covered(d, [r]) for d in declared), r
                assert repo.dvcignore.is_ignored_dir(str(path)), f"{r} is not in .dvcignore"
                ignored = subprocess.run(["git", "check-ignore", "-q", r], cwd=ROOT)
                assert ignored.returncode == 0, f"{r} is not in .gitignore"


def test_module_file_resolution_sanity():
    """The import reader finds deferred imports and `from pkg import module`."""
    closure = import_closure("stages.train_refiner", "gaze")
    assert "simgan.tasks" in closure
    assert registered_module("gaze") in closure
    assert not any(m.startswith(registered_module("hand").rpartition(".")[0]) for m in closure)


@pytest.mark.parametrize("task", task_names())
def test_the_refiner_depends_on_the_label_source_its_params_choose(task: str):
    """params.yaml decides where the refiner's label model comes from (its own, trained on
    the synthetic train set, or the synthetic-trained estimator); dvc.yaml lists that one
    path (vars: tasks.<task>.refiner_labels) and not the other, so gaze's refiner does not
    wait for an estimator it never reads."""
    from types import SimpleNamespace

    from simgan.tasks import get_task, load_task_params
    from stages.train_refiner import check_label_source, label_source

    params = load_task_params(ROOT / "params.yaml", task)
    ctx = SimpleNamespace(params=params, task=get_task(task), layout=Layout(ROOT, task))
    needed = label_source(ctx)
    assert needed is not None, f"{task}: the default has no label term"
    deps = stages()[f"train_refiner@{task}"]["deps"]
    assert str(needed.relative_to(ROOT)) in deps
    check_label_source(ctx)  # the declared source is the needed one: no error
    other = (ctx.layout.estimator_model("synthetic").parent
             if needed == ctx.layout.synthetic("train") else ctx.layout.synthetic("train"))
    assert str(other.relative_to(ROOT)) not in deps


def test_a_label_source_dvc_yaml_does_not_declare_stops_the_refiner(tmp_path: Path):
    """Asking for the other label model in params.yaml without changing dvc.yaml is caught
    before any work, with the key to set."""
    from types import SimpleNamespace

    from simgan.tasks import get_task, load_task_params
    from stages.layout import declared_refiner_labels
    from stages.train_refiner import UndeclaredLabelSourceError, check_label_source

    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    tasks = next(b["tasks"] for b in spec["vars"] if "tasks" in b)
    tasks["gaze"]["refiner_labels"] = "models/gaze/estimator_synthetic"
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec))
    assert declared_refiner_labels(tmp_path, "gaze") == tmp_path / "models/gaze/estimator_synthetic"
    assert declared_refiner_labels(tmp_path / "nowhere", "gaze") is None

    params = load_task_params(ROOT / "params.yaml", "gaze")
    ctx = SimpleNamespace(params=params, task=get_task("gaze"), layout=Layout(tmp_path, "gaze"))
    with pytest.raises(UndeclaredLabelSourceError, match=r"tasks\.gaze\.refiner_labels: "
                       r"data/gaze/synthetic/train"):
        check_label_source(ctx)
    off = params.model_copy(update={"refiner": params.refiner.model_copy(update={
        "train": params.refiner.train.model_copy(update={"lambda_label": 0.0})})})
    check_label_source(SimpleNamespace(params=off, task=ctx.task, layout=ctx.layout))
