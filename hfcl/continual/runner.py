"""Train a stream task after task, fill the accuracy matrix R, and write one run directory.

``R`` has ``T + 1`` rows: row 0 scores the model before any task, row ``i`` after tasks ``1..i``; column ``j`` is
task ``j``'s metric on its eval rows. ACC, A_inc, BWT, FWT and average forgetting come from
:func:`hfcl.eval.continual_report` (one tested definition).

Run directory (atomic: written under a temporary name, renamed at the end)::

    OUT/  final model or adapter (O-LoRA: the per-task adapters combined by hfcl.compose) + tokenizer
          accuracy_matrix.json  eval_report.json (suite "continual")  plots/accuracy_matrix.png  hfcl_run.json
          stages/task-K-NAME/   the model or adapter after step K (+ adapters/ for O-LoRA)
          stages/step-K-NAME/   the same after a forget event (step K); accuracy_matrix.json has its report

While the stream runs, stages and Trainer checkpoints live in ``.OUT.work/`` beside it; with
``resume_from_checkpoint`` a run continues there at the first unfinished task (inside it from its latest
``checkpoint-N`` when ``save_strategy`` made one), with the replay buffer, Fisher, anchors and teachers restored.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, OutputExistsError
from ..utils.distributed import is_main_process
from ..utils.io import atomic_write_json, shared_atomic_directory
from ..utils.logging import get_logger
from .config import ContinualConfig
from .stream import TaskStream

logger = get_logger(__name__)
STATE_FILE = "continual_state.safetensors"
STAGE_FILE = "stage.json"
OPTIMIZER_FILE = "optimizer.pt"  # only with reset_optimizer=False: the moments that carry into the next task


@dataclass
class ContinualResult:
    """What a stream run produced."""

    tasks: list[str]
    metrics: list[str]
    R: list[list[float]]
    probe: list[float] | None
    report: Any
    output_dir: Path | None
    stage_seconds: list[float] = field(default_factory=list)
    monitor: list[dict[str, float]] = field(default_factory=list)
    trainer: Any = None
    row_labels: list[str] | None = None
    forget_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """One label per row of R: ``before``, then ``after <task or forget event>``."""
        return self.row_labels or ["before"] + [f"after {t}" for t in self.tasks]

    @property
    def forget_rows(self) -> list[int]:
        """Rows of R that follow a forget event."""
        names = {e["name"] for e in self.forget_events}
        return [i for i, label in enumerate(self.labels) if label.removeprefix("after ") in names]

    @property
    def summary(self) -> dict[str, Any]:
        a = self.report.aggregates
        probe_change = None if not self.probe else self.probe[-1] - self.probe[0]
        return {"acc": a["final_average_accuracy"], "a_inc": a["average_incremental_accuracy"],
                "bwt": a["backward_transfer"], "fwt": a["forward_transfer"], "forgetting": a["average_forgetting"],
                "probe_change": probe_change}


def _stage_dir(work: Path, k: int, step) -> Path:
    """``stages/task-K-NAME`` after a learn step, ``stages/step-K-NAME`` after a forget event (K = the step)."""
    from .stream import ForgetEvent

    return work / "stages" / f"{'step' if isinstance(step, ForgetEvent) else 'task'}-{k + 1}-{step.name}"


def _peft_weights(trainer) -> dict[str, torch.Tensor]:
    return {f"weights.{n}": p.detach().cpu().contiguous() for n, p in trainer.unwrapped.named_parameters()
            if "lora_" in n}


def _save_stage(trainer, stage: Path, record: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    trainer.save_model(str(stage))
    if trainer.is_world_process_zero():
        tensors, meta = trainer.continual_state()
        if trainer.is_peft:
            tensors.update(_peft_weights(trainer))
        save_file(tensors, str(stage / STATE_FILE))
        if not trainer.args.reset_optimizer and trainer.optimizer is not None:  # AdamW moments carry across tasks
            torch.save(trainer.optimizer.state_dict(), stage / OPTIMIZER_FILE)
        atomic_write_json(stage / STAGE_FILE, {**record, "continual_state": meta})
    trainer.accelerator.wait_for_everyone()


def _completed_stages(work: Path, stream: TaskStream) -> list[Path]:
    done = []
    for k, step in enumerate(stream.steps):
        stage = _stage_dir(work, k, step)
        if not (stage / STAGE_FILE).is_file():
            break
        done.append(stage)
    return done


def _restore(trainer, stage: Path, stream: TaskStream) -> dict[str, Any]:
    """Load the weights and the stream state saved after a completed task."""
    from safetensors.torch import load_file

    record = json.loads((stage / STAGE_FILE).read_text())
    tensors = load_file(str(stage / STATE_FILE))
    meta = record["continual_state"]
    model = trainer.unwrapped
    if trainer.is_peft:
        for state in meta["strategies"]:  # O-LoRA: re-create the per-task adapters before loading their weights
            if state["name"] == "olora":
                import copy

                for name in state["adapters"]:
                    if name not in model.peft_config:
                        model.add_adapter(name, copy.deepcopy(model.peft_config["default"]))
        weights = {k[len("weights."):]: v for k, v in tensors.items() if k.startswith("weights.")}
    else:
        weights = load_file(str(stage / "model.safetensors"))
    params = dict(model.named_parameters())
    if not any(n in params for n in weights):
        raise ConfigError(f"Cannot resume from {str(stage)!r}: its weights match no parameter of the model.")
    with torch.no_grad():
        for n, v in weights.items():
            if n in params:  # a tied duplicate (lm_head) is not a parameter of its own
                params[n].copy_(v.to(params[n].device, params[n].dtype))
    done = int(meta["tasks_done"])
    trainer.load_continual_state(tensors, meta, [t.train for t in stream.tasks[:done]])
    if not trainer.args.reset_optimizer and (stage / OPTIMIZER_FILE).is_file():
        trainer.create_optimizer()  # over the same trainable parameters, in the same order, as when it was saved
        trainer.optimizer.load_state_dict(torch.load(stage / OPTIMIZER_FILE, weights_only=True))
        trainer.keep_optimizer()
    return record


def _latest_checkpoint(folder: Path) -> str | None:
    checkpoints = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def check_run(stream: TaskStream, config: ContinualConfig, is_peft: bool) -> None:
    """Every error that can be known before training."""
    from .forget import check_forgets
    from .strategies import STRATEGIES

    stream.validate()
    check_forgets(stream, config)
    for name in config.strategy_names:
        if STRATEGIES[name].needs_peft and not is_peft:
            raise ConfigError(f"Strategy {name!r} needs a PEFT (LoRA) model: pass peft_config (CLI: --lora true).")


def run_stream(stream: TaskStream, config: ContinualConfig, model, tokenizer, peft_config=None,
               overwrite: bool = False, record: dict[str, Any] | None = None, monitor_every: int = 0,
               stop_after: int | None = None, write: bool = True, callbacks=None) -> ContinualResult:
    """Train ``stream`` with ``config`` from ``model`` and write the run directory ``config.output_dir``.

    ``config.resume_from_checkpoint`` (any value) continues an interrupted run. ``stop_after=k`` stops after task
    ``k`` leaving the work folder in place (what an interruption leaves; used by the resume test). ``write=False``
    returns R without writing the final run directory (benchmarks). ``callbacks`` are added to the Trainer.
    """
    from transformers import set_seed

    from ..eval.continual import continual_report
    from ..unlearn.trainer import quiet_console
    from .callbacks import ForgettingMonitor
    from .forget import event_report, event_tasks, run_forget
    from .scoring import score_tasks
    from .stream import ForgetEvent, stream_examples
    from .trainer import ContinualTrainer

    check_run(stream, config, peft_config is not None or hasattr(model, "peft_config"))
    out = Path(config.output_dir)
    resume = bool(config.resume_from_checkpoint)
    if write and out.exists() and not overwrite and not resume:
        raise OutputExistsError(f"Output directory {str(out)!r} already exists; pass --overwrite true or choose "
                                "another --output_dir.")
    work = out.parent / f".{out.name}.work"
    if work.exists() and not resume and is_main_process():
        shutil.rmtree(work, ignore_errors=True)  # a stale work folder of an earlier run (main process only)
    push_repo = (config.hub_model_id or out.name) if config.push_to_hub else None
    config.push_to_hub = False
    config.output_dir = str(work / "checkpoints")
    start = time.time()
    set_seed(config.seed)
    callbacks = list(callbacks or [])
    monitor = None
    if stream.probe is not None:
        monitor = ForgettingMonitor(tokenizer, stream.probe.eval, every_n_steps=monitor_every,
                                    max_length=config.max_length, batch_size=config.per_device_eval_batch_size)
        callbacks.append(monitor)
    trainer = ContinualTrainer(model, config, processing_class=tokenizer, peft_config=peft_config,
                               callbacks=callbacks)
    quiet_console(trainer)  # a progress bar per task, not {'train_runtime': ...} dicts
    trainer.accelerator.wait_for_everyone()  # the stale work folder is gone on every process
    extra_tasks = [task for _, _, task in event_tasks(stream)]
    scored = list(stream.tasks) + ([stream.probe] if stream.probe is not None else []) + extra_tasks
    n_main = len(stream) + (stream.probe is not None)

    def score() -> tuple[list[float], float | None, list[float]]:
        values = score_tasks(trainer.unwrapped, tokenizer, scored, batch_size=config.per_device_eval_batch_size,
                             max_length=config.max_length)
        return (values[:len(stream)], (values[len(stream)] if stream.probe is not None else None),
                values[n_main:])

    steps = stream.steps
    R: list[list[float]] = []
    probe: list[float] = []
    extra: list[list[float]] = []
    seconds: list[float] = []
    events: list[dict[str, Any]] = []
    first = 0
    done = _completed_stages(work, stream) if resume else []
    if done:
        if monitor is not None:  # the KL reference is the starting model, not the restored one
            monitor.set_reference(trainer.unwrapped)
        saved = _restore(trainer, done[-1], stream)
        if monitor is not None:
            monitor.resume(saved.get("monitor_history", []), len(trainer.task_rows))
        R, probe, seconds = saved["R"], saved["probe"], saved["stage_seconds"]
        extra, events = saved.get("extra", [[] for _ in R]), saved.get("forget_events", [])
        first = len(done)
        logger.info("Resuming %s at step %d/%d.", stream.name, first + 1, len(steps))
    else:
        row, p, x = score()
        R.append(row)
        probe.append(p)
        extra.append(x)
    for s in range(first, len(steps)):
        step = steps[s]
        set_seed(config.seed + s)
        began = time.time()
        if isinstance(step, ForgetEvent):
            events.append(run_forget(trainer, stream, step, config, tokenizer, work))
        else:
            k = stream.task_index(step.name)
            checkpoint = _latest_checkpoint(Path(config.output_dir) / f"task-{k + 1}-{step.name}") if resume else None
            trainer.train_task(k, step.train, name=step.name, resume_from_checkpoint=checkpoint)
        row, p, x = score()
        R.append(row)
        probe.append(p)
        extra.append(x)
        seconds.append(round(time.time() - began, 3))
        if isinstance(step, ForgetEvent):
            events[-1] = event_report(stream, steps, R, probe, extra, events[-1])
            logger.info("After %s: deleted rows %.3f -> %.3f (never learned: %.3f).", step.name,
                        events[-1]["forgotten_before"], events[-1]["forgotten_after"], events[-1]["never_learned"])
        logger.info("After %s: %s", step.name, ", ".join(f"{n}={v:.3f}" for n, v in zip(stream.names, row)))
        _save_stage(trainer, _stage_dir(work, s, step),
                    {"step": s + 1, "kind": "forget" if isinstance(step, ForgetEvent) else "learn",
                     "name": step.name, "R": R, "probe": probe, "extra": extra, "forget_events": events,
                     "stage_seconds": seconds, "monitor_history": monitor.history if monitor else []})
        if stop_after is not None and s + 1 >= stop_after and s + 1 < len(steps):
            return ContinualResult(stream.names, stream.metrics, R, probe if stream.probe else None, None, None,
                                   seconds, monitor.history if monitor else [], trainer,
                                   _row_labels(steps[:s + 1]), events)
    for event in events:  # the final scores, now that every step ran
        event.update(event_report(stream, steps, R, probe, extra, event))
    learn_rows = [R[0]] + [R[i + 1] for i, step in enumerate(steps) if not isinstance(step, ForgetEvent)]
    metric = stream.metrics[0] if len(set(stream.metrics)) == 1 else ",".join(stream.metrics)
    report = continual_report(learn_rows, stream.names, task_metric=metric, seed=config.seed,
                              model={"id": str(getattr(trainer.unwrapped, "name_or_path", "")),
                                     "strategy": config.strategy},
                              notes=[(f"{len(events)} forget event(s): ACC/BWT/forgetting use the rows after each "
                                      "learned task; a deleted task's drop counts as forgetting there, see "
                                      "forget_events for each deletion's own numbers.")] if events else ())
    result = ContinualResult(stream.names, stream.metrics, R, probe if stream.probe else None, report, None,
                             seconds, monitor.history if monitor else [], trainer, _row_labels(steps), events)
    config.output_dir = str(out)
    if write:
        record = run_record(stream, config, result, record or {}, time.time() - start)
        write_run_dir(out, trainer, tokenizer, work, result, record, overwrite or resume,  # every process
                      examples=stream_examples(stream))
        result.output_dir = out
        if trainer.is_world_process_zero():
            shutil.rmtree(work, ignore_errors=True)
        if push_repo and trainer.is_world_process_zero():
            from ..hub import push_training_output

            push_training_output(config, out, repo_id=push_repo)
    return result


def _row_labels(steps) -> list[str]:
    return ["before"] + [f"after {step.name}" for step in steps]


def accuracy_matrix_payload(result: ContinualResult, probe_name: str | None = None) -> dict[str, Any]:
    """``accuracy_matrix.json``: R as rows, its tasks and metric, and the derived metrics."""
    s = result.summary
    per_task = result.report.per_example["tasks"]["forgetting"]
    return {"tasks": result.tasks, "metric": result.metrics[0] if len(set(result.metrics)) == 1 else result.metrics,
            "matrix": result.R, "rows": result.labels,
            "acc": s["acc"], "a_inc": s["a_inc"], "bwt": s["bwt"], "fwt": s["fwt"], "forgetting": s["forgetting"],
            "forgetting_per_task": per_task,
            "probe": None if result.probe is None else {"name": probe_name, "scores": result.probe,
                                                        "change": s["probe_change"]},
            "forget_events": result.forget_events,
            "definitions": {"R": "R[i][j] = task j's metric after steps 1..i (learn or forget); row 0 = before any",
                            "forgetting": "Chaudhry et al. 2018: mean over j<T of max_{l<T} R[l][j] - R[T][j]",
                            "fwt": "mean over j>=2 of R[j-1][j] - R[0][j]"}}


def run_record(stream: TaskStream, config: ContinualConfig, result: ContinualResult, extra: dict[str, Any],
               seconds: float) -> dict[str, Any]:
    from ..utils.provenance import provenance

    settings = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
    return {"command": "continual", "method": config.strategy, "strategies": config.strategy_names,
            "config": settings, "stream": stream.describe(), "seed": config.seed,
            "wall_seconds": round(seconds, 2), "stage_seconds": result.stage_seconds,
            "accuracy_matrix": result.R, "probe": result.probe, "forgetting_monitor": result.monitor,
            **extra, "provenance": provenance()}


def write_run_dir(out: Path, trainer, tokenizer, work: Path, result: ContinualResult, record: dict[str, Any],
                  overwrite: bool, examples: dict[str, Any] | None = None) -> None:
    from ..hub.plots import accuracy_matrix
    from .strategies.olora import OLoRA, merged_adapter

    olora = next((s for s in trainer.strategies if isinstance(s, OLoRA)), None)
    stream_probe = (record.get("stream") or {}).get("probe") or {}
    with shared_atomic_directory(out, overwrite=overwrite) as (tmp, main):
        # every process saves (FSDP/ZeRO-3 gather the weights; Trainer writes on the main process only), the main
        # process writes the rest and renames the folder after a barrier
        if olora is not None and main:  # first: save_adapter replaces the folder it writes
            from ..compose import save_adapter

            composed = merged_adapter(trainer.unwrapped, olora.adapters, trainer.args.olora_merge)
            save_adapter(composed.adapter, tmp, overwrite=True,
                         base_model_name_or_path=trainer.unwrapped.peft_config["default"].base_model_name_or_path,
                         tokenizer=tokenizer)
            record["olora"] = {"adapters": olora.adapters, "merge": trainer.args.olora_merge}
        trainer.save_model(str(tmp / "adapters") if olora is not None else str(tmp))
        if not main:
            return
        tokenizer.save_pretrained(str(tmp))
        stages = work / "stages"
        if stages.is_dir():
            shutil.copytree(stages, tmp / "stages")
        atomic_write_json(tmp / "accuracy_matrix.json", accuracy_matrix_payload(result, stream_probe.get("name")))
        result.report.save(tmp / "eval_report.json")
        rel, png = accuracy_matrix(result.R, result.tasks, row_labels=result.labels, marked_rows=result.forget_rows)
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(png)
        atomic_write_json(tmp / "hfcl_run.json", record)
        if examples is not None:
            atomic_write_json(tmp / "stream_examples.json", examples)


def config_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)


__all__ = ["ContinualResult", "accuracy_matrix_payload", "check_run", "run_stream"]
