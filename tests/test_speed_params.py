"""``workers`` and ``threads`` change how fast a dataset is written, never a byte of it: not
its images, labels or meta.json (else a DVC hash changes and everything downstream reruns)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from simgan.core.config import read_yaml
from simgan.tasks import get_task, load_task_params, watch
from stages.datasets_io import params_hash, split_meta, write_split

ROOT = Path(__file__).resolve().parents[1]


def _rendered(root: Path, task: str, edit: Callable[[dict], None]) -> dict[str, bytes]:
    """Every byte the render stage writes for ``task`` with the default params after ``edit``,
    in a project at ``root`` (the stage's body without MLflow)."""
    params = read_yaml(ROOT / "params.yaml")
    edit(params[task]["render"])
    watch(params, {task})  # a harmless no-op for a drawn domain
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    p = load_task_params(root / "params.yaml", task)
    out = root / "synthetic"
    for split, plan in get_task(task).synthetic_splits(p, root=root).items():
        write_split(out / split, plan, split_meta(task, "synthetic", split, p.render), split,
                    root=root)
    return {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}


def test_hand_render_threads_change_no_byte(tmp_path):
    def threads(n: int):
        def edit(render: dict) -> None:
            render.update(n_train=12, n_test=4, chunk_size=5, threads=n)
            render["hand"]["size"] = 32
        return edit

    one, two = (_rendered(tmp_path / f"t{n}", "hand", threads(n)) for n in (1, 2))
    assert len(one) == 6 and one == two
    assert "threads" not in json.loads(one["train/meta.json"])


@pytest.fixture
def eyes(tmp_path) -> Path:
    """A labelled folder of six crops (an absolute path, the same for both projects)."""
    folder = tmp_path / "eyes"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (36, 60), dtype=np.uint8)).save(folder / f"{i}.png")
    pd.DataFrame({"file": [f"{i}.png" for i in range(6)], "gaze_x": 0.1, "gaze_y": -0.2,
                  "gaze_z": -0.9}).to_csv(folder / "labels.csv", index=False)
    return folder


def test_gaze_folder_workers_change_no_byte(tmp_path, eyes):
    def workers(n: int):
        def edit(render: dict) -> None:
            render["source"] = {"kind": "folder", "path": str(eyes), "workers": n,
                                "skip_bad": False, "test_path": None, "test_fraction": 0.3,
                                "resize": "stretch", "equalize": False}
        return edit

    serial, pool = (_rendered(tmp_path / f"w{n}", "gaze", workers(n)) for n in (0, 2))
    assert len(serial) == 6 and serial == pool
    source_params = json.loads(serial["train/meta.json"])["source_params"]
    assert "workers" not in source_params and source_params["kind"] == "folder"


def test_params_hash_ignores_speed_keys_at_any_depth():
    base = {"seed": 0, "threads": 1, "source": {"kind": "nyu", "workers": 0}}
    fast = {"seed": 0, "threads": 8, "source": {"kind": "nyu", "workers": 16}}
    assert params_hash(base) == params_hash(fast) == params_hash({"seed": 0,
                                                                   "source": {"kind": "nyu"}})
    assert params_hash(base) != params_hash({**base, "seed": 1})
