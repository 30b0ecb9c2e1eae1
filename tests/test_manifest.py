"""File manifests (simgan.core.manifest, stages/manifest.py): what each file source reads, with
size and mtime_ns, in stable bytes; a new or touched file changes the manifest of the stage
that reads it and nothing else; a builtin or stand-in domain has an empty one.

DVC's side (render / real rerun on a changed manifest, nothing reruns otherwise) is checked on
real stages in tests/test_sources_stages.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from simgan.core.ingest.common import IngestError
from simgan.core.manifest import entries, manifest_text, read_manifest
from simgan.gaze.readers.folder import FolderSource
from simgan.gaze.readers.mpiigaze import MpiiGazeSource
from simgan.gaze.readers.unityeyes import UnityEyesSource
from simgan.hand.task import NyuRealSource, NyuSynthSource
from simgan.tasks import watch

ROOT = Path(__file__).resolve().parents[1]
FOLDER = {"kind": "folder", "path": "inputs/eyes", "workers": 0, "skip_bad": False,
          "test_path": None, "test_fraction": 0.25, "resize": "stretch", "equalize": False}


def _image(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (20, 30), dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder source: three crops and labels.csv, plus files the reader does not read."""
    eyes = tmp_path / "eyes"
    eyes.mkdir()
    for i in range(3):
        _image(eyes / f"{i}.png", i)
    (eyes / "labels.csv").write_text("file,pitch,yaw\n0.png,0,0\n1.png,0.1,0\n2.png,0,0.1\n")
    (eyes / "notes.txt").write_text("not an image")
    (eyes / "old").mkdir()  # the reader is not recursive
    _image(eyes / "old" / "9.png", 9)
    return eyes


def _manifest(source) -> bytes:
    return manifest_text(entries(source)).encode()


def _touch(path: Path, seconds: int = 5) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def test_a_folder_manifest_lists_what_the_reader_reads_sorted_with_size_and_mtime(folder):
    source = FolderSource(path=folder)
    rows = read_manifest(_manifest(source).decode())
    assert [r[0] for r in rows] == ["path/0.png", "path/1.png", "path/2.png", "path/labels.csv"]
    for name, size, mtime_ns in rows:
        st = (folder / name.removeprefix("path/")).stat()
        assert (size, mtime_ns) == (st.st_size, st.st_mtime_ns)
    text = _manifest(source).decode()
    assert text.startswith('[\n["path/0.png", ') and text.endswith("]\n")
    assert str(folder) not in text  # names are relative to the source's directory


def test_unchanged_files_give_byte_identical_manifests(folder):
    first = _manifest(FolderSource(path=folder))
    (folder / "notes.txt").write_text("edited, but the reader never opens it")
    _image(folder / "old" / "10.png", 10)
    assert _manifest(FolderSource(path=folder)) == first


def test_an_added_touched_or_removed_file_changes_the_manifest(folder):
    source = FolderSource(path=folder)
    seen = [_manifest(source)]
    _image(folder / "3.PNG", 3)  # added (any case of the extension is read)
    seen.append(_manifest(source))
    _touch(folder / "1.png")  # same bytes, new mtime
    seen.append(_manifest(source))
    (folder / "labels.csv").write_text("file,pitch,yaw\n0.png,0,0\n1.png,0.2,0\n2.png,0,0.1\n")
    seen.append(_manifest(source))  # same size, edited in place
    (folder / "0.png").unlink()
    seen.append(_manifest(source))
    assert len(set(seen)) == len(seen)
    assert "path/3.PNG" in seen[1].decode() and "path/0.png" not in seen[-1].decode()


def test_a_test_folder_is_listed_under_its_own_key(folder, tmp_path):
    test = tmp_path / "test_eyes"
    test.mkdir()
    _image(test / "5.png", 5)
    rows = entries(FolderSource(path=folder, test_path=test, test_fraction=0))
    assert [r[0] for r in rows if r[0].startswith("test_path/")] == ["test_path/5.png"]


def test_a_domain_the_task_draws_has_an_empty_manifest():
    assert manifest_text(entries(None)) == "[]\n"


