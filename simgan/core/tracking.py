"""MLflow conventions, in one place.

One experiment per task (``simgan-<task>``), one run per stage execution, tagged so that
runs of one pipeline execution group together and estimators trained on different sources
sit side by side::

    mlflow.search_runs(experiment_names=["simgan-gaze"],
                       filter_string="tags.train_source = 'refined'")

The tracking URI defaults to ``sqlite:///<project>/mlflow.db``; MLFLOW_TRACKING_URI overrides.
A run whose stage raises is ended with status FAILED.
"""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXPERIMENT_PREFIX = "simgan-"
TAG_TASK = "task"
TAG_STAGE = "stage"
TAG_SOURCE = "train_source"
TAG_COMMIT = "git_commit"
TAG_PIPELINE = "pipeline_id"
PIPELINE_ENV = "SIMGAN_PIPELINE_ID"


def experiment_name(task: str) -> str:
    return f"{EXPERIMENT_PREFIX}{task}"


def tracking_uri(root: str | Path) -> str:
    """MLFLOW_TRACKING_URI if set, else the project's own sqlite file (never the cwd's)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def git_commit(root: str | Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root, capture_output=True, text=True, timeout=10,
    ).stdout.strip()
    return f"{commit}-dirty" if dirty else commit


def pipeline_id() -> str:
    """Set by `make run` and the Prefect flow so all stages of one execution share it."""
    return os.environ.get(PIPELINE_ENV) or f"adhoc-{uuid.uuid4().hex[:12]}"


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


@contextmanager
def stage_run(
    root: str | Path,
    task: str,
    stage: str,
    params: Mapping[str, Any],
    train_source: str | None = None,
    run_name: str | None = None,
) -> Iterator[Any]:
    """Start the MLflow run of one stage execution; FAILED if the body raises."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(root))
    mlflow.set_experiment(experiment_name(task))
    tags = {
        TAG_TASK: task,
        TAG_STAGE: stage,
        TAG_COMMIT: git_commit(root),
        TAG_PIPELINE: pipeline_id(),
    }
    if train_source is not None:
        tags[TAG_SOURCE] = train_source
    name = run_name or (f"{stage}-{train_source}" if train_source else stage)
    with mlflow.start_run(run_name=name, tags=tags) as run:
        flat = {k: v for k, v in flatten(params).items()}
        items = list(flat.items())
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i : i + 100]))
        yield run


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


def log_torch_model(model: Any, name: str, input_example: Any) -> None:
    """Log a torch model with its signature (inferred from ``input_example``, a numpy batch).

    Pickled, not MLflow's default pt2 export: torch.export cannot trace the refiner's noise
    input (a tensor whose shape follows the batch). pip_requirements are given so MLflow skips
    its ~11 s requirements inference.
    """
    import mlflow.pytorch
    import torch

    mlflow.pytorch.log_model(
        model.cpu().eval(),
        name=name,
        input_example=input_example,
        serialization_format="pickle",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
