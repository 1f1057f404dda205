"""S3T, exact unlearning with sliced adapters (Chowdhury et al., ICLR 2025, sequence-aware sharded sliced training).

The training rows are split into ``shards`` disjoint shards and each shard into ``slices`` disjoint data slices, by
a hash of the row's content (so removing rows never moves another row). Each shard is a stack of LoRA slices on
the pretrained model, trained in sequence: slice ``j`` is trained on the shard's data slices ``0..j`` with slices
``0..j-1`` frozen and active. Slice ``j`` therefore depends on data slices ``0..j`` only, and a deletion request
deactivates exactly the slices that saw a deleted row: in each shard, the first slice holding one and every slice
after it. The surviving slices are, bit for bit, what training from scratch on the surviving rows with the same seeds
would have produced (nothing they saw changed), and retraining the deactivated ones on the surviving rows
(``retrain=True``, on request) completes that from-scratch model at the cost of the deactivated slices only.

The served model is the shards' aggregate: the mean of their next-token distributions (:class:`S3TModel`); with
one shard left it is that shard's merged weights, a plain model.

Where we differ from the paper, and why:

* A slice is a LoRA adapter over every targeted layer, stacked on the earlier slices (the paper places slice ``j``
  at depth ``j``), so the slice count does not depend on the depth: the embedded model has 2 decoder layers.
* One slice order per shard (the paper also trains several permutations under a budget so that some sequence
  survives more deletions); retraining runs on request in the same call, not in the background.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..errors import ConfigError, DataError

MODEL_TYPE = "hfcl_s3t"
MANIFEST = "s3t.json"
#: The slice adapter ``hfcl unlearn --method S3T`` uses in every LoRA option left unset (and the Python API's default):
#: each slice must learn new facts from the pretrained model, not nudge a fine-tuned one; on the embedded default
#: rank 8 could not (retain ROUGE-L 0.17 after 20 epochs), rank 64 with 80 epochs per slice did (0.99).
SLICE_LORA = {"lora_r": 64, "lora_alpha": 128, "lora_target_modules": "all-linear"}


# --- the plan (pure) -------------------------------------------------------------------------------------------------
def row_key(row: dict[str, Any]) -> str:
    """A row's identity: a hash of the fields a training example is made of, as text (so a row read back from
    JSON, JSONL or CSV, with columns other files filled with ``None``, hashes the same)."""
    fields = {k: (v if isinstance(v, list) else str(v))
              for k in ("question", "answer", "prompt", "completion", "messages") if (v := row.get(k)) is not None}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def slice_seed(seed: int, shard: int, slice_: int) -> int:
    """The seed of one slice's LoRA init and data order (distinct for every ``(seed, shard, slice)``)."""
    if shard < 10 and slice_ < 100:
        return seed * 1000 + shard * 100 + slice_
    return int(hashlib.sha256(f"{seed}:{shard}:{slice_}".encode()).hexdigest()[:12], 16)


