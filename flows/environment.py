"""Environment for the pipeline's tools: keep their state inside the project, send no telemetry.

Prefect, DVC and MLflow each keep state under the user's home or /var/tmp and phone home by
default. On this project's machines there is no network and the home directory is not kept, so
every entry point (Makefile, flows, tests) sets these variables, and never overrides a value
the user already exported.

Prefect reads ``PREFECT_HOME`` and its other settings when ``prefect`` is first imported, so
setting them from Python only works before that import. The Makefile therefore exports them
before Python starts; ``flows.pipeline`` applies them again (as defaults) before it imports
Prefect, and always passes them to the DVC subprocesses it starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["apply_project_environment", "project_environment"]


def _defaults(root: Path) -> dict[str, str]:
    """The project's wanted values, before looking at what is already set."""
    root = Path(root).resolve()
    return {
        # Prefect: profiles, ephemeral-server database and logs live in the project.
        "PREFECT_HOME": str(root / ".prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        # The ephemeral API server takes 10-25 s to start on 2 cores; the default 20 s is too short.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        # DVC: no analytics daemon, and its site cache inside the project instead of /var/tmp.
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(root / ".dvc" / "site-cache"),
        # MLflow ignores DO_NOT_TRACK for its own telemetry.
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def project_environment(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the variables to set for ``root``: only those not already in ``environ``.

    ``environ`` defaults to ``os.environ``; the result never contains a key already set there,
    so a user's own ``PREFECT_HOME`` or ``DO_NOT_TRACK`` wins.
    """
    current = os.environ if environ is None else environ
    return {key: value for key, value in _defaults(root).items() if key not in current}


def apply_project_environment(root: Path) -> dict[str, str]:
    """Set the missing variables in ``os.environ``; return what was set (for logging)."""
    missing = project_environment(root)
    os.environ.update(missing)
    return missing
