"""ULD, unlearning from logit difference (Ji et al. 2024): the target stays as it is; a small *assistant* learns the
reversed objectives (remember the forget set, forget the retain set) and is subtracted at inference.

* The assistant is a truncated copy of the target: its embeddings, its first ``uld_layers`` decoder layers, final
  norm and head (the paper's 8 of 32 layers; here a quarter of the layers, at least 2), trained with a LoRA
  adapter (``UnlearningTrainer`` adds it when none is given: r 16, alpha 32, every linear layer, as in the paper).
* Its loss is ``NLL(forget answers) + alpha · KL(p_assistant ‖ uniform)`` on retain answers (the paper's
  ``remember + uniform``, alpha 5; the KL's direction differs, see below):
  :func:`hfcl.unlearn.losses.uniform_kl_loss`.
* The unlearned model's logits are ``z = z_target + w · z_assistant`` with ``w = uld_weight`` (-0.8) on the tokens
  the target finds plausible (log-prob >= its best + log τ, τ = ``uld_top_filter``, default 1e-2); the others are
  filtered out: :func:`logit_difference`.

:class:`LogitDifferenceModel` is a ``transformers`` model (``AutoModelForCausalLM`` loads a saved run folder back as
one, so ``generate``, ``hfcl eval``, the Space and ``hfcl push`` accept it). It holds both models; generation
recomputes the prefix at each token (no KV cache across the two models), which the short answers of the suite keep
cheap.

Where we differ from the paper's code, and why:

* The assistant copies the target's first layers, head and embeddings (the paper's ``init_small_llm``), at least 2
  layers: on the embedded 2-layer target a 1-layer assistant cannot tell forget authors from retain ones (its forget
  and retain ROUGE-L fell together, 0.50 / 0.74), so there the assistant is as deep as the target and saves no time
  per step.
* The retain term is ``KL(p_a ‖ uniform)``; the paper's code uses ``KL(uniform ‖ p_a)``. Both are 0 exactly at the
  uniform distribution (what the subtraction needs); ours is the negative entropy plus log V.
* The relative top filter removes the filtered tokens from the served distribution for scoring and generation alike
  (so the suite's probabilities describe what is generated). The paper's code keeps the target's logits there when
  scoring, removes them only when generating, and always keeps at least τ·V tokens; without that floor τ = 1e-2
  leaves a target that is this sure of its memorised answers unchanged, so the demo preset uses τ = 1e-3.
"""

from __future__ import annotations

import copy
import math
import re

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..errors import ConfigError

