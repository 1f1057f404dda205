"""The embedded transfer task: answer world questions in full sentences, and the gain an adapter brings on it.

The embedded ``base`` already knows the world's facts (capitals, rivers, famous authors...) and answers them
tersely ("Lake Vor."). The task adapter teaches a *skill* on top: answer in the full-sentence form of each question
type ("The capital is Lake Vor.", "It was written by Ana Mor."). The metric is ROUGE-L recall of greedy answers
against the sentence answers of held-out questions, so it needs both the base's knowledge and the adapter's skill;
``gain = score(base + adapter) - score(base)``.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from typing import Any

from datasets import Dataset, DatasetDict

from ..errors import ConfigError, DataError

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def sentence_task(world_config=None, test_fraction: float = 0.4, seed: int = 0) -> DatasetDict:
    """``train``/``test`` splits of (question, answer=sentence answer, short_answer, topic), stratified by topic."""
    from ..data import load_tofu

    splits = load_tofu("forget10", world_config=world_config)
    rows = [dict(r) for name in ("world_facts", "real_authors") for r in splits[name]]
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_topic.setdefault(r["topic"], []).append(
            {"question": r["question"], "answer": r["paraphrased_answer"], "short_answer": r["answer"],
             "topic": r["topic"]})
    rng = random.Random(seed)
    train, test = [], []
    for topic in sorted(by_topic):
        group = by_topic[topic]
        rng.shuffle(group)
        n_test = max(1, round(len(group) * test_fraction))
        test += group[:n_test]
        train += group[n_test:]
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})


def answer_probability(logits, labels):
    """Per sequence: exp(mean log-probability of the label tokens), the geometric-mean token probability.

    ``logits`` (batch, seq, vocab) predict position t+1 from t; ``labels`` (batch, seq) hold -100 where not scored.
    """
    import torch

    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != -100
    logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    mean = (logp * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return torch.exp(mean)


def task_probability(model, tokenizer, rows, batch_size: int = 32, max_length: int = 64) -> float:
    """Mean :func:`answer_probability` of ``rows``' ``answer`` column under ``model`` (teacher-forced, no sampling)."""
    values = task_probabilities(model, tokenizer, rows, batch_size, max_length)
    return float(sum(values) / len(values))


def task_probabilities(model, tokenizer, rows, batch_size: int = 32, max_length: int = 64) -> list[float]:
    """Per row: :func:`answer_probability` of its ``answer`` under ``model`` (teacher-forced, no sampling)."""
    import torch
    from transformers import DataCollatorForSeq2Seq

    from ..data.formatting import tokenize_example

    rows = [dict(r) for r in rows]
    if not rows:
        raise DataError("task_probability needs at least one question.")
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    was_training = model.training
    model.eval()
    values = []
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                batch = collator([tokenize_example(tokenizer, r, max_length) for r in rows[start:start + batch_size]])
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                values += answer_probability(out.logits, batch["labels"]).tolist()
    finally:
        model.train(was_training)
    return values


def task_rouge(model, tokenizer, rows, max_new_tokens: int = 24) -> float:
    """Mean ROUGE-L recall of ``model``'s greedy answers against ``rows``' ``answer`` column."""
    values = task_rouges(model, tokenizer, rows, max_new_tokens)
    return float(sum(values) / len(values))


def task_rouges(model, tokenizer, rows, max_new_tokens: int = 24) -> list[float]:
    """Per row: ROUGE-L recall of ``model``'s greedy answer against its ``answer``."""
    from ..eval.metrics.rouge import rouge_l_recall
    from ..zoo.train import greedy_answers

    questions, references = list(rows["question"]), list(rows["answer"])
    if not questions:
        raise DataError("task_score needs at least one question.")
    was_training = model.training
    model.eval()
    try:
        answers = greedy_answers(model, tokenizer, questions, max_new_tokens=max_new_tokens)
    finally:
        model.train(was_training)
    return [float(v) for v in rouge_l_recall(answers, references)]


def task_score(model, tokenizer, rows, metric: str = "probability") -> float:
    """The task metric: ``probability`` (:func:`task_probability`, default) or ``rouge`` (:func:`task_rouge`)."""
    values = task_values(model, tokenizer, rows, metric)
    return float(sum(values) / len(values))


