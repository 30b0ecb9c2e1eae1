"""Checkpoint files: checksummed, the previous one kept, damaged ones moved aside with a
WARNING (then the previous one, or a fresh start); torch files of equal values have equal
bytes, however the values were made; everything loads with weights_only=True."""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from simgan.core import torchfile
from simgan.core.checkpoint import (
    FORMAT,
    CorruptCheckpoint,
    load_checkpoint,
    previous,
    read_checkpoint,
    write_checkpoint,
)


def _state(step: int) -> dict:
    return {"fingerprint": "fp", "step": step, "w": torch.arange(4.0) * step,
            "history": [{"loss": 0.5, "phase": 1.0}], "rng": {"state": 2**100 + step}}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a
    )


def test_write_keeps_the_previous_file_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    write_checkpoint(path, _state(1))
    write_checkpoint(path, _state(2))
    assert previous(path) == tmp_path / "last.prev.pt"
    assert _equal(read_checkpoint(path), _state(2))
    assert _equal(read_checkpoint(previous(path)), _state(1))
    envelope = torch.load(path, weights_only=True)  # plain torch can open it, safely
    assert envelope["format"] == FORMAT and envelope["payload"].dtype == torch.uint8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.prev.pt", "last.pt"]  # no temp


def _damage(path: Path, how: str) -> str:
    """Damage ``path`` one way; returns the reason the WARNING must give."""
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return "unreadable"
    if how == "checksum":
        envelope = torch.load(path, weights_only=True)
        envelope["payload"][-1] ^= 1  # one flipped bit, in a file that is otherwise fine
        torchfile.save(path, envelope)
        return "checksum mismatch"
    torch.save({"w": torch.ones(2)}, path)  # a torch file, but not a checkpoint
    return f"not a {FORMAT} file"


@pytest.mark.parametrize("how", ["truncated", "checksum", "foreign"])
def test_a_damaged_file_falls_back_to_the_previous_one(tmp_path: Path, how: str, caplog) -> None:
    path = tmp_path / "last.pt"
    write_checkpoint(path, _state(1))
    write_checkpoint(path, _state(2))
    reason = _damage(path, how)
    with pytest.raises(CorruptCheckpoint, match=reason):
        read_checkpoint(path)
    with caplog.at_level(logging.WARNING):
        saved = load_checkpoint(path, "fp", "refiner")
    assert saved is not None and _equal(saved, _state(1))
    assert f"refiner checkpoint {path} is unusable ({reason}" in caplog.text
    assert "moved it to last.pt.corrupt and trying the previous one, last.prev.pt" in caplog.text
    assert (tmp_path / "last.pt.corrupt").is_file() and not path.exists()
    write_checkpoint(path, _state(3))  # the next save does not rotate the damaged file in
    assert _equal(read_checkpoint(previous(path)), _state(1))


def test_nothing_usable_starts_afresh_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "last.pt"
    assert load_checkpoint(path, "fp", "refiner") is None and caplog.text == ""  # first run
    write_checkpoint(path, _state(1))
    _damage(path, "truncated")
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path, "fp", "refiner") is None
    assert "is unusable (unreadable, " in caplog.text and "starting afresh" in caplog.text


def test_a_kill_between_the_renames_resumes_from_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    write_checkpoint(path, _state(1))
    write_checkpoint(path, _state(2))
    path.unlink()  # last.pt renamed away, the new one not yet in place
    (tmp_path / ".last.pt.tmp-0123abcd").write_bytes(b"half a checkpoint")
    assert _equal(load_checkpoint(path, "fp", "refiner"), _state(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.prev.pt"]  # temp file removed


def test_a_checkpoint_from_before_checksums_is_still_used(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    torch.save(_state(4), path)  # how last.pt was written before
    assert _equal(load_checkpoint(path, "fp", "refiner"), _state(4))
    write_checkpoint(path, _state(5))
    assert torch.load(path, weights_only=True)["format"] == FORMAT


def test_other_params_start_afresh_and_leave_the_file(tmp_path: Path, caplog) -> None:
    path = tmp_path / "last.pt"
    write_checkpoint(path, _state(1))
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path, "other", "refiner") is None
    assert "written with other params or data: starting afresh" in caplog.text
    assert path.is_file()


def test_equal_values_give_equal_bytes_however_they_were_made() -> None:
    """pickle writes a repeated object as a back-reference: strings that are one object in
    one tree and two in another (e.g. read back from a file) gave different bytes."""
    made = {"step": 1, "rows": [{"step": 2.0}]}
    read_back = torch.load(io.BytesIO(torchfile.dumps(made)), weights_only=True)
    mixed = {"step": 1, "rows": read_back["rows"]}  # "step" from code and from the file
    plain = io.BytesIO()
    torch.save(made, plain)
    other = io.BytesIO()
    torch.save(mixed, other)
    assert plain.getvalue() != other.getvalue()  # what went wrong before
    assert torchfile.dumps(made) == torchfile.dumps(mixed)


def test_canonical_keeps_state_dicts_and_refuses_objects(tmp_path: Path) -> None:
    net = torch.nn.BatchNorm1d(3)
    state = net.state_dict()
    torchfile.save(tmp_path / "m.pt", {"state_dict": state, "n": np.int64(3), "f": np.float32(1)})
    saved = torchfile.load(tmp_path / "m.pt")
    assert isinstance(saved["state_dict"], OrderedDict)
    assert saved["state_dict"]._metadata == state._metadata  # module versions for loading
    assert type(saved["n"]) is int and type(saved["f"]) is float
    with pytest.raises(TypeError, match="would need pickling"):
        torchfile.dumps({"net": net})
