"""``benchmarks/readme_table.py`` renders the README's performance table from benchmark JSON (schema
``hfcl-benchmark/1``), and ``benchmarks/bench_json.py`` writes that JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def table():
    return _module("readme_table")


SAMPLE = {
    "schema": "hfcl-benchmark/1", "benchmark": "zoo_build", "command": "python benchmarks/zoo_build.py",
    "created_at": "2026-12-02T07:00:00Z",
    "machine": {"cpus": 2, "gpu": None, "load_avg": [5.2, 4.0, 3.0], "load_avg_end": [6.8, 5.0, 3.5],
                "note": "shared with 6 other agents"},
    "rows": [
        {"what": "cold build of the embedded default", "figure": "**2.1 min** wall", "timed": True, "order": 10},
        {"what": "retain model: forget / retain ROUGE-L", "figure": "0.145 / 0.970", "order": 12,
         "command": "python benchmarks/zoo_build.py --from_cache", "values": {"forget": 0.145}},
    ],
}
CONTINUAL = {  # another helper's script, same schema; copied from an older run
    "schema": "hfcl-benchmark/1", "benchmark": "continual_stream", "command": "python benchmarks/continual_stream.py",
    "transcribed": True, "rows": [{"what": "replay | EWC, average accuracy", "figure": "0.81 vs 0.62"}],
}


def test_renders_rows_in_order_with_commands_and_machine_for_wall_times(table, tmp_path, capsys):
    (tmp_path / "zoo_build.json").write_text(json.dumps(SAMPLE))
    (tmp_path / "a_continual.json").write_text(json.dumps(CONTINUAL))
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something-else/2", "rows": []}))
    (tmp_path / "broken.json").write_text("{not json")
    results = table.load_results(tmp_path)
    assert [r["benchmark"] for r in results] == ["continual_stream", "zoo_build"]  # the others are skipped
    assert "skipping" in capsys.readouterr().err
    md = table.render_table(results)
    lines = md.splitlines()
    assert lines[:2] == ["| what | figure | reproduce with |", "|---|---|---|"]
    assert lines[2] == ("| cold build of the embedded default | **2.1 min** wall (2 CPUs, no GPU, load 6.8) | "
                        "`python benchmarks/zoo_build.py` |")
    assert lines[3] == ("| retain model: forget / retain ROUGE-L | 0.145 / 0.970 | "
                        "`python benchmarks/zoo_build.py --from_cache` |")  # not timed: no machine; own command
    assert lines[4] == ("| replay \\| EWC, average accuracy | 0.81 vs 0.62 *(transcribed from an earlier run, not "
                        "re-measured)* | `python benchmarks/continual_stream.py` |")
    assert "- `continual_stream`: transcribed, undated, no GPU" in md
    assert "- `zoo_build`: 2026-12-02T07:00:00Z, 2 CPUs, no GPU, load 6.8; shared with 6 other agents" in md


def test_rewrites_only_between_markers_and_checks_drift(table, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "zoo_build.json").write_text(json.dumps(SAMPLE))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Performance\nintro\n{table.START}\n| old | 109 s | x |\n{table.END}\n\nafter\n")
    args = ["--results", str(results), "--readme", str(readme)]
    assert table.main([*args, "--check"]) == 1
    assert table.main([*args, "--write"]) == 0
    text = readme.read_text()
    assert "109 s" not in text and "**2.1 min** wall" in text
    assert text.startswith("# x\n\n## Performance\nintro\n") and text.endswith(f"{table.END}\n\nafter\n")
    assert table.main([*args, "--check"]) == 0
    readme.write_text("no markers")
    with pytest.raises(table.SchemaError, match="markers"):
        table.main([*args, "--write"])
    with pytest.raises(table.SchemaError, match="'rows'"):
        table.validate({"schema": "hfcl-benchmark/1", "benchmark": "x", "command": "y"})


def test_bench_record_writes_what_the_table_reads(table, tmp_path, monkeypatch):
    bench_json = _module("bench_json")
    monkeypatch.setenv("HFCL_BENCH_NOTE", "busy")
    record = bench_json.BenchRecord("demo_bench", "python benchmarks/demo_bench.py")
    record.add("whole demo", "18 s", timed=True, order=5, seconds=18.0)
    assert record.write(None) is None
    path = record.write(str(tmp_path / "demo_bench.json"))
    data = json.loads(path.read_text())
    assert data["machine"]["note"] == "busy" and data["machine"]["cpus"] >= 1 and data["rows"][0]["values"]
    md = table.render_table(table.load_results(tmp_path))
    assert "| whole demo | 18 s (" in md and "busy" in md
