"""The method registry: each unlearning method is a forget term (one small function over a :class:`Step`) plus a
default retain term and default hyperparameters.

Adding a method is one function in :mod:`hfcl.unlearn.losses`, one ``_forget_*`` adapter here and one
:data:`METHODS` entry. The :class:`Step` computes model outputs lazily and once, so a method only pays for what it
reads (a reference forward, the refusal batch, a hidden layer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

import torch

from ..errors import ConfigError
from . import losses as L

# What a method can need from the reference model: sequence log-probs (cacheable), full logits, hidden states.
REF_LOGPS, REF_LOGITS, REF_HIDDEN = "logps", "logits", "hidden"


@dataclass(frozen=True)
class Method:
    """One unlearning method: how to compute its forget term and what it needs."""

    name: str
    forget: Callable[[Step], torch.Tensor]
    retain: str = "nll"  # default retain term: nll | kl | embed | none
    beta: float | None = None
    gamma: float = 1.0
    reference: frozenset = field(default_factory=frozenset)  # of REF_* the forget term needs
    needs_idk: bool = False
    needs_teacher: bool = False  # WHP: counterfactual teacher distributions computed before training
    guard: bool = False  # inference-time (ECO, GuardFilter, GuardPrompt): nothing is trained, a guard is fitted
    exact: bool = False  # S3T: trains its own sliced ensemble from the pretrained model, then deletes the forget rows
    description: str = ""
    # Named hyperparameter recipes of this method (``--preset NAME``): UnlearningConfig field -> value. A recipe only
    # names fields this method reads, so one method's recipe never changes another's hyperparameters.
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # What cards show (hfcl.hub.cards): the forget term's formula, as computed in losses.py, and the
    # UnlearningConfig fields this method reads beyond the shared ones (alpha, gamma, retain_loss, ...).
    formula: str = ""
    card_fields: tuple[str, ...] = ()


class Step:
    """Everything one micro-batch's loss may need, computed on first use.

    ``counts`` holds the number of units (``<part>_tokens``, ``<part>_examples``) in the whole optimizer step, used as
    loss denominators so accumulation and data parallelism are exact.
    """

    def __init__(self, model, inputs: dict[str, Any], counts: dict[str, Any], reference, config, method: Method,
                 rmu_control: torch.Tensor | None = None, rmu_layer: int | None = None, teacher=None):
        self.model, self.inputs, self.counts = model, inputs, counts
        self.teacher = teacher
        self.reference, self.config, self.method = reference, config, method
        self.rmu_control, self.rmu_layer = rmu_control, rmu_layer
        self.beta = config.beta if config.beta is not None else method.beta
        self._outputs: dict[str, tuple] = {}

    def tokens(self, part: str):
        return self.counts[f"{part}_tokens"]

    def examples(self, part: str):
        return self.counts[f"{part}_examples"]

    def batch(self, part: str) -> dict[str, torch.Tensor]:
        return self.inputs[part]

    def forward(self, part: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, hidden at the RMU layer or None)`` of the trained model on ``part``."""
        if part not in self._outputs:
            self._outputs[part] = forward_with_hidden(self.model, self.batch(part), self.rmu_layer)
        return self._outputs[part]

    def logits(self, part: str) -> torch.Tensor:
        return self.forward(part)[0]

    def hidden(self, part: str) -> torch.Tensor:
        return self.forward(part)[1]

    def logps(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        return L.sequence_logps(self.logits(part), self.batch(part)["labels"])

    def ref_logps(self, part: str) -> torch.Tensor:
        return self.reference.logps(self.model, part, self.batch(part), self.inputs["index"])

    def ref_logits(self, part: str) -> torch.Tensor:
        return self.reference.forward(self.model, self.batch(part), None)[0]

    def ref_hidden(self, part: str) -> torch.Tensor:
        return self.reference.forward(self.model, self.batch(part), self.rmu_layer)[1]

    @cached_property
    def forget_mask(self) -> torch.Tensor:
        return L.answer_positions(self.batch("forget")["labels"])


def forward_with_hidden(model, batch: dict[str, torch.Tensor], layer: int | None):
    """Run ``model`` on ``batch``; also capture the output of decoder layer ``layer`` (a forward hook) if given."""
    captured: list[torch.Tensor] = []
    handle = None
    if layer is not None:
        module = decoder_layer(model, layer)
        handle = module.register_forward_hook(
            lambda _m, _i, out: captured.append(out[0] if isinstance(out, (tuple, list)) else out))
    try:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    finally:
        if handle is not None:
            handle.remove()
    return out.logits, (captured[-1] if captured else None)


def decoder_layer(model, index: int) -> torch.nn.Module:
    """Decoder layer ``index`` of a causal LM (plain, PEFT- or DDP-wrapped): the module named ``...layers.<index>``."""
    for name, module in model.named_modules():
        if name.endswith(f"layers.{index}") and isinstance(module, torch.nn.Module):
            return module
    raise ConfigError(f"rmu_layer={index}: the model has no module named '*layers.{index}'; choose a decoder layer "
                      "index between 0 and num_hidden_layers-1.")


# ---- forget terms ------------------------------------------------------------------------------------------------

def _forget_grad_ascent(s: Step) -> torch.Tensor:
    return L.grad_ascent_loss(s.logits("forget"), s.batch("forget")["labels"], s.tokens("forget"))


def _forget_npo(s: Step) -> torch.Tensor:
    logps, _ = s.logps("forget")
    return L.npo_loss(logps, s.ref_logps("forget"), s.beta, s.examples("forget"))


def _forget_simnpo(s: Step) -> torch.Tensor:
    logps, lengths = s.logps("forget")
    return L.simnpo_loss(logps, lengths, s.beta, s.config.delta, s.examples("forget"))


def _forget_idk_dpo(s: Step) -> torch.Tensor:
    chosen, _ = s.logps("idk")
    rejected, _ = s.logps("forget")
    return L.dpo_loss(chosen, rejected, s.ref_logps("idk"), s.ref_logps("forget"), s.beta, s.examples("forget"))


def _forget_idk_nll(s: Step) -> torch.Tensor:
    return L.nll_loss(s.logits("idk"), s.batch("idk")["labels"], s.tokens("idk"))


def _forget_rmu(s: Step) -> torch.Tensor:
    return L.rmu_forget_loss(s.hidden("forget"), s.rmu_control, s.forget_mask, s.tokens("forget"))


def _forget_undial(s: Step) -> torch.Tensor:
    return L.undial_loss(s.logits("forget"), s.ref_logits("forget"), s.batch("forget")["labels"], s.beta,
                         s.tokens("forget"))


def _forget_whp(s: Step) -> torch.Tensor:
    logits = s.logits("forget")
    rows, positions, ids, logp = s.teacher.batch_targets(s.inputs["index"], logits.device)
    return L.teacher_kl_loss(logits, rows, positions, ids, logp, s.tokens("forget"))


def _forget_remember(s: Step) -> torch.Tensor:
    return L.nll_loss(s.logits("forget"), s.batch("forget")["labels"], s.tokens("forget"))


def _no_training(s: Step) -> torch.Tensor:
    raise ConfigError(f"{s.method.name} has no unlearning loss (an inference-time guard is fitted, an S3T ensemble "
                      "trained and its slices deactivated, by train()).")


def _forget_wga(s: Step) -> torch.Tensor:
    return L.wga_loss(s.logits("forget"), s.batch("forget")["labels"], s.beta, s.tokens("forget"))


# ---- retain terms ------------------------------------------------------------------------------------------------

def retain_term(kind: str, s: Step) -> torch.Tensor | None:
    """The retain term ``kind`` (``nll`` | ``kl`` | ``embed`` | ``none``) on the retain batch."""
    if kind == "none":
        return None
    labels = s.batch("retain")["labels"]
    if kind == "nll":
        return L.nll_loss(s.logits("retain"), labels, s.tokens("retain"))
    if kind == "kl":
        return L.kl_loss(s.logits("retain"), s.ref_logits("retain"), labels, s.tokens("retain"))
    if kind == "uniform":
        return L.uniform_kl_loss(s.logits("retain"), labels, s.tokens("retain"))
    if kind == "embed":
        return L.rmu_retain_loss(s.hidden("retain"), s.ref_hidden("retain"), L.answer_positions(labels),
                                 s.tokens("retain"))
    raise ConfigError(f"Unknown retain_loss {kind!r}; choose from {', '.join(RETAIN_LOSSES)}.")


RETAIN_LOSSES = ("auto", "nll", "kl", "embed", "uniform", "none")
RETAIN_REFERENCE = {"kl": frozenset({REF_LOGITS}), "embed": frozenset({REF_HIDDEN})}

# The demo recipes: a few seconds to a minute on the embedded target with a LoRA adapter on 2 CPU cores (the
# TrainingArguments defaults, lr 1e-5 for 3 epochs, leave a model this small unchanged). NPO's is the recipe `hfcl
# demo` uses: β=1 (not the usual 0.1) saturates the forget term sooner, which keeps the tiny model's retain answers;
# α=2. The others share its schedule with each method's own coefficients; tuning them is the unlearning-quality work.
_DEMO_SCHEDULE = {"learning_rate": 2e-3, "num_train_epochs": 12, "per_device_train_batch_size": 8,
                  "lr_scheduler_type": "constant", "logging_steps": 5}


# The tuned recipes (``--preset tuned``), searched per method on the embedded default (forget10) by
# ``benchmarks/preset_search.py`` against the bars forget quality >= 0.05, model utility >= 0.95x the target's and
# |PrivLeak| <= 25: all weights (not a LoRA adapter: on a 1.2M-parameter model no LoRA recipe of the grid met the
# bars), a constant rate, and the membership stopping rule ending the run (forget vs holdout LOSS-attack AUC <= 0.55,
# checked every step, so a holdout set is needed); the epochs are a cap. `hfcl unlearn` turns LoRA off for these.
_TUNED_SCHEDULE = {"num_train_epochs": 40, "per_device_train_batch_size": 8, "lr_scheduler_type": "constant",
                   "early_stop_steps": 1, "early_stop_tolerance": 0.05, "logging_steps": 5}
#: Presets searched for training all weights (``hfcl unlearn`` uses ``--lora false`` with them unless told).
FULL_WEIGHT_PRESETS = frozenset({"tuned"})


# The rwku recipes (``--preset rwku``; ``--data_source rwku --preset demo`` picks them): a LoRA adapter on a real
# model (SmolLM2-135M) forgetting one target's short corpus, measured by benchmarks/rwku_unlearn.py. The KL retain
# term keeps the model's own answers elsewhere; an NLL retain term on the other targets' texts made it repeat them.
_RWKU_SCHEDULE = {"per_device_train_batch_size": 2, "lr_scheduler_type": "constant", "max_length": 128,
                  "logging_steps": 5}


def _demo(tuned: Mapping[str, Any] | None = None, rwku: Mapping[str, Any] | None = None,
          **method_fields: Any) -> Mapping[str, Mapping[str, Any]]:
    presets = {"demo": MappingProxyType({**_DEMO_SCHEDULE, **method_fields})}
    if tuned is not None:
        presets["tuned"] = MappingProxyType({**_TUNED_SCHEDULE, **tuned})
    if rwku is not None:
        presets["rwku"] = MappingProxyType({**_RWKU_SCHEDULE, **rwku})
    return presets


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("GradAscent", _forget_grad_ascent, formula="L_f = −NLL(forget answers) = mean_t log π(y_t | y_<t, x)",
           card_fields=(), retain="none", description="Gradient ascent on the forget set (−NLL).",
           presets=_demo(learning_rate=1e-3, num_train_epochs=4,
                         rwku={"learning_rate": 5e-4, "num_train_epochs": 3})),
    Method("GradDiff", _forget_grad_ascent, formula="L_f = −NLL(forget answers) = mean_t log π(y_t | y_<t, x)",
           card_fields=(), description="Gradient ascent on the forget set (−NLL) + NLL on the retain set.",
           presets=_demo(alpha=2.0, learning_rate=1e-3,
                         tuned={"alpha": 4.0, "learning_rate": 2e-4, "early_stop_tolerance": 0.1},
                         rwku={"learning_rate": 3e-4, "num_train_epochs": 3, "retain_loss": "kl", "alpha": 1.0})),
    Method("NPO", _forget_npo, formula="L_f = −(2/β)·mean log σ(−β·(log π(y|x) − log π_ref(y|x)))",
           card_fields=("beta",), beta=0.1, reference=frozenset({REF_LOGPS}),
           description="Negative preference optimization against the pre-unlearning model.",
           presets=_demo(beta=1.0, alpha=2.0,
                         tuned={"beta": 0.1, "alpha": 8.0, "learning_rate": 3e-4, "early_stop_tolerance": 0.05},
                         rwku={"learning_rate": 1e-3, "num_train_epochs": 3, "retain_loss": "kl", "alpha": 1.0})),
    Method("SimNPO", _forget_simnpo, formula="L_f = −(2/β)·mean log σ(β·(−log π(y|x)/|y| − δ))",
           card_fields=("beta", "delta"), beta=4.5, gamma=0.125, description="Reference-free, length-normalised NPO.",
           presets=_demo(gamma=1.0, alpha=1.0,
                         rwku={"learning_rate": 3e-3, "num_train_epochs": 5, "retain_loss": "kl", "alpha": 1.0})),  # γ=0.125, α=2 leaves the tiny target unchanged (0.982 -> 0.976)
    Method("IdkDPO", _forget_idk_dpo,
           formula="L_f = −(2/β)·mean log σ(β·[(log π(y_idk|x) − log π_ref(y_idk|x)) "
                   "− (log π(y|x) − log π_ref(y|x))])",
           card_fields=("beta", "idk_answers"), beta=0.1, reference=frozenset({REF_LOGPS}), needs_idk=True,
           description="DPO preferring a refusal over the forget answer.", presets=_demo(beta=1.0, alpha=2.0)),
    Method("IdkNLL", _forget_idk_nll, formula="L_f = NLL(y_idk | x), a refusal answer per forget question",
           card_fields=("idk_answers",), needs_idk=True, description="NLL on refusal answers to forget questions.",
           presets=_demo(alpha=1.0)),
    Method("RMU", _forget_rmu, formula="L_f = mean over forget answer positions of mean_d (h_l − c·u)², "
                                       "c = rmu_steering_coeff, u a fixed random unit vector",
           card_fields=("rmu_layer", "rmu_steering_coeff", "trainable_params_regex"), retain="embed",
           description="Steer a layer's activations on forget data to c·u.",
           presets=_demo(alpha=10.0, rwku={"learning_rate": 3e-3, "num_train_epochs": 5})),
    Method("UNDIAL", _forget_undial,
           formula="L_f = mean over answer positions of CE(softmax(z_ref − β·onehot(y_t)), softmax(z_θ))",
           card_fields=("beta",), retain="none", beta=10.0, reference=frozenset({REF_LOGITS}),
           description="Self-distillation to reference logits with the true token's logit lowered by β.",
           presets=_demo()),
    Method("WGA", _forget_wga,
           formula="L_f = −mean_t w_t·log π(y_t | y_<t, x), w_t = π(y_t | y_<t, x)^β (detached)",
           card_fields=("beta",), beta=1.0, description="Gradient ascent weighted by p_θ(y_t)^β.",
           presets=_demo(alpha=2.0, tuned={"beta": 0.5, "alpha": 4.0, "learning_rate": 5e-4,
                                           "early_stop_tolerance": 0.0})),
    Method("WHP", _forget_whp,
           formula="L_f = Σ over aligned forget answer tokens of KL(p_teacher ‖ p_θ) / (forget answer tokens), "
                   "p_teacher = the model before unlearning on the row with its entity swapped for "
                   "whp_counterfactuals never-seen names (averaged, top-k)",
           card_fields=("whp_counterfactuals", "whp_entity_field", "whp_top_k"), needs_teacher=True,
           description="Who's Harry Potter (causal revisit): fit what the model says about a never-seen entity.",
           presets=_demo(alpha=1.0, learning_rate=2e-3, num_train_epochs=12)),
    Method("ULD", _forget_remember, retain="uniform",
           formula="assistant (the target's first uld_layers layers + LoRA): L = NLL(forget answers) + "
                   "α·KL(p_a ‖ uniform) on retain answers; served logits z = z_target + uld_weight·z_a on the "
                   "tokens with log p_target >= max + log uld_top_filter, the others removed",
           card_fields=("uld_layers", "uld_weight", "uld_top_filter"),
           description="Unlearning from logit difference: subtract an assistant that remembers only the forget set.",
           # τ 1e-3, not the paper's 1e-2: the embedded target is so sure of its memorised answers (p ~ 0.97) that
           # at 1e-2 only the answer token itself passes the filter and nothing can change (forget ROUGE-L 0.97 -> 0.86).
           # α 8 (uniform term on retain): on the zoo as built on the current machine α 5 took retain ROUGE-L to 0.79x
           # the target's, α 10 kept 0.98x but left forget at 0.78x; α 8: 0.64x / 0.92x (benchmarks/new_methods.py)
           presets=_demo(alpha=8.0, learning_rate=2e-3, num_train_epochs=40, uld_top_filter=1e-3)),
    # Inference-time guards (hfcl.unlearn.guard): the weights stay the target's; nothing is trained, so their
    # recipes only set the guard's own options (the defaults are the recipe).
    Method("ECO", _no_training, retain="none", guard=True,
           formula="classifier c(x) = logistic regression on hashed token n-grams of the prompt (forget vs retain, "
                   "threshold max TPR − FPR out of fold); if c flags x: e(x_i) += σ·ε_i on the prompt tokens, σ "
                   "fitted by zeroth-order search so the forget set's mean answer probability reaches the holdout's",
           card_fields=("eco_sigma", "eco_target", "eco_dims", "guard_threshold"),
           description="Embedding-corrupted prompts: noise on the embeddings of prompts a classifier flags.",
           presets={"demo": MappingProxyType({})}),
    Method("GuardFilter", _no_training, retain="none", guard=True,
           formula="the ECO prompt classifier c(x); if c flags x the answer is the refusal (first idk_answers "
                   "entry), else the target's",
           card_fields=("guard_threshold", "idk_answers"),
           description="Guardrail baseline: an input filter answering flagged prompts with a refusal.",
           presets={"demo": MappingProxyType({})}),
    Method("GuardPrompt", _no_training, retain="none", guard=True,
           formula="every prompt is preceded by a system instruction not to reveal anything about the forget "
                   "entities (guard_instruction, default: names from whp_entity_field)",
           card_fields=("guard_instruction", "whp_entity_field"),
           description="Guardrail baseline: a system-prompt instruction to know nothing about the forget entities.",
           presets={"demo": MappingProxyType({})}),
    # Exact unlearning (hfcl.unlearn.s3t): num_train_epochs / learning_rate are each slice's LoRA training from the
    # pretrained model (on the embedded default the zoo's base, the target's own starting point).
    Method("S3T", _no_training, retain="none", exact=True,
           formula="shards × slices of LoRA, slice j of a shard trained on its data slices 0..j with slices 0..j-1 "
                   "frozen; deleting a row deactivates its shard's slices from the first that saw it (retrained on "
                   "the surviving rows with s3t_retrain); served: the mean of the shards' next-token distributions",
           card_fields=("s3t_shards", "s3t_slices", "s3t_retrain"),
           description="Exact unlearning: sharded, sliced LoRA training; deletion deactivates the slices that saw "
                       "the rows.",
           # 80 epochs per slice with the rank-64 slice adapter (s3t.SLICE_LORA): retain ROUGE-L 0.99 on the default zoo after
           # deleting forget10 (40 epochs: 0.84; 2 slices: 0.56; 2 shards, each knowing half the facts: 0.60)
           presets={"demo": MappingProxyType({"num_train_epochs": 80, "learning_rate": 3e-3,
                                              "per_device_train_batch_size": 16, "s3t_shards": 1,
                                              "s3t_slices": 4})}),
]}


