"""WHP-style counterfactual targets (Who's Harry Potter, Eldan & Russinovich 2023; its causal revisit, Liu et al.
2024): what the model would say about an entity it never learned.

For every forget row, the entity it is about (the ``author`` column of the embedded world and TOFU-style data) is
replaced by ``n`` counterfactual names: entities the model never saw (by default the holdout rows' entities, which
the embedded world guarantees were never trained on). The model before unlearning reads each counterfactual row; its
next-token distributions, aligned back onto the original row's answer tokens and averaged over the ``n`` names,
are the **teacher**. Unlearning then fits the model to the teacher on the original rows (``L_f = KL(p_teacher ‖
p_θ)``, :func:`hfcl.unlearn.losses.teacher_kl_loss`) while a retain term keeps everything else.

As published (the causal revisit, ``N`` counterfactual names, KL to the averaged teacher on aligned tokens); where we
differ, and why:

* The entity swap is exact string replacement of a known name (the data names its entity), not NER + coreference:
  the embedded world and TOFU-style rows carry the author's name, and a user names it with ``whp_entity_field``.
* Alignment is :class:`difflib.SequenceMatcher` on token ids (as the paper's code does on tokens); answer positions
  inside the swapped name have no teacher and no loss, instead of the paper's "change the name back" heuristic.
* The teacher keeps its ``top_k`` most likely tokens per position, renormalised, so a 49k-token vocabulary (the real
  model) costs ``top_k`` floats per answer token rather than 49k.
* WHP's original "reinforced model" logit offset is not used (the revisit shows the counterfactual average is the
  better teacher, and it needs no second fine-tuning).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataError
from ..utils.io import stable_hash
from ..utils.logging import get_logger
from . import losses as L

logger = get_logger(__name__)
TEACHER_FILE = "counterfactual_teacher.safetensors"


def replace_entity(text: str, entity: str, substitute: str) -> str:
    """``text`` with every whole-word occurrence of ``entity`` replaced by ``substitute``."""
    return re.sub(rf"(?<!\w){re.escape(entity)}(?!\w)", lambda _match: substitute, text)


DEFAULT_COUNTERFACTUALS = 4


def counterfactual_rows(rows: Sequence[dict[str, Any]], names: Sequence[str], n: int | None = None,
                        entity_field: str = "author", seed: int = 0) -> list[list[dict[str, Any]]]:
    """For each row, ``n`` copies with its entity replaced by a counterfactual name (empty when the row never
    mentions its entity). Names are drawn without replacement per row, deterministically from ``seed``, and never
    equal the row's own entity. ``n=None``: :data:`DEFAULT_COUNTERFACTUALS`, or fewer if there are fewer names."""
    import random

    if n is not None and n < 1:
        raise ConfigError(f"whp_counterfactuals={n} must be >= 1.")
    out = []
    for i, row in enumerate(rows):
        entity = str(row.get(entity_field) or "").strip()
        if not entity:
            raise DataError(f"forget row {i} has no {entity_field!r} (the entity to replace): add that column naming "
                            "who or what the row is about, or set whp_entity_field to the column that does.")
        pool = sorted({x for x in names if x and x != entity})
        size = min(DEFAULT_COUNTERFACTUALS, len(pool)) if n is None else n
        if not pool or len(pool) < size:
            raise ConfigError(f"WHP needs {size or 1} counterfactual name(s) other than {entity!r}, got {len(pool)}: "
                              "pass more with --whp_names or lower --whp_counterfactuals.")
        rng = random.Random(seed * 1_000_003 + i)
        fields = [k for k in ("question", "answer", "prompt", "completion", "text") if isinstance(row.get(k), str)]
        if not any(replace_entity(row[k], entity, "\0") != row[k] for k in fields):
            out.append([])
            continue
        out.append([{**row, **{k: replace_entity(row[k], entity, sub) for k in fields}, entity_field: sub}
                    for sub in rng.sample(pool, size)])
    return out


def aligned_positions(original: Sequence[int], counterfactual: Sequence[int], labels: Sequence[int]
                      ) -> list[tuple[int, int]]:
    """Pairs ``(t, j)``: answer token ``t`` of the original row equals token ``j`` of the counterfactual row in a
    block the two share (:class:`difflib.SequenceMatcher` on token ids), so the counterfactual's prediction at
    ``j - 1`` is the teacher for the original's at ``t - 1``. Answer tokens inside the swapped name have no pair."""
    matcher = difflib.SequenceMatcher(a=list(original), b=list(counterfactual), autojunk=False)
    pairs = []
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            t, j = a + k, b + k
            if t >= 1 and j >= 1 and labels[t] != L.IGNORE_INDEX:
                pairs.append((t, j))
    return pairs