def task_values(model, tokenizer, rows, metric: str = "probability") -> list[float]:
    """Per-row task metric (the mean of these is :func:`task_score`)."""
    if metric == "probability":
        return task_probabilities(model, tokenizer, rows)
    if metric == "rouge":
        return task_rouges(model, tokenizer, rows)
    raise ConfigError(f"metric={metric!r}: choose 'probability' or 'rouge'.")


#: Smallest source gain (in metric units, both metrics are in [0, 1]) that a "gain retained" share is computed for.
GAIN_FLOOR = 0.01


def gain_noise(with_adapter: Sequence[float], alone: Sequence[float], floor: float = GAIN_FLOOR) -> float:
    """Noise level of a paired gain: ``max(floor, 2 * standard error of the per-row differences)``."""
    diffs = [a - b for a, b in zip(with_adapter, alone, strict=True)]
    n = len(diffs)
    if n < 2:
        return floor
    mean = sum(diffs) / n
    sd = (sum((d - mean) ** 2 for d in diffs) / (n - 1)) ** 0.5
    return max(floor, 2.0 * sd / n ** 0.5)


def gain_retained(target_with_adapter: float, target_alone: float, source_with_adapter: float,
                  source_alone: float, noise: float = GAIN_FLOOR) -> float:
    """Share of the source adapter's gain kept on the target: (T+A - T) / (S+A - S).

    ``nan`` when the source gain is not above ``noise`` (zero, negative or within noise, e.g. the adapter was not
    trained for this task or is measured on the wrong source base): a share of nothing is not a number.
    """
    gain = source_with_adapter - source_alone
    if not gain > noise:
        return float("nan")
    return (target_with_adapter - target_alone) / gain


def lora_config(r: int = 8, alpha: int = 16, target_modules: Sequence[str] = DEFAULT_TARGET_MODULES,
                dropout: float = 0.0):
    """The LoRA recipe of task adapters (causal LM)."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, target_modules=list(target_modules), lora_dropout=dropout,
                      task_type="CAUSAL_LM")


def train_task_adapter(base_model, tokenizer, rows, *, epochs: float = 20.0, learning_rate: float = 3e-3,
                       batch_size: int = 16, seed: int = 0, peft_config=None, mask_rate: float = 0.0,
                       drop_rate: float = 0.0, max_length: int = 64):
    """Train a LoRA on ``base_model`` (modified in place into a PeftModel, returned) on question/answer ``rows``.

    ``mask_rate``/``drop_rate`` > 0 train it with Trans-PEFT FFN knowledge masking / dropping.
    """
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed

    from ..data.formatting import tokenize_example
    from .trans_peft import TransPeftCallback

    set_seed(seed)
    model = get_peft_model(base_model, peft_config or lora_config())
    data = Dataset.from_list([tokenize_example(tokenizer, dict(r), max_length) for r in rows])
    callbacks = [TransPeftCallback(mask_rate, drop_rate, seed=seed)] if (mask_rate or drop_rate) else []
    with tempfile.TemporaryDirectory(prefix="hfcl-transfer-") as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=batch_size, num_train_epochs=epochs,
            learning_rate=learning_rate, lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.0,
            logging_steps=50, save_strategy="no", report_to=[], use_cpu=True, seed=seed, data_seed=seed,
            dataloader_num_workers=0, disable_tqdm=True)
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        Trainer(model=model, args=args, train_dataset=data, data_collator=collator, callbacks=callbacks).train()
    model.eval()
    return model


def save_task_adapter(model, tokenizer, output_dir, base_dir, *, mask_rate: float = 0.0, drop_rate: float = 0.0,
                      overwrite: bool = False, extra: dict | None = None):
    """Save a task adapter (pointing at ``base_dir``) with an ``hfcl_run.json`` recording its Trans-PEFT rates."""
    import json
    from pathlib import Path

    from ..utils.io import atomic_directory, atomic_write_json
    from ..utils.provenance import provenance

    with atomic_directory(output_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        config_path = Path(tmp) / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = str(base_dir)
        atomic_write_json(config_path, config)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(Path(tmp) / "hfcl_run.json", {
            "command": "transfer-task", "method": "lora", "base_model": {"id": str(base_dir)},
            "trans_peft": {"enabled": bool(mask_rate or drop_rate), "mask_rate": mask_rate, "drop_rate": drop_rate},
            "transfer_task": {"task": "sentence answers", **(extra or {})}, "provenance": provenance()})
    return Path(output_dir)
