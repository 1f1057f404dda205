"""The demo's "Learn continually" chapter: naive fine-tuning vs replay + EWC on the embedded stream, then a stream
that also forgets (learn A, learn B, forget one author of A, learn C), all from the zoo's ``base`` model.

Each run is what ``hfcl continual --preset demo`` does on a 3-task stream; the chapter prints the matrices side by
side, the forgetting numbers and the forget event, and writes the learn-and-forget run folder (matrix, heat map,
stages) under the demo's output directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .cli import DEMO_SETTINGS
from .config import ContinualConfig
from .stream import world_stream

#: name -> ContinualConfig values of the chapter's runs (the forget run adds the event to the same stream)
RUNS: dict[str, dict[str, Any]] = {
    "naive": {"strategy": "naive"},
    "replay + ewc": {"strategy": "replay,ewc", "replay_ratio": 0.25, "ewc_lambda": 10.0},
}
FORGET_RUN = "replay + ewc, then forget"


def demo_continual(zoo, output_dir: str | Path, n_tasks: int = 3, authors_per_task: int = 2,
                   probe_size: int = 10) -> dict[str, Any]:
    """Run the chapter; returns ``{name: ContinualResult}`` for naive, replay + EWC and the learn-and-forget run
    (written to ``output_dir``)."""
    from ..zoo import load_model
    from .runner import run_stream

    settings = {**DEMO_SETTINGS, "use_cpu": True, "disable_tqdm": True, "report_to": "none", "seed": 0,
                "logging_steps": 1000}
    plain = world_stream(zoo, n_tasks=n_tasks, authors_per_task=authors_per_task, probe_size=probe_size)
    forgetting = world_stream(zoo, n_tasks=n_tasks, authors_per_task=authors_per_task, probe_size=probe_size,
                              forget_after=2)
    results = {}
    with tempfile.TemporaryDirectory(prefix="hfcl-demo-continual-") as scratch:  # the compared runs' work folders
        for name, values in [*RUNS.items(), (FORGET_RUN, RUNS["replay + ewc"])]:
            model, tokenizer = load_model("base", zoo)
            write = name == FORGET_RUN
            where = Path(output_dir) if write else Path(scratch) / name.replace(" ", "")
            config = ContinualConfig(output_dir=str(where), **settings, **values)
            results[name] = run_stream(forgetting if write else plain, config, model, tokenizer, overwrite=True,
                                       write=write)
    return results


def print_chapter(results: dict[str, Any], console) -> None:
    """The matrices side by side, a forgetting summary and the forget event table."""
    from rich.columns import Columns
    from rich.table import Table

    from .cli import forget_table, matrix_table

    console.print(Columns([matrix_table(results[name], title=f"R: {name}") for name in RUNS]))
    summary = Table(title="what each strategy kept (final row)")
    for column in ("run", "ACC ↑", "BWT ↑", "forgetting ↓", "probe change ↑"):
        summary.add_column(column, justify="left" if column == "run" else "right")
    for name, result in results.items():
        s = result.summary
        summary.add_row(name, f"{s['acc']:.3f}", f"{s['bwt']:+.3f}", f"{s['forgetting']:.3f}",
                        "-" if s["probe_change"] is None else f"{s['probe_change']:+.3f}")
    console.print(summary)
    forget = results[FORGET_RUN]
    console.print(matrix_table(forget, title=f"R: {FORGET_RUN} (red row: the deletion request)"))
    console.print(forget_table(forget))


__all__ = ["FORGET_RUN", "RUNS", "demo_continual", "print_chapter"]