def base_fingerprint(model) -> str:
    """A hash of the pretrained model's config and input embeddings: an ensemble only loads on the model it was
    trained from."""
    config = {k: v for k, v in model.config.to_dict().items() if k not in ("_name_or_path", "transformers_version",
                                                                          "dtype", "torch_dtype", "architectures")}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(model.get_input_embeddings().weight.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def assign(key: str, shards: int, slices: int, seed: int) -> tuple[int, int]:
    """``(shard, slice)`` of a row key: a hash of the key and the seed, so each row's place is fixed."""
    h = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:15], 16)
    return h % shards, (h // shards) % slices


def deletion_depths(depths: Sequence[int], deleted: Sequence[tuple[int, int]]) -> list[int]:
    """Active slices per shard after deleting rows placed at ``deleted`` ``(shard, slice)``: a shard keeps the
    slices before the first one that saw a deleted row (slice ``j`` saw data slices ``0..j``)."""
    out = list(depths)
    for shard, slice_ in deleted:
        out[shard] = min(out[shard], slice_)
    return out


def slice_steps(rows: int, batch_size: int, epochs: float) -> int:
    """Optimizer steps of training one slice on ``rows`` rows."""
    return math.ceil(math.ceil(rows / batch_size) * epochs) if rows else 0


@dataclass
class S3TSettings:
    """How an S3T ensemble is trained (also what a retrained slice is trained with)."""

    shards: int = 1
    slices: int = 4
    epochs: float = 20.0
    learning_rate: float = 3e-3
    batch_size: int = 16
    max_length: int = 192
    seed: int = 0
    use_cpu: bool = False  # the run's device and precision (TrainingArguments' use_cpu / bf16)
    bf16: bool = False

    def __post_init__(self) -> None:
        if self.shards < 1 or self.slices < 1:
            raise ConfigError(f"s3t_shards={self.shards} and s3t_slices={self.slices} must be >= 1.")
        if not self.epochs > 0 or not self.learning_rate > 0:
            raise ConfigError("S3T: num_train_epochs (per slice) and learning_rate must be > 0.")


# --- the ensemble ----------------------------------------------------------------------------------------------------
class S3TEnsemble:
    """Shards of LoRA slice stacks on one pretrained model (see the module docstring).

    ``keys[(k, j)]`` are the row keys of data slice ``j`` of shard ``k``; ``depths[k]`` how many of shard ``k``'s
    slices are active. Build one with :meth:`train`, then :meth:`delete` rows, :meth:`served_model`, :meth:`save`.
    """

    def __init__(self, base, tokenizer, lora_config, settings: S3TSettings):
        from peft import get_peft_model

        self.tokenizer, self.lora_config, self.settings = tokenizer, copy.deepcopy(lora_config), settings
        self.lora_config.lora_dropout = 0.0  # training is a function of the seed and the data only
        self.lora_config.inference_mode = False
        torch.manual_seed(settings.seed)  # the placeholder adapter (never active, B = 0) is the same every time
        self.peft = get_peft_model(copy.deepcopy(base), self.lora_config, adapter_name="s3t_init")
        self.keys: dict[tuple[int, int], list[str]] = {}
        self.depths = [0] * settings.shards
        self.trained: list[dict[str, Any]] = []  # one record per slice training (also retraining)
        self.base_id = base_fingerprint(base)
        self.deleted = 0

    @staticmethod
    def name(shard: int, slice_: int) -> str:
        return f"s{shard}_{slice_}"

    @classmethod
    def train(cls, base, tokenizer, rows: Sequence[dict[str, Any]], lora_config, settings: S3TSettings,
              progress: bool = True) -> S3TEnsemble:
        """Train every shard's slices in sequence on ``rows`` (duplicates by content count once)."""
        ensemble = cls(base, tokenizer, lora_config, settings)
        by_key = _rows_by_key(rows)
        for key in sorted(by_key):
            ensemble.keys.setdefault(assign(key, settings.shards, settings.slices, settings.seed), []).append(key)
        for k in range(settings.shards):
            ensemble._train_shard(k, 0, by_key, progress)
        return ensemble

    def slice_rows(self, shard: int, slice_: int) -> list[str]:
        """Keys of the rows slice ``slice_`` of ``shard`` is trained on: its shard's data slices ``0..slice_``."""
        return sorted(key for j in range(slice_ + 1) for key in self.keys.get((shard, j), []))

    def _train_shard(self, shard: int, start: int, by_key: dict[str, dict], progress: bool) -> None:
        for j in range(start, self.settings.slices):
            keys = self.slice_rows(shard, j)
            missing = [k for k in keys if k not in by_key]
            if missing:
                raise DataError(f"S3T: retraining shard {shard} slice {j} needs {len(missing)} surviving training "
                                "rows that were not passed; pass every row the ensemble was trained on and not "
                                "deleted (CLI: the retain split or --retain_file).")
            self.trained.append(self._train_slice(shard, j, [by_key[k] for k in keys], progress))
            self.depths[shard] = j + 1

    def _train_slice(self, shard: int, slice_: int, rows: list[dict], progress: bool) -> dict[str, Any]:
        from datasets import Dataset
        from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments
        from transformers.trainer_callback import PrinterCallback

        from ..data.formatting import tokenize_example
        from ..zoo.train import StageProgress

        s = self.settings
        seed = slice_seed(s.seed, shard, slice_)
        name = self.name(shard, slice_)
        torch.manual_seed(seed)  # the slice's LoRA init: the same whenever (and however often) it is trained
        self.peft.add_adapter(name, self.lora_config)
        active = [self.name(shard, j) for j in range(slice_ + 1)]
        self.peft.base_model.set_adapter(active)
        for pname, param in self.peft.named_parameters():
            param.requires_grad_(f".{name}." in pname)
        started = time.perf_counter()
        steps = slice_steps(len(rows), s.batch_size, s.epochs)
        if steps:
            dataset = Dataset.from_list([tokenize_example(self.tokenizer, r, s.max_length) for r in rows])
            with tempfile.TemporaryDirectory(prefix="hfcl-s3t-") as tmp:
                args = TrainingArguments(
                    output_dir=tmp, per_device_train_batch_size=s.batch_size, num_train_epochs=s.epochs,
                    learning_rate=s.learning_rate, lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.0,
                    max_grad_norm=1.0, logging_steps=50, save_strategy="no", report_to=[], use_cpu=s.use_cpu,
                    bf16=s.bf16, seed=seed,
                    data_seed=seed, dataloader_num_workers=0, dataloader_pin_memory=False, disable_tqdm=True)
                trainer = Trainer(model=self.peft, args=args, train_dataset=dataset,
                                  data_collator=DataCollatorForSeq2Seq(self.tokenizer, padding=True,
                                                                       label_pad_token_id=-100),
                                  callbacks=[StageProgress(f"hfcl s3t: shard {shard} slice {slice_}")]
                                  if progress else [])
                trainer.remove_callback(PrinterCallback)
                trainer.train()
        self.peft.eval()
        for param in self.peft.parameters():
            param.requires_grad_(False)
        return {"shard": shard, "slice": slice_, "rows": len(rows), "steps": steps,
                "seconds": round(time.perf_counter() - started, 3)}

    # -- deletion
    def delete(self, rows: Sequence[dict[str, Any]], retrain: bool = False,
               surviving: Sequence[dict[str, Any]] = (), progress: bool = True) -> dict[str, Any]:
        """Delete ``rows`` (matched by content): deactivate, in each shard, the slices that saw one; with
        ``retrain``, train the deactivated slices again on ``surviving`` rows (every kept training row must be
        there). Rows the ensemble never trained on are counted and ignored. Returns the deletion report."""
        keys = set(_rows_by_key(rows))
        placed = {key: place for place, ks in self.keys.items() for key in ks}
        hits = [placed[k] for k in keys if k in placed]
        if keys and not hits:
            raise DataError(f"S3T: none of the {len(keys)} rows to delete is a row this ensemble trained on (or "
                            "still holds): check the forget rows (--forget_file) against the ensemble's training data.")
        by_key = _rows_by_key(surviving) if retrain else {}
        if retrain:  # every row a retrained slice needs must be there, checked before anything changes
            depths = deletion_depths(self.depths, hits)
            needed = {k for shard, d in enumerate(depths) for j in range(d, self.settings.slices)
                      for k in self.slice_rows(shard, j) if k not in keys}
            missing = needed - set(by_key)
            if missing:
                raise DataError(f"S3T: retraining needs {len(missing)} surviving training rows that were not passed; "
                                "pass every row the ensemble was trained on and not deleted (CLI: the retain split or "
                                "--retain_file).")
        before = list(self.depths)
        self.depths = deletion_depths(self.depths, hits)
        after_deletion = list(self.depths)
        for (shard, j), ks in list(self.keys.items()):
            self.keys[(shard, j)] = [k for k in ks if k not in keys]
        self.peft.base_model.set_adapter("s3t_init")  # (deleting the active adapter would warn)
        for shard, depth in enumerate(self.depths):
            for j in range(depth, before[shard]):
                self.peft.delete_adapter(self.name(shard, j))  # the weights that saw a deleted row are gone
        self.deleted += len(hits)
        deactivated = [(k, j) for k, d in enumerate(self.depths) for j in range(d, self.settings.slices)]
        pending = sum(self._steps(k, j) for k, j in deactivated)  # what retraining them costs (with or without it)
        first = len(self.trained)
        if retrain:
            for shard, depth in enumerate(self.depths):
                if depth < self.settings.slices:
                    self._train_shard(shard, depth, by_key, progress)
        retrained = self.trained[first:]
        full = sum(self._steps(k, j) for k in range(self.settings.shards) for j in range(self.settings.slices))
        return {"deleted_rows": len(hits), "unknown_rows": len(keys) - len(hits), "active_before": before,
                "active_after_deletion": after_deletion, "active": list(self.depths),
                "slices_to_retrain": len(deactivated), "slices_retrained": len(retrained), "retrain_steps": pending,
                "full_retrain_steps": full, "cost_vs_full_retraining": round(pending / full, 4) if full else 0.0,
                "retrain_seconds": round(sum(r["seconds"] for r in retrained), 3)}

    def _steps(self, shard: int, slice_: int) -> int:
        """Optimizer steps of training slice ``slice_`` of ``shard`` on its (current) rows."""
        return slice_steps(len(self.slice_rows(shard, slice_)), self.settings.batch_size, self.settings.epochs)

    # -- serving
    def shard_model(self, shard: int):
        """Shard ``shard``'s served weights: the pretrained model with its active slices merged in."""
        active = [self.name(shard, j) for j in range(self.depths[shard])]
        model = copy.deepcopy(self.peft)
        if not active:
            return model.unload().eval()  # the pretrained weights, without LoRA layers
        model.base_model.set_adapter(active)
        merged = model.merge_and_unload(adapter_names=active)
        return merged.eval()

    def served_model(self):
        """The aggregate of the shards with an active slice (all shards if none has one): one shard's merged model,
        or an :class:`S3TModel` averaging their next-token distributions."""
        shards = [k for k, d in enumerate(self.depths) if d] or [0]  # none left: the pretrained model
        models = [self.shard_model(k) for k in shards]
        for m in models:
            for p in m.parameters():
                p.requires_grad_(False)
        return models[0] if len(models) == 1 else S3TModel.from_models(models)

    def record(self) -> dict[str, Any]:
        """What the run record and the card show (no row content: keys are hashes)."""
        return {"shards": self.settings.shards, "slices": self.settings.slices, "settings": vars(self.settings),
                "active": list(self.depths),
                "rows": sum(len(v) for v in self.keys.values()), "deleted_rows": self.deleted,
                "slice_trainings": len(self.trained), "train_steps": sum(r["steps"] for r in self.trained)}

    def save(self, folder: str | os.PathLike) -> None:
        """The active slices' adapters and the plan (row-key hashes, depths), to continue deleting later."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        tensors = {}
        for shard, depth in enumerate(self.depths):
            for j in range(depth):
                name = self.name(shard, j)
                for key, value in get_peft_model_state_dict(self.peft, adapter_name=name).items():
                    tensors[f"{name}::{key}"] = value.contiguous()
        save_file(tensors, str(folder / "slices.safetensors"))
        manifest = {"format": 1, "settings": vars(self.settings), "depths": self.depths, "deleted": self.deleted,
                    "base": self.base_id, "lora": {k: v for k, v in self.lora_config.to_dict().items()
                                                   if _jsonable(v) and k != "base_model_name_or_path"},
                    "keys": {f"{k}:{j}": v for (k, j), v in sorted(self.keys.items())}, "trained": self.trained}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, default=list))

    @classmethod
    def load(cls, folder: str | os.PathLike, base, tokenizer) -> S3TEnsemble:
        """An ensemble :meth:`save` wrote, on ``base`` (the pretrained model it was trained from)."""
        from peft import LoraConfig, set_peft_model_state_dict
        from safetensors.torch import load_file

        folder = Path(folder)
        path = folder / MANIFEST
        if not path.is_file():
            raise ConfigError(f"s3t_ensemble={str(folder)!r} has no {MANIFEST}: pass the s3t/ folder of an S3T run.")
        manifest = json.loads(path.read_text())
        if manifest.get("base") != base_fingerprint(base):
            raise ConfigError(f"s3t_ensemble={str(folder)!r} was trained from another pretrained model than the one "
                              "given: pass that model as --model (the ensemble's run records it as base_model).")
        lora = LoraConfig(**{k: v for k, v in manifest["lora"].items() if k in LoraConfig.__dataclass_fields__})
        ensemble = cls(base, tokenizer, lora, S3TSettings(**manifest["settings"]))
        ensemble.keys = {tuple(int(x) for x in place.split(":")): v for place, v in manifest["keys"].items()}
        ensemble.depths, ensemble.deleted = manifest["depths"], manifest["deleted"]
        ensemble.trained = manifest["trained"]
        tensors = load_file(str(folder / "slices.safetensors"))
        for shard, depth in enumerate(ensemble.depths):
            for j in range(depth):
                name = cls.name(shard, j)
                ensemble.peft.add_adapter(name, ensemble.lora_config)
                state = {k.split("::", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{name}::")}
                result = set_peft_model_state_dict(ensemble.peft, state, adapter_name=name)
                unexpected = getattr(result, "unexpected_keys", [])
                if not state or unexpected:
                    raise ConfigError(f"s3t_ensemble={str(folder)!r}: slice {name} does not fit the model "
                                      f"({len(unexpected)} unexpected tensors); pass the run's own base model.")
        for param in ensemble.peft.parameters():
            param.requires_grad_(False)
        return ensemble


def _jsonable(value) -> bool:
    try:
        json.dumps(value, default=list)
        return True
    except TypeError:
        return False


def _rows_by_key(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row_key(dict(r)): dict(r) for r in rows}


# --- the served aggregate --------------------------------------------------------------------------------------------
class S3TConfig(PretrainedConfig):
    """Config of :class:`S3TModel`: the shards' (shared) model config and how many shards are served."""

    model_type = MODEL_TYPE

    def __init__(self, base: dict | None = None, n_shards: int = 1, **kwargs):
        self.base, self.n_shards = base or {}, int(n_shards)
        kwargs.setdefault("tie_word_embeddings", bool(self.base.get("tie_word_embeddings", False)))
        super().__init__(**kwargs)
        for key in ("vocab_size", "eos_token_id", "bos_token_id", "pad_token_id", "hidden_size"):
            if key in self.base and getattr(self, key, None) is None:
                setattr(self, key, self.base[key])


class S3TModel(PreTrainedModel, GenerationMixin):
    """Several shards served as one model: ``log mean_k softmax(z_k)`` as logits (no KV cache)."""

    config_class = S3TConfig
    base_model_prefix = "s3t"
    _keys_to_ignore_on_load_missing = [r"lm_head\.weight$"]

    def __init__(self, config: S3TConfig, shards=None):
        super().__init__(config)
        if shards is None:
            values = dict(config.base)
            inner = AutoConfig.for_model(values.pop("model_type"), **values)
            shards = [AutoModelForCausalLM.from_config(inner) for _ in range(config.n_shards)]
        self.shards = torch.nn.ModuleList(shards)
        if getattr(shards[0].config, "tie_word_embeddings", False):
            tied = getattr(shards[0], "_tied_weights_keys", None) or {}
            self._tied_weights_keys = {f"shards.{i}.{k}": f"shards.{i}.{v}" for i in range(len(shards))
                                       for k, v in tied.items()}
        self.post_init()

    @classmethod
    def from_models(cls, models: Sequence) -> S3TModel:
        model = cls(S3TConfig(base=models[0].config.to_dict(), n_shards=len(models)), shards=list(models))
        if getattr(models[0], "generation_config", None) is not None:
            model.generation_config = copy.deepcopy(models[0].generation_config)
        return model.to(next(models[0].parameters()).device).eval()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False

    def tie_weights(self, *args, **kwargs):
        for shard in self.shards:
            if getattr(shard.config, "tie_word_embeddings", False):
                shard.tie_weights()

    def get_input_embeddings(self):
        return self.shards[0].get_input_embeddings()

    def forward(self, input_ids=None, attention_mask=None, labels=None, past_key_values=None, inputs_embeds=None,
                **kwargs):
        if past_key_values is not None or inputs_embeds is not None:
            raise ValueError("S3TModel keeps no KV cache and takes token ids: pass the whole sequence as input_ids.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        logps = torch.stack([torch.log_softmax(shard(input_ids=input_ids, attention_mask=attention_mask,
                                                     position_ids=positions, use_cache=False).logits.float(), -1)
                             for shard in self.shards])
        logits = torch.logsumexp(logps, 0) - math.log(len(self.shards))
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                     labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        mask = model_kwargs.get("attention_mask")
        if mask is not None:
            model_kwargs["attention_mask"] = torch.cat([mask, mask.new_ones((mask.shape[0], num_new_tokens))], -1)
        model_kwargs.pop("past_key_values", None)
        return model_kwargs


def register() -> None:
    """Let ``AutoConfig`` / ``AutoModelForCausalLM`` load saved S3T run folders (idempotent)."""
    try:
        AutoConfig.register(MODEL_TYPE, S3TConfig)
    except ValueError:
        pass
    try:
        AutoModelForCausalLM.register(S3TConfig, S3TModel)
    except ValueError:
        pass


register()
