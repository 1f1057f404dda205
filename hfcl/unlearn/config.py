"""``UnlearningConfig``: TrainingArguments plus the unlearning method, its hyperparameters and the reference mode."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from ..errors import ConfigError
from ..utils.distributed import use_cpu_backend
from .methods import METHODS, get_method, reference_needs, resolve_retain

REFERENCE_MODES = ("auto", "adapter_disabled", "model", "cached", "none")
NO_PRESET = "none"
DEFAULT_OUTPUT_DIR = "hfcl-runs/unlearn-{method}"
# The options to treat as explicitly given while :func:`rebuild` constructs a config (None: take the keywords).
_EXPLICIT: ContextVar[frozenset[str] | None] = ContextVar("hfcl_unlearn_explicit", default=None)


@dataclass
class UnlearningConfig(TrainingArguments):
    """Configuration of :class:`~hfcl.unlearn.UnlearningTrainer` (a ``TrainingArguments`` subclass, YAML-loadable).

    The loss is ``gamma · forget_term(method) + alpha · retain_term(retain_loss)``. ``preset`` fills the options
    you did not give with the chosen method's recipe (``Method.presets``) before anything is validated: an option
    passed as a keyword (``UnlearningConfig(preset="demo", learning_rate=1e-5)`` keeps 1e-5, even though it is the
    default) or typed on the command line / in the YAML wins. When every field is passed at once (as
    ``dataclasses.replace`` does) explicit and default cannot be told apart, and the preset fills the options still
    at their default. An unknown keyword is a :class:`~hfcl.errors.ConfigError` that suggests the close match.
    """

    def __new__(cls, *args: Any, **kwargs: Any):
        valid = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = [k for k in kwargs if k not in valid]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, sorted(valid), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ConfigError(f"{cls.__name__} got unknown option(s) {', '.join(hints)}; see "
                              f"`hfcl unlearn --help` for the valid names.")
        obj = super().__new__(cls)
        explicit = _EXPLICIT.get()
        if explicit is None and not valid <= set(kwargs):
            explicit = frozenset(kwargs)
        object.__setattr__(obj, "_explicit_options", explicit)  # None: unknown (every field was passed)
        return obj

    output_dir: str | None = field(default=None, metadata={
        "help": "Where the run directory is written (default: hfcl-runs/unlearn-<method>)."})
    preset: str | None = field(default=None, metadata={
        "help": "Hyperparameter recipe of the chosen method ('demo': a recipe that visibly forgets on the embedded "
                "models in about a minute on a CPU; 'none': plain defaults). It sets only the options you leave at "
                "their default. `hfcl unlearn` on an embedded zoo model uses 'demo' when neither --preset nor "
                "--learning_rate is given."})
    method: str = field(default="NPO", metadata={"help": f"Unlearning method: {', '.join(METHODS)} "
                                                         "(case-insensitive); on the command line 'negation' "
                                                         "runs `hfcl negate` (subtract a forget LoRA) with its "
                                                         "options."})
    retain_loss: str = field(default="auto", metadata={
        "help": "Retain term: 'nll' (NLL on retain answers), 'kl' (KL(p_ref||p_θ) on retain answer tokens), 'embed' "
                "(RMU: match the reference's activations), 'uniform' (ULD's assistant: retain answers to uniform), "
                "'none', or 'auto' (the method's default)."})
    reference: str = field(default="auto", metadata={
        "help": "Reference model for NPO/IdkDPO/UNDIAL/KL: 'adapter_disabled' (PEFT model with its adapter off: no "
                "copy), 'model' (frozen copy or ref_model), 'cached' (sequence log-probs computed once before "
                "training; NPO/IdkDPO only), 'none', or 'auto' (the cheapest correct one)."})
    beta: float | None = field(default=None, metadata={
        "help": "Inverse temperature of NPO/SimNPO/IdkDPO (defaults 0.1/4.5/0.1), UNDIAL's logit penalty (10) or "
                "WGA's weight exponent (1). None = the method's default."})
    alpha: float = field(default=1.0, metadata={"help": "Weight of the retain term."})
    gamma: float | None = field(default=None, metadata={"help": "Weight of the forget term (None = method default: "
                                                                "1, SimNPO 0.125)."})
    delta: float = field(default=0.0, metadata={"help": "SimNPO reward margin δ."})
    rmu_layer: int | None = field(default=None, metadata={
        "help": "RMU: index of the decoder layer whose output is steered (None = the middle layer)."})
    rmu_steering_coeff: float = field(default=2.0, metadata={"help": "RMU: norm c of the random control vector c·u."})
    trainable_params_regex: str | None = field(default=None, metadata={
        "help": "Only parameters whose name matches this regex (re.search) are trained, e.g. "
                "'layers\\.1\\.mlp\\.down_proj' for RMU. None = every trainable parameter."})
    idk_answers: list[str] | None = field(default=None, metadata={
        "help": "Refusal answers for IdkDPO/IdkNLL when the forget data has no 'idk_answer' column "
                "(None = a built-in list). One is picked per forget example, deterministically."})
    max_length: int = field(default=256, metadata={"help": "Longest tokenized example (answers are cut at the end)."})
    salun_sparsity: float | None = field(default=None, metadata={
        "help": "SalUn: update only this fraction (0 < f <= 1) of trainable weights, those with the largest "
                "forget-loss gradient magnitude at the start; the others stay exactly unchanged. None = off."})
    soul: bool = field(default=False, metadata={
        "help": "SOUL: train with a Sophia-style clipped second-order optimizer instead of AdamW."})
    soul_rho: float = field(default=0.04, metadata={"help": "SOUL: clipping scale ρ of the preconditioned update."})
    soul_beta1: float = field(default=0.9, metadata={"help": "SOUL: momentum decay β1."})
    soul_beta2: float = field(default=0.95, metadata={"help": "SOUL: Hessian-diagonal estimate decay β2."})
    whp_entity_field: str = field(default="author", metadata={
        "help": "WHP: the forget rows' column naming the entity each row is about (replaced by counterfactual "
                "names)."})
    whp_names: list[str] | None = field(default=None, metadata={
        "help": "WHP: counterfactual names, entities the model never learned (None = the holdout rows' entities)."})
    whp_counterfactuals: int | None = field(default=None, metadata={
        "help": "WHP: counterfactual names per forget row; the teacher averages the model's predictions over them "
                "(None = 4, or as many names as there are if fewer)."})
    whp_top_k: int = field(default=64, metadata={
        "help": "WHP: tokens kept per teacher distribution (the most likely, renormalised)."})
    uld_layers: int | None = field(default=None, metadata={
        "help": "ULD: decoder layers of the target copied into the assistant (None = a quarter, at least 2)."})
    uld_weight: float = field(default=-0.8, metadata={
        "help": "ULD: weight w of the assistant's logits in z_target + w·z_assistant (the paper's -0.8)."})
    uld_top_filter: float = field(default=1e-2, metadata={
        "help": "ULD: relative top filter: only tokens whose target probability is >= this fraction of the most "
                "likely one's are kept (the others are removed from the served distribution); 0 keeps every token."})
    eco_sigma: float | None = field(default=None, metadata={
        "help": "ECO: noise scale σ added to flagged prompts' embeddings (None = fitted by the zeroth-order search)."})
    eco_target: float | None = field(default=None, metadata={
        "help": "ECO: the forget set's mean answer probability the σ search aims at (None = the holdout rows', "
                "data of the same kind the model never saw)."})
    eco_dims: int = field(default=0, metadata={
        "help": "ECO: corrupt only the first N embedding dimensions (0 = all; the paper's code also offers 1)."})
    guard_threshold: float | None = field(default=None, metadata={
        "help": "ECO/GuardFilter: the prompt classifier's decision threshold on its logit (None = the one that "
                "maximises TPR - FPR on out-of-fold predictions)."})
    guard_instruction: str | None = field(default=None, metadata={
        "help": "GuardPrompt: the system instruction put before every prompt (None = 'You know nothing about "
                "<the forget rows' entities>...', the entities from --whp_entity_field)."})
    s3t_shards: int = field(default=1, metadata={
        "help": "S3T: shards (disjoint parts of the training rows, each a stack of LoRA slices; served: the mean of "
                "their next-token distributions). More shards make a deletion cheaper, but each knows only its "
                "part of the facts."})
    s3t_slices: int = field(default=4, metadata={
        "help": "S3T: slices per shard (slice j is trained on the shard's data slices 0..j; deleting a row "
                "deactivates its slice and every later one of its shard)."})
    s3t_retrain: bool = field(default=True, metadata={
        "help": "S3T: retrain the deactivated slices on the surviving rows in this run (false: serve what is left; "
                "a shard left with no slice drops out of the aggregate)."})
    s3t_ensemble: str | None = field(default=None, metadata={
        "help": "S3T: the s3t/ folder of an earlier S3T run to delete from (None = train a new ensemble from "
                "--model on the forget and retain rows first)."})
    # TrainingArguments fields whose defaults differ for unlearning
    early_stop_steps: int = field(default=0, metadata={
        "help": "Stop without a retain model: every N optimizer steps, score forget and holdout rows (data of the "
                "same kind the model never saw) with the LOSS membership attack and stop once its AUC is within "
                "--early_stop_tolerance of 0.5 (0 = off). Needs holdout rows: the embedded holdout split, "
                "--holdout_file, or UnlearningTrainer(holdout_dataset=...)."})
    early_stop_tolerance: float = field(default=0.05, metadata={
        "help": "Early stop: stop when the membership AUC is <= 0.5 + this."})
    early_stop_utility_floor: float = field(default=0.0, metadata={
        "help": "Early stop: also stop when the mean retain answer probability falls below this fraction of its "
                "value at the start (0 = no floor; e.g. 0.9)."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate (OpenUnlearning's TOFU "
                                                                 "default)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Kept False: batches are nested dicts."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpoint strategy: 'no', 'steps' or 'epoch'."})

    def __post_init__(self) -> None:
        method = get_method(self.method)
        self.method = method.name
        self.preset_values = self._apply_preset(method)  # before TrainingArguments and hfcl validate anything
        if self.output_dir is None:
            self.output_dir = DEFAULT_OUTPUT_DIR.format(method=method.name)
        self._check_training_numbers()
        use_cpu_backend(self)  # several processes without GPUs: gloo, not one independent run per process
        super().__post_init__()
        self.retain_kind = resolve_retain(method, self.retain_loss)
        if self.reference not in REFERENCE_MODES:
            raise ConfigError(f"reference={self.reference!r} is not one of {', '.join(REFERENCE_MODES)}.")
        needs = reference_needs(method, self.retain_kind)
        if self.reference == "cached" and needs - {"logps"}:
            raise ConfigError(f"reference='cached' stores sequence log-probs only, but {method.name} with "
                              f"retain_loss={self.retain_kind!r} needs reference {', '.join(sorted(needs))}; use "
                              "'adapter_disabled' (PEFT), 'model' or 'auto'.")
        if self.reference == "none" and needs:
            raise ConfigError(f"{method.name} with retain_loss={self.retain_kind!r} needs a reference model; set "
                              "reference to 'auto', 'adapter_disabled', 'model' or 'cached'.")
        if self.beta is not None and self.beta <= 0:
            raise ConfigError(f"beta={self.beta} must be > 0.")
        if self.alpha < 0 or (self.gamma is not None and self.gamma < 0):
            raise ConfigError("alpha and gamma must be >= 0.")
        if self.salun_sparsity is not None and not 0 < self.salun_sparsity <= 1:
            raise ConfigError(f"salun_sparsity={self.salun_sparsity} must be in (0, 1].")
        if self.soul_rho <= 0:
            raise ConfigError(f"soul_rho={self.soul_rho} must be > 0.")
        if self.max_length < 8:
            raise ConfigError(f"max_length={self.max_length} is too small.")
        if isinstance(self.whp_names, str):  # YAML / keyword 'A,B' rather than a list
            self.whp_names = [self.whp_names]
        if (self.whp_counterfactuals is not None and self.whp_counterfactuals < 1) or self.whp_top_k < 1:
            raise ConfigError(f"whp_counterfactuals={self.whp_counterfactuals} and whp_top_k={self.whp_top_k} must "
                              "be >= 1.")
        if self.uld_weight >= 0 or not 0 <= self.uld_top_filter < 1:
            raise ConfigError(f"uld_weight={self.uld_weight} must be < 0 (the assistant is subtracted) and "
                              f"uld_top_filter={self.uld_top_filter} in [0, 1).")
        if method.name == "ULD" and self.early_stop_steps:
            raise ConfigError("early_stop_steps scores the model being trained, which for ULD is the assistant, not "
                              "the served model; run ULD for a fixed number of epochs (--early_stop_steps 0).")
        if self.eco_sigma is not None and not self.eco_sigma > 0:
            raise ConfigError(f"eco_sigma={self.eco_sigma} must be > 0 (or unset, to search it).")
        if self.eco_target is not None and not 0 < self.eco_target < 1:
            raise ConfigError(f"eco_target={self.eco_target} must be an answer probability in (0, 1).")
        if self.eco_dims < 0:
            raise ConfigError(f"eco_dims={self.eco_dims} must be >= 0 (0 = every dimension).")
        if method.guard and (self.early_stop_steps or self.salun_sparsity or self.soul):
            raise ConfigError(f"{method.name} trains no weights (an inference-time guard): early_stop_steps, "
                              "salun_sparsity and soul do not apply; unset them.")
        if self.s3t_shards < 1 or self.s3t_slices < 1:
            raise ConfigError(f"s3t_shards={self.s3t_shards} and s3t_slices={self.s3t_slices} must be >= 1.")
        if method.exact and (self.early_stop_steps or self.salun_sparsity or self.soul):
            raise ConfigError(f"{method.name} deletes rows by deactivating the slices that saw them (no unlearning "
                              "loss): early_stop_steps, salun_sparsity and soul do not apply; unset them.")
        if self.idk_answers is not None and not self.idk_answers:
            raise ConfigError("idk_answers is empty; give at least one refusal answer or leave it unset.")

    def _apply_preset(self, method) -> dict[str, Any]:
        """Set ``method.presets[self.preset]`` on every option not given explicitly; returns what was set.

        The values it replaced are kept in ``preset_replaced`` (so :func:`rebuild` can undo the recipe).
        """
        self.preset_replaced: dict[str, Any] = {}
        if self.preset in (None, NO_PRESET):
            return {}
        if self.preset not in method.presets:
            names = ", ".join([*method.presets, NO_PRESET])
            raise ConfigError(f"preset={self.preset!r}: {method.name} has the presets {names}.")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        explicit = getattr(self, "_explicit_options", None)
        applied = {}
        for key, value in method.presets[self.preset].items():
            if key not in defaults:
                raise ConfigError(f"{method.name}'s preset {self.preset!r} sets unknown option {key!r}.")
            if key not in explicit if explicit is not None else getattr(self, key) == defaults[key]:
                self.preset_replaced[key] = getattr(self, key)
                setattr(self, key, value)
                applied[key] = value
        return applied

    def _check_training_numbers(self) -> None:
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate={self.learning_rate} must be > 0 (a rate of 0 trains nothing and "
                              "leaves the model unchanged); e.g. --learning_rate 1e-5, or --preset demo.")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.max_steps is None or (self.max_steps <= 0 and self.max_steps != -1):
            raise ConfigError(f"max_steps={self.max_steps} must be a positive number of steps, or -1 (use "
                              "num_train_epochs).")
        if self.early_stop_steps < 0 or not 0 <= self.early_stop_tolerance < 0.5 or \
                not 0 <= self.early_stop_utility_floor < 1:
            raise ConfigError("early stop: early_stop_steps must be >= 0, early_stop_tolerance in [0, 0.5) and "
                              "early_stop_utility_floor in [0, 1) (a fraction of the starting retain probability).")
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            raise ConfigError(f"num_train_epochs={self.num_train_epochs} must be > 0.")

    @property
    def forget_weight(self) -> float:
        return self.gamma if self.gamma is not None else get_method(self.method).gamma


def explicit_options(config: UnlearningConfig) -> frozenset[str] | None:
    """The options of ``config`` given explicitly: by the command line / YAML (:func:`hfcl.config.given_fields`) for
    a config from :func:`hfcl.config.parse_args`, else the keywords it was built with; None when unknown."""
    from ..config import given_fields, has_given_fields

    if has_given_fields(config):
        return frozenset(given_fields(config))
    return getattr(config, "_explicit_options", None)


def rebuild(config: UnlearningConfig, explicit: Iterable[str], **changes: Any) -> UnlearningConfig:
    """A new config like ``config`` with ``changes``, its preset re-applied to the options not in ``explicit``.

    The values the old preset replaced are restored first, so an explicit option keeps the user's value.
    """
    from ..config import copy_given_fields

    kwargs = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
    kwargs.update(getattr(config, "preset_replaced", {}))
    kwargs.update(changes)
    token = _EXPLICIT.set(frozenset(explicit) | frozenset(changes))
    try:
        new = type(config)(**kwargs)
    finally:
        _EXPLICIT.reset(token)
    copy_given_fields(config, new)
    return new


def respect_explicit(config: UnlearningConfig) -> UnlearningConfig:
    """``config``, rebuilt if its preset overwrote an option the command line / YAML gave explicitly."""
    explicit = explicit_options(config)
    if explicit is not None and explicit & set(getattr(config, "preset_values", {})):
        return rebuild(config, explicit)
    return config


__all__ = ["DEFAULT_OUTPUT_DIR", "REFERENCE_MODES", "UnlearningConfig", "explicit_options", "rebuild",
           "respect_explicit"]
