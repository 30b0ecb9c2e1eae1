"""``make bench`` on tiny sizes: results.json has every section with its keys, its configs
and positive figures, and the table prints every section. The figures themselves are not
checked (they depend on the machine and its load)."""

from __future__ import annotations

import json

from benchmarks import bench


def _positive(entry: dict, *keys: str) -> None:
    for key in keys:
        assert entry[key] > 0, (key, entry)


def test_tiny_bench_writes_every_section_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "results.json"
    bench.main(["--tiny", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["mode"] == "tiny" and set(bench.SECTIONS) <= set(res)
    _positive(res["gemm"], "gflops_per_s", "gflops_per_s_after", "ceiling_gflops_per_s")
    assert res["gemm"]["config"]["n"] == bench.MODES["tiny"].gemm_n

    steps = res["refiner_step"]
    assert [s["name"] for s in steps] == ["eye default", "eye paper", "hand default"]
    for s in steps:
        _positive(s, "project_s_per_step", "reference_s_per_step", "ratio", "ratio_cpu_time",
                  "flops_per_step", "gflops_per_s", "share_of_gemm", "images_per_s")
        assert len(s["seconds"]["project"]) == len(s["seconds"]["reference"]) == s["repeat"]
        assert s["ratio"] == s["reference_s_per_step"] / s["project_s_per_step"]
        assert {"net", "discriminator", "batch_size", "kg", "kd"} <= set(s["config"])
    assert steps[1]["config"]["batch_size"] == 8  # tiny: every size shrunk

    names = {"render": {"eyes synthetic", "eyes standin", "hands synthetic", "hands standin"},
             "refine": {"gaze refiner", "hand refiner"},
             "estimator_train": {"gaze CNN", "hand hourglass"}}
    for section, expected in names.items():
        assert {e["name"] for e in res[section]} == expected
        for e in res[section]:
            _positive(e, "images_per_s", "median_s")
            assert e["config"] and len(e["seconds"]) == e["repeat"]
    _positive(res["ingest"], "files_per_s")
    assert res["ingest"]["config"]["files"] == bench.MODES["tiny"].ingest
    for task in ("gaze", "hand"):
        rows = res["stage_times"][task]
        assert rows == "no make run on record" or all(r["seconds"] >= 0 for r in rows)

    # --tiny times the no-op commands on a one-stage project of its own, never the workspace
    assert set(res["noop"]) == {"dvc status", "dvc repro", "runner"}
    for entry in res["noop"].values():
        _positive(entry, "median_s", "min_s")
        assert len(entry["seconds"]) == entry["repeat"] == bench.MODES["tiny"].repeat

    printed = capsys.readouterr().out
    for text in ("fp32 GEMM", "eye paper", "hand default", "render: eyes synthetic",
                 "refine: gaze refiner", "estimator_train: hand hourglass",
                 "ingest: UnityEyes files", "make run stage times (gaze", "no-op (up to date)",
                 "written"):
        assert text in printed, text
    assert printed == bench.table(res) + printed[len(bench.table(res)):]
