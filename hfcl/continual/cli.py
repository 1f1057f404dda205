"""``hfcl continual``: learn a stream of tasks one after another and write one run directory.

    hfcl continual --preset demo --output_dir out/cl                       # the embedded stream, naive baseline
    hfcl continual --preset demo --strategy replay,ewc --output_dir out/cl2
    hfcl continual --zoo tiny --strategy olora --output_dir out/olora      # O-LoRA implies --lora true
    hfcl continual --config stream.yaml                                    # options and the stream in one file
    hfcl continual --preset demo --n_tasks 3 --forget_after 2 --strategy replay --output_dir out/lf
                                          # learn A, learn B, forget part of A (NPO + GradDiff), learn C

In ``--config`` files, ``stream:`` holds a stream mapping (see :mod:`hfcl.continual.stream`) or the path of a stream
YAML file; without it the embedded stream of the fictitious world is used. Every option of
:class:`ContinualRunArgs`, :class:`~hfcl.continual.stream.WorldStreamConfig` and :class:`ContinualConfig`
(including all ``TrainingArguments``) is a flag and a YAML key of the same name.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import parse_args
from ..errors import ConfigError
from .config import ContinualConfig
from .stream import TaskStream, WorldStreamConfig, world_stream


@dataclass
class ContinualRunArgs:
    """What to learn from which model (the training recipe itself is :class:`ContinualConfig`)."""

    model: str = field(default="base", metadata={
        "help": "Model to start from: an embedded zoo stage ('base' knows the world but none of its fictitious "
                "authors), a local folder or a Hub id."})
    stream: Any = field(default=None, metadata={
        "help": "A stream YAML file (tasks with name, train, eval, metric; see hfcl.continual.stream). Default: the "
                "embedded stream of the fictitious world, sized by --n_tasks/--authors_per_task/--probe_size."})
    zoo: str = field(default="default", metadata={
        "help": "Embedded zoo recipe for zoo stage names and the embedded stream: 'default' or 'tiny' (tests)."})
    preset: str | None = field(default=None, metadata={
        "help": "'demo': the recipe tuned on the embedded stream (full fine-tuning, lr 3e-3, 10 epochs per task, "
                "batch 8) for every option left at its default."})
    lora: bool | None = field(default=None, metadata={
        "help": "Train a LoRA adapter instead of all weights (default: only with O-LoRA, which needs it)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (each O-LoRA task gets its own rank-r adapter)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha."})
    lora_target_modules: str = field(default="all-linear", metadata={
        "help": "Comma-separated module names for LoRA, or 'all-linear'."})
    monitor_steps: int = field(default=0, metadata={
        "help": "ForgettingMonitor: log CE/KL to the starting model on the probe every N steps (0 = at task ends)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace output_dir if it exists."})


DEMO_SETTINGS: dict[str, Any] = {"learning_rate": 3e-3, "num_train_epochs": 10.0, "per_device_train_batch_size": 8,
                                  "lr_scheduler_type": "constant_with_warmup", "logging_steps": 10}


def apply_preset(config: ContinualConfig, preset: str | None) -> None:
    """Set the preset's values on every option of ``config`` still at its default."""
    if preset is None:
        return
    if preset != "demo":
        raise ConfigError(f"Unknown preset {preset!r}; the only preset is 'demo'.")
    defaults = {f.name: f.default for f in dataclasses.fields(ContinualConfig)}
    for key, value in DEMO_SETTINGS.items():
        if getattr(config, key) == defaults.get(key):
            setattr(config, key, value)


def zoo_config(name: str):
    from ..zoo import ZooConfig, tiny_config

    if name not in ("default", "tiny"):
        raise ConfigError(f"--zoo {name!r}: use 'default' or 'tiny'.")
    return tiny_config() if name == "tiny" else ZooConfig()


def build_stream(run: ContinualRunArgs, world: WorldStreamConfig, zoo) -> TaskStream:
    if isinstance(run.stream, dict):
        return TaskStream.from_dict(run.stream, where="stream (in --config)")
    if run.stream:
        if not Path(run.stream).is_file():
            raise ConfigError(f"--stream {run.stream!r} does not exist (a stream YAML file).")
        return TaskStream.from_yaml(run.stream)
    return world_stream(zoo, world.n_tasks, world.authors_per_task, world.probe_size, world.metric,
                        world.forget_after, world.forget_authors, world.forget_method)


def lora_config(run: ContinualRunArgs):
    from peft import LoraConfig

    targets = run.lora_target_modules
    targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(r=run.lora_r, lora_alpha=run.lora_alpha, target_modules=targets, lora_dropout=0.0,
                      task_type="CAUSAL_LM")


