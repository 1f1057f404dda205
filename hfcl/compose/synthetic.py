"""Small random models and adapters for tests, examples and benchmarks (no download, no training)."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import torch

from .deltas import LoraAdapter, LowRankDelta

LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def tiny_llama(seed: int = 0, vocab_size: int = 128, hidden_size: int = 32, intermediate_size: int = 64,
               num_hidden_layers: int = 2):
    """A random ``LlamaForCausalLM`` small enough for unit tests (fp32, eval mode)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                         num_hidden_layers=num_hidden_layers, num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(config).eval()


def random_peft_lora(base: Any, out_dir: str | os.PathLike | None = None, seed: int = 0, r: int = 4,
                     lora_alpha: float = 8, target_modules: Sequence[str] = ("q_proj", "v_proj"),
                     base_model_name_or_path: str | None = "tiny-llama", **config_kwargs: Any):
    """A PEFT LoRA with random non-zero A and B (``init_lora_weights=False``) on a copy of ``base``.

    Returns the ``PeftModel``; saves it to ``out_dir`` when given.
    """
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=list(target_modules), init_lora_weights=False,
                        **config_kwargs)
    model = get_peft_model(copy.deepcopy(base), config)
    with torch.no_grad():  # PEFT's init_lora_weights=False draws B like A; shrink it so deltas are realistic
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.1)
    model.eval()
    if out_dir is not None:
        model.save_pretrained(str(out_dir))
        config_path = os.path.join(str(out_dir), "adapter_config.json")
        if base_model_name_or_path is not None and os.path.isfile(config_path):
            import json

            data = json.loads(open(config_path).read())
            data["base_model_name_or_path"] = base_model_name_or_path
            open(config_path, "w").write(json.dumps(data, indent=2))
    return model


def apply_dense_deltas(base: Any, deltas: dict[str, torch.Tensor], fan_in_fan_out: bool = False):
    """A copy of ``base`` with ``W += dW`` per module (``dW`` in (out, in) layout): the reference for exactness."""
    model = copy.deepcopy(base)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, delta in deltas.items():
            weight = modules[name].weight
            weight += (delta.T if fan_in_fan_out else delta).to(weight.dtype)
    return model


def synthetic_lora(shapes: dict[str, tuple[int, int]], rank: int, seed: int, alpha: float | None = None,
                   dtype: torch.dtype = torch.float32, name: str = "synthetic") -> LoraAdapter:
    """A LoraAdapter with Gaussian factors of the given ``{module: (out, in)}`` shapes (for benchmarks)."""
    gen = torch.Generator().manual_seed(seed)
    scaling = (alpha if alpha is not None else 2 * rank) / rank
    deltas = {}
    for module, (out_f, in_f) in shapes.items():
        a = torch.randn(rank, in_f, generator=gen, dtype=dtype) / in_f ** 0.5
        b = torch.randn(out_f, rank, generator=gen, dtype=dtype) * 0.01
        deltas[module] = LowRankDelta(a, b, scaling)
    return LoraAdapter(deltas=deltas, name=name, base_model_name_or_path="synthetic")


def llama_shapes(num_layers: int, hidden: int, intermediate: int,
                 kv_hidden: int | None = None) -> dict[str, tuple[int, int]]:
    """``{module: (out, in)}`` of a Llama's 7 projection layers per decoder layer."""
    kv = kv_hidden or hidden
    per_layer = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (kv, hidden),
                 "self_attn.v_proj": (kv, hidden), "self_attn.o_proj": (hidden, hidden),
                 "mlp.gate_proj": (intermediate, hidden), "mlp.up_proj": (intermediate, hidden),
                 "mlp.down_proj": (hidden, intermediate)}
    return {f"model.layers.{i}.{k}": v for i in range(num_layers) for k, v in per_layer.items()}
