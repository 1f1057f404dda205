"""The machine-readable output of the benchmark scripts: one JSON file per script (schema in ``readme_table.py``).

A script records its README rows as it measures them and writes them with ``--json [PATH]`` (default
``benchmarks/results/<name>.json``)::

    from bench_json import BenchRecord, add_json_flag

    add_json_flag(parser)                       # --json [PATH]
    record = BenchRecord("eval_suite", "python benchmarks/eval_suite.py")
    record.add("TOFU suite vs a per-example loop", "6.3x faster", timed=True, speedup=6.3)
    record.write(args.json)                     # no-op when --json was not given

The load average is taken when the record is made and when it is written, so a figure measured on a busy machine
says so. ``HFCL_BENCH_NOTE`` (e.g. ``"shared with 6 other agents"``) is stored with the machine.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

SCHEMA = "hfcl-benchmark/1"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    """CPU count, GPU (``None`` without CUDA), platform, torch version and threads, and the 1/5/15-minute load."""
    info: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(terse=True),
                            "python": platform.python_version(), "gpu": None}
    try:
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover - every benchmark has torch
        pass
    info["load_avg"] = _load()
    if os.environ.get("HFCL_BENCH_NOTE"):
        info["note"] = os.environ["HFCL_BENCH_NOTE"]
    return info


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def add_json_flag(parser) -> None:
    """``--json [PATH]``: also write the figures as JSON (default ``benchmarks/results/<name>.json``)."""
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH",
                        help="Also write the README figures as JSON (default benchmarks/results/<script>.json).")


class BenchRecord:
    """The rows one run of a benchmark script contributes to the README table."""

    def __init__(self, benchmark: str, command: str) -> None:
        self.data: dict[str, Any] = {"schema": SCHEMA, "benchmark": benchmark, "command": command,
                                     "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                     "machine": machine_info(), "rows": []}

    def add(self, what: str, figure: str, *, timed: bool = False, command: str | None = None,
            order: int | None = None, **values: Any) -> None:
        """One row: ``what`` is measured, ``figure`` is the Markdown shown; ``timed`` marks a wall-time figure
        (the table names machine and load next to it); ``command`` overrides the script's command for this row;
        ``order`` places it in the table; ``values`` keeps the raw numbers."""
        row: dict[str, Any] = {"what": what, "figure": figure, "timed": timed}
        if command:
            row["command"] = command
        if order is not None:
            row["order"] = order
        if values:
            row["values"] = values
        self.data["rows"].append(row)

    def write(self, path: str | None) -> Path | None:
        """Write the record (``path`` ``""`` = the default file; ``None`` = do nothing); returns the file."""
        if path is None:
            return None
        self.data["machine"]["load_avg_end"] = _load()
        out = Path(path) if path else RESULTS_DIR / f"{self.data['benchmark']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, out)
        print(f"figures written to {out}")
        return out
