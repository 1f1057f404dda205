"""Does the forgetting survive? Two attacks on an (unlearned) model, each scored on forget rows it was not given.

* **relearn** (Hu et al. 2024, "Jogging the memory of unlearned LLMs"; OpenUnlearning's meta-evaluation): fine-tune
  a copy of the model (an adapter merged first) for ``relearn_steps`` AdamW steps on a small part of the forget set
  (``relearn_fraction``, every k-th row), then score the *other* forget rows. Knowledge that was only suppressed
  comes back on rows the attack never showed; a model that never learned them (the retain model: the control) gains
  only what the few shown rows teach about the rest.
* **quantize** (Zhang et al., ICLR 2025, "Catastrophic failure of LLM unlearning via quantization"): round-to-nearest
  symmetric per-output-channel quantization of every linear layer's weight (``lm_head`` and embeddings kept), at
  each of ``quantize_bits``; an unlearning update smaller than the quantization step is rounded away.
* **unguard** (Thaker et al. 2024, "Guardrail baselines for unlearning in LLMs"): score the weights without the
  inference-time guard (ECO, GuardFilter, GuardPrompt: :meth:`~hfcl.unlearn.guard.GuardedModel.unguarded`; ULD's
  target without its assistant). A guard can score like fine-tuning on every output metric while the weights still
  hold everything; a model whose weights were changed is its own unguarded model (gain 0). Anyone who holds the weights runs them without the guard.

Both report, on the held-out forget rows, the answer probability and the ROUGE-L recall of greedy answers after the
attack and their gain over the unattacked model on the same rows (``robustness_*`` aggregates; lower is better).
Everything runs on copies: the evaluated model is never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError

ATTACKS = ("relearn", "quantize", "unguard")


def parse_attacks(spec: str | Sequence[str] | None) -> list[str]:
    """``"relearn,quantize"`` -> ``["relearn", "quantize"]``; unknown names are a :class:`ConfigError`."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else (spec or ())) if s.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        raise ConfigError(f"attacks: unknown {unknown}; choose from {', '.join(ATTACKS)} (comma-separated).")
    return list(dict.fromkeys(names))


def parse_bits(spec: str) -> list[int]:
    """``"8,4"`` -> ``[8, 4]`` (each 2..16)."""
    try:
        bits = [int(b) for b in str(spec).split(",") if b.strip()]
    except ValueError:
        bits = []
    if not bits or any(not 2 <= b <= 16 for b in bits):
        raise ConfigError(f"quantize_bits={spec!r}: give comma-separated integers in 2..16, e.g. '8,4'.")
    return bits


