"""``hfcl leaderboard``: every unlearning method with its preset on the embedded world, over seeds, attacked, in
one table anyone can regenerate.

Each entry (a method of the registry with its ``tuned`` preset where it has one, else its ``demo`` preset; SalUn and
SOUL on NPO's tuned recipe; task-vector negation with ``hfcl negate``'s defaults) is trained once per seed from the
embedded ``target``, scored by the TOFU suite against the retain model's reference log and attacked (relearning,
quantization). Runs go to worker processes of one thread each (deterministic, and two one-thread processes beat one
two-thread process on models this small). The output folder gets ``leaderboard.json`` (every run and the mean and
spread per entry), ``leaderboard.md`` (the table), ``leaderboard.png`` (forget quality vs model utility) and a
``README.md`` card; ``--hub_model_id`` pushes the folder as a dataset repo in one commit.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..utils.logging import get_logger

logger = get_logger(__name__)

#: Columns of the table: aggregate -> (header, format). ``mu_ratio`` is model utility / the target's.
COLUMNS: dict[str, tuple[str, str]] = {
    "forget_quality": ("FQ ↑", "{:.2g}"), "mu_ratio": ("MU/target ↑", "{:.3f}"), "privleak": ("PrivLeak →0", "{:+.1f}"),
    "forget_rouge": ("forget RL ↓", "{:.3f}"), "retain_rouge": ("retain RL ↑", "{:.3f}"),
    "robustness_relearn_gain_prob": ("relearn ↓", "{:+.3f}"), "robustness_quant4_gain_prob": ("4-bit ↓", "{:+.3f}"),
    "robustness_unguard_gain_prob": ("unguard ↓", "{:+.3f}"),
    "steps": ("steps", "{:.0f}"),
}
#: Wall-time columns: in leaderboard.json and the command's summary, not in the Markdown table (which a fresh run
#: reproduces exactly; timings never do).
TIMING: dict[str, tuple[str, str]] = {"seconds": ("train s (1 core)", "{:.1f}")}
LEGEND = ("FQ: forget quality (KS p-value of truth ratios vs the retain model); MU/target: model utility over the "
          "target's; PrivLeak: MUSE PrivLeak vs the retain model (0 is ideal); RL: ROUGE-L recall of greedy answers; "
          "relearn / 4-bit: gain in forget answer probability after the relearning / 4-bit quantization attack, on "
          "forget rows the attack never saw (lower is better); unguard: the same gain for the weights without an "
          "inference-time guard (ECO, GuardFilter, GuardPrompt; 0 for a model whose weights changed); steps: optimizer "
          "steps until the run ended (S3T: of "
          "retraining the slices its deletion deactivated).")
FILES = ("leaderboard.json", "leaderboard.md", "leaderboard.png", "README.md")


@dataclass(frozen=True)
class Entry:
    """One leaderboard row: a method, its preset and extra ``UnlearningConfig`` options (``negation``: hfcl negate)."""

    name: str
    method: str
    preset: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def default_entries() -> list[Entry]:
    """Every registered method with its best preset, SalUn and SOUL on NPO's tuned recipe, and negation."""
    from .methods import METHODS

    entries = [Entry(m.name, m.name, "tuned" if "tuned" in m.presets else "demo") for m in METHODS.values()]
    npo = "tuned" if "tuned" in METHODS["NPO"].presets else "demo"
    entries += [Entry("NPO+SalUn", "NPO", npo, {"salun_sparsity": 0.5}), Entry("NPO+SOUL", "NPO", npo, {"soul": True}),
                Entry("negation", "negation")]
    return entries


def select_entries(spec: str) -> list[Entry]:
    """``"all"`` or comma-separated entry names (case-insensitive) -> entries; an unknown name is a ConfigError."""
    entries = default_entries()
    if spec.strip().lower() in ("", "all"):
        return entries
    by_name = {e.name.lower(): e for e in entries}
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        raise ConfigError(f"methods: unknown {unknown}; choose from all, {', '.join(e.name for e in entries)}.")
    if len({n.lower() for n in names}) != len(names):
        raise ConfigError(f"methods={spec!r}: an entry is named twice; name each once.")
    return [by_name[n.lower()] for n in names]