def get_method(name: str) -> Method:
    """Look a method up by name, case-insensitively (``npo``, ``NPO``, ``grad_diff``, ``GradDiff``)."""
    key = name.replace("_", "").replace("-", "").lower()
    for method in METHODS.values():
        if method.name.lower() == key:
            return method
    raise ConfigError(f"Unknown unlearning method {name!r}; choose from {', '.join(METHODS)}.")


def resolve_retain(method: Method, retain_loss: str) -> str:
    """The retain term to use: the method's default for ``auto``."""
    if retain_loss not in RETAIN_LOSSES:
        raise ConfigError(f"retain_loss={retain_loss!r} is not one of {', '.join(RETAIN_LOSSES)}.")
    kind = method.retain if retain_loss == "auto" else retain_loss
    if method.name == "ULD" and kind not in ("uniform", "none"):
        raise ConfigError(f"ULD trains an assistant to forget the retain set: retain_loss must be 'uniform' (its "
                          f"default) or 'none', not {kind!r}.")
    if kind == "uniform" and method.name != "ULD":
        raise ConfigError("retain_loss='uniform' pushes retain answers to a uniform distribution and only makes sense "
                          "for ULD's assistant; use 'nll' or 'kl'.")
    if kind == "embed" and method.name != "RMU":
        raise ConfigError("retain_loss='embed' matches hidden states at the RMU layer and only works with "
                          "method='RMU'; use 'nll' or 'kl'.")
    return kind


def reference_needs(method: Method, retain_kind: str) -> frozenset:
    """Everything the reference model must provide for this method + retain term."""
    return method.reference | RETAIN_REFERENCE.get(retain_kind, frozenset())


__all__ = [
    "METHODS",
    "REF_HIDDEN",
    "REF_LOGITS",
    "REF_LOGPS",
    "RETAIN_LOSSES",
    "Method",
    "Step",
    "decoder_layer",
    "forward_with_hidden",
    "get_method",
    "reference_needs",
    "resolve_retain",
    "retain_term",
]
