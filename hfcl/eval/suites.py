"""The ``tofu``, ``muse`` and ``rwku`` suites: register every sequence and prompt, run one scoring pass and one generation
pass, compute the per-example columns, then every registered metric of the suite (:mod:`hfcl.eval.metrics.registry`)
from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict

from ..errors import ConfigError, DataError
from ..utils.io import stable_hash
from . import metrics as M
from .metrics.registry import compute_metrics, metrics_for
from .reference_log import MISSING_NOTE, ReferenceLog
from .scoring import ScoringPlan, SequenceScore

SUITES = ("tofu", "muse", "rwku")


@dataclass
class EvalConfig:
    """How a suite runs. Every field is also a flag of ``hfcl eval``."""

    suite: str = field(default="tofu", metadata={
        "help": "Benchmark suite: 'tofu', 'muse' or 'rwku' (real-world knowledge of a real model: forget, neighbour "
                "and utility probes; see --forget_target).", "choices": SUITES})
    forget_target: str = field(default="William Shakespeare", metadata={
        "help": "rwku suite: the unlearned target whose probes are scored (an entity of the embedded real-knowledge "
                "set, hfcl.data.rwku)."})
    forget_split: str = field(default="forget10", metadata={"help": "forget01, forget05 or forget10.",
                                                            "choices": ("forget01", "forget05", "forget10")})
    data_source: str = field(default="embedded", metadata={
        "help": "'embedded' (the fictitious world, offline) or a Hub dataset with TOFU's configs (locuslab/TOFU)."})
    batch_size: int = field(default=32, metadata={"help": "Sequences per forward pass / prompts per generate call."})
    max_batch_tokens: int = field(default=16384, metadata={
        "help": "Cap on padded tokens per scoring batch (bounds the logits' memory: tokens x vocabulary)."})
    max_length: int = field(default=512, metadata={"help": "Longest scored sequence in tokens (answers are cut)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Greedy answer length cap (generation stops at EOS)."})
    retain_eval_size: int = field(default=400, metadata={
        "help": "Retain-set questions evaluated (evenly spaced; TOFU's retain_perturbed has 400); 0 = all."})
    mia_k: float = field(default=0.4, metadata={"help": "k of Min-K%% / Min-K%%++ (and so of PrivLeak)."})
    verbmem_prefix_tokens: int = field(default=32, metadata={"help": "MUSE VerbMem: passage tokens given as prompt."})
    verbmem_max_new_tokens: int = field(default=128, metadata={"help": "MUSE VerbMem: continuation length."})
    seed: int = field(default=0, metadata={"help": "Seed set before evaluation (greedy decoding is deterministic)."})
    truth_ratio_answer: str = field(default="auto", metadata={
        "help": "Correct answer the forget/retain truth ratio compares with the perturbed ones: 'paraphrased' (TOFU, "
                "whose perturbed answers rewrite the paraphrase), 'original', or 'auto' = 'original' for the embedded "
                "world (its perturbed answers keep the original answer's phrasing) and 'paraphrased' otherwise."})

    attacks: str = field(default="", metadata={
        "help": "Robustness attacks run after the suite, comma-separated: relearn (fine-tune on a part of the "
                "forget set, score the rest), quantize (round-to-nearest weight quantization at --quantize_bits), "
                "unguard (the weights without an inference-time guard such as ECO or GuardFilter). "
                "Adds robustness_* aggregates; empty = none."})
    relearn_fraction: float = field(default=0.2, metadata={
        "help": "Relearning attack: share of the forget rows it fine-tunes on (every k-th row); the rest is scored."})
    relearn_steps: int = field(default=10, metadata={"help": "Relearning attack: AdamW steps (batch 8)."})
    relearn_learning_rate: float = field(default=1e-3, metadata={"help": "Relearning attack: learning rate."})
    quantize_bits: str = field(default="8,4", metadata={
        "help": "Quantization attack: comma-separated bit widths (per-output-channel round-to-nearest)."})

    def __post_init__(self) -> None:
        from .attacks import parse_attacks, parse_bits

        attacks = parse_attacks(self.attacks)
        if attacks and self.suite != "tofu":
            raise ConfigError(f"attacks={self.attacks!r} run on the TOFU suite (its forget QA rows); drop them for "
                              f"suite={self.suite!r}.")
        if "quantize" in attacks:
            parse_bits(self.quantize_bits)
        if "relearn" in attacks and (not 0 < self.relearn_fraction < 1 or self.relearn_steps < 1
                                     or self.relearn_learning_rate <= 0):
            raise ConfigError("relearn attack: relearn_fraction must be in (0, 1), relearn_steps >= 1 and "
                              "relearn_learning_rate > 0.")
        if self.suite not in SUITES:
            raise ConfigError(f"suite={self.suite!r}: choose one of {', '.join(SUITES)}.")
        if not 0 < self.mia_k <= 1:
            raise ConfigError(f"mia_k={self.mia_k} must be in (0, 1].")
        for name in ("batch_size", "max_batch_tokens", "max_length", "max_new_tokens", "verbmem_prefix_tokens",
                     "verbmem_max_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.truth_ratio_answer not in ("auto", "paraphrased", "original"):
            raise ConfigError(f"truth_ratio_answer={self.truth_ratio_answer!r}: choose auto, paraphrased or original.")
        if self.retain_eval_size < 0:
            raise ConfigError("retain_eval_size must be >= 0 (0 = the whole retain split).")

    @property
    def resolved_truth_ratio_answer(self) -> str:
        if self.truth_ratio_answer != "auto":
            return self.truth_ratio_answer
        return "original" if self.data_source == "embedded" else "paraphrased"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["truth_ratio_answer"] = self.resolved_truth_ratio_answer
        return data


@dataclass
class SuiteResult:
    aggregates: dict[str, float | None]
    per_example: dict[str, dict[str, list]]
    notes: list[str]
    stats: dict[str, Any]


# --- data ----------------------------------------------------------------------------------------------------------
def evenly_spaced(ds: Dataset, size: int) -> Dataset:
    """``size`` rows spread evenly over ``ds`` (all rows if ``size`` is 0 or larger than ``ds``)."""
    if size <= 0 or size >= len(ds):
        return ds
    return ds.select(sorted(set(np.linspace(0, len(ds) - 1, size).round().astype(int).tolist())))


def prepare_data(splits: DatasetDict, config: EvalConfig) -> DatasetDict:
    """The exact rows a suite evaluates (retain subset applied), checked for the columns it needs."""
    needed = {"tofu": {"forget": "perturbed_answer", "retain": "perturbed_answer", "holdout": "answer",
                       "real_authors": "perturbed_answer", "world_facts": "perturbed_answer"},
              "muse": {"forget": "text", "retain": "text", "holdout": "text", "knowmem_forget": "answer",
                       "knowmem_retain": "answer"},
              "rwku": {"forget_probe": "answer", "neighbor": "answer", "utility": "answer"}}[config.suite]
    for split, column in needed.items():
        if split not in splits:
            raise DataError(f"The {config.suite} suite needs split {split!r}; got {sorted(splits)}.")
        if column not in splits[split].column_names:
            raise DataError(f"Split {split!r} has no column {column!r} (columns: {splits[split].column_names}).")
        if len(splits[split]) == 0:
            raise DataError(f"Split {split!r} is empty.")
    out = {k: splits[k] for k in needed}
    if config.suite == "tofu":
        out["retain"] = evenly_spaced(out["retain"], config.retain_eval_size)
    return DatasetDict(out)


def data_fingerprint(data: DatasetDict, suite: str) -> str:
    """Hash of every evaluated row (so a reference log is only used on exactly the same data)."""
    return stable_hash({"suite": suite, **{k: data[k].to_list() for k in sorted(data)}})


# --- helpers -------------------------------------------------------------------------------------------------------
def _nan_to_none(values: Sequence[float]) -> list[float | None]:
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v) for v in values]


def _mia_scores(scores: list[SequenceScore], texts: list[str], k: float) -> dict[str, list[float]]:
    """Per-example membership scores. LOSS and ZLib (and so the reference attack) read every labelled token, EOS
    included, as OpenUnlearning does; Min-K% and Min-K%++ read the answer's content (a final EOS dropped)."""
    content = [s.content() for s in scores]
    return {
        "mia_loss": [M.loss_score(s.logprobs) for s in scores],
        "mia_zlib": [M.zlib_score(s.logprobs, t) for s, t in zip(scores, texts)],
        "mia_min_k": [M.min_k_score(c.logprobs, k) for c in content],
        "mia_min_k_plus_plus": [M.min_k_plus_plus_score(c.logprobs, c.mu, c.var, k) for c in content],
    }


