"""MLflow conventions, in one place.

One experiment per task (``simgan-<task>``). Each pipeline execution gets one *parent* run
per task (``run_kind = pipeline``), found or created by the first stage that runs under it,
and each stage execution one run nested under it (``mlflow.parentRunId``). Parent and
children carry the same provenance tags (``pipeline_id``, git commit and dirty flag, DVC
experiment and baseline, params hash), so runs group and filter the same way::

    mlflow.search_runs(experiment_names=["simgan-gaze"],
                       filter_string="tags.train_source = 'refined'")

Where runs go: the tracking URI is ``sqlite:///<store root>/mlflow.db`` unless
MLFLOW_TRACKING_URI says otherwise. Experiments store ``mlflow-artifacts:/<experiment>``
as their artifact location, never an absolute path: the process that logs resolves it to
``<directory of mlflow.db>/mlartifacts`` (what ``mlflow server --artifacts-destination``
does), so a copied project writes into its own ``mlartifacts/``. A tracking server
(http URI) resolves the same URIs to its own destination; stages probe it before any work
(:func:`check_server`) and bound MLflow's HTTP retries (``HTTP_BOUNDS``): docs/scale.md.

Models are logged as MLflow *logged models* holding the stage's own weights file (a
``torch.save`` of tensors and plain values, loadable with ``weights_only=True``: no pickled
classes) and registered under a name; model versions carry the file's SHA-256 so that a
later stage can find the version of the file it read.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from simgan.core import run_owner

EXPERIMENT_PREFIX = "simgan-"
TAG_TASK = "task"
TAG_STAGE = "stage"
TAG_SOURCE = "train_source"
TAG_COMMIT = "git_commit"
TAG_DIRTY = "git_dirty"
TAG_PIPELINE = "pipeline_id"
TAG_KIND = "run_kind"  # "pipeline" (the parent) or "stage"
TAG_EXPERIMENT = "dvc_experiment"
TAG_BASELINE = "dvc_baseline_rev"
TAG_PARAMS_HASH = "params_hash"
TAG_CPU_ISA = "cpu_isa"  # what CPU float kernels dispatch on: same params, other ISA, other bytes
TAG_FILE_SHA = "file_sha256"
TAG_CLOSED = "closed_as_stale"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
#: makes the UI open an experiment on its runs (not the GenAI traces page)
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
ARTIFACT_SCHEME = "mlflow-artifacts"
ARTIFACT_DIR = "mlartifacts"
CHAMPION = "champion"
PIPELINE_ENV = "SIMGAN_PIPELINE_ID"


class StoreError(RuntimeError):
    """The MLflow store cannot be written; the message is one line saying what to do."""


@dataclass(frozen=True)
class Provenance:
    """Where a stage run comes from; its fields become tags of the run and of its parent.

    ``store_root`` is the project whose store receives the run: the DVC project root even
    when the stage runs in a queued experiment's temporary workspace."""

    store_root: Path
    pipeline_id: str
    git_commit: str = "unknown"
    git_dirty: bool | None = None
    experiment: str = "workspace"
    baseline_rev: str | None = None
    params_hash: str | None = None
    cpu_isa: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        tags = {TAG_PIPELINE: self.pipeline_id, TAG_EXPERIMENT: self.experiment,
                TAG_COMMIT: self.git_commit + ("-dirty" if self.git_dirty else "")}
        if self.git_commit != "unknown":
            tags[MLFLOW_GIT_COMMIT] = self.git_commit
        if self.git_dirty is not None:
            tags[TAG_DIRTY] = str(self.git_dirty).lower()
        if self.baseline_rev:
            tags[TAG_BASELINE] = self.baseline_rev
        if self.params_hash:
            tags[TAG_PARAMS_HASH] = self.params_hash
        if self.cpu_isa:
            tags[TAG_CPU_ISA] = self.cpu_isa
        return {**tags, **self.extra}


def experiment_name(task: str) -> str:
    return f"{EXPERIMENT_PREFIX}{task}"


def registered_refiner(task: str) -> str:
    return f"simgan-refiner-{task}"


def registered_estimator(task: str, source: str) -> str:
    return f"{task}-estimator-{source}"


def tracking_uri(root: str | Path) -> str:
    """MLFLOW_TRACKING_URI if set, else the project's own sqlite file (never the cwd's)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None (a server or another database)."""
    prefix = "sqlite:///"
    return Path(unquote(uri[len(prefix):].split("?")[0])) if uri.startswith(prefix) else None


