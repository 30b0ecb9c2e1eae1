"""MLflow naming conventions and the figure helpers (pure parts; runs are checked end to end)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simgan.core import plots, tracking


def test_flatten_nested_params():
    assert tracking.flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": 2.5}) == {
        "a.b": 1,
        "a.c.d": "x",
        "e": 2.5,
    }


def test_tracking_uri_defaults_to_project_sqlite(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri(tmp_path) == "http://127.0.0.1:5000"


def test_pipeline_id_comes_from_the_environment(tmp_path):
    from stages.provenance import provenance

    assert provenance(tmp_path, {}, {tracking.PIPELINE_ENV: "flow-123"}).pipeline_id == "flow-123"
    assert provenance(tmp_path, {}, {}).pipeline_id.startswith("adhoc-")  # no dvc ancestor


def test_image_grid_places_rows_and_columns():
    a = np.zeros((3, 2, 2), np.uint8)
    b = np.full((4, 2, 2), 100, np.uint8)  # longer row is cut to the shortest
    g = plots.image_grid({"a": a, "b": b}, pad=1)
    assert g.shape == (2 * 4, 3 * 4)
    assert g[1, 1] == 0 and g[5, 5] == 100 and g[0, 0] == 255


def test_pngs_are_pngs():
    curve = pd.DataFrame({"threshold": [0, 1, 2], "pct_within": [0, 50, 100]})
    assert plots.curves_png({"x": curve}, "deg", "t").startswith(b"\x89PNG")
    assert plots.grid_png({"r": np.zeros((2, 5, 7), np.uint8)}).startswith(b"\x89PNG")


def test_cpu_isa_tag_names_the_widest_vector_extension(tmp_path) -> None:
    """Runs on an AVX2 and an AVX-512 machine differ in their bytes; the tag says which."""
    from stages.provenance import cpu_isa

    def isa(flags: str) -> str:
        f = tmp_path / "cpuinfo"
        f.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
        return cpu_isa(f)

    assert isa("fpu sse sse2 avx avx2 fma avx512f avx512bw") == "AVX512"
    assert isa("fpu sse sse2 avx avx2 fma sha_ni") == "AVX2"
    assert isa("fpu sse sse2 avx") == "AVX"
    assert isa("fpu sse sse2") == "SSE"
    assert cpu_isa(tmp_path / "missing") not in ("AVX512", "AVX2")  # the machine's name
    tags = tracking.Provenance(store_root=tmp_path, pipeline_id="p", cpu_isa="AVX2").tags()
    assert tags[tracking.TAG_CPU_ISA] == "AVX2"
    assert tracking.TAG_CPU_ISA not in tracking.Provenance(tmp_path, "p").tags()