def parse_seeds(spec: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; anything else is a ConfigError naming the field."""
    try:
        seeds = [int(s) for s in str(spec).split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={spec!r}: give distinct comma-separated integers, e.g. '0,1,2'.")
    return seeds


# --- one run (in a worker process) ----------------------------------------------------------------------------------
def init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    import logging

    logging.getLogger("hfcl").setLevel(logging.ERROR)


def run_entry(entry: Entry, seed: int, zoo_name: str, forget_split: str, attacks: str, target_utility: float,
              work_dir: str) -> dict[str, Any]:
    """Unlearn with ``entry`` and ``seed`` from the embedded target (S3T: from its base, then delete), evaluate
    and attack; the row's figures."""
    from ..data import load_tofu
    from ..eval import evaluate_model
    from ..zoo import load_model
    from .methods import get_method
    from .run import zoo_recipe

    zoo = zoo_recipe(zoo_name)
    splits = load_tofu(forget_split, world_config=zoo)
    exact = entry.method != "negation" and get_method(entry.method).exact  # S3T trains from the target's base
    model, tokenizer = load_model("base" if exact else "target", zoo, forget_split)
    start = time.perf_counter()
    steps, stopped = None, None
    if entry.method == "negation":
        from ..compose.negation import unlearn_by_negation

        with contextlib.redirect_stdout(io.StringIO()):  # its Trainer prints a log dict; workers stay quiet
            model = unlearn_by_negation(model, splits["forget"], tokenizer=tokenizer, seed=seed).model
    else:
        from .config import UnlearningConfig
        from .run import UnlearnRunArgs, lora_config, recipe_adapter, s3t_training_rows
        from .trainer import UnlearningTrainer, quiet_console

        config = UnlearningConfig(output_dir=str(Path(work_dir) / f"{entry.name}-{seed}"), method=entry.method,
                                  preset=entry.preset, seed=seed, use_cpu=True, report_to="none", disable_tqdm=True,
                                  save_strategy="no", logging_steps=1000, **dict(entry.options))
        run = recipe_adapter(UnlearnRunArgs(), config)
        retain = s3t_training_rows(run, splits["retain"], zoo) if exact else splits["retain"]
        trainer = UnlearningTrainer(model, config, splits["forget"], retain, processing_class=tokenizer,
                                    peft_config=lora_config(run, config.method) if run.lora else None,
                                    holdout_dataset=splits["holdout"])  # the stop rule's, WHP's names
        quiet_console(trainer)
        trainer.train()
        model, steps = trainer.unlearned_model(), trainer.state.global_step  # ULD: target + assistant
        if trainer.s3t_record is not None:
            steps = trainer.s3t_record["deletion"]["retrain_steps"]  # S3T's deletion cost: the slices retrained
        if trainer.membership_stop is not None:
            stopped = (trainer.membership_stop.outcome or {}).get("reason", "cap")
    seconds = time.perf_counter() - start
    report = evaluate_model((model, tokenizer), world_config=zoo, forget_split=forget_split, reference_log="auto",
                            distributed=False, attacks=attacks)
    a = report.aggregates
    row = {k: a.get(k) for k in COLUMNS if k not in ("mu_ratio", "steps")}
    row.update(entry=entry.name, seed=seed, seconds=round(seconds, 2), steps=steps, stopped=stopped,
               mu_ratio=a["model_utility"] / target_utility if target_utility else None)
    return row


# --- aggregation and rendering (pure) -------------------------------------------------------------------------------
def summarise(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per entry, in first-seen order: ``{"entry", "seeds", <column>: {"mean", "std"}}`` (population spread)."""
    order: list[str] = []
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in runs:
        if r["entry"] not in groups:
            order.append(r["entry"])
        groups.setdefault(r["entry"], []).append(r)
    rows = []
    for name in order:
        group = groups[name]
        row: dict[str, Any] = {"entry": name, "seeds": [r["seed"] for r in group]}
        for column in (*COLUMNS, *TIMING):
            values = [float(r[column]) for r in group if r.get(column) is not None]
            if values:
                mean = sum(values) / len(values)
                std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
                if max(values) - min(values) <= 1e-12 * max(1.0, abs(mean)):
                    std = 0.0  # equal runs: no rounding residue of the mean shown as a spread
                row[column] = {"mean": mean, "std": std}
        rows.append(row)
    return rows


def markdown_table(summary: Sequence[Mapping[str, Any]], target: Mapping[str, Any] | None = None) -> str:
    """The leaderboard as a Markdown table, mean ± spread over seeds; ``target`` adds a "before" row."""
    head = ["method", *(h for h, _ in COLUMNS.values())]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if target:
        cells = [fmt.format(target[c]) if target.get(c) is not None else "" for c, (_, fmt) in COLUMNS.items()]
        lines.append("| target (before) | " + " | ".join(cells) + " |")
    for row in summary:
        cells = []
        for column, (_, fmt) in COLUMNS.items():
            v = row.get(column)
            cells.append("" if v is None else fmt.format(v["mean"]) + (" ± " + fmt.format(v["std"]).lstrip("+")
                                                                       if len(row["seeds"]) > 1 else ""))
        lines.append(f"| {row['entry']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def scatter_png(summary: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Forget quality (log scale) vs model utility / target, one point per entry with its seed spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..utils.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for row in summary:
        fq, mu = row.get("forget_quality"), row.get("mu_ratio")
        if not fq or not mu:
            continue
        x = max(fq["mean"], 1e-12)
        ax.errorbar(x, mu["mean"], yerr=mu["std"], fmt="o", capsize=3)
        ax.annotate(row["entry"], (x, mu["mean"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.axvline(0.05, color="grey", ls=":", lw=1)
    ax.axhline(0.95, color="grey", ls=":", lw=1)
    ax.set_xlabel("forget quality (KS p-value vs the retain model; higher is better)")
    ax.set_ylabel("model utility / target's")
    ax.set_title("Unlearning methods on the embedded world (mean over seeds)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def card_text(table: str, meta: Mapping[str, Any]) -> str:
    """The README.md of a leaderboard folder (YAML header, what was run, the table, the plot, how to regenerate)."""
    seeds = ",".join(str(s) for s in meta["seeds"])
    names = [e["name"] for e in meta["entries"]]
    attacks = [a for a in str(meta.get("attacks") or "").split(",") if a]
    attacked = {"relearn": "relearning on 20% of the forget rows", "quantize": "round-to-nearest quantization"}
    attack_text = (" and attacked (" + ", ".join(attacked.get(a, a) for a in attacks) + "; gains are on the forget "
                   "rows the attack never saw)") if attacks else ""
    command = (f"hfcl leaderboard --zoo {meta['zoo']} --forget_split {meta['forget_split']} --methods "
               f"{','.join(names)} --seeds {seeds} --attacks '{','.join(attacks)}' --output_dir DIR")
    return (f"---\nlibrary_name: hfcl\ntags:\n- hfcl\n- unlearning\n- leaderboard\n---\n\n"
            f"# Unlearning leaderboard ({meta['zoo']} embedded world, {meta['forget_split']})\n\n"
            f"{', '.join(names)}, each with its preset, trained from the embedded `target` (S3T from its `base`) "
            f"with seeds {seeds}, "
            f"scored by the TOFU suite against the retain model's reference log{attack_text}. Mean ± spread over "
            "seeds.\n\n" + table + f"\n{LEGEND}\n" +
            "\n![forget quality vs model utility](leaderboard.png)\n\n"
            f"Regenerate: `{command}` (hfcl {meta['hfcl_version']}, torch {meta['torch_version']}; "
            f"{meta['wall_seconds']:.0f} s on {meta['cpus']} CPUs).\n")


__all__ = ["COLUMNS", "LEGEND", "TIMING", "Entry", "card_text", "default_entries", "init_worker", "markdown_table", "parse_seeds", "run_entry",
           "scatter_png", "select_entries", "summarise"]