def artifact_destination(root: str | Path) -> Path | None:
    """Where ``mlflow-artifacts:`` URIs resolve locally: beside the sqlite file; None when a
    tracking server owns the artifacts."""
    uri = tracking_uri(root)
    db = sqlite_path(uri)
    if db is not None:
        return db.parent / ARTIFACT_DIR
    if is_server(uri):
        return None
    return Path(root).resolve() / ARTIFACT_DIR


def is_server(uri: str) -> bool:
    """A tracking server (``http(s)://``) rather than a database or files this process opens."""
    return urlparse(uri).scheme in ("http", "https")


#: MLflow's own defaults retry a failed request 7 times with a backoff doubling to 120 s, about
#: 4 minutes of silence before an error; ours give up after about 10 s of retries. Set only
#: when unset (``setdefault``): a user's own values win.
HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}
PROBE_TIMEOUT_S = 10
"""How long the start-of-stage probe waits for the server's /health (one try, no retries)."""
ARTIFACT_PROBE_TIMEOUT_S = 60
"""... and for its artifact store to list (the server's own S3 client retries for ~10 s)."""


def check_server(uri: str) -> None:
    """Raise StoreError in one line naming ``uri`` when the tracking server does not answer
    or cannot reach its artifact store; one try each, bounded in time (no retry loop).

    Stages call it (through :func:`check_writable`) before any work, so an unreachable server
    costs seconds and writes nothing. The artifact store (S3 behind ``mlflow server
    --artifacts-destination``) is the server's to reach: a client only sees an HTTP 500 from
    the server, whose log names the S3 URL it failed on."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    creds = get_default_host_creds(uri)
    fix = ("start it (docs/scale.md) or unset MLFLOW_TRACKING_URI to use the project's "
           "mlflow.db")
    try:
        health = http_request(creds, "/health", "GET", max_retries=0, timeout=PROBE_TIMEOUT_S,
                              raise_on_status=False)
    except Exception as exc:  # connection refused, DNS, timeout: requests wraps them all
        raise StoreError(f"MLflow tracking server {uri} unreachable ({_reason(exc)}); "
                         f"{fix}") from None
    if health.status_code != 200:
        raise StoreError(f"MLflow tracking server {uri} unhealthy (GET /health: HTTP "
                         f"{health.status_code}); {fix}")
    try:
        listed = http_request(creds, "/api/2.0/mlflow-artifacts/artifacts", "GET",
                              max_retries=0, timeout=ARTIFACT_PROBE_TIMEOUT_S,
                              raise_on_status=False, params={"path": ""})
    except Exception as exc:
        raise StoreError(f"MLflow tracking server {uri} did not list its artifact store "
                         f"({_reason(exc)}); check the server's log") from None
    if listed.status_code == 503 and "--no-serve-artifacts" in listed.text:
        raise StoreError(
            f"MLflow tracking server {uri} runs with --no-serve-artifacts; the experiments' "
            f"artifact locations ({ARTIFACT_SCHEME}:/...) need it to serve them: start it with "
            "--artifacts-destination s3://<bucket>/<path> (docs/scale.md)")
    if listed.status_code >= 500:
        raise StoreError(
            f"MLflow tracking server {uri} cannot reach its artifact store (HTTP "
            f"{listed.status_code} listing {uri}/api/2.0/mlflow-artifacts/artifacts); check "
            "the server's --artifacts-destination, MLFLOW_S3_ENDPOINT_URL and AWS credentials "
            "(its log names the S3 URL)")


def server_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a request to the tracking server that failed after its retries (the
    server or its artifact store went away mid-stage); its message names the URL."""
    if "mlflow" not in sys.modules:
        return False
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and str(exc).startswith("API request to ")


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, short: 'Connection refused'."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = " ".join(str(exc).split())
    for known in ("Connection refused", "timed out", "Name or service not known",
                  "Connection reset by peer", "No route to host"):
        if known in text:
            return known
    return f"{type(exc).__name__}: {text[-160:]}"


def check_writable(root: str | Path) -> None:
    """Raise StoreError, naming the path (or the server's URL) and the fix, if the store
    cannot be written: a local file or directory without write permission, a tracking server
    that does not answer or cannot reach its artifact store (:func:`check_server`)."""
    uri = tracking_uri(root)
    if is_server(uri):
        check_server(uri)
        return
    db = sqlite_path(uri)
    needed = [p for p in (db, db.parent if db else None, artifact_destination(root)) if p]
    for path in needed:
        bad = _unwritable(path)
        if bad is not None:
            raise StoreError(
                f"MLflow store not writable: {bad}; make it writable (chmod -R u+w {bad}) "
                "or set MLFLOW_TRACKING_URI to a writable store (e.g. sqlite:////tmp/x/mlflow.db)"
            )