def test_a_missing_directory_is_an_ingest_error_naming_it(tmp_path):
    with pytest.raises(IngestError, match="directory not found") as err:
        entries(FolderSource(path=tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(err.value)


def test_each_reader_lists_only_its_own_files(tmp_path):
    # UnityEyes: renders and their JSON directly in the folder
    ue = tmp_path / "ue"
    (ue / "sub").mkdir(parents=True)
    for name in ("1.jpg", "1.json", "2.png", "2.json", "readme.md", "sub/3.jpg"):
        (ue / name).write_bytes(b"x")
    assert [r[0] for r in entries(UnityEyesSource(path=ue))] == [
        "path/1.jpg", "path/1.json", "path/2.json", "path/2.png"]
    # MPIIGaze: the normalised day files and evaluation lists, not the original frames
    mpii = tmp_path / "mpii"
    for name in ("Data/Normalized/p00/day01.mat", "Data/Original/p00/day01/0001.jpg",
                 "Evaluation Subset/sample list for eye image/p00.txt", "readme.txt"):
        (mpii / name).parent.mkdir(parents=True, exist_ok=True)
        (mpii / name).write_bytes(b"x")
    assert [r[0] for r in entries(MpiiGazeSource(path=mpii))] == [
        "path/Data/Normalized/p00/day01.mat",
        "path/Evaluation Subset/sample list for eye image/p00.txt"]
    # NYU: joint_data.mat and the source's own PNG kind in train/ and test/, not RGB
    nyu = tmp_path / "nyu"
    for split in ("train", "test"):
        (nyu / split).mkdir(parents=True)
        for name in ("joint_data.mat", "depth_1_0000001.png", "synthdepth_1_0000001.png",
                     "rgb_1_0000001.png"):
            (nyu / split / name).write_bytes(b"x")
    synth = [r[0] for r in entries(NyuSynthSource(path=nyu))]
    assert synth == [f"path/{s}/{n}" for s in ("test", "train")
                     for n in ("joint_data.mat", "synthdepth_1_0000001.png")]
    real = [r[0] for r in entries(NyuRealSource(path=nyu))]
    assert real == [f"path/{s}/{n}" for s in ("test", "train")
                    for n in ("depth_1_0000001.png", "joint_data.mat")]
    masked = [r[0] for r in entries(NyuRealSource(path=nyu, crop="synth_mask"))]
    assert len(masked) == 6 and not any("rgb_" in n for n in masked)


# ------------------------------------------------------------------------------ the stage


@pytest.fixture
def project(tmp_path: Path, folder: Path, monkeypatch) -> Path:
    """A project whose gaze.real.source is a folder (relative path), render builtin."""
    root = tmp_path / "project"
    root.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["gaze"]["real"]["source"] = FOLDER
    watch(params, {"gaze"})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "inputs").mkdir()
    shutil.copytree(folder, root / "inputs" / "eyes")
    monkeypatch.chdir(root)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return root


def _run_stage(monkeypatch, task: str = "gaze") -> dict[str, bytes]:
    from stages import common, manifest

    monkeypatch.setattr(sys, "argv", ["manifest", "--task", task])
    monkeypatch.setattr(common, "_limit_threads", lambda: None)
    common.main("manifest", manifest.run)
    out = Path.cwd() / "data" / task / "manifest"
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_the_stage_writes_one_manifest_per_reading_stage(project, monkeypatch, capsys):
    first = _run_stage(monkeypatch)
    assert first["render.json"] == b"[]\n"  # the builtin renderer
    assert [r[0] for r in read_manifest(first["real.json"].decode())] == [
        "path/0.png", "path/1.png", "path/2.png", "path/labels.csv"]
    assert "manifest real@gaze: 4 files (folder inputs/eyes)" in capsys.readouterr().err
    assert _run_stage(monkeypatch) == first  # nothing changed: the same bytes
    _image(project / "inputs" / "eyes" / "7.png", 7)
    second = _run_stage(monkeypatch)
    assert second["render.json"] == first["render.json"]  # only what reads the folder
    assert second["real.json"] != first["real.json"] and b"path/7.png" in second["real.json"]


def test_the_stage_lists_the_projects_files_from_a_queued_experiment(project, monkeypatch):
    """A queued experiment runs in a copy of the repo without the (untracked) input folder;
    DVC_ROOT names the project, whose files the manifest lists."""
    first = _run_stage(monkeypatch)
    workspace = project / ".dvc" / "tmp" / "exps" / "tmpabc"
    workspace.mkdir(parents=True)
    shutil.copy(project / "params.yaml", workspace / "params.yaml")
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("DVC_ROOT", str(project))
    assert _run_stage(monkeypatch) == first


def test_a_missing_source_directory_fails_the_stage_in_one_line(project, monkeypatch, capsys):
    shutil.rmtree(project / "inputs" / "eyes")
    with pytest.raises(SystemExit) as exit_:
        _run_stage(monkeypatch)
    assert exit_.value.code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"stages.manifest: IngestError: {project / 'inputs' / 'eyes'}: path: "
                    "directory not found")


def test_the_stage_process_imports_no_torch_and_still_runs_exit_handlers(project, tmp_path):
    """``python -m stages.manifest`` (the stage of every ``dvc repro``) validates params
    without torch, and ends without the interpreter's teardown (stages/common.py) but after
    its threads and exit handlers, with its outputs written."""
    probe = tmp_path / "probe.txt"
    code = (
        "import atexit, runpy, sys\n"
        "probe = sys.argv[1]\n"
        "import concurrent.futures, time\n"  # work a thread pool still holds at the end
        "pool = concurrent.futures.ThreadPoolExecutor(1)\n"
        "pool.submit(lambda: (time.sleep(3), open(probe + '.pool', 'w').write('done')))\n"
        "atexit.register(lambda: open(probe, 'w').write(\n"
        "    ' '.join(m for m in ('torch', 'mlflow') if m in sys.modules)))\n"
        "sys.argv = ['manifest', '--task', 'gaze']\n"
        "runpy.run_module('stages.manifest', run_name='__main__', alter_sys=True)\n"
        "raise SystemExit('not reached: the stage ends its own process')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code, str(probe)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "not reached" not in done.stderr
    assert probe.read_text() == ""  # the handler ran, and neither torch nor mlflow was loaded
    assert Path(f"{probe}.pool").read_text() == "done"  # threads finish, as at a normal exit
    assert (project / "data" / "gaze" / "manifest" / "render.json").read_bytes() == b"[]\n"
