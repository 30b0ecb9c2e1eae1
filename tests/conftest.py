"""Shared test set-up: tool telemetry off and tool state out of the home directory.

Prefect-specific settings (a temporary PREFECT_HOME) are made in tests/test_flow.py before
Prefect is imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")
