"""The numbers quoted in ``hfcl/eval/DIFFERENCES.md``, measured side by side in one run:

* forget quality of the target model with the paraphrased vs the original answer as the truth ratio's "correct" one;
* LOSS attack with and without the final EOS token (per-example gap, AUC of the target and the retain model);
* greedy answers capped at 64 (hfcl) vs 200 (OpenUnlearning) new tokens.

    python benchmarks/eval_differences.py --tiny     # the reduced test zoo (minutes on 2 cores)
    python benchmarks/eval_differences.py            # the embedded default (built on first use)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from hfcl.data import load_tofu
from hfcl.eval import build_reference_log, evaluate_model
from hfcl.eval.metrics import mia_auc
from hfcl.eval.scoring import ScoringPlan
from hfcl.zoo import ZooConfig, load_model, tiny_config


def forget_quality_by_answer(cfg: ZooConfig, folder: Path) -> dict:
    out = {}
    for answer in ("original", "paraphrased"):
        log = build_reference_log("retain", world_config=cfg, path=folder / f"retain_{answer}.json",
                                  truth_ratio_answer=answer)
        report = evaluate_model("target", world_config=cfg, reference_log=log, truth_ratio_answer=answer)
        out[f"forget_quality[{answer}]"] = report.aggregates["forget_quality"]
        out["sizes"] = report.data["sizes"]
    return out


def loss_with_and_without_eos(cfg: ZooConfig) -> dict:
    splits = load_tofu("forget10", world_config=cfg)
    out = {}
    for stage in ("target", "retain"):
        model, tokenizer = load_model(stage, cfg)
        plan = ScoringPlan(tokenizer, 512)
        ids = {split: [plan.qa(q, a) for q, a in zip(splits[split]["question"], splits[split]["answer"])]
               for split in ("forget", "holdout")}
        scores = plan.score(model, 32, 16384, distributed=False)
        losses = {(split, eos): np.array([scores[i].avg_nll if eos else scores[i].content().avg_nll for i in idx])
                  for split, idx in ids.items() for eos in (True, False)}
        gap = np.abs(losses["forget", True] - losses["forget", False]) / losses["forget", False]
        out[stage] = {"loss_gap_median": float(np.median(gap)), "loss_gap_max": float(gap.max()),
                      "answer_tokens": [int(scores[i].logprobs.size) for i in ids["forget"]],
                      "mia_loss_auc_with_eos": mia_auc(losses["forget", True], losses["holdout", True]),
                      "mia_loss_auc_without_eos": mia_auc(losses["forget", False], losses["holdout", False])}
        out[stage]["answer_tokens"] = [min(out[stage]["answer_tokens"]), max(out[stage]["answer_tokens"])]
    return out


def generation_cap(cfg: ZooConfig, folder: Path) -> dict:
    log = folder / "retain_original.json"
    reports = {cap: evaluate_model("target", world_config=cfg, reference_log=log, max_new_tokens=cap)
               for cap in (64, 200)}
    _, tokenizer = load_model("target", cfg)
    out = {}
    for split in ("forget", "retain"):
        long = reports[200].per_example[split]["generation"]
        out[f"{split}_longest_answer_tokens"] = max(len(tokenizer(g, add_special_tokens=False)["input_ids"])
                                                    for g in long)
        out[f"{split}_answers_changed"] = sum(a != b for a, b in
                                              zip(reports[64].per_example[split]["generation"], long))
    for key in ("forget_rouge", "retain_rouge", "model_utility"):
        out[key] = {cap: reports[cap].aggregates[key] for cap in reports}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="Use the reduced test zoo.")
    args = parser.parse_args()
    cfg = tiny_config() if args.tiny else ZooConfig()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = {"forget_quality": forget_quality_by_answer(cfg, folder), "eos": loss_with_and_without_eos(cfg),
                   "generation_cap": generation_cap(cfg, folder)}
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
