"""Unlearning with the membership stopping rule (no retain model) vs the same recipe run for a fixed length.

    python benchmarks/early_stop.py [--zoo default|tiny] [--json [PATH]]

Each recipe fine-tunes all weights of the embedded ``target`` on forget10 and stops once the LOSS membership attack
can no longer tell the forget rows from holdout rows (AUC <= 0.55, checked every step; the retain model is never
loaded during training). It is then evaluated on the TOFU suite against the retain model's reference log (forget
quality, model utility relative to the target, PrivLeak) next to the same recipe trained for fixed lengths
(``--fixed_epochs``) without the rule. Bars of the unlearning-quality issue: forget quality >= 0.05, model utility >=
0.95x, |PrivLeak| <= 25, under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag

COMMON = {"num_train_epochs": 60, "per_device_train_batch_size": 8, "use_cpu": True, "report_to": "none",
          "disable_tqdm": True, "save_strategy": "no", "logging_steps": 1000, "lr_scheduler_type": "constant",
          "retain_loss": "nll"}
RECIPES = {  # name -> UnlearningConfig values
    "NPO (beta 0.1, lr 3e-4, alpha 4)": {"method": "NPO", "beta": 0.1, "learning_rate": 3e-4, "alpha": 4.0},
    "GradDiff (lr 1e-4)": {"method": "GradDiff", "learning_rate": 1e-4},
}


def run(name: str, values: dict, zoo, splits, stop: bool, fixed_epochs: float, target_mu: float) -> dict:
    from hfcl.eval import evaluate_model
    from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
    from hfcl.zoo import load_model

    model, tok = load_model("target", zoo)
    extra = {"early_stop_steps": 1, "early_stop_tolerance": 0.05} if stop else {"num_train_epochs": fixed_epochs}
    config = UnlearningConfig(output_dir="unused", **{**COMMON, **values, **extra})
    start = time.perf_counter()
    trainer = UnlearningTrainer(model, config, splits["forget"], splits["retain"], processing_class=tok,
                                holdout_dataset=splits["holdout"] if stop else None)
    trainer.train()
    seconds = time.perf_counter() - start
    a = evaluate_model((trainer.model, tok), world_config=zoo, reference_log="auto", distributed=False).aggregates
    return {"steps": trainer.state.global_step, "seconds": round(seconds, 2), "forget_quality": a["forget_quality"],
            "mu_ratio": a["model_utility"] / target_mu, "privleak": a["privleak"],
            "stopped": trainer.membership_stop.outcome if stop else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="default", choices=["default", "tiny"])
    parser.add_argument("--fixed_epochs", default="10,40", help="Comma-separated fixed lengths, in epochs.")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    from hfcl.data import load_tofu
    from hfcl.eval import evaluate_model
    from hfcl.zoo import ZooConfig, tiny_config

    zoo = tiny_config() if args.zoo == "tiny" else ZooConfig()
    splits = load_tofu("forget10", world_config=zoo)
    target = evaluate_model("target", world_config=zoo, reference_log="auto", distributed=False).aggregates
    record = BenchRecord("early_stop" + ("_tiny" if args.zoo == "tiny" else ""),
                         "python benchmarks/early_stop.py" + (" --zoo tiny" if args.zoo == "tiny" else ""))
    print(f"{'recipe':40} {'run':16} {'steps':>5} {'sec':>6} {'FQ':>8} {'MU x':>6} {'PrivLeak':>9}")
    print(f"{'target (before)':40} {'':16} {'':>5} {'':>6} {target['forget_quality']:>8.2g} {1.0:>6.3f} "
          f"{target['privleak']:>9.1f}")
    figures = []
    for name, values in RECIPES.items():
        for epochs in [None, *(float(e) for e in args.fixed_epochs.split(","))]:
            stop = epochs is None
            r = run(name, values, zoo, splits, stop, epochs, target["model_utility"])
            label = "membership stop" if stop else f"{epochs:g} epochs"
            print(f"{name:40} {label:16} {r['steps']:>5} {r['seconds']:>6.1f} {r['forget_quality']:>8.2g} "
                  f"{r['mu_ratio']:>6.3f} {r['privleak']:>9.1f}")
            figures.append((name, label, r))
    stopped = [(n, r) for n, label, r in figures if r["stopped"]]
    text = " / ".join(f"{n}: FQ {r['forget_quality']:.2g}, MU {r['mu_ratio']:.2f}x, PrivLeak {r['privleak']:+.0f}, "
                      f"{r['seconds']:.0f} s" for n, r in stopped)
    fixed = " / ".join(f"{n}, {label}: FQ {r['forget_quality']:.2g}, PrivLeak {r['privleak']:+.0f}"
                       for n, label, r in figures if not r["stopped"])
    record.add(f"unlearning stopped by the membership rule (no retain model; {args.zoo} zoo, forget10, full "
               f"fine-tuning; target PrivLeak {target['privleak']:+.0f})", text, order=16,
               runs=[{"recipe": n, "run": label, **r} for n, label, r in figures])
    record.add(f"the same recipes for fixed lengths ({args.fixed_epochs} epochs), no stopping rule", fixed, order=17)
    record.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
