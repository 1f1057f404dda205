"""``ContinualConfig``: TrainingArguments plus the continual-learning strategies, their strengths and the schedule.

Per task the runner calls ``trainer.train()`` once. That is what re-warms and re-decays the learning rate per task
for free: the Trainer re-creates the scheduler it created (warmup from 0, then decay), restarts ``global_step`` at 0
(hence the per-task output folders) and, unless ``reset_optimizer`` is set, keeps the AdamW moments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..errors import ConfigError

SCHEDULES = ("rewarm", "infinite")
LWF_TEACHERS = ("previous", "base")


def split_names(value) -> list[str]:
    """``"replay, ewc"`` or ``["replay", "ewc"]`` -> ``["replay", "ewc"]`` (lower case, order kept)."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(v).strip().lower() for v in items if str(v).strip()]


@dataclass
class ContinualConfig(TrainingArguments):
    """Configuration of :class:`~hfcl.continual.ContinualTrainer` and of ``hfcl continual`` (YAML-loadable).

    The loss of a step is the task's NLL on answer tokens plus every active strategy's term, each counted once per
    optimizer step whatever the gradient accumulation and the number of processes.
    """

    strategy: str = field(default="naive", metadata={
        "help": "Comma-separated strategies that compose: naive (plain sequential fine-tuning), replay, ewc, "
                "online_ewc, l2, lwf, olora (needs LoRA), ema. Example: 'replay,ewc'."})
    replay_ratio: float = field(default=0.1, metadata={
        "help": "Replay: replayed examples per new example of the task, in (0, 1] (0.1 = one old example for ten new; "
                "mixed at data level)."})
    replay_buffer_size: int = field(default=512, metadata={
        "help": "Replay: capacity (examples) of the reservoir buffer over the stream's earlier tasks."})
    ewc_lambda: float = field(default=100.0, metadata={
        "help": "EWC / online EWC strength λ in (λ/2)·Σ F_i (θ_i − θ*_i)² (the Fisher is normalised to mean 1)."})
    ewc_gamma: float = field(default=1.0, metadata={
        "help": "Online EWC decay γ of the running Fisher: F ← γ·F + F_task (Schwarz et al. 2018)."})
    ewc_fisher_max_examples: int | None = field(default=None, metadata={
        "help": "EWC: at most this many training examples of each task for its Fisher (None = all)."})
    l2_lambda: float = field(default=1.0, metadata={
        "help": "L2: strength λ in (λ/2)·‖θ − θ_previous_task‖² over the matched parameters."})
    l2_params_regex: str | None = field(default=None, metadata={
        "help": "L2 (and EWC): only parameters whose name matches this regex (re.search) are anchored, e.g. "
                "'self_attn'. None = every trainable parameter."})
    lwf_alpha: float = field(default=1.0, metadata={
        "help": "LwF: weight of T²·KL(p_teacher ‖ p_model) on the new task's answer tokens."})
    lwf_temperature: float = field(default=2.0, metadata={"help": "LwF: distillation temperature T."})
    lwf_teacher: str = field(default="previous", metadata={
        "help": "LwF teacher: 'previous' (the model before the current task, from its parameters: no model copy) or "
                "'base' (the model before the stream; under PEFT the adapter-disabled model)."})
    olora_lambda_orth: float = field(default=0.5, metadata={
        "help": "O-LoRA: weight λ1 of Σ_{i<t} Σ |A_i A_tᵀ| between the new task's LoRA A and earlier tasks' A."})
    olora_lambda_l2: float = field(default=0.0, metadata={
        "help": "O-LoRA: weight λ2 of ‖θ_LoRA_t‖² on the new task's adapter."})
    olora_merge: str = field(default="linear", metadata={
        "help": "O-LoRA: how the per-task adapters are combined at the end with hfcl.compose ('linear' = their exact "
                "sum, what the model computed; or a merge method such as 'ties')."})
    ema_decay: float = field(default=0.99, metadata={
        "help": "EMA: decay d of the slow weights (θ_ema ← d·θ_ema + (1 − d)·θ each step); at each task's end the "
                "model takes the EMA weights."})
    schedule: str = field(default="rewarm", metadata={
        "help": "'rewarm': lr_scheduler_type restarted per task (re-warm + re-decay; 'warmup_stable_decay' passes "
                "through); 'infinite': warmup -> cosine cooldown -> constant over the whole stream, with a short "
                "anneal at the end of every task (arXiv 2503.02844 Eq. 1)."})
    infinite_warmup_steps: int = field(default=10, metadata={"help": "Infinite schedule: warmup steps (stream)."})
    infinite_cooldown_steps: int = field(default=40, metadata={
        "help": "Infinite schedule: steps of the cosine cooldown from the peak to the constant learning rate."})
    infinite_constant_ratio: float = field(default=0.5, metadata={
        "help": "Infinite schedule: constant learning rate as a fraction of learning_rate."})
    infinite_min_ratio: float = field(default=0.05, metadata={
        "help": "Infinite schedule: learning rate at the end of each anneal, as a fraction of learning_rate."})
    infinite_anneal_ratio: float = field(default=0.2, metadata={
        "help": "Infinite schedule: fraction of each task's steps spent annealing (exponential decay to the "
                "minimum); the pre-anneal weights are kept and the next task continues from them."})
    reset_optimizer: bool = field(default=True, metadata={
        "help": "Create a fresh optimizer (AdamW moments at 0) for every task; false keeps one optimizer across "
                "the stream. A new trainable parameter set (O-LoRA) always gets a new optimizer."})
    max_length: int = field(default=256, metadata={"help": "Longest tokenized example (answers cut at the end)."})
    forget_preset: str = field(default="demo", metadata={
        "help": "Recipe of the stream's forget events that name none: 'demo' (the unlearning method's demo recipe, "
                "tuned on the embedded world: lr 2e-3, 12 epochs) or 'none' (UnlearningConfig defaults)."})
    # TrainingArguments fields whose defaults differ for continual learning
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate of every task."})
    num_train_epochs: float = field(default=10.0, metadata={"help": "Epochs per task."})
    lr_scheduler_type: str = field(default="constant_with_warmup", metadata={
        "help": "Per-task scheduler under schedule='rewarm' (any transformers scheduler, e.g. cosine, "
                "warmup_stable_decay)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Kept False: batches are tokenized."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpoints within a task: 'no', 'steps', 'epoch'."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps."})
    report_to: str = field(default="none", metadata={"help": "Integrations to report to ('none' by default)."})

    def __post_init__(self) -> None:
        from ..utils.distributed import use_cpu_backend

        use_cpu_backend(self)  # several processes without GPUs: gloo, not one independent run per process
        super().__post_init__()
        from .strategies import STRATEGIES

        names = split_names(self.strategy)
        if not names:
            raise ConfigError("strategy is empty; use 'naive' for plain sequential fine-tuning.")
        unknown = [n for n in names if n not in STRATEGIES]
        if unknown:
            raise ConfigError(f"Unknown strategy {', '.join(map(repr, unknown))}; choose from "
                              f"{', '.join(STRATEGIES)} (comma-separated to combine).")
        if "naive" in names and len(names) > 1:
            names.remove("naive")
        if len(set(names)) != len(names):
            raise ConfigError(f"strategy lists a strategy twice: {self.strategy!r}.")
        if "ewc" in names and "online_ewc" in names:
            raise ConfigError("Choose one of 'ewc' and 'online_ewc'.")
        self.strategy = ",".join(names)
        if not 0 < self.replay_ratio <= 1:
            raise ConfigError(f"replay_ratio={self.replay_ratio} must be in (0, 1] (replayed examples per new one).")
        if self.replay_buffer_size < 1:
            raise ConfigError(f"replay_buffer_size={self.replay_buffer_size} must be >= 1.")
        for name in ("ewc_lambda", "l2_lambda", "lwf_alpha", "olora_lambda_orth", "olora_lambda_l2"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0.")
        if not 0 < self.ewc_gamma <= 1:
            raise ConfigError(f"ewc_gamma={self.ewc_gamma} must be in (0, 1].")
        if self.lwf_temperature <= 0:
            raise ConfigError(f"lwf_temperature={self.lwf_temperature} must be > 0.")
        if self.lwf_teacher not in LWF_TEACHERS:
            raise ConfigError(f"lwf_teacher={self.lwf_teacher!r} is not one of {', '.join(LWF_TEACHERS)}.")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay={self.ema_decay} must be in [0, 1).")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule={self.schedule!r} is not one of {', '.join(SCHEDULES)} (for WSD use "
                              "schedule='rewarm' with lr_scheduler_type='warmup_stable_decay').")
        if not 0 < self.infinite_min_ratio <= self.infinite_constant_ratio <= 1:
            raise ConfigError("Need 0 < infinite_min_ratio <= infinite_constant_ratio <= 1.")
        if not 0 <= self.infinite_anneal_ratio < 1:
            raise ConfigError(f"infinite_anneal_ratio={self.infinite_anneal_ratio} must be in [0, 1).")
        if self.max_length < 8:
            raise ConfigError(f"max_length={self.max_length} is too small.")

    @property
    def strategy_names(self) -> list[str]:
        return split_names(self.strategy)


__all__ = ["SCHEDULES", "ContinualConfig", "split_names"]
