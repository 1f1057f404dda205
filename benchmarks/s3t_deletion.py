"""S3T exact unlearning: what a deletion costs next to training from scratch, and what the served model keeps.

    python benchmarks/s3t_deletion.py [--zoo default|tiny] [--json [PATH]]

One ensemble is trained with S3T's `demo` recipe and slice adapter (what `hfcl unlearn --method S3T` uses on the
embedded default: LoRA r 64 on every linear layer, from the zoo's base model) on the forget10 and retain rows plus the
world-facts and famous-author rows (the target's own data, utility replay included). Then
three deletion requests, each on a copy: one row, one author (forget01) and forget10. For each it prints the
slices deactivated and the optimizer steps of retraining them on the surviving rows next to training every slice
from scratch (the ratio is the deletion cost; the paper's point is that it is well below 1 for sparse requests),
and the seconds (forget10's slices are retrained and timed; the others' seconds are their steps at the measured
training speed). The mean over every training row of a single-row deletion's cost is printed too (a row in the
first slice of its shard costs its whole shard, one in the last of S slices 2/(S+1) of it, since slice j trains on
j+1 data slices). The forget10 deletion's served
model is scored by the TOFU suite next to the target and the retain model (the gold standard S3T's deletion matches
by construction: both never trained on the forget rows).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="default", choices=["default", "tiny"])
    add_json_flag(parser)
    args = parser.parse_args(argv)
    import logging

    from peft import LoraConfig

    from hfcl.data import load_tofu
    from hfcl.eval import evaluate_model
    from hfcl.unlearn.methods import METHODS
    from hfcl.unlearn.s3t import SLICE_LORA as S3T_LORA
    from hfcl.unlearn.s3t import S3TEnsemble, S3TSettings, assign, row_key, slice_steps
    from hfcl.zoo import ZooConfig, load_model, tiny_config

    logging.getLogger("hfcl").setLevel(logging.ERROR)
    zoo = tiny_config() if args.zoo == "tiny" else ZooConfig()
    splits = load_tofu("forget10", world_config=zoo)
    forget = list(splits["forget"])
    retain = [*splits["retain"], *splits["world_facts"], *splits["real_authors"]]  # as `hfcl unlearn` trains S3T
    forget01 = list(load_tofu("forget01", world_config=zoo)["forget"])
    recipe = METHODS["S3T"].presets["demo"]
    settings = S3TSettings(shards=recipe["s3t_shards"], slices=recipe["s3t_slices"], epochs=recipe["num_train_epochs"],
                           learning_rate=recipe["learning_rate"], batch_size=recipe["per_device_train_batch_size"],
                           max_length=256, seed=0)
    lora = LoraConfig(r=S3T_LORA["lora_r"], lora_alpha=S3T_LORA["lora_alpha"], target_modules="all-linear",
                      lora_dropout=0.0, task_type="CAUSAL_LM")
    base, tok = load_model("base", zoo)
    start = time.perf_counter()
    trained = S3TEnsemble.train(base, tok, forget + retain, lora, settings)
    train_seconds = time.perf_counter() - start
    total = sum(r["steps"] for r in trained.trained)
    per_step = train_seconds / total

    # the mean cost of deleting one row: the steps of its slice and the later ones of its shard, over all steps
    steps = {(k, j): slice_steps(len(trained.slice_rows(k, j)), settings.batch_size, settings.epochs)
             for k in range(settings.shards) for j in range(settings.slices)}
    costs = []
    for key in (row_key(r) for r in forget + retain):
        k, j = assign(key, settings.shards, settings.slices, settings.seed)
        costs.append(sum(steps[(k, i)] for i in range(j, settings.slices)) / total)
    mean_one_row = sum(costs) / len(costs)

    one_row = [r for r in retain if assign(row_key(r), settings.shards, settings.slices, settings.seed)[1]
               == settings.slices - 1][:1] or retain[:1]
    requests = {"1 row (in a last slice)": (one_row, [r for r in forget + retain if r not in one_row]),
                "1 author (forget01)": (forget01, [r for r in forget + retain if r not in forget01]),
                "forget10": (forget, retain)}
    rows, served = [], None
    for name, (deleted, surviving) in requests.items():
        ensemble = copy.deepcopy(trained)
        retrain = name == "forget10"  # the others' cost is the plan's steps (retraining them would only repeat it)
        began = time.perf_counter()
        report = ensemble.delete(deleted, retrain=retrain, surviving=surviving, progress=False)
        seconds = time.perf_counter() - began if retrain else report["retrain_steps"] * per_step
        rows.append({"request": name, "rows": len(deleted), "seconds": round(seconds, 2), "measured": retrain,
                     "full_seconds": round(report["full_retrain_steps"] * per_step, 2), **report})
        if retrain:
            served = ensemble.served_model()
    print(f"S3T ensemble: {settings.shards} shards x {settings.slices} slices, {len(forget) + len(retain)} rows, "
          f"{total} steps, {train_seconds:.1f} s to train")
    print(f"mean cost of deleting one row: {mean_one_row:.2f}x training from scratch")
    print(f"{'request':26} {'rows':>5} {'active after':>13} {'retrain':>9} {'steps':>6} {'full':>6} {'cost':>6} "
          f"{'sec':>6}")
    for r in rows:
        print(f"{r['request']:26} {r['rows']:>5} {str(r['active_after_deletion']):>13} {r['slices_to_retrain']:>9} "
              f"{r['retrain_steps']:>6} {r['full_retrain_steps']:>6} {r['cost_vs_full_retraining']:>6.2f} "
              f"{r['seconds']:>6.1f}{'' if r['measured'] else ' (steps x s/step)'}")
    scores = {"target": evaluate_model("target", world_config=zoo, distributed=False,
                                     reference_log="auto").aggregates,
              "retain": evaluate_model("retain", world_config=zoo, distributed=False,
                                     reference_log="auto").aggregates,
              "S3T": evaluate_model((served, tok), world_config=zoo, distributed=False,
                                     reference_log="auto").aggregates}
    print(f"{'model':8} {'forget RL':>9} {'retain RL':>9} {'MU':>6} {'FQ':>9}")
    for name, a in scores.items():
        print(f"{name:8} {a['forget_rouge']:>9.3f} {a['retain_rouge']:>9.3f} {a['model_utility']:>6.3f} "
              f"{a['forget_quality']:>9.2e}")
    record = BenchRecord("s3t_deletion" + ("_tiny" if args.zoo == "tiny" else ""),
                         "python benchmarks/s3t_deletion.py" + (" --zoo tiny" if args.zoo == "tiny" else ""))
    text = "; ".join(f"{r['request']}: {r['cost_vs_full_retraining']:.2f}x ({r['slices_to_retrain']} of "
                     f"{settings.shards * settings.slices} slices)" for r in rows)
    record.add(f"S3T deletion cost vs training from scratch ({args.zoo} zoo, {settings.shards} shards x "
               f"{settings.slices} slices; steps)", f"{text}; a single row on average {mean_one_row:.2f}x", order=20,
               runs=rows, mean_one_row=round(mean_one_row, 3), train_steps=total,
               train_seconds=round(train_seconds, 1))
    a, t, g = scores["S3T"], scores["target"], scores["retain"]
    record.add(f"S3T after deleting forget10 ({args.zoo} zoo): the served model vs the target and the retain model",
               f"forget RL {a['forget_rouge']:.2f} (target {t['forget_rouge']:.2f}, retain model "
               f"{g['forget_rouge']:.2f}); retain RL {a['retain_rouge']:.2f} "
               f"({a['retain_rouge'] / t['retain_rouge']:.2f}x "
               f"the target's); MU {a['model_utility']:.2f} (target {t['model_utility']:.2f}); FQ "
               f"{a['forget_quality']:.2g}", order=21,
               scores={k: {m: v[m] for m in ("forget_rouge", "retain_rouge", "model_utility", "forget_quality")}
                       for k, v in scores.items()})
    record.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