def _unwritable(path: Path) -> Path | None:
    """``path`` (or, if missing, its nearest existing ancestor) when it is not writable."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return None if os.access(path, os.W_OK) else path


def use_store(root: str | Path) -> Any:
    """Point this process's MLflow at the project store; returns an MlflowClient.

    Readers (notebooks, tests) call this too: ``mlflow-artifacts:`` URIs then resolve to the
    project's ``mlartifacts/`` without a server."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    uri = tracking_uri(root)
    if is_server(uri):
        for key, value in HTTP_BOUNDS.items():
            os.environ.setdefault(key, value)
    mlflow.set_tracking_uri(uri)
    if before is None:  # mlflow exports it: the next project in this process must not see it
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    destination = artifact_destination(root)
    if destination is not None:
        _resolve_artifacts_locally(destination)
    if sqlite_path(uri) is None:
        return mlflow.MlflowClient()
    # The first process to open a new sqlite store creates its tables (MLflow's alembic
    # migrations, run when the client is made); two at once, e.g. stages side by side on a
    # fresh clone, collide ("table _alembic_tmp_... already exists"). One at a time: every
    # later opening finds the tables made (and the store is cached per process).
    with _locked(root):
        return mlflow.MlflowClient()


def _resolve_artifacts_locally(destination: Path) -> None:
    """``mlflow-artifacts:/a/b`` -> ``<destination>/a/b``, as a server with
    ``--artifacts-destination <destination>`` would serve it."""
    from mlflow.store.artifact.artifact_repository_registry import (
        _artifact_repository_registry as registry,
    )
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    def local(uri: str, tracking_uri: str | None = None, registry_uri: str | None = None):
        rel = urlparse(uri).path.lstrip("/")
        return LocalArtifactRepository(str(destination / rel), tracking_uri=tracking_uri,
                                       registry_uri=registry_uri)

    registry.register(ARTIFACT_SCHEME, local)


def experiment_id(client: Any, task: str, root: str | Path) -> str:
    """The task's experiment, created with a portable artifact location if missing."""
    from mlflow.exceptions import MlflowException

    name = experiment_name(task)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=f"{ARTIFACT_SCHEME}:/{name}",
                                            tags=EXPERIMENT_KIND)
        except MlflowException:  # created meanwhile by another process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND["mlflow.experimentKind"]:
        for key, value in EXPERIMENT_KIND.items():
            client.set_experiment_tag(exp.experiment_id, key, value)
    _warn_if_not_portable(exp, root)
    return exp.experiment_id


def _warn_if_not_portable(exp: Any, root: str | Path) -> None:
    """Experiments made before portable locations keep an absolute path: say so when it lies
    outside this project (a copied mlflow.db would write into the original's files)."""
    location = exp.artifact_location
    if location.startswith(f"{ARTIFACT_SCHEME}:") or "://" in location.replace("file://", ""):
        return
    path = Path(unquote(urlparse(location).path) if location.startswith("file:") else location)
    if not path.resolve().is_relative_to(Path(root).resolve()):
        print(f"[simgan] MLflow experiment {exp.name} keeps its artifacts in {path}, outside "
              f"this project; `make clean-runs` starts a store with portable locations",
              file=sys.stderr)


