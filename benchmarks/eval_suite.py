"""The TOFU and MUSE suites (one deduplicated batched scoring pass + batched generation) against a straightforward
per-example loop over the same metrics (each metric scores its own sequences one at a time and generates one answer
at a time, as metric-by-metric evaluators do). Both run in one process, side by side, on the same model, and must
agree on every aggregate.

    python benchmarks/eval_suite.py              # the embedded default target model (built on first use)
    python benchmarks/eval_suite.py --tiny       # the reduced test zoo (seconds)
    python benchmarks/eval_suite.py --tiny --suite muse
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hfcl.data import tokenize_example
from hfcl.data.formatting import prompt_ids, tokenize_text
from hfcl.eval import EvalConfig, evaluate_model
from hfcl.eval import metrics as M
from hfcl.eval.api import load_suite_data, split_world_config
from hfcl.eval.scoring import generate_batch, score_batch
from hfcl.eval.suites import prepare_data, verbmem_pairs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag


class Timer:
    """Seconds spent in forward passes (``scoring``, count in ``passes``) and in generation."""

    def __init__(self) -> None:
        self.scoring = self.generation = 0.0
        self.passes = 0


def naive_muse(model, tok, data, config: EvalConfig, timing: Timer) -> dict[str, float]:
    """MUSE metric by metric: every attack and memorisation metric scores each passage itself; one prompt at a time."""
    pad, eos = tok.pad_token_id, tok.eos_token_id

    def score(text):
        start = time.perf_counter()
        out = score_batch(model, [tokenize_text(tok, text, config.max_length)], pad, eos)[0]
        timing.scoring += time.perf_counter() - start
        timing.passes += 1
        return out

    def generate(ids, max_new_tokens):
        start = time.perf_counter()
        out = generate_batch(model, [ids], pad, eos, max_new_tokens)[0]
        timing.generation += time.perf_counter() - start
        return tok.decode(out, skip_special_tokens=True).strip()

    out: dict[str, float] = {}
    forget, holdout = list(data["forget"]["text"]), list(data["holdout"]["text"])
    pairs = verbmem_pairs(tok, forget, config)
    out["forget_verbmem_rouge"] = float(np.mean(M.rouge_l_f1([generate(p, config.verbmem_max_new_tokens)
                                                              for p, _ in pairs], [t for _, t in pairs])))
    for split, name in (("knowmem_forget", "forget_knowmem_rouge"), ("knowmem_retain", "retain_knowmem_rouge")):
        answers = [generate(prompt_ids(tok, [{"role": "user", "content": q}]), config.max_new_tokens)
                   for q in data[split]["question"]]
        out[name] = float(np.mean(M.rouge_l_f1(answers, data[split]["answer"])))
    out["extraction_strength"] = float(np.mean([M.extraction_strength(score(t).content().correct) for t in forget]))
    out["exact_memorization"] = float(np.mean([M.exact_memorization(score(t).content().correct) for t in forget]))
    attacks = {
        "mia_loss": lambda s, t: M.loss_score(s.logprobs),
        "mia_zlib": lambda s, t: M.zlib_score(s.logprobs, t),
        "mia_min_k": lambda s, t: M.min_k_score(s.logprobs, config.mia_k),
        "mia_min_k_plus_plus": lambda s, t: M.min_k_plus_plus_score(s.logprobs, s.mu, s.var, config.mia_k),
    }
    for name, attack in attacks.items():
        out[f"{name}_auc"] = M.mia_auc([attack(score(t).content(), t) for t in forget],
                                       [attack(score(t).content(), t) for t in holdout])
    return out


def naive_tofu(model, tok, data, config: EvalConfig, timing: Timer) -> dict[str, float]:
    """TOFU metric by metric, one example (and one sequence) at a time."""
    pad, eos = tok.pad_token_id, tok.eos_token_id

    def score(q, a):
        start = time.perf_counter()
        out = score_batch(model, [tokenize_example(tok, {"question": q, "answer": a}, config.max_length)], pad, eos)[0]
        timing.scoring += time.perf_counter() - start
        timing.passes += 1
        return out

    def generate(q):
        start = time.perf_counter()
        ids = generate_batch(model, [prompt_ids(tok, [{"role": "user", "content": q}])], pad, eos,
                             config.max_new_tokens)[0]
        timing.generation += time.perf_counter() - start
        return tok.decode(ids, skip_special_tokens=True).strip()

    out: dict[str, float] = {}
    correct_col = {"forget": "paraphrased_answer", "retain": "paraphrased_answer"}
    if config.resolved_truth_ratio_answer == "original":
        correct_col = {}
    for split, prefix in (("forget", "forget"), ("retain", "retain"), ("real_authors", "ra"), ("world_facts", "wf")):
        rows = data[split].to_list()
        if prefix in ("ra", "wf"):  # probability with options: its own pass over answer + options
            probs = [M.normalized_probability([score(r["question"], r["answer"]).avg_nll],
                                              [[score(r["question"], w).avg_nll for w in r["perturbed_answer"]]])[0]
                     for r in rows]
        else:
            probs = [float(M.answer_probability(score(r["question"], r["answer"]).avg_nll)) for r in rows]
        ratios = [M.truth_ratio([score(r["question"], r[correct_col.get(split, "answer")]).avg_nll],
                                [[score(r["question"], w).avg_nll for w in r["perturbed_answer"]]])[0] for r in rows]
        rouge = [M.rouge_l_recall([generate(r["question"])], [r["answer"]])[0] for r in rows]
        out[f"{prefix}_prob"] = float(np.mean(probs))
        out[f"{prefix}_rouge"] = float(np.mean(rouge))
        out[f"{prefix}_truth_ratio"] = (M.truth_ratio_closer_to_1(ratios) if split == "forget"
                                        else M.truth_ratio_true_better(ratios))
    forget, holdout = data["forget"].to_list(), data["holdout"].to_list()
    out["extraction_strength"] = float(np.mean([M.extraction_strength(score(r["question"], r["answer"]).content()
                                                                      .correct) for r in forget]))
    out["exact_memorization"] = float(np.mean([M.exact_memorization(score(r["question"], r["answer"]).content()
                                                                    .correct) for r in forget]))
    attacks = {
        "mia_loss": lambda s, r: M.loss_score(s.logprobs),
        "mia_zlib": lambda s, r: M.zlib_score(s.logprobs, r["answer"]),
        "mia_min_k": lambda s, r: M.min_k_score(s.logprobs, config.mia_k),
        "mia_min_k_plus_plus": lambda s, r: M.min_k_plus_plus_score(s.logprobs, s.mu, s.var, config.mia_k),
    }
    for name, attack in attacks.items():  # each attack scores both sets itself
        f = [attack(score(r["question"], r["answer"]).content(), r) for r in forget]
        h = [attack(score(r["question"], r["answer"]).content(), r) for r in holdout]
        out[f"{name}_auc"] = M.mia_auc(f, h)
    out["model_utility"] = M.model_utility(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="Use the reduced test zoo instead of the default.")
    parser.add_argument("--stage", default="target")
    parser.add_argument("--suite", choices=("tofu", "muse", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=1, help="Runs of each side; the fastest counts.")
    add_json_flag(parser)
    args = parser.parse_args()
    flags = " --tiny" * args.tiny + (f" --suite {args.suite}" if args.suite != "both" else "")
    record = BenchRecord("eval_suite" + "_tiny" * args.tiny, "python benchmarks/eval_suite.py" + flags)
    world = None
    if args.tiny:
        from hfcl.zoo import tiny_config

        world = tiny_config()
    from hfcl.zoo import load_model

    _, zoo_cfg = split_world_config(world)
    model, tok = load_model(args.stage, config=zoo_cfg)
    model.eval()
    torch.set_grad_enabled(False)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.stage} ({'tiny' if args.tiny else 'default'} zoo), {n_params:,} parameters, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'':32}{'suite':>10}{'per-example':>14}{'speed-up':>10}")
    for suite in (("tofu", "muse") if args.suite == "both" else (args.suite,)):
        config = EvalConfig(suite=suite)
        data = prepare_data(load_suite_data(config, world), config)
        naive_fn = naive_tofu if suite == "tofu" else naive_muse
        best = None
        for _ in range(args.repeats):
            start = time.perf_counter()
            report = evaluate_model((model, tok), config=config, splits=data, distributed=False)
            suite_t = time.perf_counter() - start
            timing = Timer()
            start = time.perf_counter()
            naive = naive_fn(model, tok, data, config, timing)
            naive_t = time.perf_counter() - start
            if best is None or suite_t + naive_t < best[0] + best[1]:
                best = (suite_t, naive_t, report, naive, timing)
        suite_t, naive_t, report, naive, timing = best
        diffs = {k: abs(v - report.aggregates[k]) for k, v in naive.items()}
        runtime = report.runtime
        rows = [(f"{suite}: teacher-forced scoring (s)", runtime["scoring_seconds"], timing.scoring),
                (f"{suite}: greedy generation (s)", runtime["generation_seconds"], timing.generation),
                (f"{suite}: whole suite (s)", suite_t, naive_t)]
        for label, fast, slow in rows:
            print(f"{label:32}{fast:>10.2f}{slow:>14.2f}{slow / fast:>9.1f}x")
        print(f"  rows {', '.join(f'{k}={len(v)}' for k, v in data.items())}; {runtime['sequences']} unique sequences "
              f"in batches of {config.batch_size} vs {timing.passes} single-sequence passes; {runtime['prompts']} "
              f"prompts; max |aggregate difference| {max(diffs.values()):.1e} ({max(diffs, key=diffs.get)})")
        zoo = "tiny" if args.tiny else "default"
        # rank statistics (membership AUCs) move in steps of 1/pairs: a float-level tie between a batched and a
        # single-sequence loss flips one forget/holdout pair, so they are reported apart, in flipped pairs
        auc = {k: v for k, v in diffs.items() if "auc" in k}
        continuous = max((v for k, v in diffs.items() if k not in auc), default=0.0)
        agreement = f"same numbers to {continuous:.0e}"
        if auc and suite == "tofu":
            pairs = len(data["forget"]) * len(data["holdout"])
            agreement += (f", membership AUCs within {round(max(auc.values()) * pairs)} of {pairs} ranked "
                          "forget/holdout pairs")
        print(f"  {agreement}")
        record.add(f"{suite.upper()} suite vs a per-example loop, {agreement} ({zoo} {args.stage})",
                   f"**{naive_t / suite_t:.1f}x** faster: {suite_t:.1f} s vs {naive_t:.1f} s (scoring "
                   f"{timing.scoring / runtime['scoring_seconds']:.1f}x, generation "
                   f"{timing.generation / runtime['generation_seconds']:.1f}x)", timed=True,
                   order=40 if suite == "tofu" else 41, speedup=round(naive_t / suite_t, 3),
                   suite_seconds=round(suite_t, 3), naive_seconds=round(naive_t, 3),
                   max_abs_difference=max(diffs.values()))
    record.write(args.json)


if __name__ == "__main__":
    main()
