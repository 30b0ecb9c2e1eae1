"""The manifest of a file source: every file its reader may read, with its size and mtime.

DVC sees a source's params, not the files they point to. The ``manifest`` stage writes one
manifest per stage that reads a source (``data/<task>/manifest/render.json`` and
``real.json``) and ``render`` / ``real`` depend on theirs, so a file added, removed, replaced
or touched under a source reruns the stage that reads it, and nothing else; unchanged files
give the same bytes, so nothing reruns for nothing.

Format: a JSON list, one ``[name, size, mtime_ns]`` per line, sorted by name. ``name`` is
``<params key>/<path relative to that key's directory>`` (``path/0001.jpg``,
``test_path/labels.csv``), so the manifest does not depend on where the data or the project
lie. Which files: what the reader may read
(:meth:`simgan.core.ingest.common.IngestSourceBase.input_files`), e.g. a folder's images and
labels.csv, not other files beside them. A domain the task draws itself (``builtin``,
``standin``) has the empty list ``[]``.

Why size and mtime, not content hashes: a UnityEyes set is about a million files and tens of
GB, read on every scheduled run; ``stat`` is what the manifest can afford. A copy that keeps
contents but not mtimes (a fresh download, ``cp`` without ``-p``) therefore reruns the stage.
"""

from __future__ import annotations

import json
from typing import Any

from simgan.core.ingest.common import IngestSourceBase

#: the columns of each manifest row
COLUMNS = ("name", "size", "mtime_ns")


def entries(source: IngestSourceBase | None) -> list[tuple[str, int, int]]:
    """``(name, size, mtime_ns)`` of every file ``source`` may read, sorted; [] for None.
    Relative paths of the source are taken as they are (callers pass ``with_root``)."""
    if source is None:
        return []
    rows = []
    for name, path in source.input_files():
        st = path.stat()
        rows.append((name, st.st_size, st.st_mtime_ns))
    rows.sort()
    return rows


def manifest_text(rows: list[tuple[str, int, int]]) -> str:
    """The manifest file's text: stable bytes for the same rows."""
    if not rows:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(list(r), ensure_ascii=False) for r in rows) + "\n]\n"


def read_manifest(text: str) -> list[tuple[str, int, int]]:
    data: Any = json.loads(text)
    return [(str(n), int(s), int(m)) for n, s, m in data]