# --- quantization (pure) -------------------------------------------------------------------------------------------
def quantize_rtn(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric round-to-nearest quantization of a 2-D weight, one scale per output channel (row), dequantized.

    ``scale = max_j |w_ij| / (2^(bits-1) - 1)``, ``q = clamp(round(w / scale), -qmax, qmax)``, returns ``q * scale``
    (a zero row stays zero)."""
    if weight.dim() != 2:
        raise ValueError(f"quantize_rtn expects a 2-D weight, got shape {tuple(weight.shape)}.")
    qmax = 2 ** (bits - 1) - 1
    w = weight.float()
    scale = w.abs().amax(dim=1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (torch.clamp(torch.round(w / scale), -qmax, qmax) * scale).to(weight.dtype)


def unguarded(model):
    """The weights behind an inference-time guard (``model.unguarded()``), else ``model`` itself."""
    return model.unguarded() if hasattr(model, "unguarded") else model


def merged_copy(model):
    """A plain (non-PEFT) copy of ``model``: adapters merged into the weights; the original is untouched."""
    clone = copy.deepcopy(model)
    if hasattr(clone, "merge_and_unload"):
        clone = clone.merge_and_unload()
    clone.eval()
    return clone


@torch.no_grad()
def quantized_copy(model, bits: int):
    """A merged copy of ``model`` with every ``nn.Linear`` weight except ``lm_head`` quantized by :func:`quantize_rtn`."""
    clone = merged_copy(model)
    for name, module in clone.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head"):
            module.weight.copy_(quantize_rtn(module.weight, bits))
    return clone


# --- relearning ------------------------------------------------------------------------------------------------------
def split_rows(rows: list[dict[str, Any]], fraction: float) -> tuple[list[dict], list[dict]]:
    """``(shown, held_out)``: every k-th row (k = round(1 / fraction)) is shown to the attack, the rest is scored."""
    if not 0 < fraction < 1:
        raise ConfigError(f"relearn_fraction={fraction} must be in (0, 1).")
    step = max(2, round(1 / fraction))
    shown = [r for i, r in enumerate(rows) if i % step == 0]
    held = [r for i, r in enumerate(rows) if i % step != 0]
    if not shown or not held:
        raise ConfigError(f"relearn_fraction={fraction} leaves no rows to show or to score ({len(rows)} forget rows).")
    return shown, held


def relearned_copy(model, tokenizer, rows: list[dict[str, Any]], steps: int, learning_rate: float,
                   batch_size: int = 8, max_length: int = 256, seed: int = 0):
    """A merged copy of ``model`` fine-tuned (all weights, AdamW, answer-token loss) for ``steps`` on ``rows``."""
    from transformers import DataCollatorForSeq2Seq

    from ..data.formatting import tokenize_example
    from ..unlearn.losses import IGNORE_INDEX

    clone = merged_copy(model)
    clone.train()
    for p in clone.parameters():  # every weight (PEFT froze the base ones)
        p.requires_grad_(True)
    features = [tokenize_example(tokenizer, r, max_length) for r in rows]
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
    optimizer = torch.optim.AdamW(list(clone.parameters()), lr=learning_rate,
                                  weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    device = next(clone.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    try:
        order: list[int] = []
        for _ in range(steps):
            if len(order) < batch_size:
                order += torch.randperm(len(features), generator=gen).tolist()
            picked, order = order[:batch_size], order[batch_size:]
            batch = {k: v.to(device) for k, v in collate([dict(features[i]) for i in picked]).items()}
            loss = clone(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    finally:
        tokenizer.padding_side = side
    clone.eval()
    return clone


# --- running them ----------------------------------------------------------------------------------------------------
def _scores(model, tokenizer, rows: list[dict[str, Any]], config) -> dict[str, float]:
    from ..continual.scoring import score_tasks
    from ..continual.stream import Task

    tasks = [Task("prob", [], rows, "probability"), Task("rouge", [], rows, "rouge")]
    prob, rouge = score_tasks(model, tokenizer, tasks, batch_size=config.batch_size, max_length=config.max_length,
                              max_new_tokens=config.max_new_tokens, distributed=False)
    return {"prob": float(prob), "rouge": float(rouge)}


def run_attacks(model, tokenizer, forget_rows: list[dict[str, Any]], config) -> tuple[dict[str, Any], list, dict]:
    """The attacks of ``config.attacks`` on ``model``: ``(aggregates, notes, record)``.

    ``aggregates``: ``robustness_<attack>_forget_{prob,rouge}`` after each attack and ``..._gain_{prob,rouge}`` over
    the unattacked model, on the held-out forget rows (``quantize``: one pair per bit width, ``quant8``, ``quant4``);
    the third item records the rows' split and the unattacked scores (the report's ``runtime["attacks"]``)."""
    attacks = parse_attacks(config.attacks)
    rows = [{"question": r["question"], "answer": r["answer"]} for r in forget_rows]
    shown, held = split_rows(rows, config.relearn_fraction) if "relearn" in attacks else ([], rows)
    before = _scores(model, tokenizer, held, config)
    aggregates: dict[str, Any] = {}
    variants: list[tuple[str, Any]] = []
    if "relearn" in attacks:
        variants.append(("relearn", lambda: relearned_copy(model, tokenizer, shown, config.relearn_steps,
                                                           config.relearn_learning_rate, max_length=config.max_length,
                                                           seed=config.seed)))
    if "quantize" in attacks:
        variants += [(f"quant{b}", lambda b=b: quantized_copy(model, b)) for b in parse_bits(config.quantize_bits)]
    if "unguard" in attacks:
        variants.append(("unguard", lambda: unguarded(model)))
    for name, make in variants:
        attacked = make()
        after = _scores(attacked, tokenizer, held, config)
        del attacked
        for key in ("prob", "rouge"):
            aggregates[f"robustness_{name}_forget_{key}"] = after[key]
            aggregates[f"robustness_{name}_gain_{key}"] = after[key] - before[key]
    record = {"held_out_rows": len(held), "shown_rows": len(shown), "before": before}
    how = (f"{len(held)} forget rows the relearning attack never saw ({len(shown)} shown, {config.relearn_steps} "
           f"AdamW steps at lr {config.relearn_learning_rate:g})" if shown else f"all {len(held)} forget rows")
    notes = [(f"attacks ({', '.join(attacks)}): scored on {how}; unattacked on those rows: prob "
              f"{before['prob']:.3f}, ROUGE-L {before['rouge']:.3f}.")]
    return aggregates, notes, record


__all__ = ["ATTACKS", "merged_copy", "unguarded", "parse_attacks", "parse_bits", "quantize_rtn", "quantized_copy",
           "relearned_copy", "run_attacks", "split_rows"]