@contextmanager
def _locked(root: str | Path) -> Iterator[None]:
    """Serialises find-or-create of parent runs between processes of one machine."""
    destination = artifact_destination(root) or Path(root).resolve() / ARTIFACT_DIR
    destination.mkdir(parents=True, exist_ok=True)
    with open(destination / ".pipeline.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pipeline_parent(client: Any, exp_id: str, task: str, provenance: Provenance) -> str:
    """The id of the parent run of ``provenance.pipeline_id`` in the task's experiment,
    created if this is the pipeline's first stage of that task; marked RUNNING."""
    pid = provenance.pipeline_id.replace("'", "_")
    with _locked(provenance.store_root):
        query = f"tags.{TAG_KIND} = 'pipeline' and tags.{TAG_PIPELINE} = '{pid}'"
        found = client.search_runs([exp_id], filter_string=query, max_results=1,
                                   order_by=["attributes.start_time ASC"])
        owner = run_owner.owner_tags()
        if found:
            run = found[0]
            if run.info.status != "RUNNING":
                client.update_run(run.info.run_id, status="RUNNING")
            _set_tags(client, run.info.run_id, owner)  # who left it RUNNING, if anyone does
            return run.info.run_id
        tags = {**provenance.tags(), TAG_PIPELINE: pid, TAG_TASK: task, TAG_KIND: "pipeline",
                **owner}
        name = f"pipeline-{provenance.experiment}-{pid}"
        return client.create_run(exp_id, run_name=name, tags=tags).info.run_id


def _set_tags(client: Any, run_id: str, tags: Mapping[str, str]) -> None:
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def _close(client: Any, run: Any) -> None:
    tags = run.data.tags
    _set_tags(client, run.info.run_id, {TAG_CLOSED: (
        f"owner pid {tags[run_owner.TAG_PID]} on {tags[run_owner.TAG_HOST]} was gone when "
        f"pid {os.getpid()} started a stage")})
    client.set_terminated(run.info.run_id, "KILLED")


def close_stale_runs(client: Any, exp_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs of the experiment whose owning process is gone (a stage
    killed by SIGKILL or a crash could not close them; see :mod:`simgan.core.run_owner`),
    then the RUNNING parent runs whose owner is gone and that have no RUNNING child left.
    Runs of live processes, of other hosts and without owner tags are left alone. Returns
    the ids closed."""
    running = client.search_runs([exp_id], filter_string="attributes.status = 'RUNNING'")
    stale = [r for r in running if run_owner.liveness(r.data.tags) == "gone"]
    stages = [r for r in stale if r.data.tags.get(TAG_KIND) != "pipeline"]
    parents = [r for r in stale if r.data.tags.get(TAG_KIND) == "pipeline"]
    for run in stages:
        _close(client, run)
    closed = [r.info.run_id for r in stages]
    for run in parents:
        child = client.search_runs([exp_id], max_results=1, filter_string=(
            f"attributes.status = 'RUNNING' and tags.`mlflow.parentRunId` = '{run.info.run_id}'"))
        if not child:
            _close(client, run)
            closed.append(run.info.run_id)
    return closed


@contextmanager
def stage_run(
    provenance: Provenance,
    task: str,
    stage: str,
    params: Mapping[str, Any],
    train_source: str | None = None,
    run_name: str | None = None,
) -> Iterator[Any]:
    """The MLflow run of one stage execution, nested under its pipeline's parent run.

    The parent is FINISHED after each stage (so it is finished after the last one), FAILED
    when a stage raises; the stage run is FAILED too. A KeyboardInterrupt (Ctrl-C, or the
    SIGTERM that stages turn into one) marks both KILLED. The run records its owning
    process, so that if the stage dies without a word (SIGKILL), the next stage start of
    the task closes it as KILLED (:func:`close_stale_runs`).
    """
    import mlflow

    check_writable(provenance.store_root)
    client = use_store(provenance.store_root)
    exp_id = experiment_id(client, task, provenance.store_root)
    close_stale_runs(client, exp_id)
    parent = pipeline_parent(client, exp_id, task, provenance)
    tags = {**provenance.tags(), TAG_TASK: task, TAG_STAGE: stage, TAG_KIND: "stage",
            **run_owner.owner_tags()}
    if train_source is not None:
        tags[TAG_SOURCE] = train_source
    name = run_name or (f"{stage}-{train_source}" if train_source else stage)
    try:
        with mlflow.start_run(experiment_id=exp_id, run_name=name, tags=tags,
                              parent_run_id=parent, nested=True) as run:
            try:
                items = list(flatten(params).items())
                for i in range(0, len(items), 100):
                    mlflow.log_params(dict(items[i : i + 100]))
                yield run
            except KeyboardInterrupt:
                mlflow.end_run("KILLED")  # start_run's exit would say FAILED
                raise
    except BaseException as exc:
        client.set_terminated(parent, "KILLED" if isinstance(exc, KeyboardInterrupt)
                              else "FAILED")
        raise
    client.set_terminated(parent, "FINISHED")


def log_to_pipeline(provenance: Provenance, task: str, files: Sequence[Path],
                    artifact_path: str | None = None) -> str:
    """Log ``files`` as artifacts of the task's parent run of ``provenance.pipeline_id`` (found,
    or created when no stage of the task ran in this execution); returns its run id.

    For what belongs to a whole execution rather than one stage (the review page). The
    parent keeps its status (FINISHED after its stages); a new one is FINISHED."""
    check_writable(provenance.store_root)
    client = use_store(provenance.store_root)
    exp_id = experiment_id(client, task, provenance.store_root)
    before = _pipeline_status(client, exp_id, provenance)
    parent = pipeline_parent(client, exp_id, task, provenance)
    try:
        for path in files:
            client.log_artifact(parent, str(path), artifact_path=artifact_path)
    finally:  # pipeline_parent marked it RUNNING; a stage running meanwhile keeps it so
        if before != "RUNNING":
            client.set_terminated(parent, before or "FINISHED")
    return parent


def _pipeline_status(client: Any, exp_id: str, provenance: Provenance) -> str | None:
    """Status of the existing parent run of ``provenance.pipeline_id``, None if there is none."""
    pid = provenance.pipeline_id.replace("'", "_")
    query = f"tags.{TAG_KIND} = 'pipeline' and tags.{TAG_PIPELINE} = '{pid}'"
    found = client.search_runs([exp_id], filter_string=query, max_results=1,
                               order_by=["attributes.start_time ASC"])
    return found[0].info.status if found else None


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params -> {'a.b.c': value} for mlflow.log_params."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    import mlflow

    clean = {k.replace("@", "_at_"): float(v) for k, v in metrics.items()}
    mlflow.log_metrics(clean, step=step)


def log_png(png: bytes, artifact_file: str) -> None:
    """Log PNG bytes as an artifact (sample grids, curve plots)."""
    import mlflow

    mlflow.log_image(_png_to_pil(png), artifact_file=artifact_file)


def _png_to_pil(png: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(png))


def log_files(paths: Sequence[Path], artifact_path: str | None = None) -> None:
    """Log files as artifacts under ``artifact_path`` (missing files are skipped)."""
    import mlflow

    for path in paths:
        if path.is_file():
            mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    import mlflow

    mlflow.log_text(text, artifact_file)


def log_dataset(name: str, path: str, digest: str, context: str) -> None:
    """Record a dataset the stage read (``path`` relative to the project, ``digest`` its DVC
    hash) as a run input; the UI lists it under the run's datasets."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # two local-path source classes match; both are the same
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(path)
    mlflow.log_input(MetaDataset(source, name=name, digest=digest[:36]), context=context)


def log_model_file(
    name: str,
    path: Path,
    registered_name: str,
    sha256: str,
    metadata: Mapping[str, Any],
) -> str:
    """Log the stage's weights file as a logged model of the active run, register it as
    ``registered_name`` and return the version. ``metadata`` (how to load it, input shape)
    goes into model.json beside the file."""
    import json

    import mlflow

    run = mlflow.active_run()
    client = mlflow.MlflowClient()
    model = mlflow.initialize_logged_model(name=name, source_run_id=run.info.run_id,
                                           model_type="torch-state-dict",
                                           tags={TAG_FILE_SHA: sha256})
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / path.name).write_bytes(path.read_bytes())
        (Path(tmp) / "model.json").write_text(json.dumps(
            {"file": path.name, "sha256": sha256, **metadata}, indent=2, sort_keys=True))
        client.log_model_artifacts(model.model_id, tmp)
    mlflow.finalize_logged_model(model.model_id, "READY")
    with contextlib.redirect_stderr(io.StringIO()):  # "Successfully registered model ..."
        version = mlflow.register_model(f"models:/{model.model_id}", registered_name,
                                        tags={TAG_FILE_SHA: sha256})
    return str(version.version)


def set_champion(registered_name: str, sha256: str) -> str | None:
    """Alias ``champion`` on the newest version of ``registered_name`` whose file has this
    SHA-256; returns the version, or None when no version holds that file."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        found = client.search_model_versions(
            f"name = '{registered_name}' and tags.{TAG_FILE_SHA} = '{sha256}'")
    except MlflowException:
        return None
    if not found:
        return None
    version = str(max(int(v.version) for v in found))
    client.set_registered_model_alias(registered_name, CHAMPION, version)
    return version


def ui_links(root: str | Path, base_url: str = "http://127.0.0.1:5000") -> list[str]:
    """The runs view of each simgan experiment in the store, for `make mlflow-ui`."""
    client = use_store(root)
    exps = client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'")
    return [f"{e.name}: {base_url}/#/experiments/{e.experiment_id}/runs"
            "?workflowType=machine_learning" for e in sorted(exps, key=lambda e: e.name)]
