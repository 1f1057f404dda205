"""Per-step cost of the reference term: NPO+GradDiff vs GradDiff, NPO vs GradAscent, IdkDPO vs IdkNLL.

    python benchmarks/unlearn_step.py [--models tiny,130m] [--steps 8] [--warmup 2] [--batch 4]

Each configuration runs in its own subprocess (so peak RSS is that configuration's), on the same batches, and reports
the best time of one optimizer step (forward + backward + AdamW step; the two configurations of a pair alternate in
one process, so load from other processes hits both). Models: the embedded ``target`` (``default``), its reduced test
variant (``tiny``) and a ~134M-parameter Llama (random init, vocabulary 32000). Not a test.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag

# label -> (method, retain_loss, reference, lora)
CONFIGS = {
    "GradDiff": ("GradDiff", "nll", "auto", False),
    "NPO+GradDiff cached": ("NPO", "nll", "cached", False),
    "NPO+GradDiff frozen copy": ("NPO", "nll", "model", False),
    "GradAscent": ("GradAscent", "none", "auto", False),
    "NPO cached": ("NPO", "none", "cached", False),
    "IdkNLL": ("IdkNLL", "nll", "auto", False),
    "IdkDPO cached": ("IdkDPO", "nll", "cached", False),
    "LoRA GradDiff": ("GradDiff", "nll", "auto", True),
    "LoRA NPO+GradDiff adapter_disabled": ("NPO", "nll", "adapter_disabled", True),
    "LoRA NPO+GradDiff cached": ("NPO", "nll", "cached", True),
    "LoRA GradAscent": ("GradAscent", "none", "auto", True),
    "LoRA NPO adapter_disabled": ("NPO", "none", "adapter_disabled", True),
    "LoRA NPO cached": ("NPO", "none", "cached", True),
}
TIME_PAIRS = [  # (row, numerator, denominator): timed alternately in one process, same batches
    ("NPO+GradDiff / GradDiff (full, cached)", "NPO+GradDiff cached", "GradDiff"),
    ("NPO+GradDiff / GradDiff (full, frozen copy)", "NPO+GradDiff frozen copy", "GradDiff"),
    ("NPO / GradAscent (full, cached)", "NPO cached", "GradAscent"),
    ("IdkDPO / IdkNLL (full, cached)", "IdkDPO cached", "IdkNLL"),
    ("NPO+GradDiff / GradDiff (LoRA, cached)", "LoRA NPO+GradDiff cached", "LoRA GradDiff"),
    ("NPO+GradDiff / GradDiff (LoRA, adapter_disabled)", "LoRA NPO+GradDiff adapter_disabled", "LoRA GradDiff"),
    ("NPO / GradAscent (LoRA, cached)", "LoRA NPO cached", "LoRA GradAscent"),
    ("NPO / GradAscent (LoRA, adapter_disabled)", "LoRA NPO adapter_disabled", "LoRA GradAscent"),
]
RSS_PAIRS = [  # each configuration in its own process
    ("peak RSS NPO / GradAscent (full, cached)", "NPO cached", "GradAscent"),
    ("peak RSS NPO+GradDiff frozen copy / GradDiff (full)", "NPO+GradDiff frozen copy", "GradDiff"),
    ("peak RSS NPO / GradAscent (LoRA, adapter_disabled)", "LoRA NPO adapter_disabled", "LoRA GradAscent"),
]


def load(model_kind: str):
    from hfcl.zoo import load_model, tiny_config

    if model_kind == "tiny":
        model, tok = load_model("target", tiny_config())
    elif model_kind == "default":
        model, tok = load_model("target")
    else:  # ~134M Llama, random init, with the tiny tokenizer's ids (< its vocabulary)
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        from hfcl.zoo import load_tokenizer

        tok = load_tokenizer("target", tiny_config())
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=768, intermediate_size=2048,
                                             num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12,
                                             pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                             eos_token_id=tok.eos_token_id))
    return model, tok


def build(spec: dict, label: str):
    """A trainer for configuration ``label``, its optimizer and the fixed list of batches."""
    import torch
    from peft import LoraConfig

    from hfcl.data import load_tofu
    from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
    from hfcl.zoo import tiny_config

    method, retain, reference, lora = CONFIGS[label]
    torch.manual_seed(0)
    model, tok = load(spec["model"])
    splits = load_tofu("forget10", world_config=None if spec["model"] == "default" else tiny_config())
    args = UnlearningConfig(output_dir=tempfile.mkdtemp(), method=method, retain_loss=retain, reference=reference,
                            per_device_train_batch_size=spec["batch"], report_to="none", disable_tqdm=True,
                            use_cpu=True, seed=0, learning_rate=1e-5)
    peft = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM") if lora else None
    trainer = UnlearningTrainer(model, args, splits["forget"], splits["retain"], processing_class=tok,
                                peft_config=peft)
    trainer.model.train()
    optimizer = trainer.create_optimizer()
    n = len(trainer.train_dataset)
    batches = [trainer.data_collator([trainer.train_dataset[(s * spec["batch"] + i) % n] for i in range(spec["batch"])])
               for s in range(spec["steps"] + spec["warmup"])]
    return trainer, optimizer, batches


def one_step(trainer, optimizer, batch) -> float:
    import torch

    counts = trainer._count_units([batch], torch.device("cpu"))
    start = time.perf_counter()
    trainer.training_step(trainer.model, batch, counts)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def worker(spec: dict) -> dict:
    """Time a pair alternately (``spec["pair"]``) or measure one configuration's peak RSS (``spec["rss"]``)."""
    if "rss" in spec:
        trainer, optimizer, batches = build(spec, spec["rss"])
        for batch in batches[:2]:
            one_step(trainer, optimizer, batch)
        return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    runs = [build(spec, label) for label in spec["pair"]]
    times: list[list[float]] = [[], []]
    for s in range(spec["steps"] + spec["warmup"]):
        order = (0, 1) if s % 2 == 0 else (1, 0)  # alternate who goes first: load drift hits both equally
        for k in order:
            t = one_step(runs[k][0], runs[k][1], runs[k][2][s])
            if s >= spec["warmup"]:
                times[k].append(t)
    return {"num_s": min(times[0]), "den_s": min(times[1]), "num_med": statistics.median(times[0]),
            "den_med": statistics.median(times[1]), "reference": runs[0][0].reference_mode}


