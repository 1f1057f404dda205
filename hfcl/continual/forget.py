"""Deletion requests inside a continual stream: unlearn rows of a learned task, then keep learning.

A forget step runs :class:`~hfcl.unlearn.UnlearningTrainer` (any of hfcl's unlearning methods) on the stream's model
in place, with the event's rows as the forget set and, as the retain set, every training row learned and not deleted
so far. Afterwards the continual strategies are told (:meth:`ContinualTrainer.forget_rows`) so none of them brings the
deleted rows back: replay drops them from its buffer, EWC / L2 anchors and the EMA average move to the unlearned
weights. O-LoRA is refused (its per-task adapters would each have to be unlearned).

The report of an event (:func:`event_report`) compares the row before it with the row after it: the drop on the
deleted rows, the level a model that never learned them has (row 0, before the stream), the change on the kept
rows of the same task, on every other learned task (collateral) and on the probe.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import ContinualConfig
from .stream import ForgetEvent, Task, TaskStream

# TrainingArguments the forget step takes from the continual run (the rest is the method's recipe or the event's).
INHERITED = ("seed", "use_cpu", "bf16", "fp16", "max_length", "disable_tqdm", "report_to",
             "per_device_eval_batch_size", "dataloader_num_workers")


def check_forgets(stream: TaskStream, config: ContinualConfig) -> None:
    """Errors known before training: strategies that cannot forget, options UnlearningConfig does not have."""
    if not stream.forgets:
        return
    import dataclasses

    from ..unlearn import UnlearningConfig, get_method

    if "olora" in config.strategy_names:
        raise ConfigError("Forget events cannot run with O-LoRA: it keeps one frozen adapter per task, so deleting "
                          "rows would mean unlearning inside every one of them; use another strategy.")
    known = {f.name for f in dataclasses.fields(UnlearningConfig)}
    for event in stream.forgets:
        method = get_method(event.method)  # raises ConfigError naming the valid methods
        if method.name == "ULD":
            raise ConfigError(f"forget event {event.name!r}: ULD leaves the model as it is and serves it with an "
                              "assistant subtracted, so the stream's model would not change; use a method that edits "
                              "the weights (NPO, GradDiff, WHP, ...).")
        if method.needs_teacher and not event.options.get("whp_names"):
            raise ConfigError(f"forget event {event.name!r}: {method.name} needs names the model never learned; add "
                              "options: {whp_names: [...]} to the event.")
        unknown = sorted(set(event.options) - known)
        if unknown:
            raise ConfigError(f"forget event {event.name!r}: options {unknown} are not UnlearningConfig fields "
                              "(`hfcl unlearn --help` lists them).")


def event_tasks(stream: TaskStream) -> list[tuple[str, str, Task]]:
    """``(event name, "forgotten" | "kept", Task)`` scored after every step: the deleted rows of each event and the
    rows of the same task it keeps (none when it deletes the whole task)."""
    out = []
    for event in stream.forgets:
        task = stream.tasks[stream.task_index(event.task)]
        gone = set(stream.forget_indices(event))
        forgotten = [r for i, r in enumerate(task.train) if i in gone]
        kept = [r for i, r in enumerate(task.train) if i not in gone]
        out.append((event.name, "forgotten", Task(f"{event.name}:forgotten", [], forgotten, task.metric)))
        if kept:
            out.append((event.name, "kept", Task(f"{event.name}:kept", [], kept, task.metric)))
    return out


def retain_rows(stream: TaskStream, learned: int, deleted: dict[int, list[int]]) -> list[dict[str, Any]]:
    """Every training row of the first ``learned`` tasks that no forget event deleted."""
    rows = []
    for k in range(learned):
        gone = set(deleted.get(k, []))
        rows.extend(r for i, r in enumerate(stream.tasks[k].train) if i not in gone)
    return rows


def unlearning_config(event: ForgetEvent, config: ContinualConfig, output_dir: str):
    """The event's :class:`~hfcl.unlearn.UnlearningConfig`: its options, else its preset (the run's
    ``forget_preset``), with seed, device and precision from the continual run."""
    from ..unlearn import UnlearningConfig

    values: dict[str, Any] = {k: getattr(config, k) for k in INHERITED if hasattr(config, k)}
    preset = event.preset if event.preset is not None else config.forget_preset
    values.update(method=event.method, preset=preset, save_strategy="no", logging_steps=config.logging_steps,
                  **event.options)
    values.setdefault("retain_loss", "nll")
    return UnlearningConfig(output_dir=output_dir, **values)


def run_forget(trainer, stream: TaskStream, event: ForgetEvent, config: ContinualConfig, tokenizer,
               work: Path) -> dict[str, Any]:
    """Unlearn ``event`` on ``trainer``'s model in place; returns what ran (method, sizes, loss, seconds)."""
    from ..unlearn import UnlearningTrainer
    from ..unlearn.trainer import quiet_console

    k = stream.task_index(event.task)
    indices = stream.forget_indices(event)
    task = stream.tasks[k]
    forget = [task.train[i] for i in indices]
    deleted = {t: list(v) for t, v in trainer.deleted.items()}
    deleted[k] = sorted(set(deleted.get(k, [])) | set(indices))
    retain = retain_rows(stream, len(trainer.task_rows), deleted)
    args = unlearning_config(event, config, str(work / "checkpoints" / event.name))
    began = time.time()
    unlearner = UnlearningTrainer(trainer.unwrapped, args, forget, retain or None, processing_class=tokenizer)
    quiet_console(unlearner)
    output = unlearner.train()
    del unlearner
    trainer.forget_rows(k, indices)
    return {"name": event.name, "task": event.task, "after": event.after, "method": args.method,
            "preset": args.preset, "n_forget": len(forget), "n_retain": len(retain),
            "train_loss": float(output.training_loss), "seconds": round(time.time() - began, 3),
            "learning_rate": args.learning_rate, "num_train_epochs": args.num_train_epochs}


def event_report(stream: TaskStream, steps: list, R: list[list[float]], probe: list[float | None],
                 extra: list[list[float]], run: dict[str, Any]) -> dict[str, Any]:
    """What one forget event did, from the rows before and after it (see the module docstring)."""
    s = next(i for i, step in enumerate(steps) if isinstance(step, ForgetEvent) and step.name == run["name"])
    labels = [(name, part) for name, part, _ in event_tasks(stream)]
    col = {part: labels.index((run["name"], part)) for name, part in labels if name == run["name"]}
    before, after = R[s], R[s + 1]
    j = stream.task_index(run["task"])
    learned = [step.name for step in steps[:s] if isinstance(step, Task)]
    report = {**run, "step": s + 1,
              "forgotten_before": extra[s][col["forgotten"]], "forgotten_after": extra[s + 1][col["forgotten"]],
              "never_learned": extra[0][col["forgotten"]], "forgotten_final": extra[-1][col["forgotten"]],
              "task_before": before[j], "task_after": after[j],
              "collateral": {n: after[stream.task_index(n)] - before[stream.task_index(n)]
                             for n in learned if n != run["task"]}}
    report["drop"] = report["forgotten_before"] - report["forgotten_after"]
    if "kept" in col:
        report.update(kept_before=extra[s][col["kept"]], kept_after=extra[s + 1][col["kept"]],
                      kept_final=extra[-1][col["kept"]])
        report["kept_change"] = report["kept_after"] - report["kept_before"]
    if probe and probe[s] is not None:
        report["probe_change"] = probe[s + 1] - probe[s]
    return report


__all__ = ["check_forgets", "event_report", "event_tasks", "retain_rows", "run_forget", "unlearning_config"]
