"""Render the README's performance table from the benchmark scripts' JSON output, so the figures cannot drift.

    python benchmarks/readme_table.py            # print the table made from benchmarks/results/*.json
    python benchmarks/readme_table.py --write    # rewrite README.md between the perf-table markers
    python benchmarks/readme_table.py --check    # exit 1 if README.md is not what the results give

It also fills the README's ``leaderboard`` section (from ``results/leaderboard/``, written by ``hfcl leaderboard``)
and its ``preset-table`` section (from the method registry).

Every ``benchmarks/results/*.json`` that follows the schema below becomes rows of the table, whichever script wrote
it (``bench_json.BenchRecord`` writes it; any script may, e.g. a continual-learning benchmark). Files with another
``schema`` are skipped with a note on stderr.

Schema ``hfcl-benchmark/1`` (one JSON object per file)::

    {
      "schema": "hfcl-benchmark/1",
      "benchmark": "eval_suite",                       # short name (the file is usually results/<benchmark>.json)
      "command": "python benchmarks/eval_suite.py",    # reproduces every row unless a row gives its own
      "created_at": "2026-12-02T07:10:00Z",            # UTC, when the run started
      "transcribed": false,                            # optional: true = copied from an older run, not written by
                                                       #   the script (every row then says so; re-run to replace it)
      "machine": {                                     # where it ran: wall-time figures are only true there
        "cpus": 2, "gpu": null, "platform": "...", "torch": "2.13.0+cpu", "torch_threads": 2,
        "load_avg": [5.1, 4.0, 3.2],                   # 1/5/15-minute load average at the start ...
        "load_avg_end": [6.0, 4.8, 3.5],               # ... and at the end (optional)
        "note": "shared with 6 other agents"           # optional, free text (HFCL_BENCH_NOTE)
      },
      "rows": [
        {"what": "TOFU suite vs a per-example loop",   # required: what is measured (Markdown)
         "figure": "**6.3x** faster",                  # required: the figure as shown (Markdown)
         "timed": true,                                # optional: a wall-time figure -> machine and load shown
         "command": "python benchmarks/x.py --tiny",   # optional: overrides the file's command for this row
         "order": 40,                                  # optional: position in the table (lower first; default 1000)
         "values": {"speedup": 6.3}}                   # optional: the raw numbers
      ]
    }

Rows are sorted by ``order``, then by file name, then by their position in the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA = "hfcl-benchmark/1"
ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"
DEFAULT_ORDER = 1000


class SchemaError(ValueError):
    """A results file that claims the schema but lacks a required field."""


def validate(data: Any, source: str = "result") -> dict[str, Any]:
    """``data`` if it is a well-formed ``hfcl-benchmark/1`` result, else :class:`SchemaError` naming the field."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise SchemaError(f"{source}: not an {SCHEMA} result (schema {found!r}).")
    for key, kind in (("benchmark", str), ("command", str), ("rows", list)):
        if not isinstance(data.get(key), kind):
            raise SchemaError(f"{source}: field {key!r} must be a {kind.__name__}.")
    for i, row in enumerate(data["rows"]):
        if not isinstance(row, dict) or not isinstance(row.get("what"), str) or not isinstance(row.get("figure"), str):
            raise SchemaError(f"{source}: rows[{i}] needs string fields 'what' and 'figure'.")
    return data


