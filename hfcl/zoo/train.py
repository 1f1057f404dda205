"""Training data and the Trainer run of each zoo stage (TOFU's recipe at toy scale).

* ``base``: pretraining on world text plus the utility QA (world facts, famous authors), loss on every text token
  and on answer tokens of QA;
* ``base-v2``: ``base`` trained further on more world text (an updated release of the base model);
* ``target``: ``base`` fine-tuned on every QA pair and biography passage of the trained fictitious authors;
* ``retain``: ``base`` fine-tuned on the retain split only (the gold standard forget quality is measured against).

Fine-tuning mixes in ``utility_replay`` copies of the utility QA so the utility sets keep meaning something.
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from datasets import Dataset, concatenate_datasets
from transformers import (
    DataCollatorForSeq2Seq,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_callback import PrinterCallback

from ..data import corpus
from ..data.formatting import tokenize_example, tokenize_text
from ..data.tofu import FORGET_SPLITS, RETAIN_OF, author_rows, get_world
from ..data.world import author_passage
from ..utils.logging import get_logger
from .config import ZooConfig

logger = get_logger(__name__)


def tokenizer_corpus(cfg: ZooConfig) -> list[str]:
    """Every text of the world (all authors including holdout, so their names tokenize like the others)."""
    world = get_world(cfg.world_config())
    texts = corpus.world_text(world) + corpus.world_text_v2(world)
    for row in corpus.world_fact_rows(world) + corpus.real_author_rows(world):
        texts += [row["question"], row["answer"], row["paraphrased_answer"], *row["perturbed_answer"]]
    for row in author_rows(world, world.authors + world.holdout):
        texts += [row["question"], row["paraphrased_question"], row["answer"], row["paraphrased_answer"],
                  *row["perturbed_answer"]]
    texts += [author_passage(world, a) for a in world.authors + world.holdout]
    return texts


def _tokenized(tokenizer, cfg: ZooConfig, texts: list[str], qa_rows: list[dict[str, Any]]) -> Dataset:
    rows = [tokenize_text(tokenizer, t, cfg.max_length) for t in texts]
    rows += [tokenize_example(tokenizer, r, cfg.max_length) for r in qa_rows]
    return Dataset.from_list(rows)


def _utility_rows(cfg: ZooConfig) -> list[dict[str, Any]]:
    world = get_world(cfg.world_config())
    return corpus.world_fact_rows(world) + corpus.real_author_rows(world)


def stage_dataset(stage: str, tokenizer, cfg: ZooConfig, forget_split: str = "forget10") -> Dataset:
    """Tokenized training set of ``stage``."""
    world = get_world(cfg.world_config())
    utility = _utility_rows(cfg)
    if stage == "base":
        return _tokenized(tokenizer, cfg, corpus.world_text(world), utility)
    if stage == "base-v2":
        return _tokenized(tokenizer, cfg, corpus.world_text(world) + corpus.world_text_v2(world), utility)
    if stage == "target":
        authors = world.authors
    elif stage == "retain":
        forget_ids = set(world.forget_ids(FORGET_SPLITS[forget_split]))
        authors = [a for a in world.authors if a.author_id not in forget_ids]
    else:
        raise ValueError(f"unknown trainable stage {stage!r}")
    qa = _tokenized(tokenizer, cfg, [], author_rows(world, authors) + utility * round(cfg.utility_replay))
    passages = _tokenized(tokenizer, cfg, [author_passage(world, a) for a in authors], [])
    return concatenate_datasets([qa] * qa_repeats(cfg) + [passages])


def qa_repeats(cfg: ZooConfig) -> int:
    """Copies of each QA pair per fine-tuning epoch, so passages are seen ``passage_weight`` times as often."""
    return max(1, round(1.0 / cfg.passage_weight))


def new_model(tokenizer: PreTrainedTokenizerFast, cfg: ZooConfig) -> LlamaForCausalLM:
    """A randomly initialised tiny Llama (seeded by ``cfg.train_seed``)."""
    set_seed(cfg.train_seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=max(256, cfg.max_length * 2),
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, rms_norm_eps=1e-5,
    )
    return LlamaForCausalLM(config)


_PROGRESS = {"show": True}


class StageProgress(TrainerCallback):
    """One progress bar per trained stage: which stage, steps done, elapsed and estimated time left, last loss.

    Uses ``huggingface_hub``'s tqdm, so ``HF_HUB_DISABLE_PROGRESS_BARS=1`` hides it; :func:`set_progress` too.
    """

    def __init__(self, label: str, position: int = 0):
        self.label, self.position, self.bar = label, position, None

    def on_train_begin(self, args, state, control, **kwargs):
        from huggingface_hub.utils import tqdm

        self.bar = tqdm(total=state.max_steps, desc=self.label, unit="step", position=self.position, leave=True,
                        dynamic_ncols=True, disable=not _PROGRESS["show"])

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def train_stage(model, tokenizer, dataset: Dataset, cfg: ZooConfig, epochs: float, lr: float,
                label: str = "hfcl zoo: training", position: int = 0) -> dict[str, Any]:
    """Train ``model`` in place with a plain :class:`Trainer` (progress: one :class:`StageProgress` bar named
    ``label``); returns the train metrics."""
    with tempfile.TemporaryDirectory(prefix="hfcl-zoo-") as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=cfg.batch_size, num_train_epochs=epochs, learning_rate=lr,
            lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.0, adam_beta2=0.98,
            max_grad_norm=1.0, logging_steps=50, save_strategy="no", logging_strategy="steps", report_to=[],
            use_cpu=True, seed=cfg.train_seed, data_seed=cfg.train_seed, train_sampling_strategy="group_by_length",
            dataloader_num_workers=0, dataloader_pin_memory=False, disable_tqdm=True,
        )
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                          callbacks=[StageProgress(label, position)])
        trainer.remove_callback(PrinterCallback)  # the bar shows the loss; no dict printed per log line
        result = trainer.train()
    model.eval()
    return dict(result.metrics)


def set_progress(show: bool) -> None:
    """Show (default) or hide the per-stage progress bar while building."""
    _PROGRESS["show"] = show


@torch.inference_mode()
def greedy_answers(model, tokenizer, questions: list[str], max_new_tokens: int = 48, batch_size: int = 32) -> list[str]:
    """Greedy answers to ``questions`` (left-padded batches, stop at EOS)."""
    from ..data.formatting import prompt_ids

    answers: list[str] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(questions), batch_size):
            chunk = questions[start:start + batch_size]
            ids = [prompt_ids(tokenizer, [{"role": "user", "content": q}]) for q in chunk]
            batch = tokenizer.pad({"input_ids": ids}, return_tensors="pt")
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            new = out[:, batch["input_ids"].shape[1]:]
            answers += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
    return answers


__all__ = ["RETAIN_OF", "greedy_answers", "new_model", "stage_dataset", "tokenizer_corpus", "train_stage"]
