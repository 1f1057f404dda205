"""The literature methods (WHP counterfactual targets, ULD logit difference, the ECO / GuardFilter / GuardPrompt
inference-time guards) next to NPO, side by side in one run.

    python benchmarks/new_methods.py [--zoo default|tiny] [--methods NPO,WHP,ULD,ECO,GuardFilter,GuardPrompt]
                                     [--json [PATH]]

Each method runs its `--preset demo` recipe from the embedded target on forget10 (the CLI's LoRA adapter, r 8 on
every linear layer; ULD's is on its assistant) and is scored by the TOFU suite. The bar of the literature-methods
issue: forget ROUGE-L down by at least a third, retain ROUGE-L >= 0.90x the target's. The ULD paper claims > 3x less
training time than NPO with no utility loss: the ratio of training seconds is printed (the same machine, the same
run; the demo recipes train for different numbers of epochs, so the per-step cost is printed too). Every model is
also scored by the unguard attack (`hfcl eval --attacks unguard`): its weights without an inference-time guard, the
metric Thaker et al. ask for, which separates a guard (its weights still answer) from a weight change.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag


def run(method: str, zoo, splits) -> dict:
    import logging

    from hfcl.eval import evaluate_model
    from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
    from hfcl.unlearn.run import UnlearnRunArgs, lora_config
    from hfcl.zoo import load_model

    logging.getLogger("hfcl").setLevel(logging.ERROR)
    model, tok = load_model("target", zoo)
    config = UnlearningConfig(output_dir="/tmp/hfcl-new-methods", method=method, preset="demo", seed=0, use_cpu=True,
                              report_to="none", disable_tqdm=True, save_strategy="no", logging_steps=1000)
    start = time.perf_counter()
    trainer = UnlearningTrainer(model, config, splits["forget"], splits["retain"], processing_class=tok,
                                peft_config=lora_config(UnlearnRunArgs(), method), holdout_dataset=splits["holdout"])
    setup = time.perf_counter() - start
    trainer.train()
    seconds = time.perf_counter() - start
    a = evaluate_model((trainer.unlearned_model(), tok), world_config=zoo, distributed=False,
                       attacks="unguard").aggregates
    steps = trainer.state.global_step
    return {"method": method, "steps": steps, "seconds": round(seconds, 2),
            "setup_seconds": round(setup, 2),
            "seconds_per_step": round((seconds - setup) / steps, 4) if steps else None,
            "unguarded_forget_rouge": a["robustness_unguard_forget_rouge"],
            "forget_quality": a["forget_quality"], "privleak": a["privleak"],
            "trainable": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
            "target_layers": model.config.num_hidden_layers,
            "assistant_layers": (trainer.unlearned_model().assistant.config.num_hidden_layers if method == "ULD"
                                 else None),
            "forget_rouge": a["forget_rouge"], "retain_rouge": a["retain_rouge"], "model_utility": a["model_utility"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="default", choices=["default", "tiny"])
    parser.add_argument("--methods", default="NPO,WHP,ULD,ECO,GuardFilter,GuardPrompt")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    import torch

    from hfcl.data import load_tofu
    from hfcl.eval import evaluate_model
    from hfcl.zoo import ZooConfig, tiny_config

    torch.manual_seed(0)
    zoo = tiny_config() if args.zoo == "tiny" else ZooConfig()
    splits = load_tofu("forget10", world_config=zoo)
    target = evaluate_model("target", world_config=zoo, distributed=False).aggregates
    rows = [run(m.strip(), zoo, splits) for m in args.methods.split(",") if m.strip()]
    print(f"{'method':11} {'steps':>5} {'sec':>6} {'s/step':>7} {'trainable':>9} {'forget RL':>10} {'retain RL':>10} "
          f"{'MU':>6} {'unguarded':>9}  bar (forget RL <= 2/3 of target's, retain RL >= 0.90x)")
    print(f"{'target':11} {'':>5} {'':>6} {'':>7} {'':>9} {target['forget_rouge']:>10.3f} "
          f"{target['retain_rouge']:>10.3f} {target['model_utility']:>6.3f} {target['forget_rouge']:>9.3f}")
    for r in rows:
        r["forget_ratio"] = r["forget_rouge"] / target["forget_rouge"]
        r["retain_ratio"] = r["retain_rouge"] / target["retain_rouge"]
        r["meets_bar"] = r["forget_ratio"] <= 2 / 3 and r["retain_ratio"] >= 0.9
        per_step = f"{r['seconds_per_step']:>7.3f}" if r["seconds_per_step"] is not None else f"{'-':>7}"
        print(f"{r['method']:11} {r['steps']:>5} {r['seconds']:>6.1f} {per_step} "
              f"{r['trainable']:>9} {r['forget_rouge']:>10.3f} {r['retain_rouge']:>10.3f} {r['model_utility']:>6.3f}"
              f" {r['unguarded_forget_rouge']:>9.3f}"
              f"  {'meets' if r['meets_bar'] else 'misses'} ({r['forget_ratio']:.2f}x / {r['retain_ratio']:.2f}x)")
    by = {r["method"]: r for r in rows}
    record = BenchRecord("new_methods" + ("_tiny" if args.zoo == "tiny" else ""),
                         "python benchmarks/new_methods.py" + (" --zoo tiny" if args.zoo == "tiny" else ""))
    text = "; ".join(f"{r['method']}: forget RL {r['forget_rouge']:.2f} ({r['forget_ratio']:.2f}x), retain RL "
                     f"{r['retain_rouge']:.2f} ({r['retain_ratio']:.2f}x), {'meets' if r['meets_bar'] else 'misses'}"
                     f"; unguarded forget RL {r['unguarded_forget_rouge']:.2f}"
                     for r in rows)
    record.add(f"literature methods, demo recipes ({args.zoo} zoo, forget10; bar: forget RL <= 2/3 of the target's "
               f"{target['forget_rouge']:.2f}, retain RL >= 0.90x of {target['retain_rouge']:.2f})", text, order=18,
               runs=rows)
    if "ULD" in by and "NPO" in by:
        u, n = by["ULD"], by["NPO"]
        text = (f"ULD {u['seconds']:.1f} s vs NPO {n['seconds']:.1f} s in all ({u['seconds'] / n['seconds']:.2f}x "
                f"NPO's time, {u['steps']} vs {n['steps']} steps); per step "
                f"{u['seconds_per_step'] / n['seconds_per_step']:.2f}x NPO's (assistant of {u['assistant_layers']} "
                f"of {u['target_layers']} layers)")
        print("ULD vs NPO:", text)
        record.add("ULD vs NPO training time (demo recipes, same run; the paper: > 3x less)", text, timed=True,
                   order=19, time_ratio=round(u["seconds"] / n["seconds"], 2),
                   step_ratio=round(u["seconds_per_step"] / n["seconds_per_step"], 2))
    record.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
