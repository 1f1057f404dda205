"""Stop unlearning when the forget set looks unseen, without a retain model.

Users never have a retain model: training one is what unlearning exists to avoid. What they can have is *holdout*
data of the same kind that the model never saw (other authors, other documents). The forget set is forgotten, in
the membership sense, when a membership attack can no longer tell it from the holdout set: every
``early_stop_steps`` optimizer steps :class:`MembershipStop` scores forget and holdout with the LOSS attack (mean
answer NLL, one batched teacher-forced pass) and stops training once the attack's AUC is within
``early_stop_tolerance`` of 0.5 (AUC starts near 1 for a model that knows the forget set and falls as it unlearns;
stopping there also keeps it from overshooting into "less likely than unseen data", which is itself a tell).
``early_stop_utility_floor`` stops first if the mean answer probability on (a sample of) the retain set falls below
that fraction of its value at the start. The reason, step and values are logged and recorded in ``hfcl_run.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

UTILITY_ROWS = 64  # retain rows scored for the utility floor (evenly spaced)


def _pairs(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    from ..data.formatting import example_to_messages

    out = []
    for r in rows:
        messages, answer = example_to_messages(dict(r))
        out.append((messages[-1]["content"], answer))
    return out


class MembershipStop(TrainerCallback):
    """Stop when the LOSS membership attack's AUC (forget vs holdout) reaches ``0.5 + tolerance``, or when the retain
    answer probability falls below ``utility_floor`` x its starting value (0 = no floor); see the module docstring.

    ``history`` holds every check; ``outcome`` says why training ended (``"membership"``, ``"utility"`` or
    ``None`` when it ran to the end)."""

    def __init__(self, tokenizer, forget: Sequence[dict], holdout: Sequence[dict], retain: Sequence[dict] = (),
                 every: int = 10, tolerance: float = 0.05, utility_floor: float = 0.0, batch_size: int = 32,
                 max_length: int = 256):
        self.tokenizer = tokenizer
        self.forget, self.holdout = _pairs(forget), _pairs(holdout)
        step = max(1, len(retain) // UTILITY_ROWS) if retain else 1
        self.retain = _pairs(list(retain)[::step][:UTILITY_ROWS]) if utility_floor > 0 else []
        self.every, self.tolerance, self.utility_floor = int(every), float(tolerance), float(utility_floor)
        self.batch_size, self.max_length = batch_size, max_length
        self.history: list[dict[str, float]] = []
        self.outcome: dict[str, Any] | None = None
        self.start_utility: float | None = None

    def measure(self, model) -> dict[str, float]:
        """``{"auc": LOSS-attack AUC forget vs holdout, "utility": mean retain answer probability (or nan)}``."""
        import numpy as np

        from ..eval.metrics.mia import loss_score, mia_auc
        from ..eval.scoring import ScoringPlan

        plan = ScoringPlan(self.tokenizer, max_length=self.max_length)
        ids = [plan.qa(q, a) for q, a in self.forget + self.holdout + self.retain]
        was_training = model.training
        model.eval()
        try:
            scores = plan.score(model, batch_size=self.batch_size, distributed=True)
        finally:
            model.train(was_training)
        per = [scores[i] for i in ids]
        n_f, n_h = len(self.forget), len(self.holdout)
        losses = [loss_score(s.logprobs) for s in per[:n_f + n_h]]
        auc = mia_auc(losses[:n_f], losses[n_f:])
        utility = float(np.mean([math.exp(-s.avg_nll) for s in per[n_f + n_h:]])) if self.retain else math.nan
        return {"auc": auc, "utility": utility}

    def _check(self, state, control, model) -> None:
        values = self.measure(model)
        entry = {"step": state.global_step, "membership_auc": round(values["auc"], 6)}
        if self.retain:
            entry["retain_prob"] = round(values["utility"], 6)
        self.history.append(entry)
        state.log_history.append(dict(entry))
        reason = None
        if values["auc"] <= 0.5 + self.tolerance:
            reason = "membership"
        elif self.retain and self.start_utility and values["utility"] < self.utility_floor * self.start_utility:
            reason = "utility"
        if reason is not None and state.global_step > 0:
            self.outcome = {"reason": reason, "step": state.global_step, "membership_auc": values["auc"],
                            **({"retain_prob": values["utility"], "retain_prob_start": self.start_utility}
                               if self.retain else {})}
            control.should_training_stop = True

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and not self.history:
            values = self.measure(model)
            self.start_utility = values["utility"] if self.retain else None
            entry = {"step": state.global_step, "membership_auc": round(values["auc"], 6)}
            if self.retain:
                entry["retain_prob"] = round(values["utility"], 6)
            self.history.append(entry)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and self.every and state.global_step % self.every == 0 and self.outcome is None:
            self._check(state, control, model)

    def summary(self) -> dict[str, Any]:
        """What ``hfcl_run.json`` records: the settings, every check and why training ended."""
        return {"every_steps": self.every, "tolerance": self.tolerance, "utility_floor": self.utility_floor,
                "n_forget": len(self.forget), "n_holdout": len(self.holdout), "checks": self.history,
                "stopped": self.outcome}


__all__ = ["MembershipStop"]
