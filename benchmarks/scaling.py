"""1 process vs 2 processes (``accelerate launch`` with the shipped ddp.yaml): tokens per second of unlearning and of
the evaluation suite on this machine, side by side, and whether the two agree.

    python benchmarks/scaling.py [--zoo tiny] [--steps 24] [--repeats 2] [--threads 1] [--json [PATH]]

Each configuration runs in its own launch (1 process: plain ``python``; 2 processes: ``accelerate launch
--config_file hfcl/configs/accelerate/ddp.yaml --num_processes 2``, gloo on a machine without GPUs) and times only
the work inside it (``trainer.train()``; ``evaluate_model``), not the start-up; one untimed launch first fills the
zoo's caches (the evaluation's reference log), then the best of ``--repeats`` launches is kept. Every process gets
``--threads`` torch threads (1 by default), so 2 processes use twice the cores. Unlearning: NPO+GradDiff with the
CLI's default LoRA on the embedded zoo's ``target``, the same global batch (1 x 8 vs 2 x 4), tokens = non-padding
tokens of every forget and retain batch trained on (all processes). Evaluation: the TOFU suite on ``target``
(teacher-forced scoring + greedy generation), tokens = scored sequence tokens + prompt and generated tokens.
Agreement: final train loss and max |adapter difference| (unlearning), max relative difference of the aggregates
(evaluation). On 2 cores expect little gain: the point is that nothing breaks and the numbers agree. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag

ROOT = Path(__file__).resolve().parent.parent
DDP_YAML = ROOT / "hfcl" / "configs" / "accelerate" / "ddp.yaml"
GLOBAL_BATCH = 8


def _all_sum(value: float) -> float:
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        t = torch.tensor([float(value)], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t.item())
    return float(value)


def _finish(result: dict, out: str) -> None:
    import torch

    from hfcl.utils.distributed import barrier, is_main_process

    if is_main_process():
        Path(out).write_text(json.dumps(result))
    barrier()
    if torch.distributed.is_initialized():  # a clean shutdown: no rank exits while gloo is still talking
        torch.distributed.destroy_process_group()


def _count_tokens(batch) -> int:
    if isinstance(batch, Mapping):  # dicts of parts, each a BatchEncoding
        if "attention_mask" in batch:
            return int(batch["attention_mask"].sum())
        return sum(_count_tokens(v) for v in batch.values())
    return 0


def worker_unlearn(zoo: str, steps: int, out: str) -> None:
    from safetensors.torch import save_file

    from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
    from hfcl.unlearn.run import UnlearnRunArgs, load_unlearning_data, lora_config, zoo_recipe
    from hfcl.utils.distributed import is_main_process, world_size
    from hfcl.zoo import load_model

    zoo_config = zoo_recipe(zoo)
    model, tok = load_model("target", zoo_config)
    forget, retain = load_unlearning_data(UnlearnRunArgs(zoo=zoo), world_config=zoo_config)
    with tempfile.TemporaryDirectory() as work:
        args = UnlearningConfig(output_dir=work, method="NPO", retain_loss="nll", max_steps=steps, learning_rate=1e-3,
                                per_device_train_batch_size=GLOBAL_BATCH // world_size(), optim="sgd",
                                lr_scheduler_type="constant", max_grad_norm=0.0, use_cpu=True, seed=0,
                                report_to="none", disable_tqdm=True, save_strategy="no", logging_steps=steps)
        trainer = UnlearningTrainer(model, args, forget, retain, processing_class=tok,
                                    peft_config=lora_config(UnlearnRunArgs()))
        collate, tokens = trainer.data_collator, [0]

        def counting(items):
            batch = collate(items)
            tokens[0] += _count_tokens(batch)
            return batch

        trainer.data_collator = counting
        started = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - started
        total = _all_sum(tokens[0])
        adapter = Path(out).with_suffix(".safetensors")
        if is_main_process():
            save_file({n: p.detach().contiguous() for n, p in trainer.model.named_parameters() if "lora_" in n},
                      str(adapter))
    _finish({"tokens": total, "seconds": seconds, "loss": float(output.training_loss), "processes": world_size(),
             "adapter": str(adapter)}, out)


def worker_eval(zoo: str, out: str) -> None:
    from hfcl.eval import evaluate_model, scoring
    from hfcl.unlearn.run import zoo_recipe
    from hfcl.utils.distributed import world_size

    tokens = [0]
    score_batch, generate_batch = scoring.score_batch, scoring.generate_batch

    def counting_score(model, features, *rest, **kw):
        tokens[0] += sum(len(f["input_ids"]) for f in features)
        return score_batch(model, features, *rest, **kw)

    def counting_generate(model, prompts, *rest, **kw):
        result = generate_batch(model, prompts, *rest, **kw)
        tokens[0] += sum(len(p) for p in prompts) + sum(len(r) for r in result)
        return result

    scoring.score_batch, scoring.generate_batch = counting_score, counting_generate
    started = time.perf_counter()
    report = evaluate_model("target", world_config=zoo_recipe(zoo), retain_eval_size=16, batch_size=8)
    seconds = time.perf_counter() - started
    _finish({"tokens": _all_sum(tokens[0]), "seconds": seconds, "processes": world_size(),
             "aggregates": {k: v for k, v in report.aggregates.items() if isinstance(v, (int, float))}}, out)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(kind: str, processes: int, zoo: str, steps: int, out: Path, threads: int = 1) -> dict:
    script = [str(Path(__file__).resolve()), "--worker", kind, "--zoo", zoo, "--steps", str(steps), "--out", str(out)]
    if processes == 1:
        cmd = [sys.executable, *script]
    else:
        accelerate = Path(sys.executable).with_name("accelerate")
        cmd = [str(accelerate), "launch", "--config_file", str(DDP_YAML), "--num_processes", str(processes),
               "--main_process_port", str(_free_port()), *script]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} with {processes} process(es) failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", default="tiny", help="Embedded zoo recipe: tiny (default) or default.")
    parser.add_argument("--steps", type=int, default=24, help="Unlearning optimizer steps per launch.")
    parser.add_argument("--repeats", type=int, default=2, help="Launches per configuration (the best is kept).")
    parser.add_argument("--threads", type=int, default=1,
                        help="Torch threads per process (default 1: on a shared 2-core machine a 2-thread process "
                             "spins against other jobs, so 1 process x 2 threads would understate the baseline).")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    add_json_flag(parser)
    args = parser.parse_args()
    if args.worker == "unlearn":
        return worker_unlearn(args.zoo, args.steps, args.out)
    if args.worker == "eval":
        return worker_eval(args.zoo, args.out)

    record = BenchRecord("scaling", "python benchmarks/scaling.py")
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("unlearn", "eval"):
            launch(kind, 1, args.zoo, 2, Path(tmp) / "warmup.json")  # untimed: fills the zoo's caches (reference log)
            for _ in range(args.repeats):
                for processes in (1, 2):  # alternate, so load from other processes hits both
                    res = launch(kind, processes, args.zoo, args.steps, Path(tmp) / f"{kind}{processes}.json",
                                 args.threads)
                    res["tok_s"] = res["tokens"] / res["seconds"]
                    if kind == "unlearn":
                        from safetensors.torch import load_file

                        res["weights"] = load_file(res.pop("adapter"))
                    best = results.get((kind, processes))
                    if best is None or res["tok_s"] > best["tok_s"]:
                        results[kind, processes] = res

    cpus = os.cpu_count()
    print(f"{args.zoo} zoo, {cpus} CPUs, {args.threads} thread(s) per process, best of {args.repeats} launches; 2 processes = accelerate launch "
          f"--config_file {DDP_YAML.relative_to(ROOT)} --num_processes 2 (gloo without GPUs)")
    print(f"  {'workload':44s} {'1 process':>14s} {'2 processes':>14s} {'2p / 1p':>8s}")
    labels = {"unlearn": f"unlearning NPO+GradDiff LoRA (global batch {GLOBAL_BATCH}, {args.steps} steps)",
              "eval": "evaluation (TOFU suite on target)"}
    for order, (kind, label) in enumerate(labels.items()):
        one, two = results[kind, 1], results[kind, 2]
        ratio = two["tok_s"] / one["tok_s"]
        if kind == "unlearn":
            a, b = one["weights"], two["weights"]
            diff = max(float((a[k] - b[k]).abs().max()) for k in a)
            agree = f"final loss {one['loss']:.6f} vs {two['loss']:.6f}, max |adapter difference| {diff:.2g}"
            extra = {"loss_1p": one["loss"], "loss_2p": two["loss"], "max_adapter_diff": diff}
        else:
            keys = sorted(set(one["aggregates"]) & set(two["aggregates"]))
            rel = max((abs(one["aggregates"][k] - two["aggregates"][k]) / max(abs(one["aggregates"][k]), 1e-12)
                       for k in keys), default=0.0)
            agree = f"{len(keys)} aggregates, max relative difference {rel:.2g}"
            extra = {"aggregates": len(keys), "max_rel_diff": rel}
        print(f"  {label:44s} {one['tok_s']:10.0f} t/s {two['tok_s']:10.0f} t/s {ratio:7.2f}x")
        print(f"    agreement: {agree}")
        record.add(f"{label}: 2 processes vs 1 ({cpus} CPUs, {args.threads} thread(s) per process, gloo)",
                   f"{ratio:.2f}x tokens/s ({one['tok_s']:.0f} -> {two['tok_s']:.0f}); {agree}", timed=True,
                   order=70 + order, tokens_per_s_1p=round(one["tok_s"], 1), tokens_per_s_2p=round(two["tok_s"], 1),
                   ratio=round(ratio, 3), seconds_1p=round(one["seconds"], 3), seconds_2p=round(two["seconds"], 3),
                   tokens_1p=one["tokens"], tokens_2p=two["tokens"], **extra)
    record.write(args.json)


if __name__ == "__main__":
    main()
