"""Torch files (models and checkpoints) that hold only tensors and plain values, load with
``weights_only=True`` (no pickled classes, so opening a file cannot run code), and have the
same bytes whenever they hold the same values.

Why :func:`canonical` is needed for the last point: ``torch.save`` pickles, and pickle writes
an object that it has seen before *by identity* as a back-reference (``BINGET``) instead of
again. The same string key (``"step"``, ``"mmd"``) is one object in a run that never stopped
but two different objects in a resumed run (one from the code, one unpickled from the
checkpoint), so equal values gave different bytes. Rebuilding the tree with every string
interned and every container and tensor fresh makes the byte stream a function of the values.
"""

from __future__ import annotations

import io
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simgan.core.dataset import atomic_write_bytes


def canonical(obj: Any) -> Any:
    """A fresh copy of nested dicts/lists/tuples of tensors and plain values in which equal
    strings are one object and nothing else is shared: its pickle depends on values only.
    Tensors become detached CPU copies (same strides), numpy scalars Python numbers, a
    module's ``OrderedDict`` state dict stays one (with its version ``_metadata``); any other
    object is refused, since ``weights_only=True`` could not load it back."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, str):
        return sys.intern(str(obj))
    if isinstance(obj, OrderedDict):  # a module's state_dict: keep its type and _metadata
        copied = OrderedDict((canonical(k), canonical(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            copied._metadata = canonical(obj._metadata)  # type: ignore[attr-defined]
        return copied
    if isinstance(obj, dict):
        return {canonical(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(canonical(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float):
        return obj
    raise TypeError(f"not a tensor or plain value, would need pickling: {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    """The bytes of ``torch.save(canonical(obj))``."""
    buf = io.BytesIO()
    torch.save(canonical(obj), buf)
    return buf.getvalue()


def loads(data: bytes) -> Any:
    """Inverse of :func:`dumps`, on the CPU, without unpickling classes."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def save(path: str | Path, obj: Any) -> None:
    """Write ``obj`` to ``path`` atomically (readers never see a partial file)."""
    atomic_write_bytes(path, dumps(obj))


def load(path: str | Path) -> Any:
    """Read a file written by :func:`save` (or any tensors-and-plain-values torch file)."""
    return torch.load(path, map_location="cpu", weights_only=True)