class CounterfactualTeacher:
    """Teacher distributions per forget row, computed once before training (and saved with checkpoints).

    ``ids[k]`` / ``logp[k]``: the top-k token ids and log-probs (renormalised) of the teacher at the original
    row's position ``pos[k]`` (the position whose logits predict answer token ``pos[k] + 1``); the entries of row
    ``i`` are ``offsets[i]:offsets[i+1]``.
    """

    def __init__(self, top_k: int = 64):
        if top_k < 1:
            raise ConfigError(f"whp_top_k={top_k} must be >= 1.")
        self.top_k = top_k
        self.tensors: dict[str, torch.Tensor] = {}
        self.fingerprint: dict[str, str] = {}

    @torch.no_grad()
    def fill(self, model, forget_tok: list[dict], counterfactual_tok: list[list[dict]], collate: Callable,
             batch_size: int, device: torch.device) -> None:
        from .reference import model_fingerprint

        self.fingerprint = {"data": stable_hash({"forget": [dict(r) for r in forget_tok],
                                                 "counterfactual": [[dict(c) for c in cs] for cs in counterfactual_tok],
                                                 "top_k": self.top_k}),
                            "reference": model_fingerprint(model)}
        was_training = model.training
        model.eval()
        flat = [(i, c) for i, cs in enumerate(counterfactual_tok) for c in cs]  # grouped by row, in row order
        ids, logp, pos, offsets = [], [], [], [0]
        pending: dict[int, tuple[torch.Tensor, int]] = {}  # position -> (summed probabilities, count), one row

        def finish_rows(up_to: int) -> None:
            """Turn the averaged distributions of every row before ``up_to`` into top-k entries (frees them)."""
            while len(offsets) - 1 < up_to:
                if len(offsets) - 1 == current[0]:
                    for t in sorted(pending):
                        total, n = pending[t]
                        top = torch.topk(total / n, min(self.top_k, total.numel()))
                        ids.append(top.indices.cpu())
                        logp.append(torch.log(top.values / top.values.sum()).float().cpu())
                        pos.append(t)
                    pending.clear()
                offsets.append(len(pos))

        current = [-1]
        try:
            for start in range(0, len(flat), batch_size):
                chunk = flat[start:start + batch_size]
                batch = {k: v.to(device) for k, v in collate([dict(c) for _, c in chunk]).items()}
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               use_cache=False).logits
                for b, (i, cf) in enumerate(chunk):
                    if i != current[0]:
                        finish_rows(i)
                        current[0] = i
                    row = forget_tok[i]
                    pairs = aligned_positions(row["input_ids"], cf["input_ids"], row["labels"])
                    if not pairs:
                        continue
                    js = torch.tensor([j - 1 for _, j in pairs], device=logits.device)
                    probs = torch.softmax(logits[b, js].float(), dim=-1)  # one gather per row, on the device
                    for (t, _), p in zip(pairs, probs):
                        total, n = pending.get(t - 1, (0, 0))
                        pending[t - 1] = (total + p, n + 1)
            finish_rows(len(forget_tok))
        finally:
            model.train(was_training)
        if not pos:
            raise DataError("WHP: no forget answer token could be aligned with a counterfactual row (no row mentions "
                            "its entity in the answer, or the swap changes every answer token); check "
                            "whp_entity_field.")
        self.tensors = {"ids": torch.stack(ids), "logp": torch.stack(logp).float(),
                        "pos": torch.tensor(pos, dtype=torch.long), "offsets": torch.tensor(offsets)}
        covered = sum(1 for i in range(len(forget_tok)) if offsets[i + 1] > offsets[i])
        logger.info("WHP teacher: %d aligned answer tokens on %d of %d forget rows.", len(pos), covered,
                    len(forget_tok))

    def batch_targets(self, index: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor]:
        """``(batch_row, position, ids, logp)`` of every teacher entry of the forget rows ``index`` (in order)."""
        offsets = self.tensors["offsets"]
        rows, sel = [], []
        for b, i in enumerate(index.tolist()):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            rows += [b] * (hi - lo)
            sel += range(lo, hi)
        sel_t = torch.tensor(sel, dtype=torch.long)
        return (torch.tensor(rows, dtype=torch.long, device=device), self.tensors["pos"][sel_t].to(device),
                self.tensors["ids"][sel_t].to(device), self.tensors["logp"][sel_t].to(device))

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.tensors.items()}, str(Path(folder) / TEACHER_FILE),
                  metadata=dict(self.fingerprint))

    def load(self, folder: str | Path) -> bool:
        """Read the teacher saved in checkpoint ``folder``: it must come from the same forget data, counterfactual
        rows and ``top_k`` (else an error). The model given to a resumed run has already been trained, so the
        teacher saved before training replaces the one just computed from it."""
        from safetensors import safe_open

        path = Path(folder) / TEACHER_FILE
        if not path.is_file():
            logger.warning("Checkpoint %s has no %s; keeping the teacher computed from the model given.", folder,
                           TEACHER_FILE)
            return False
        with safe_open(str(path), framework="pt") as handle:
            saved = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
        if saved.get("data") != self.fingerprint.get("data"):
            raise ConfigError(f"Cannot resume from {folder}: its WHP teacher was computed from other forget data or "
                              "counterfactual names; resume with the same data and options or start a new run.")
        self.tensors = tensors
        logger.info("Resumed the WHP teacher from %s.", path)
        return True


def counterfactual_names(config, holdout_rows: Sequence[dict[str, Any]] | None) -> list[str]:
    """The names to swap in: ``config.whp_names``, else the entities of the holdout rows (never trained)."""
    if config.whp_names:
        return [name.strip() for item in config.whp_names for name in str(item).split(",") if name.strip()]
    names = sorted({str(r.get(config.whp_entity_field) or "").strip() for r in holdout_rows or []} - {""})
    if not names:
        raise ConfigError("WHP needs counterfactual names (entities the model never learned): pass --whp_names "
                          "'Name A,Name B,...' or holdout rows with an "
                          f"{config.whp_entity_field!r} column (the embedded holdout split has them).")
    return names


__all__ = ["TEACHER_FILE", "CounterfactualTeacher", "aligned_positions", "counterfactual_names",
           "counterfactual_rows", "replace_entity"]
