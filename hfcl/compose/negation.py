"""Unlearning by negation: train a LoRA on the forget set, then subtract it (weight ``lam``) from the target.

This is task-vector negation (Ilharco et al. 2023; the "Task Vector" baseline of MUSE) with a LoRA as the task vector
(Zhang et al. 2023's ``-`` operator): fine-tuning the target further on the forget set isolates the direction that
encodes it, ``dW_forget = s B A``, and ``W_target - lam * dW_forget`` moves away from it. The subtraction is exact
(:mod:`hfcl.compose.algebra`); ``lam`` trades forgetting against utility.

The run directory is the standard one: the unlearned model (``config.json`` + ``model.safetensors``, or with
``save="adapter"`` a PEFT LoRA holding ``-lam * dW_forget`` against the target), the tokenizer, ``hfcl_run.json``, and
the positive forget LoRA in ``forget_adapter/`` (so other ``lam`` values can be tried with ``hfcl compose``).
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataError
from ..utils.io import atomic_directory, atomic_write_json
from ..utils.logging import get_logger
from ..utils.provenance import provenance
from .algebra import Combination
from .deltas import LoraAdapter
from .guards import check_output_dir

logger = get_logger(__name__)
SAVE_MODES = ("model", "adapter")


def _tokenized(tokenizer: Any, dataset: Any, max_length: int):
    from datasets import Dataset

    from ..data.formatting import tokenize_example

    rows = dataset.to_list() if hasattr(dataset, "to_list") else list(dataset)
    if not rows:
        raise DataError("The forget dataset is empty; negation needs examples to train the forget LoRA on.")
    return Dataset.from_list([tokenize_example(tokenizer, row, max_length) for row in rows])


def train_lora(model: Any, tokenizer: Any, dataset: Any, r: int = 8, lora_alpha: float = 16,
               target_modules: str | Sequence[str] = "all-linear", epochs: float = 5.0, learning_rate: float = 3e-3,
               batch_size: int = 8, max_length: int = 256, seed: int = 0, name: str = "forget") -> LoraAdapter:
    """Train a LoRA on ``dataset`` (TOFU question/answer, prompt/completion or messages) with a plain Trainer.

    ``model`` is left unchanged (the LoRA layers are removed again); returns the trained adapter's deltas.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed

    from .io import adapter_from_peft_model

    features = _tokenized(tokenizer, dataset, max_length)
    set_seed(seed)
    config = LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=target_modules, lora_dropout=0.0,
                        task_type="CAUSAL_LM", base_model_name_or_path=getattr(model.config, "name_or_path", None))
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    peft_model = get_peft_model(model, config)
    with tempfile.TemporaryDirectory(prefix="hfcl-negation-") as tmp:
        args = TrainingArguments(output_dir=tmp, num_train_epochs=epochs, learning_rate=learning_rate,
                                 per_device_train_batch_size=batch_size, seed=seed, data_seed=seed, report_to=[],
                                 save_strategy="no", logging_strategy="no", disable_tqdm=True,
                                 lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                                 use_cpu=not torch.cuda.is_available())
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        Trainer(model=peft_model, args=args, train_dataset=features, data_collator=collator).train()
    peft_model.eval()
    adapter = adapter_from_peft_model(peft_model, name=name)
    peft_model.unload()  # restores the original modules; the base weights were frozen
    for pname, param in model.named_parameters():
        param.requires_grad_(trainable.get(pname, param.requires_grad))
    adapter.base_model_name_or_path = getattr(model.config, "name_or_path", None) or None
    adapter.provenance = {"trained_on_examples": len(features), "r": r, "lora_alpha": lora_alpha, "epochs": epochs,
                          "learning_rate": learning_rate, "seed": seed}
    return adapter


def apply_lora_in_place(model: Any, adapter: LoraAdapter) -> Any:
    """``W += dW`` for every module of ``adapter``; returns ``model`` (:func:`~hfcl.compose.apply.merge_into_model`)."""
    from .apply import merge_into_model

    return merge_into_model(model, adapter)


@dataclass
class NegationResult:
    """The unlearned model, the positive forget LoRA, where they were saved, and the recipe."""

    model: Any
    forget_adapter: LoraAdapter
    output_dir: Path | None
    recipe: dict[str, Any] = field(default_factory=dict)


