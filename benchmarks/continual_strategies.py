"""Every continual strategy on the embedded stream, side by side: ACC, BWT, forgetting, FWT, probe change, wall time.

Each row trains the zoo's ``base`` model on the embedded stream (disjoint groups of fictitious authors, then a
probe of world facts the base knows) and fills R with the batched scorer; the metrics are
:func:`hfcl.eval.continual_report`'s. "re-warm + replay" tests Ibrahim et al.'s claim (re-warming and re-decaying
the learning rate per task, plus a little replay, beats naive sequential fine-tuning).

    python benchmarks/continual_strategies.py --zoo tiny --n_tasks 3 --authors_per_task 1
    python benchmarks/continual_strategies.py --json      # default zoo and stream -> benchmarks/results/
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag

COMMON = {"learning_rate": 3e-3, "num_train_epochs": 10, "per_device_train_batch_size": 8,
          "lr_scheduler_type": "constant_with_warmup", "use_cpu": True, "disable_tqdm": True, "seed": 0,
          "logging_steps": 1000, "report_to": "none"}
LORA_LR = 1e-2
ROWS = {  # name -> (ContinualConfig values, LoRA?)
    "naive": ({"strategy": "naive"}, False),
    "replay 10%": ({"strategy": "replay", "replay_ratio": 0.1}, False),
    "ewc": ({"strategy": "ewc", "ewc_lambda": 10.0}, False),
    "online_ewc": ({"strategy": "online_ewc", "ewc_lambda": 10.0, "ewc_gamma": 0.9}, False),
    "l2": ({"strategy": "l2", "l2_lambda": 1.0}, False),
    "lwf": ({"strategy": "lwf", "lwf_alpha": 1.0}, False),
    "ema": ({"strategy": "ema", "ema_decay": 0.95}, False),
    "replay 10% + ewc": ({"strategy": "replay,ewc", "replay_ratio": 0.1, "ewc_lambda": 10.0}, False),
    "re-warm + replay 10%": ({"strategy": "replay", "replay_ratio": 0.1, "lr_scheduler_type": "cosine",
                              "warmup_steps": 0.1}, False),
    "infinite schedule + replay 10%": ({"strategy": "replay", "replay_ratio": 0.1, "schedule": "infinite"}, False),
    "naive (LoRA)": ({"strategy": "naive", "learning_rate": LORA_LR}, True),
    "lwf (LoRA, base teacher)": ({"strategy": "lwf", "lwf_teacher": "base", "learning_rate": LORA_LR}, True),
    "olora": ({"strategy": "olora", "learning_rate": LORA_LR}, True),
}


def run_row(name: str, zoo, stream, workdir: str) -> dict:
    from peft import LoraConfig

    from hfcl.continual import ContinualConfig, run_stream
    from hfcl.zoo import load_model

    values, lora = ROWS[name]
    model, tok = load_model("base", zoo)
    config = ContinualConfig(output_dir=os.path.join(workdir, str(abs(hash(name)))), **{**COMMON, **values})
    peft = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0,
                      task_type="CAUSAL_LM") if lora else None
    start = time.perf_counter()
    result = run_stream(stream, config, model, tok, peft_config=peft, write=False)
    seconds = time.perf_counter() - start
    s = result.summary
    return {"strategy": name, "acc": s["acc"], "a_inc": s["a_inc"], "bwt": s["bwt"], "forgetting": s["forgetting"],
            "fwt": s["fwt"], "probe_change": s["probe_change"], "wall_seconds": round(seconds, 1),
            "learned": sum(result.R[k + 1][k] for k in range(len(stream))) / len(stream),
            "R": result.R, "probe": result.probe, "lora": lora, "config": values}


def main(argv=None) -> int:
    from hfcl.continual import world_stream
    from hfcl.zoo import ZooConfig, tiny_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", default="default", choices=["tiny", "default"])
    parser.add_argument("--n_tasks", type=int, default=4)
    parser.add_argument("--authors_per_task", type=int, default=2)
    parser.add_argument("--probe_size", type=int, default=20)
    parser.add_argument("--only", default=None, help="Comma-separated row names to run (default: all).")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    zoo = tiny_config() if args.zoo == "tiny" else ZooConfig()
    stream = world_stream(zoo, args.n_tasks, args.authors_per_task, args.probe_size)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(ROWS)
    rows = []
    header = (f"{'strategy':<32}{'ACC':>7}{'BWT':>8}{'forget':>8}{'FWT':>8}{'learned':>9}{'probe Δ':>9}"
              f"{'wall s':>8}")
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        for name in names:
            row = run_row(name, zoo, stream, workdir)
            rows.append(row)
            print(f"{name:<32}{row['acc']:>7.3f}{row['bwt']:>8.3f}{row['forgetting']:>8.3f}{row['fwt']:>8.3f}"
                  f"{row['learned']:>9.3f}{row['probe_change']:>+9.3f}{row['wall_seconds']:>8.1f}", flush=True)
            if args.json is not None:
                record(args, rows).write(args.json)
    by = {r["strategy"]: r for r in rows}
    if "naive" in by and "re-warm + replay 10%" in by:
        a, b = by["re-warm + replay 10%"], by["naive"]
        print(f"re-warm + replay vs naive: ACC {a['acc']:.3f} vs {b['acc']:.3f}, forgetting {a['forgetting']:.3f} vs "
              f"{b['forgetting']:.3f} -> {'beats' if a['acc'] > b['acc'] else 'does not beat'} naive on ACC")
    return 0


def record(args, rows) -> BenchRecord:
    """The README row: ACC / BWT of each strategy on the stream (every R, probe and config in ``values``)."""
    command = "python benchmarks/continual_strategies.py" + ("" if args.zoo == "default" else f" --zoo {args.zoo}")
    rec = BenchRecord("continual_strategies", command)
    stream = f"{args.n_tasks} tasks x {args.authors_per_task} authors, probe {args.probe_size}"
    cells = " / ".join(f"{r['strategy']} {r['acc']:.3f} / {r['bwt']:+.3f}" for r in rows)
    rec.add(f"continual strategies on the embedded stream ({stream}, {args.zoo} zoo's base): ACC / BWT "
            "(answer probability; higher ACC, BWT nearer 0 is better)", cells, order=60,
            stream={"n_tasks": args.n_tasks, "authors_per_task": args.authors_per_task,
                    "probe_size": args.probe_size, "metric": "probability"}, common=COMMON, rows=rows)
    return rec


if __name__ == "__main__":
    sys.exit(main())
