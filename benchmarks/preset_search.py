"""Search the unlearning recipes behind ``--preset demo``: a small grid per method on the embedded default.

    python benchmarks/preset_search.py [--zoo default|tiny] [--methods NPO,GradDiff] [--seeds 0] [--workers 2]
                                       [--json [PATH]]

Every candidate trains the CLI's default LoRA adapter (r 8, all linear layers; `--lora false`: all weights at a tenth
of the grid's learning rates) on forget10 with the membership
stopping rule (forget vs holdout LOSS-attack AUC <= 0.55, checked every step; the retain model is never loaded while
training; the epochs are a cap) and is then scored by the TOFU suite against the retain model's reference log.
Bars of the unlearning-quality issue: forget quality >= 0.05, model utility >= 0.95x the target's, |PrivLeak| <= 25,
under a minute on 2 cores. The table lists every candidate; the last lines name the best candidate per method (all
bars met first, then the highest forget quality) in the form ``hfcl/unlearn/methods.py`` stores presets in.
Candidates run in ``--workers`` processes of one thread each (two one-thread processes beat one two-thread process
on a model this small), so the seconds are one core's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag

SCHEDULE = {"num_train_epochs": 40, "per_device_train_batch_size": 8, "lr_scheduler_type": "constant",
            "early_stop_steps": 1, "early_stop_tolerance": 0.05}
# The grid of the last search (LoRA learning rates; x0.1 with --lora false). Explored before it, on seed 0 with all
# weights (rates as trained): NPO beta 0.1/0.5 x alpha 2/4 x lr 1e-4/3e-4 (beta 0.5 never reaches the rule);
# GradDiff alpha 1/2/4 x lr 3e-5..3e-4; WGA beta 0.5/1 x alpha 2/4 x lr 1e-4..1e-3 (forget quality up to 0.96 but
# PrivLeak -26..-48: Min-K% still separates what the LOSS rule no longer does); SimNPO beta 2.5/4.5 x gamma 0.125/1,
# UNDIAL beta 3/10, IdkDPO beta 0.1/1, all at lr 1e-4..1e-3: the rule is never reached (forget quality <= 1e-4);
# GradAscent: utility falls below 0.95x before forgetting (floor 0.8 stops it); LoRA (r 8) for NPO: best FQ 0.007.
GRID = {
    "NPO": [{"beta": 0.1, "alpha": 8.0, "learning_rate": 3e-3, "early_stop_tolerance": t} for t in (0.05, 0.1)],
    "GradDiff": [{"alpha": 4.0, "learning_rate": 2e-3, "early_stop_tolerance": t} for t in (0.05, 0.1)]
    + [{"alpha": 2.0, "learning_rate": 2e-3, "early_stop_tolerance": 0.1}],
    "WGA": [{"beta": 0.5, "alpha": 4.0, "learning_rate": lr, "early_stop_tolerance": 0.0} for lr in (5e-3, 1e-2)],
    "WHP": [{"alpha": a, "learning_rate": lr} for a, lr in ((1.0, 3e-3), (4.0, 3e-3), (4.0, 6e-3), (8.0, 6e-3))],
    "GradAscent": [{"learning_rate": 1e-3, "early_stop_utility_floor": 0.8}],
    "SimNPO": [{"beta": 2.5, "gamma": 1.0, "alpha": 1.0, "learning_rate": 1e-2}],
    "UNDIAL": [{"beta": 10.0, "learning_rate": 1e-2}],
    "IdkDPO": [{"beta": 0.1, "alpha": 2.0, "learning_rate": 1e-2}],
    "IdkNLL": [{"alpha": 1.0, "learning_rate": 3e-3}],
    "RMU": [{"alpha": 10.0, "learning_rate": 3e-3}],
}
FULL_LR_SCALE = 0.1  # the grid's rates are LoRA rates; training all weights takes a tenth of them
BARS = {"forget_quality": 0.05, "mu_ratio": 0.95, "privleak": 25.0, "seconds": 60.0}


def meets(r: dict) -> bool:
    return (r["forget_quality"] >= BARS["forget_quality"] and r["mu_ratio"] >= BARS["mu_ratio"]
            and abs(r["privleak"]) <= BARS["privleak"] and r["seconds"] <= BARS["seconds"])


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def run_candidate(zoo_name: str, method: str, values: dict, seed: int, target_mu: float, lora: bool) -> dict:
    """Train one candidate and score it (runs in a worker process)."""
    import logging

    from hfcl.data import load_tofu
    from hfcl.eval import evaluate_model
    from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
    from hfcl.unlearn.run import UnlearnRunArgs, lora_config
    from hfcl.zoo import ZooConfig, load_model, tiny_config

    logging.getLogger("hfcl").setLevel(logging.ERROR)
    zoo = tiny_config() if zoo_name == "tiny" else ZooConfig()
    splits = load_tofu("forget10", world_config=zoo)
    model, tok = load_model("target", zoo)
    values = {**values, "learning_rate": float(f"{values['learning_rate'] * (1.0 if lora else FULL_LR_SCALE):.3g}")}
    config = UnlearningConfig(output_dir=f"/tmp/hfcl-preset-search-{os.getpid()}", method=method, retain_loss="auto",
                              seed=seed, use_cpu=True, report_to="none", disable_tqdm=True, save_strategy="no",
                              logging_steps=1000, **{**SCHEDULE, **values})
    start = time.perf_counter()
    trainer = UnlearningTrainer(model, config, splits["forget"], splits["retain"], processing_class=tok,
                                peft_config=lora_config(UnlearnRunArgs()) if lora else None, holdout_dataset=splits["holdout"])
    trainer.train()
    seconds = time.perf_counter() - start
    a = evaluate_model((trainer.unlearned_model(), tok), world_config=zoo, reference_log="auto",
                       distributed=False).aggregates
    outcome = trainer.membership_stop.outcome
    return {"method": method, "values": values, "lora": lora, "seed": seed, "steps": trainer.state.global_step,
            "seconds": round(seconds, 2), "forget_quality": a["forget_quality"],
            "mu_ratio": a["model_utility"] / target_mu, "privleak": a["privleak"],
            "forget_rouge": a.get("forget_Q_A_ROUGE"), "stopped": outcome["reason"] if outcome else "cap"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="default", choices=["default", "tiny"])
    parser.add_argument("--methods", default=",".join(GRID), help="Comma-separated methods to search.")
    parser.add_argument("--seeds", default="0", help="Comma-separated seeds; a candidate's figures are the mean.")
    parser.add_argument("--workers", type=int, default=2, help="Worker processes (one thread each).")
    parser.add_argument("--lora", default="true", choices=["true", "false"],
                        help="Train the CLI's default LoRA adapter (true) or all weights (false).")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    lora = args.lora == "true"
    from hfcl.eval import evaluate_model
    from hfcl.zoo import ZooConfig, build_zoo, tiny_config

    zoo = tiny_config() if args.zoo == "tiny" else ZooConfig()
    build_zoo(zoo)
    target = evaluate_model("target", world_config=zoo, reference_log="auto", distributed=False).aggregates
    methods = [m for m in args.methods.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(m, v, s) for m in methods for v in GRID[m] for s in seeds]
    print(f"{len(jobs)} runs, {args.workers} workers; target PrivLeak {target['privleak']:+.1f}, "
          f"FQ {target['forget_quality']:.2g}", flush=True)
    with ProcessPoolExecutor(args.workers, initializer=_worker_init) as pool:
        futures = [pool.submit(run_candidate, args.zoo, m, v, s, target["model_utility"], lora)
                   for m, v, s in jobs]
        results = []
        for f in futures:
            r = f.result()
            results.append(r)
            print(f"{r['method']:10} {str(r['values']):58} seed {r['seed']} {r['steps']:>4} st {r['seconds']:>5.1f}s "
                  f"FQ {r['forget_quality']:>8.2g} MU {r['mu_ratio']:.3f}x PL {r['privleak']:>+6.1f} "
                  f"{r['stopped']:10} {'PASS' if meets(r) else ''}", flush=True)
    best = {}
    for m in methods:
        groups: dict[str, list[dict]] = {}
        for r in results:
            if r["method"] == m:
                groups.setdefault(repr(r["values"]), []).append(r)
        scored = []
        for runs in groups.values():
            mean = {k: sum(r[k] for r in runs) / len(runs) for k in ("forget_quality", "mu_ratio", "privleak",
                                                                      "seconds", "steps")}
            mean["all_seeds_pass"] = all(meets(r) for r in runs)
            scored.append((mean["all_seeds_pass"], mean["forget_quality"] * min(1.0, mean["mu_ratio"] / 0.95),
                           runs[0]["values"], mean))
        scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
        ok, _, values, mean = scored[0]
        best[m] = {"values": values, **mean}
        print(f"best {m:10} {'meets the bars' if ok else 'misses':15} {values}  FQ {mean['forget_quality']:.2g} "
              f"MU {mean['mu_ratio']:.3f}x PrivLeak {mean['privleak']:+.1f} {mean['seconds']:.1f}s")
    record = BenchRecord("preset_search" + ("_tiny" if args.zoo == "tiny" else ""),
                         "python benchmarks/preset_search.py" + (" --zoo tiny" if args.zoo == "tiny" else ""))
    passing = [m for m, b in best.items() if b["all_seeds_pass"]]
    trained = "LoRA r 8" if lora else "all weights"
    means = "; ".join(f"{m} FQ {b['forget_quality']:.2g}, MU {b['mu_ratio']:.2f}x, PrivLeak {b['privleak']:+.0f}"
                      for m, b in best.items())
    record.add(f"methods whose best searched recipe ({trained}, membership stop) meets FQ >= 0.05, MU >= 0.95x and "
               f"|PrivLeak| <= 25 on every seed ({args.zoo} zoo, forget10, seeds {args.seeds})",
               f"{len(passing)} of {len(best)}: {', '.join(passing) or 'none'} (means: {means})",
               order=18, best=best, runs=results)
    record.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
