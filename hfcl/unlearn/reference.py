"""The reference model (the model before unlearning) in its cheapest correct form.

* ``cached``: sequence log-probs of every forget (and refusal) example, computed once in batched no-grad passes
  before training. NPO and IdkDPO need nothing else from the reference, so each step costs what the reference-free
  step costs.
* ``adapter_disabled``: a PEFT model with its adapter switched off *is* the pre-unlearning model when the adapter is
  new (LoRA B = 0): no second copy in memory. On an adapter that already changes the model (a trained PeftModel)
  it would be the base without the adapter, so ``auto`` never picks it there and asking for it is an error.
* ``model``: a frozen copy (or the ``ref_model`` given), for full fine-tuning with KL/UNDIAL/RMU; of a trained
  adapter, the copy has the adapter merged into its weights.

On resume, the cached log-probs are read back from the checkpoint's ``reference_logps.safetensors``, guarded by a
fingerprint of the tokenized forget data and of the reference model (:func:`model_fingerprint`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import ConfigError
from ..utils.distributed import full_tensor
from ..utils.io import stable_hash
from ..utils.logging import get_logger
from . import losses as L
from .methods import REF_LOGPS, forward_with_hidden

logger = get_logger(__name__)


def is_peft_model(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def choose_reference(requested: str, needs: frozenset, model, ref_model=None) -> str:
    """Resolve ``auto`` and check that the requested mode can serve ``needs``."""
    if not needs:
        return "none"
    if requested == "auto":
        if needs <= {REF_LOGPS}:
            return "cached"
        if ref_model is None and is_peft_model(model) and adapter_is_fresh(model):
            return "adapter_disabled"
        return "model"
    if requested == "adapter_disabled" and not is_peft_model(model):
        raise ConfigError("reference='adapter_disabled' needs a PEFT model (pass peft_config or a PeftModel); for "
                          "full fine-tuning use 'cached' (NPO/IdkDPO) or 'model'.")
    if requested == "adapter_disabled" and not adapter_is_fresh(model):
        raise ConfigError("reference='adapter_disabled' would use the base model without the adapter, but this "
                          "adapter is already trained (LoRA B != 0), so the model before unlearning is base+adapter; "
                          "use reference='model' (a frozen merged copy), 'cached' (NPO/IdkDPO) or 'auto'.")
    return requested


def adapter_is_fresh(model) -> bool:
    """True when every LoRA B matrix is zero, i.e. the adapter does not change the base model yet."""
    b_weights = [p for n, p in model.named_parameters() if "lora_B" in n]
    return all(bool((p == 0).all()) for p in b_weights)


class Reference:
    """Reference outputs for a micro-batch, in one of the modes above."""

    def __init__(self, mode: str, unwrap: Callable = lambda m: m, ref_model=None):
        self.mode, self.unwrap, self.ref_model = mode, unwrap, ref_model
        self.cache: dict[str, torch.Tensor] = {}
        self.fingerprint: dict[str, str] = {}

    @classmethod
    def build(cls, mode: str, model, unwrap: Callable = lambda m: m, ref_model=None) -> Reference:
        if mode == "model" and ref_model is None:
            ref_model = frozen_copy(unwrap(model))
        if ref_model is not None:
            ref_model.eval()
            for p in ref_model.parameters():
                p.requires_grad_(False)
        return cls(mode, unwrap, ref_model if mode in ("model", "cached") else None)

    @torch.no_grad()
    def forward(self, model, batch: dict[str, torch.Tensor], layer: int | None):
        """``(logits, hidden at layer)`` of the reference on ``batch`` (no gradient)."""
        if self.mode == "adapter_disabled":
            base = self.unwrap(model)
            with base.disable_adapter():
                return forward_with_hidden(base, batch, layer)
        if self.mode == "model":
            device = next(self.ref_model.parameters()).device
            batch = {k: v.to(device) for k, v in batch.items()}
            return forward_with_hidden(self.ref_model, batch, layer)
        raise ConfigError(f"reference={self.mode!r} cannot provide logits or hidden states.")

    def logps(self, model, part: str, batch: dict[str, torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """Reference sequence log-probs of ``part`` for the examples ``index`` of the forget set."""
        if self.mode == "cached":
            return self.cache[part].to(index.device)[index]
        logits, _ = self.forward(model, batch, None)
        return L.sequence_logps(logits, batch["labels"].to(logits.device))[0].to(batch["labels"].device)

    @torch.no_grad()
    def fill_cache(self, model, parts: dict[str, list[dict]], collate: Callable, batch_size: int,
                   device: torch.device) -> None:
        """Compute ``cache[part][i] = log π_ref(y_i|x_i)`` for every tokenized example of every part."""
        source = self.ref_model.to(device) if self.ref_model is not None else model
        with _gathered(source):  # ZeRO-3 (zero3_init_flag): whole weights for the fingerprint and the forwards
            self._fill(source, parts, collate, batch_size, device)
        self.ref_model = None  # the cache is all we need: free the copy

    def _fill(self, source, parts, collate, batch_size, device) -> None:
        self.fingerprint = {"data": stable_hash({k: [dict(r) for r in v] for k, v in parts.items()}),
                            "reference": model_fingerprint(source)}
        was_training = source.training
        source.eval()
        try:
            for part, rows in parts.items():
                values = []
                for start in range(0, len(rows), batch_size):
                    batch = {k: v.to(device) for k, v in collate(rows[start:start + batch_size]).items()}
                    logits, _ = forward_with_hidden(source, batch, None)
                    values.append(L.sequence_logps(logits, batch["labels"])[0].float().cpu())
                self.cache[part] = torch.cat(values)
        finally:
            source.train(was_training)

    def save_cache(self, folder: str | Path) -> None:
        """Write the cache to ``folder/reference_logps.safetensors`` with its fingerprint as metadata."""
        from safetensors.torch import save_file

        path = Path(folder) / CACHE_FILE  # in a final run folder, atomic_directory fixes safetensors' 0600 mode
        save_file({k: v.contiguous() for k, v in self.cache.items()}, str(path), metadata=dict(self.fingerprint))

    def load_cache(self, folder: str | Path) -> bool:
        """Read the cache saved in checkpoint ``folder`` after checking that it was computed from the same forget
        data and reference model; False when the checkpoint has none (it is then kept as computed)."""
        from safetensors import safe_open

        path = Path(folder) / CACHE_FILE
        if not path.is_file():
            logger.warning("Checkpoint %s has no %s; keeping the reference log-probs computed from the model given.",
                           folder, CACHE_FILE)
            return False
        with safe_open(str(path), framework="pt") as handle:
            saved = handle.metadata() or {}
            cache = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
        for key, what in (("data", "forget data"), ("reference", "reference model")):
            if saved.get(key) != self.fingerprint.get(key):
                raise ConfigError(
                    f"Cannot resume from {folder}: the {what} differs from the one its reference log-probs were "
                    f"computed from (fingerprint {saved.get(key)} != {self.fingerprint.get(key)}). Resume with the "
                    "same model and forget data, or start a new run without --resume_from_checkpoint.")
        if set(cache) != set(self.cache):
            raise ConfigError(f"Cannot resume from {folder}: {CACHE_FILE} holds parts {sorted(cache)}, this run "
                              f"needs {sorted(self.cache)}.")
        self.cache = cache
        logger.info("Resumed the reference log-probs from %s.", path)
        return True


CACHE_FILE = "reference_logps.safetensors"


def _gathered(model):
    """A context in which a DeepSpeed ZeRO-3 partitioned model (parameters with ``ds_id``, e.g. loaded under
    ``zero3_init_flag`` before the engine exists) has its whole weights on every process, read-only; a no-op for any
    other model (DeepSpeed is imported only then)."""
    params = [p for p in model.parameters() if hasattr(p, "ds_id")]
    if not params:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)


def frozen_copy(model):
    """A frozen copy of ``model``; of a PEFT model with a trained adapter, the copy with the adapter merged in."""
    ref = copy.deepcopy(model)
    if is_peft_model(ref):
        ref = ref.merge_and_unload() if not adapter_is_fresh(ref) else ref
    return ref


def model_fingerprint(model) -> str:
    """A cheap fingerprint of a model's weights: name, shape and two float64 sums of every parameter (a fresh
    LoRA adapter, which does not change the model, is left out)."""
    fresh = is_peft_model(model) and adapter_is_fresh(model)
    rows = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if fresh and "lora_" in name:
                continue
            x = full_tensor(p.detach()).double()  # FSDP2: the whole weight, not this process's shard
            rows.append((name.replace("base_model.model.", "").replace(".base_layer", ""), list(p.shape),
                         f"{float(x.sum()):.8e}", f"{float(x.abs().sum()):.8e}"))
    return stable_hash(rows)


__all__ = [
    "CACHE_FILE",
    "Reference",
    "adapter_is_fresh",
    "choose_reference",
    "frozen_copy",
    "is_peft_model",
    "model_fingerprint",
]
