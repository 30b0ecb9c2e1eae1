"""Shared test set-up: tool telemetry off and tool state out of the home directory.

PREFECT_HOME is a temporary directory (tests/test_flow.py sets its own, too, before Prefect
is imported). ``prefect_api`` is the one ephemeral Prefect API of the session, shared
by every module that runs flows (tests/test_flow.py, tests/test_sharded.py): it takes 15-30 s
to start on 2 cores.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

# Prefect reads PREFECT_HOME when first imported; tests must not write into the repository.
_PREFECT_HOME = tempfile.mkdtemp(prefix="simgan-test-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One ephemeral Prefect API for all flow runs of the session (it is slow to start)."""
    from prefect.testing.utilities import prefect_test_harness  # 5 s import: only when used

    with prefect_test_harness(server_startup_timeout=120):
        yield