def load_results(folder: str | Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Every valid result in ``folder`` (``*.json``, by file name); other files are skipped with a note."""
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append({**validate(data, path.name), "_file": path.name})
        except (ValueError, OSError) as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
    return out


def machine_text(machine: dict[str, Any] | None) -> str:
    """``"2 CPUs, no GPU, load 5.7"``: where a wall-time figure was measured (the higher of start and end load)."""
    machine = machine or {}
    parts = []
    if machine.get("cpus"):
        parts.append(f"{machine['cpus']} CPUs")
    parts.append(f"GPU {machine['gpu']}" if machine.get("gpu") else "no GPU")
    loads = [x[0] for x in (machine.get("load_avg"), machine.get("load_avg_end")) if isinstance(x, list) and x]
    if loads:
        parts.append(f"load {max(loads):.1f}")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_rows(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of every result with their command and machine, in table order."""
    rows = []
    for result in results:
        for i, row in enumerate(result["rows"]):
            rows.append({**row, "command": row.get("command") or result["command"], "machine": result.get("machine"),
                         "transcribed": bool(result.get("transcribed")),
                         "_key": (row.get("order", DEFAULT_ORDER), result.get("_file", result["benchmark"]), i)})
    return sorted(rows, key=lambda r: r["_key"])


def render_table(results: Iterable[dict[str, Any]]) -> str:
    """The Markdown table (``what | figure | reproduce with``) and a line per source: when and where it ran."""
    results = list(results)
    lines = ["| what | figure | reproduce with |", "|---|---|---|"]
    for row in table_rows(results):
        figure = row["figure"] + (f" ({machine_text(row['machine'])})" if row.get("timed") else "")
        if row["transcribed"]:
            figure += " *(transcribed from an earlier run, not re-measured)*"
        lines.append(f"| {_cell(row['what'])} | {_cell(figure)} | `{_cell(row['command'])}` |")
    lines.append("")
    lines.append("Sources (`benchmarks/results/*.json`, rendered by `python benchmarks/readme_table.py --write`):")
    for result in results:
        machine = result.get("machine") or {}
        note = f"; {machine['note']}" if machine.get("note") else ""
        how = "transcribed, " if result.get("transcribed") else ""
        lines.append(f"- `{result['benchmark']}`: {how}{result.get('created_at', 'undated')}, "
                     f"{machine_text(machine)}{note}")
    return "\n".join(lines) + "\n"


def replace_section(text: str, table: str) -> str:
    """``text`` with everything between the perf-table markers replaced by ``table``."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise SchemaError(f"README has no {START} ... {END} markers around the performance table.")
    return text[:start + len(START)] + "\n" + table + text[end:]


LEADERBOARD = RESULTS_DIR / "leaderboard" / "leaderboard.md"
EXTRA_SECTIONS = {  # marker name -> what fills it
    "leaderboard": lambda: render_leaderboard(LEADERBOARD),
    "preset-table": lambda: render_presets(),
    "methods-table": lambda: render_methods(),
}


def render_methods() -> str:
    """Every registered unlearning method with its description, default retain term and presets (the registry)."""
    sys.path.insert(0, str(ROOT))
    from hfcl.unlearn.methods import METHODS

    lines = ["| `--method` | what it does | retain term (`auto`) | presets |", "|---|---|---|---|"]
    for method in METHODS.values():
        lines.append(f"| {method.name} | {method.description} | {method.retain} | {', '.join(method.presets)} |")
    return "\n".join(lines) + "\n"


def render_leaderboard(path: Path) -> str:
    """The table of the committed `hfcl leaderboard` run (benchmarks/results/leaderboard/), with its provenance."""
    board = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    meta = board["meta"]
    return (path.read_text(encoding="utf-8") + "\n" +
            f"Seeds {','.join(map(str, meta['seeds']))}, {meta['zoo']} world, {meta['forget_split']}; "
            f"{meta['wall_seconds'] / 60:.1f} min on {meta['cpus']} CPUs (hfcl {meta['hfcl_version']}); "
            "`hfcl leaderboard --output_dir benchmarks/results/leaderboard --overwrite true` regenerates it, then "
            "`python benchmarks/readme_table.py --write`.\n")


def render_presets() -> str:
    """The tuned presets per method, read from the registry (hfcl.unlearn.methods)."""
    sys.path.insert(0, str(ROOT))
    from hfcl.unlearn.methods import _TUNED_SCHEDULE, METHODS

    lines = ["| method | `--preset tuned` (on top of the shared schedule) |", "|---|---|"]
    for method in METHODS.values():
        tuned = method.presets.get("tuned")
        if tuned:
            own = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in tuned.items()
                            if _TUNED_SCHEDULE.get(k, object()) != v)
            lines.append(f"| {method.name} | {own} |")
    shared = ", ".join(f"{k} {v}" for k, v in _TUNED_SCHEDULE.items() if k != "logging_steps")
    return "\n".join(lines) + f"\n\nShared schedule: all weights, {shared} (the epochs are a cap).\n"


def replace_marked(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise SchemaError(f"README has no {start} ... {end} markers.")
    return text[:i + len(start)] + "\n" + body + text[j:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS_DIR), help="Folder of the benchmark JSON files.")
    parser.add_argument("--readme", default=str(README), help="README to rewrite or check.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="Rewrite the README between the markers.")
    mode.add_argument("--check", action="store_true", help="Exit 1 if the README's table is out of date.")
    args = parser.parse_args(argv)
    table = render_table(load_results(args.results))
    if not (args.write or args.check):
        print(table, end="")
        return 0
    readme = Path(args.readme)
    old = readme.read_text(encoding="utf-8")
    new = replace_section(old, table)
    for name, render in EXTRA_SECTIONS.items():
        if f"<!-- {name}:start -->" in new:
            new = replace_marked(new, name, render())
    if args.check:
        if new != old:
            print(f"{readme}: the performance table is out of date; run python benchmarks/readme_table.py --write",
                  file=sys.stderr)
            return 1
        return 0
    if new != old:
        tmp = readme.with_name(f".{readme.name}.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(readme)
    print(f"{readme}: performance table {'rewritten' if new != old else 'already up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