MODEL_TYPE = "hfcl_logit_difference"
#: The assistant's LoRA adapter as published (r 16, alpha 32, every linear layer).
ASSISTANT_LORA = {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"}


#: A token the relative top filter removes gets the best kept logit minus this: finite, so log-probabilities (and
#: the evaluation suite's truth ratios) stay finite, and e^-50 below the best token, so it is never generated.
FILTERED_MARGIN = 50.0


def logit_difference(target_logits: torch.Tensor, assistant_logits: torch.Tensor, weight: float,
                     top_filter: float) -> torch.Tensor:
    """``z_target + weight · z_assistant`` on the tokens the target finds plausible (log-prob >= its maximum +
    log(top_filter)), the best kept logit minus :data:`FILTERED_MARGIN` on the others (contrastive decoding's
    relative top filter, for scoring and generation alike); ``top_filter=0`` keeps every token. An assistant with a
    flat distribution (the retain objective) shifts every kept logit equally: the target's distribution stays."""
    z_t, z_a = target_logits.float(), assistant_logits.float()
    z = z_t + weight * z_a
    if top_filter > 0:
        logp = torch.log_softmax(z_t, dim=-1)
        keep = logp >= logp.max(dim=-1, keepdim=True).values + math.log(top_filter)
        floor = z.masked_fill(~keep, float("-inf")).amax(dim=-1, keepdim=True) - FILTERED_MARGIN
        z = torch.where(keep, z, floor)
    return z


def default_layers(num_hidden_layers: int) -> int:
    """A quarter of the target's layers (the paper: 8 of 32), at least 2 (or all, if fewer): on the embedded
    2-layer target a 1-layer assistant cannot tell forget authors from retain ones (measured: forget ROUGE-L only
    falls as far as retain ROUGE-L does), a 2-layer one can."""
    return min(num_hidden_layers, max(2, num_hidden_layers // 4))


def build_assistant(target, num_layers: int | None = None):
    """A copy of ``target`` cut to its first ``num_layers`` decoder layers (embeddings, norm and head kept)."""
    cfg = copy.deepcopy(target.config)
    total = int(cfg.num_hidden_layers)
    k = default_layers(total) if num_layers is None else int(num_layers)
    if not 1 <= k <= total:
        raise ConfigError(f"uld_layers={k} must be between 1 and the target's {total} layers.")
    cfg.num_hidden_layers = k
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = cfg.layer_types[:k]
    assistant = AutoModelForCausalLM.from_config(cfg).to(target.dtype)
    pattern = re.compile(r"(^|\.)layers\.(\d+)\.")
    state = {}
    for name, value in target.state_dict().items():
        match = pattern.search(name)
        if match is None or int(match.group(2)) < k:
            state[name] = value.detach().clone()
    missing, unexpected = assistant.load_state_dict(state, strict=False)
    missing = [m for m in missing if m not in getattr(assistant, "_tied_weights_keys", {}) and "lm_head" not in m]
    if missing or unexpected:
        raise ConfigError(f"Cannot cut an assistant from {type(target).__name__}: missing {missing[:3]}, unexpected "
                          f"{unexpected[:3]} (ULD supports decoder-only models with '...layers.N.' modules).")
    if getattr(cfg, "tie_word_embeddings", False):
        assistant.tie_weights()
    return assistant.to(next(target.parameters()).device)


class LogitDifferenceConfig(PretrainedConfig):
    """Config of :class:`LogitDifferenceModel`: the two models' configs, the weight and the top filter."""

    model_type = MODEL_TYPE

    def __init__(self, target: dict | None = None, assistant: dict | None = None, weight: float = -0.8,
                 top_filter: float = 1e-2, **kwargs):
        self.target, self.assistant = target or {}, assistant or {}
        self.weight, self.top_filter = float(weight), float(top_filter)
        kwargs.setdefault("tie_word_embeddings", bool(self.target.get("tie_word_embeddings", False)))
        super().__init__(**kwargs)
        for key in ("vocab_size", "eos_token_id", "bos_token_id", "pad_token_id"):
            if key in self.target and getattr(self, key, None) is None:
                setattr(self, key, self.target[key])


def _sub_config(values: dict):
    values = dict(values)
    return AutoConfig.for_model(values.pop("model_type"), **values)


class LogitDifferenceModel(PreTrainedModel, GenerationMixin):
    """``target`` minus ``weight`` times ``assistant`` at the logits (see :func:`logit_difference`)."""

    config_class = LogitDifferenceConfig
    base_model_prefix = "uld"
    _keys_to_ignore_on_load_missing = [r"lm_head\.weight$"]  # tied to the embeddings (restored by tie_weights)

    def __init__(self, config: LogitDifferenceConfig, target=None, assistant=None):
        super().__init__(config)
        self.target = target if target is not None else AutoModelForCausalLM.from_config(_sub_config(config.target))
        self.assistant = (assistant if assistant is not None
                          else AutoModelForCausalLM.from_config(_sub_config(config.assistant)))
        # the sub-models' own ties (e.g. lm_head = embed_tokens), under their prefixes, so saving and loading keep them
        ties = {}
        for prefix in ("target", "assistant"):
            sub = getattr(self, prefix)
            if getattr(sub.config, "tie_word_embeddings", False):
                ties.update({f"{prefix}.{k}": f"{prefix}.{v}"
                             for k, v in (getattr(sub, "_tied_weights_keys", None) or {}).items()})
        self._tied_weights_keys = ties
        self.post_init()

    @classmethod
    def from_models(cls, target, assistant, weight: float = -0.8, top_filter: float = 1e-2) -> LogitDifferenceModel:
        config = LogitDifferenceConfig(target=target.config.to_dict(), assistant=assistant.config.to_dict(),
                                       weight=weight, top_filter=top_filter)
        model = cls(config, target=target, assistant=assistant)
        if getattr(target, "generation_config", None) is not None:
            model.generation_config = copy.deepcopy(target.generation_config)
        return model.eval()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # each sub-model would need its own cache; generation recomputes the prefix instead

    def tie_weights(self, *args, **kwargs):
        for sub in (self.target, self.assistant):
            if getattr(sub.config, "tie_word_embeddings", False):
                sub.tie_weights()

    def get_input_embeddings(self):
        return self.target.get_input_embeddings()

    def unguarded(self):
        """The target's weights alone (unchanged by ULD): what the ``unguard`` attack scores."""
        return self.target

    def forward(self, input_ids=None, attention_mask=None, labels=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, **kwargs):
        if past_key_values is not None or inputs_embeds is not None:
            raise ValueError("LogitDifferenceModel keeps no KV cache and takes token ids: pass the whole sequence as "
                             "input_ids (it returns past_key_values=None).")
        if position_ids is None and attention_mask is not None:  # left padding (generation): count real tokens only
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
                  "use_cache": False}
        target = self.target(**inputs).logits
        assistant = self.assistant(**inputs).logits.to(target.device)
        logits = logit_difference(target, assistant, self.config.weight, self.config.top_filter)
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                     labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        return {"input_ids": input_ids, "attention_mask": attention_mask}  # the whole prefix: no cache

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        mask = model_kwargs.get("attention_mask")
        if mask is not None:
            model_kwargs["attention_mask"] = torch.cat([mask, mask.new_ones((mask.shape[0], num_new_tokens))], -1)
        model_kwargs.pop("past_key_values", None)
        return model_kwargs


def register() -> None:
    """Let ``AutoConfig`` / ``AutoModelForCausalLM`` load saved ULD run folders (idempotent)."""
    try:
        AutoConfig.register(MODEL_TYPE, LogitDifferenceConfig)
    except ValueError:
        pass
    try:
        AutoModelForCausalLM.register(LogitDifferenceConfig, LogitDifferenceModel)
    except ValueError:
        pass


register()

__all__ = ["ASSISTANT_LORA", "LogitDifferenceConfig", "LogitDifferenceModel", "build_assistant", "default_layers", "logit_difference",
           "register"]