def _memorisation(scores: list[SequenceScore]) -> dict[str, list[float]]:
    content = [s.content() for s in scores]
    return {"extraction_strength": [M.extraction_strength(c.correct) for c in content],
            "exact_memorization": [M.exact_memorization(c.correct) for c in content]}


def metric_inputs(per_example: dict[str, dict[str, list]], **extra: Any) -> dict[str, Any]:
    """The registry's inputs: ``<split>.<column>`` for every per-example column, plus ``extra`` (dots spelled
    ``__``: ``forget__scores=...`` gives ``forget.scores``)."""
    inputs = {f"{split}.{column}": values for split, columns in per_example.items()
              for column, values in columns.items()}
    inputs.update({key.replace("__", "."): value for key, value in extra.items()})
    return inputs


def _suite_aggregates(suite: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return compute_metrics(metrics_for(suite, "suite"), inputs)


def _values(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def apply_reference(suite: str, aggregates: dict[str, Any], per_example: dict[str, dict[str, list]],
                    reference: ReferenceLog | None) -> tuple[dict[str, Any], dict[str, dict[str, list]], list[str]]:
    """The registered metrics that compare with the retain model (stage ``"reference"``: ``forget_quality`` (TOFU),
    ``privleak``, ``mia_reference_auc``, ...), from a suite's reference-free results and a :class:`ReferenceLog`
    (``None`` gives ``None`` values and a note per metric). Returns new ``(aggregates, per_example, notes)``; inputs
    are not changed.
    """
    aggregates = dict(aggregates)
    per_example = {split: dict(values) for split, values in per_example.items()}
    notes: list[str] = []
    metrics = metrics_for(suite, "reference")
    if reference is None:
        aggregates.update(dict.fromkeys(m.name for m in metrics))
        notes += [MISSING_NOTE.format(metric=m.name) for m in metrics]
        for split in ("forget", "holdout"):
            per_example.get(split, {}).pop("mia_reference", None)
        return aggregates, per_example, notes
    for split in ("forget", "holdout"):
        own, ref = _values(per_example[split]["mia_loss"]), reference.mia_loss[split]
        if len(own) != len(ref):
            raise DataError(f"The reference log has {len(ref)} {split} losses, this run {len(own)}: rebuild it.")
        per_example[split]["mia_reference"] = [M.reference_score(a, b) for a, b in zip(own, ref)]
    inputs = metric_inputs({split: {k: _values(v) if _numeric(v) else v for k, v in columns.items()}
                            for split, columns in per_example.items()})
    inputs.update({f"reference.{k}": v for k, v in reference.content().items()})
    base = {k: v for k, v in aggregates.items() if k not in {m.name for m in metrics}}
    computable = []
    for metric in metrics:
        absent = [k for k in metric.inputs if k.startswith("reference.") and inputs.get(k) is None]
        if absent:
            aggregates[metric.name] = None
            notes.append(f"{metric.name} is not computed: the reference log holds no {absent[0][10:]} (a log of "
                         "another suite?).")
        else:
            computable.append(metric)
    for name, value in compute_metrics(computable, inputs, base).items():
        undefined = value is None or (isinstance(value, float) and math.isnan(value))
        aggregates[name] = None if undefined else value
        note = next(m.undefined_note for m in computable if m.name == name)
        if undefined:
            notes.append(note or f"{name} is undefined for this model and reference log.")
    return aggregates, _clean(per_example), notes


def _numeric(values: Any) -> bool:
    return isinstance(values, list) and all(v is None or isinstance(v, (int, float)) for v in values) and \
        any(v is not None for v in values)


# --- TOFU ----------------------------------------------------------------------------------------------------------
def run_tofu(model, tokenizer, data: DatasetDict, config: EvalConfig, distributed: bool = True) -> SuiteResult:
    """TOFU metrics (see :mod:`hfcl.eval.definitions`) from one scoring pass and one generation pass (the
    reference-model metrics are added by :func:`apply_reference`)."""
    plan = ScoringPlan(tokenizer, config.max_length)
    ids: dict[str, dict[str, list]] = {}
    for split in ("forget", "retain", "real_authors", "world_facts"):
        rows = data[split]
        paraphrased = split in ("forget", "retain") and config.resolved_truth_ratio_answer == "paraphrased"
        correct_col = "paraphrased_answer" if paraphrased else "answer"
        ids[split] = {
            "answer": [plan.qa(q, a) for q, a in zip(rows["question"], rows["answer"])],
            "correct": [plan.qa(q, a) for q, a in zip(rows["question"], rows[correct_col])],
            "perturbed": [[plan.qa(q, w) for w in ws] for q, ws in zip(rows["question"], rows["perturbed_answer"])],
            "prompt": [plan.question_prompt(q) for q in rows["question"]],
        }
    holdout_ids = [plan.qa(q, a) for q, a in zip(data["holdout"]["question"], data["holdout"]["answer"])]
    scores = plan.score(model, config.batch_size, config.max_batch_tokens, distributed=distributed)
    generations = plan.generate(model, config.max_new_tokens, config.batch_size, distributed=distributed)

    def nll(indices):
        return np.array([scores[i].avg_nll for i in indices])

    per_example: dict[str, dict[str, list]] = {}
    notes: list[str] = []
    for split in ("forget", "retain", "real_authors", "world_facts"):
        rows, split_ids = data[split], ids[split]
        if any(len(p) == 0 for p in split_ids["perturbed"]):
            raise DataError(f"Every {split} row needs at least one perturbed answer.")
        wrong_mean = np.array([nll(p).mean() for p in split_ids["perturbed"]])
        ratios = M.truth_ratio(nll(split_ids["correct"]), wrong_mean)
        if split in ("real_authors", "world_facts"):
            prob = [float(M.normalized_probability([c], [nll(p)])[0])
                    for c, p in zip(nll(split_ids["answer"]), split_ids["perturbed"])]
        else:
            prob = M.answer_probability(nll(split_ids["answer"])).tolist()
        gens = [generations[i] for i in split_ids["prompt"]]
        rouge = M.rouge_l_recall(gens, rows["answer"]).tolist()
        per_example[split] = {"question": list(rows["question"]), "generation": gens, "prob": prob, "rouge": rouge,
                              "truth_ratio": ratios.tolist()}
    forget_scores = [scores[i] for i in ids["forget"]["answer"]]
    per_example["forget"].update(_memorisation(forget_scores))
    per_example["forget"].update(_mia_scores(forget_scores, list(data["forget"]["answer"]), config.mia_k))
    per_example["holdout"] = {"question": list(data["holdout"]["question"]),
                              **_mia_scores([scores[i] for i in holdout_ids], list(data["holdout"]["answer"]),
                                            config.mia_k)}
    holdout_scores = [scores[i] for i in holdout_ids]
    inputs = metric_inputs(per_example, forget__scores=forget_scores, holdout__scores=holdout_scores,
                           **{f"{split}__answer": list(data[split]["answer"]) for split in ids},
                           holdout__answer=list(data["holdout"]["answer"]))
    aggregates = _suite_aggregates("tofu", inputs)
    return SuiteResult(aggregates, _clean(per_example), notes, dict(plan.stats, sequences=len(plan.features),
                                                                    prompts=len(plan.prompts)))


# --- MUSE ----------------------------------------------------------------------------------------------------------
def verbmem_pairs(tokenizer, texts: Sequence[str], config: EvalConfig) -> list[tuple[list[int], str]]:
    """MUSE VerbMem ``(prompt ids, true continuation)`` per passage: the first ``verbmem_prefix_tokens`` tokens (at
    most half the passage) after BOS, and the next ``verbmem_max_new_tokens`` tokens decoded."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    pairs = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        cut = min(config.verbmem_prefix_tokens, max(1, len(ids) // 2))
        truth = tokenizer.decode(ids[cut:cut + config.verbmem_max_new_tokens], skip_special_tokens=True).strip()
        pairs.append((bos + ids[:cut], truth))
    return pairs


_verbmem_pairs = verbmem_pairs  # the old private name


def run_muse(model, tokenizer, data: DatasetDict, config: EvalConfig, distributed: bool = True) -> SuiteResult:
    """MUSE metrics: VerbMem, KnowMem (forget / retain), PrivLeak, extraction strength, membership AUCs."""
    plan = ScoringPlan(tokenizer, config.max_length)
    forget_text, holdout_text = list(data["forget"]["text"]), list(data["holdout"]["text"])
    forget_ids = [plan.text(t) for t in forget_text]
    holdout_ids = [plan.text(t) for t in holdout_text]
    verbmem = verbmem_pairs(tokenizer, forget_text, config)
    verb_plan = ScoringPlan(tokenizer, config.max_length)  # continuations need another length cap than QA answers
    verb_prompts = [verb_plan.ids_prompt(p) for p, _ in verbmem]
    know = {split: [plan.question_prompt(q) for q in data[split]["question"]]
            for split in ("knowmem_forget", "knowmem_retain")}
    scores = plan.score(model, config.batch_size, config.max_batch_tokens, distributed=distributed)
    verb_out = verb_plan.generate(model, config.verbmem_max_new_tokens, config.batch_size, distributed=distributed)
    verb_gens = [verb_out[i] for i in verb_prompts]
    gens = plan.generate(model, config.max_new_tokens, config.batch_size, distributed=distributed)

    notes: list[str] = []
    verb_rouge = M.rouge_l_f1(verb_gens, [t for _, t in verbmem]).tolist()
    forget_scores = [scores[i] for i in forget_ids]
    per_example: dict[str, dict[str, list]] = {
        "forget": {"generation": verb_gens, "verbmem_rouge": verb_rouge, **_memorisation(forget_scores),
                   **_mia_scores(forget_scores, forget_text, config.mia_k)},
        "holdout": _mia_scores([scores[i] for i in holdout_ids], holdout_text, config.mia_k),
    }
    for split in ("knowmem_forget", "knowmem_retain"):
        answers = [gens[i] for i in know[split]]
        rouge = M.rouge_l_f1(answers, data[split]["answer"]).tolist()
        per_example[split] = {"question": list(data[split]["question"]), "generation": answers, "rouge": rouge}
    inputs = metric_inputs(per_example, forget__scores=forget_scores,
                           holdout__scores=[scores[i] for i in holdout_ids], forget__text=forget_text,
                           holdout__text=holdout_text, forget__continuation=[t for _, t in verbmem],
                           **{f"{split}__answer": list(data[split]["answer"]) for split in know})
    aggregates = _suite_aggregates("muse", inputs)
    stats = dict(plan.stats, sequences=len(plan.features), prompts=len(plan.prompts))
    stats["verbmem_prompts_generated_per_process"] = verb_plan.stats.get("prompts_generated_per_process")
    stats["generation_seconds"] = round(stats.get("generation_seconds", 0.0) +
                                        verb_plan.stats.get("generation_seconds", 0.0), 3)
    return SuiteResult(aggregates, _clean(per_example), notes, stats)


# --- RWKU ----------------------------------------------------------------------------------------------------------
RWKU_SPLITS = {"forget": "forget_probe", "neighbor": "neighbor", "utility": "utility"}  # role -> data split


def run_rwku(model, tokenizer, data: DatasetDict, config: EvalConfig, distributed: bool = True) -> SuiteResult:
    """RWKU-style probes of real knowledge: greedy-answer ROUGE-L recall and answer probability on the target's
    forget probes, its neighbours' probes and general-utility probes (one scoring and one generation pass)."""
    plan = ScoringPlan(tokenizer, config.max_length)
    ids = {role: ([plan.qa(q, a) for q, a in zip(data[split]["question"], data[split]["answer"])],
                  [plan.question_prompt(q) for q in data[split]["question"]]) for role, split in RWKU_SPLITS.items()}
    scores = plan.score(model, config.batch_size, config.max_batch_tokens, distributed=distributed)
    generations = plan.generate(model, config.max_new_tokens, config.batch_size, distributed=distributed)
    per_example: dict[str, dict[str, list]] = {}
    for role, split in RWKU_SPLITS.items():
        answer_ids, prompt_ids = ids[role]
        gens = [generations[i] for i in prompt_ids]
        per_example[role] = {
            "question": list(data[split]["question"]), "generation": gens,
            "prob": M.answer_probability(np.array([scores[i].avg_nll for i in answer_ids])).tolist(),
            "rouge": M.rouge_l_recall(gens, data[split]["answer"]).tolist()}
    aggregates = _suite_aggregates("rwku", metric_inputs(per_example))
    notes = ["rwku: no membership attack (the embedded probes have no never-seen holdout of the same kind)."]
    return SuiteResult(aggregates, _clean(per_example), notes, dict(plan.stats, sequences=len(plan.features),
                                                                    prompts=len(plan.prompts)))


def _clean(per_example: dict[str, dict[str, list]]) -> dict[str, dict[str, list]]:
    return {split: {k: (_nan_to_none(v) if v and isinstance(v[0], float) else list(v)) for k, v in values.items()}
            for split, values in per_example.items()}


RUNNERS = {"tofu": run_tofu, "muse": run_muse, "rwku": run_rwku}