def run_worker(spec: dict, env: dict) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env, capture_output=True,
                          text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        print(f"worker {spec} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(line[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default,130m", help="Comma-separated: default (the embedded target), "
                        "tiny (its test-size variant), 130m.")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    add_json_flag(parser)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))))
        return
    record = BenchRecord("unlearn_step", "python benchmarks/unlearn_step.py"
                         + (f" --models {args.models}" if args.models != "default,130m" else ""))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "TOKENIZERS_PARALLELISM": "false"}
    measured: dict[str, dict[str, dict]] = {}
    for model_kind in args.models.split(","):
        base = dict(model=model_kind, steps=args.steps, warmup=args.warmup, batch=args.batch)
        print(f"{model_kind}: batch {args.batch}, best of {args.steps} alternating steps (fwd + bwd + AdamW); the "
              "ratio of medians is in brackets (more exposed to other load on the machine)")
        print(f"  {'comparison':52s} {'numerator':>10s} {'denominator':>12s} {'ratio':>7s}")
        for row, num, den in TIME_PAIRS:
            res = run_worker({**base, "pair": [num, den]}, env)
            if res:
                print(f"  {row:52s} {res['num_s'] * 1e3:8.1f}ms {res['den_s'] * 1e3:10.1f}ms "
                      f"{res['num_s'] / res['den_s']:6.3f}x  ({res['num_med'] / res['den_med']:.3f}x)", flush=True)
                measured.setdefault(row, {})[model_kind] = res
        for row, num, den in RSS_PAIRS:
            a, b = run_worker({**base, "rss": num}, env), run_worker({**base, "rss": den}, env)
            if a and b:
                print(f"  {row:52s} {a['peak_rss_mb']:8.0f}MB {b['peak_rss_mb']:10.0f}MB "
                      f"{a['peak_rss_mb'] / b['peak_rss_mb']:6.3f}x", flush=True)
                measured.setdefault(row, {})[model_kind] = {"ratio": a["peak_rss_mb"] / b["peak_rss_mb"],
                                                            "numerator_mb": a["peak_rss_mb"],
                                                            "denominator_mb": b["peak_rss_mb"]}
        print()
    record_rows(record, measured, args.models.split(","))
    record.write(args.json)


README_ROWS = [  # (README row, measured rows it shows); the figure lists one ratio per model
    ("NPO+GradDiff step / GradDiff step, cached reference", ["NPO+GradDiff / GradDiff (full, cached)"]),
    ("same with a deep-copied frozen reference (what OpenUnlearning does)",
     ["NPO+GradDiff / GradDiff (full, frozen copy)"]),
    ("NPO / GradAscent step, LoRA, cached reference", ["NPO / GradAscent (LoRA, cached)"]),
    ("peak RSS NPO / GradAscent (full, cached; LoRA, adapter disabled)",
     ["peak RSS NPO / GradAscent (full, cached)", "peak RSS NPO / GradAscent (LoRA, adapter_disabled)"]),
]
MODEL_NAMES = {"default": "embedded target", "tiny": "tiny target", "130m": "134M Llama"}


def record_rows(record, measured: dict, models: list[str]) -> None:
    """The README's rows: one ratio per model (step rows: best step, medians in brackets)."""
    names = " / ".join(MODEL_NAMES.get(m, m) for m in models)
    for i, (what, sources) in enumerate(README_ROWS):
        parts = []
        for source in sources:
            per_model = measured.get(source, {})
            if not per_model:
                continue
            if "ratio" in next(iter(per_model.values())):
                parts.append(" / ".join(f"{per_model[m]['ratio']:.2f}x" for m in models if m in per_model))
            else:
                best = " / ".join(f"{per_model[m]['num_s'] / per_model[m]['den_s']:.2f}x" for m in models
                                  if m in per_model)
                medians = " / ".join(f"{per_model[m]['num_med'] / per_model[m]['den_med']:.2f}x" for m in models
                                     if m in per_model)
                parts.append(f"{best} (medians {medians})")
        if parts:
            record.add(f"{what} ({names})", "; ".join(parts), order=50 + i,
                       **{source.replace(" ", "_"): measured.get(source, {}) for source in sources})


if __name__ == "__main__":
    main()