def unlearn_by_negation(target_model_or_path: Any, forget_dataset: Any, lam: float = 1.0,
                        output_dir: str | os.PathLike | None = None, *, tokenizer: Any = None,
                        zoo_config: Any = None, r: int = 8, lora_alpha: float = 16,
                        target_modules: str | Sequence[str] = "all-linear", epochs: float = 5.0,
                        learning_rate: float = 3e-3, batch_size: int = 8, max_length: int = 256, seed: int = 0,
                        save: str = "model", overwrite: bool = False,
                        forget_split: str = "forget10") -> NegationResult:
    """Train a LoRA on ``forget_dataset`` on top of the target, then return ``target - lam * dW_forget``.

    ``target_model_or_path`` is a model (pass ``tokenizer``), a zoo stage (``"target"``), a local folder or a Hub id.
    With ``output_dir`` the run directory is written atomically (``save="model"``: full model; ``"adapter"``: a PEFT
    LoRA of ``-lam * dW_forget`` against the target). All arguments are checked before training.
    """
    if not isinstance(lam, (int, float)) or not lam > 0:
        raise ConfigError(f"lam must be a positive number (the weight of the subtracted forget LoRA), got {lam!r}.")
    if save not in SAVE_MODES:
        raise ConfigError(f"save must be one of {SAVE_MODES}, got {save!r}.")
    if r < 1 or epochs <= 0 or learning_rate <= 0:
        raise ConfigError("r, epochs and learning_rate must be positive.")
    if output_dir is not None:
        check_output_dir(output_dir, overwrite)
    started = time.perf_counter()
    source = None
    if isinstance(target_model_or_path, (str, os.PathLike)):
        from ..zoo import load_model, resolve

        source = resolve(str(target_model_or_path), zoo_config, forget_split)
        model, loaded_tokenizer = load_model(str(target_model_or_path), zoo_config, forget_split)
        tokenizer = tokenizer or loaded_tokenizer
    else:
        model = target_model_or_path
        source = getattr(model.config, "name_or_path", None) or None
        if tokenizer is None:
            raise ConfigError("Pass tokenizer= when target_model_or_path is a model object.")
    features_count = len(forget_dataset)
    forget = train_lora(model, tokenizer, forget_dataset, r=r, lora_alpha=lora_alpha, target_modules=target_modules,
                        epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, max_length=max_length,
                        seed=seed)
    forget.base_model_name_or_path = source
    negated = Combination.of(forget, -float(lam)).linear(name="negated_forget")
    negated.base_model_name_or_path = source
    unlearned = apply_lora_in_place(copy.deepcopy(model), negated).eval()
    recipe = {"command": "unlearn", "method": "negation", "target": source, "base_model": source,
              "lam": float(lam),
              "method_description": f"task-vector negation: a rank-{r} LoRA trained on the forget set on top of "
                                    f"the model, subtracted with weight {float(lam):g} (W - lam * s * B @ A, exact)",
              "sources": [f"forget LoRA trained on {features_count} forget examples (saved in forget_adapter/)"],
              "forget_examples": features_count,
              "forget_fingerprint": getattr(forget_dataset, "_fingerprint", None),
              "config": {"r": r, "lora_alpha": lora_alpha, "target_modules": target_modules, "epochs": epochs,
                         "learning_rate": learning_rate, "batch_size": batch_size, "max_length": max_length,
                         "seed": seed, "save": save},
              "forget_adapter_sq_norm": forget.sq_norm(),
              "wall_seconds": round(time.perf_counter() - started, 3)}
    saved = None
    if output_dir is not None:
        saved = _save_run(Path(output_dir), unlearned, tokenizer, forget, negated, source, recipe, save, overwrite)
    return NegationResult(unlearned, forget, saved, recipe)


def _save_run(out: Path, model: Any, tokenizer: Any, forget: LoraAdapter, negated: LoraAdapter, source: str | None,
              recipe: dict[str, Any], save: str, overwrite: bool) -> Path:
    from .io import save_adapter

    with atomic_directory(out, overwrite=overwrite) as tmp:
        if save == "model":
            model.save_pretrained(str(tmp))
        else:
            save_adapter(negated, tmp / "_negated", base_model_name_or_path=source)
            for item in (tmp / "_negated").iterdir():
                item.rename(tmp / item.name)
            (tmp / "_negated").rmdir()
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        save_adapter(forget, tmp / "forget_adapter", base_model_name_or_path=source)
        atomic_write_json(tmp / "hfcl_run.json", {**recipe, "provenance": provenance()})
    logger.info("Unlearning by negation saved to %s", out)
    return out


def answer_nll(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], max_length: int = 256,
               batch_size: int = 16) -> torch.Tensor:
    """Mean negative log-likelihood per answer token of each row (TOFU question/answer or other accepted format)."""
    from transformers import DataCollatorForSeq2Seq

    from ..data.formatting import tokenize_example

    features = [tokenize_example(tokenizer, row, max_length) for row in rows]
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    device = next(model.parameters()).device
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            batch = collator(features[start:start + batch_size])
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            mask = labels != -100
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), labels.clamp(min=0),
                                                    reduction="none")
            out.append((nll * mask).sum(1) / mask.sum(1).clamp(min=1))
    return torch.cat(out).cpu()
