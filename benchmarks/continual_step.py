"""Cost of one training step of each continual strategy against a plain ``transformers.Trainer`` step.

Ratios use the CPU time of this process (all its threads), which a machine shared with other jobs inflates far
less than wall time; wall time is printed too. Every configuration trains on the same batch of the embedded stream's second task, with the strategy's state as it
is during that task (the first task's Fisher, anchors, teacher, adapters, buffer in place). Steps are timed
round-robin (each configuration in turn, ``--repeats`` rounds of ``--steps`` steps, median per configuration) so a
busy machine slows every one alike. Peak RSS of EWC against plain is measured in fresh subprocesses.

    python benchmarks/continual_step.py --zoo tiny
    python benchmarks/continual_step.py --json     # -> benchmarks/results/continual_step.json

Bars (issue 13): EWC/L2 <= 1.05x, O-LoRA <= 1.10x, LwF with the adapter disabled <= 1.6x, replay costs only its
extra tokens (same step cost, ``1 + replay_ratio`` examples per epoch), peak RSS EWC / plain <= 1.1x.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_json import BenchRecord, add_json_flag

CONFIGS = {  # name -> (strategy, peft, extra ContinualConfig values); plain rows use a stock Trainer
    "plain": ("plain", False, {}),
    "naive": ("naive", False, {}),
    "ewc": ("ewc", False, {}),
    "online_ewc": ("online_ewc", False, {}),
    "l2": ("l2", False, {}),
    "lwf (snapshot)": ("lwf", False, {"lwf_teacher": "previous"}),
    "ema": ("ema", False, {}),
    "replay": ("replay", False, {"replay_ratio": 0.1}),
    "plain (LoRA)": ("plain", True, {}),
    "lwf (adapter disabled)": ("lwf", True, {"lwf_teacher": "base"}),
    "olora": ("olora", True, {}),
}
BASELINE = {True: "plain (LoRA)", False: "plain"}


def zoo_config(name: str):
    from hfcl.zoo import ZooConfig, tiny_config

    return tiny_config() if name == "tiny" else ZooConfig()


def lora_config():
    from peft import LoraConfig

    return LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM")


def build(name: str, zoo, batch_size: int, workdir: str):
    """``(step_fn, n_tokens)`` for configuration ``name``, in the state of the stream's second task."""
    from transformers import Trainer, TrainingArguments

    from hfcl.continual import ContinualConfig, ContinualTrainer, world_stream
    from hfcl.zoo import load_model

    strategy, peft, extra = CONFIGS[name]
    stream = world_stream(zoo, n_tasks=2, authors_per_task=max(1, -(-batch_size // 8)), probe_size=0)
    model, tok = load_model("base", zoo)
    model.train()
    common = {"output_dir": os.path.join(workdir, name.replace(" ", "_")), "per_device_train_batch_size": batch_size,
              "use_cpu": True, "report_to": "none", "disable_tqdm": True, "max_steps": 1, "learning_rate": 1e-4,
              "save_strategy": "no", "logging_steps": 1000}
    if strategy == "plain":
        from peft import get_peft_model

        if peft:
            model = get_peft_model(model, lora_config())
        trainer = Trainer(model=model, args=TrainingArguments(**common), processing_class=tok)
        helper = ContinualTrainer(load_model("base", zoo)[0], ContinualConfig(**common), processing_class=tok)
        rows = helper.tokenize(stream.tasks[1].train)[:batch_size]
        batch = helper.collate(rows)
    else:
        config = ContinualConfig(strategy=strategy, **common, **extra)
        trainer = ContinualTrainer(model, config, processing_class=tok, peft_config=lora_config() if peft else None)
        trainer.train_task(0, stream.tasks[0].train, "first")  # one step, then the task boundary hooks
        trainer.task_rows.append(trainer.tokenize(stream.tasks[1].train))
        for s in trainer.strategies:
            s.begin_task(trainer, 1)
        rows = trainer.task_rows[1][:batch_size]
        batch = trainer.collate(rows)
    trainer.optimizer = None  # a new optimizer over the second task's trainable parameters (O-LoRA: a new adapter)
    trainer.create_optimizer()
    optimizer = trainer.optimizer
    n_items = batch["labels"][:, 1:].ne(-100).sum()
    model = trainer.model

    def step() -> None:
        trainer.training_step(model, dict(batch), n_items)
        if hasattr(trainer, "strategies"):
            optimizer.step()
            for s in trainer.strategies:
                s.on_optimizer_step(trainer)
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, int(batch["attention_mask"].sum())


def time_steps(names, zoo, batch_size: int, steps: int, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU (this process, all threads) milliseconds per step of each configuration."""
    with tempfile.TemporaryDirectory() as workdir:
        fns = {n: build(n, zoo, batch_size, workdir)[0] for n in names}
        for fn in fns.values():  # warm-up
            fn()
            fn()
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(repeats):
            for n, fn in fns.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(steps):
                    fn()
                wall[n].append((time.perf_counter() - start) / steps * 1000)
                cpu[n].append((time.process_time() - start_cpu) / steps * 1000)
    return ({n: statistics.median(v) for n, v in wall.items()}, {n: statistics.median(v) for n, v in cpu.items()})


def child_rss(name: str, zoo_name: str, batch_size: int, steps: int) -> None:
    zoo = zoo_config(zoo_name)
    with tempfile.TemporaryDirectory() as workdir:
        fn, _ = build(name, zoo, batch_size, workdir)
        for _ in range(steps):
            fn()
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def peak_rss(name: str, zoo_name: str, batch_size: int, steps: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--rss-child", name, "--zoo", zoo_name, "--batch_size",
                          str(batch_size), "--steps", str(steps)], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", default="tiny", choices=["tiny", "default"])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    add_json_flag(parser)
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        child_rss(args.rss_child, args.zoo, args.batch_size, args.steps)
        return 0
    zoo = zoo_config(args.zoo)
    ms, cpu = time_steps(list(CONFIGS), zoo, args.batch_size, args.steps, args.repeats)
    rows = []
    print(f"{'configuration':<26}{'cpu ms/step':>12}{'x plain':>9}{'wall ms/step':>14}{'x plain':>9}")
    for name in ms:
        base = BASELINE[CONFIGS[name][1]]
        ratio, wall_ratio = cpu[name] / cpu[base], ms[name] / ms[base]
        rows.append({"configuration": name, "cpu_ms_per_step": round(cpu[name], 2), "ratio_vs_plain": round(ratio, 3),
                     "wall_ms_per_step": round(ms[name], 2), "wall_ratio_vs_plain": round(wall_ratio, 3),
                     "baseline": base})
        print(f"{name:<26}{cpu[name]:>12.1f}{ratio:>8.2f}x{ms[name]:>14.1f}{wall_ratio:>8.2f}x")
    replay_ratio = CONFIGS["replay"][2]["replay_ratio"]
    print(f"replay: same step, {1 + replay_ratio:.2f}x examples (and tokens, on average) per epoch")
    rss = {n: peak_rss(n, args.zoo, args.batch_size, args.steps) for n in ("plain", "ewc")}
    print(f"peak RSS: plain {rss['plain']:.0f} MB, ewc {rss['ewc']:.0f} MB, ratio {rss['ewc'] / rss['plain']:.3f}x")
    if args.json is not None:
        by = {r["configuration"]: r for r in rows}
        rec = BenchRecord("continual_step", "python benchmarks/continual_step.py" +
                          ("" if args.zoo == "tiny" else f" --zoo {args.zoo}"))
        shown = ["ewc", "online_ewc", "l2", "lwf (snapshot)", "lwf (adapter disabled)", "olora", "ema", "replay"]
        cells = " / ".join(f"{n} {by[n]['ratio_vs_plain']:.2f}x" for n in shown if n in by)
        rec.add(f"continual step / plain `Trainer` step, CPU time, medians of {args.repeats} round-robin rounds "
                f"({args.zoo} zoo, batch {args.batch_size}; LoRA rows vs a plain LoRA step)", cells, order=62,
                rows=rows, replay_examples_per_epoch_ratio=1 + replay_ratio)
        rec.add("peak RSS, EWC / plain step", f"{rss['ewc'] / rss['plain']:.3f}x ({rss['ewc']:.0f} / "
                f"{rss['plain']:.0f} MB)", order=63, peak_rss_mb=rss)
        rec.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