def continual(run: ContinualRunArgs, world: WorldStreamConfig, config: ContinualConfig):
    """Everything ``hfcl continual`` does; returns the :class:`~hfcl.continual.ContinualResult`."""
    from ..errors import OutputExistsError
    from ..zoo import load_model, resolve
    from .runner import check_run, run_stream

    apply_preset(config, run.preset)
    zoo = zoo_config(run.zoo)
    stream = build_stream(run, world, zoo)
    wants_lora = "olora" in config.strategy_names
    if run.lora is False and wants_lora:
        raise ConfigError("O-LoRA trains one LoRA per task; drop --lora false.")
    use_lora = bool(run.lora) or wants_lora
    check_run(stream, config, use_lora)
    if Path(config.output_dir).exists() and not run.overwrite and not config.resume_from_checkpoint:
        raise OutputExistsError(f"Output directory {config.output_dir!r} already exists; pass --overwrite true or "
                                "choose another --output_dir.")
    model_dir = resolve(run.model, zoo)
    model, tokenizer = load_model(run.model, zoo)
    record = {"base_model": {"id": run.model, "path": model_dir}, "zoo": run.zoo,
              "run": {**{k: v for k, v in dataclasses.asdict(run).items() if k != "stream"},
                      "lora": use_lora}, "world_stream": dataclasses.asdict(world)}
    started = time.time()
    result = run_stream(stream, config, model, tokenizer, peft_config=lora_config(run) if use_lora else None,
                        overwrite=run.overwrite, record=record, monitor_every=run.monitor_steps)
    result.wall_seconds = time.time() - started
    return result


def matrix_table(result, title: str | None = None):
    """A rich table of R (rows: before / after each task) with ACC, BWT and forgetting in the caption."""
    from rich.table import Table

    s = result.summary
    caption = (f"ACC {s['acc']:.3f}   BWT {s['bwt']:.3f}   forgetting {s['forgetting']:.3f}   FWT {s['fwt']:.3f}"
               if len(result.tasks) > 1 else f"ACC {s['acc']:.3f}")
    if s["probe_change"] is not None:
        caption += f"   probe change {s['probe_change']:+.3f}"
    table = Table(title=title or f"Accuracy matrix R ({', '.join(sorted(set(result.metrics)))})", caption=caption)
    table.add_column("after")
    for name in result.tasks:
        table.add_column(name, justify="right")
    if result.probe is not None:
        table.add_column("probe", justify="right", style="dim")
    marked = set(result.forget_rows)
    for i, (label, row) in enumerate(zip(result.labels, result.R)):
        cells = [f"{v:.3f}" for v in row] + ([f"{result.probe[i]:.3f}"] if result.probe is not None else [])
        table.add_row(label.removeprefix("after "), *cells, style="red" if i in marked else None)
    return table


def forget_table(result):
    """One row per forget event: the deleted rows before / after / at the end against a model that never learned
    them, the kept rows of the same task, and the largest collateral change on another task."""
    from rich.table import Table

    table = Table(title="Forget events", caption="deleted / kept: the event's rows and the rest of the same task, "
                  "before -> after the event (end of stream)")
    for name in ("event", "deleted", "never learned", "kept", "collateral", "probe"):
        table.add_column(name, justify="left" if name == "event" else "right", no_wrap=name == "event")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"
    for e in result.forget_events:
        collateral = max(e["collateral"].values(), key=abs, default=None)
        kept = ("-" if e.get("kept_before") is None else
                f"{fmt(e['kept_before'])} -> {fmt(e['kept_after'])} ({fmt(e['kept_final'])})")
        table.add_row(f"{e['name']} ({e['method']})",
                      f"{fmt(e['forgotten_before'])} -> {fmt(e['forgotten_after'])} ({fmt(e['forgotten_final'])})",
                      fmt(e["never_learned"]), kept, "-" if collateral is None else f"{collateral:+.3f}",
                      "-" if e.get("probe_change") is None else f"{e['probe_change']:+.3f}")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    run, world, config = parse_args(
        [ContinualRunArgs, WorldStreamConfig, ContinualConfig], argv, prog="hfcl continual",
        description="Learn a stream of tasks one after another with composable strategies (naive, replay, ewc, "
                    "online_ewc, l2, lwf, olora, ema) and deletion requests between tasks (forget events, any unlearning "
                    "method); fill the accuracy matrix R and write one run directory.")
    result = continual(run, world, config)
    console = Console()
    console.print(matrix_table(result))
    if result.forget_events:
        console.print(forget_table(result))
    console.print(f"Continual run ({config.strategy}) -> {result.output_dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main(sys.argv[1:]))
