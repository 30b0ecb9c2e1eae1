"""manifest: data/<task>/manifest/{render,real}.json, the files each of the task's file sources
reads (name, size, mtime_ns; simgan.core.manifest), so that `render` and `real`, which depend
on their manifest, rerun when files are added, removed or changed at the same path, and only
then. A builtin or stand-in domain has an empty manifest.

A task that reads files is under ``manifests.watch`` in params.yaml (checked before any work),
and DVC runs its stage, ``watch@<task>``, every time (always_changed: the files are outside its
view); it takes a stat per file and no MLflow run. Unchanged files give byte-identical
manifests, so nothing downstream reruns; `dvc status` lists the stage as "always changed". A
task that draws its domains is under ``manifests.static``: its ``manifest@<task>`` writes the
empty manifests and reruns only when its params change, so a no-op `dvc repro` runs nothing.

Relative source paths are taken from the DVC project root (DVC_ROOT, as for the MLflow store),
so a queued experiment, which runs in a temporary copy of the repo, lists the project's files.
"""

from __future__ import annotations

import sys

from simgan.core.dataset import atomic_write_text
from simgan.core.manifest import entries, manifest_text
from stages.common import StageContext, main
from stages.layout import MANIFEST_STAGES


def run(ctx: StageContext) -> None:
    for stage in MANIFEST_STAGES:
        source = ctx.task.file_source(ctx.params, stage)
        rows = entries(None if source is None else source.with_root(ctx.provenance.store_root))
        path = ctx.layout.manifest(stage)
        atomic_write_text(path, manifest_text(rows))
        what = ("drawn by the task" if source is None else
                f"{getattr(source, 'kind', type(source).__name__)} {source.path}")
        print(f"[simgan] manifest {stage}@{ctx.task.name}: {len(rows)} files ({what})",
              file=sys.stderr)


if __name__ == "__main__":
    main("manifest", run)
