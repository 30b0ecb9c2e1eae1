"""Apply a profile (configs/<name>.yaml: a partial params tree) onto params.yaml.

    python -m stages.profile configs/smoke.yaml            # rewrites params.yaml
    python -m stages.profile configs/paper.yaml --out /tmp/p.yaml

The merged file is validated before it is written, so a bad profile never lands. A task the
profile gives a file source is moved to `manifests.watch` (params.yaml says why).
For one-off changes, `dvc exp run -S gaze.refiner.train.lr=3e-4` does the same per key.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from simgan.core.config import ParamsError, read_yaml, validate
from simgan.core.dataset import atomic_write_text
from simgan.tasks import MANIFESTS_KEY, get_task, watch
from stages.common import stage_parser


def deep_merge(base: dict[str, Any], override: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Override leaves of ``base``; a key the base does not have is an error (a typo).

    A mapping with another ``kind`` (a domain's ``source``: builtin -> unityeyes) replaces the
    base's mapping whole: its keys are those of the new kind, all spelled out in the profile.
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        name = f"{prefix}.{key}" if prefix else key
        if key not in out:
            raise ParamsError(f"profile key {name}: not in params.yaml (allowed: {list(out)})")
        switches_kind = (isinstance(value, dict) and isinstance(out[key], dict)
                         and "kind" in value and value["kind"] != out[key].get("kind"))
        if switches_kind:
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = deep_merge(out[key], value, name)
        else:
            out[key] = value
    return out


def apply_profile(params_path: Path, profile_path: Path, out_path: Path) -> dict[str, Any]:
    merged = deep_merge(read_yaml(params_path), read_yaml(profile_path))
    reading = set()
    for task in (key for key in merged if key != MANIFESTS_KEY):
        spec = get_task(task)
        params = validate(spec.params_model, merged[task], task, source=str(profile_path))
        if spec.file_sources(params):
            reading.add(task)
    # a profile need not say it, and profiles stay composable (real-data + nyu)
    watch(merged, reading, source=str(profile_path))
    atomic_write_text(out_path, yaml.safe_dump(merged, sort_keys=False))
    return merged


def main() -> None:
    ap = stage_parser("profile", __doc__)
    ap.add_argument("profile", type=Path)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--out", type=Path, default=None, help="default: overwrite --params")
    args = ap.parse_args()
    try:
        apply_profile(args.params, args.profile, args.out or args.params)
    except ParamsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    print(f"applied {args.profile} -> {args.out or args.params}")


if __name__ == "__main__":
    main()
