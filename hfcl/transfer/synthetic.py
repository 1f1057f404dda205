"""Data-free transfer data: synthetic prompts from the source model, filtered by a real-vs-synthetic discriminator.

Trans-LoRA (Wang et al., NeurIPS 2024) prompts a large source model with a few real seed examples to write new
task-like prompts. A small model cannot follow such an instruction, so hfcl's generator works at any scale:

1. take a seed question, keep its first ``k`` words (``k`` drawn uniformly), and let the *source model* continue the
   text by sampling (plain language-model mode), up to the first sentence end; the result is a new question that
   shares the seed's intent but talks about whatever the model knows;
2. a :class:`Discriminator` (logistic regression on the source model's mean-pooled hidden states, trained on the
   seeds against a separate batch of synthetic prompts) keeps the synthetic prompts it finds real-looking, which pulls
   the set toward the real prompt distribution (rejection sampling).

Only the seeds are real data; nothing else from the original training set is read.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..utils.logging import get_logger
from .errors import TransferError

logger = get_logger(__name__)
_END = re.compile(r"[?.!\n]")


def cut_question(prefix: str, continuation: str) -> str:
    """``prefix`` + ``continuation`` (decoded as is) up to its first sentence end, as a question ending in '?'."""
    match = _END.search(continuation)
    tail = continuation[: match.start()] if match else continuation
    text = " ".join((prefix + tail).split())
    return text.rstrip(" ,;:") + "?"


@torch.inference_mode()
def generate_synthetic_prompts(model, tokenizer, seeds: Sequence[str], n: int, seed: int = 0,
                               temperature: float = 1.0, max_new_tokens: int = 12,
                               batch_size: int = 32) -> list[str]:
    """``n`` distinct synthetic questions (not equal to any seed) continued by ``model`` from seed prefixes."""
    if not seeds:
        raise TransferError("generate_synthetic_prompts needs at least one seed question.")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    known, out = set(seeds), []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    try:
        for _attempt in range(max(4, 4 * n // batch_size + 4)):
            prefixes = []
            for _ in range(batch_size):
                words = rng.choice(list(seeds)).rstrip("?").split()
                k = rng.randint(1, max(1, len(words) - 1))
                prefixes.append(" ".join(words[:k]))
            ids = [[tokenizer.bos_token_id] + tokenizer(p, add_special_tokens=False)["input_ids"]
                   for p in prefixes]
            batch = tokenizer.pad({"input_ids": ids}, return_tensors="pt")
            gen = model.generate(**batch, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                 max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(gen[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            for prefix, text in zip(prefixes, texts):
                question = cut_question(prefix, text)
                if question not in known and len(question) > 3:
                    known.add(question)
                    out.append(question)
            if len(out) >= n:
                break
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    if len(out) < n:
        logger.warning("Generated %d distinct synthetic prompts of %d asked.", len(out), n)
    return out[:n]


@torch.inference_mode()
def prompt_features(model, tokenizer, questions: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """Mean-pooled last hidden state of ``model`` over each rendered question prompt (n, hidden)."""
    from ..data.formatting import prompt_ids

    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    feats = []
    try:
        for start in range(0, len(questions), batch_size):
            ids = [prompt_ids(tokenizer, [{"role": "user", "content": q}])
                   for q in questions[start:start + batch_size]]
            batch = tokenizer.pad({"input_ids": ids}, return_tensors="pt")
            out = model(**batch, output_hidden_states=True)
            hidden = out.hidden_states[-1].float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            feats.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    finally:
        tokenizer.padding_side = side
    return np.concatenate(feats, axis=0)


@dataclass
class Discriminator:
    """Real-vs-synthetic classifier over frozen LM features (logistic regression, balanced classes)."""

    threshold: float = field(default=0.5)
    c: float = field(default=1.0)

    def fit(self, real: np.ndarray, synthetic: np.ndarray) -> Discriminator:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        x = np.concatenate([real, synthetic])
        y = np.concatenate([np.ones(len(real)), np.zeros(len(synthetic))])
        self._scaler = StandardScaler().fit(x)
        self._clf = LogisticRegression(C=self.c, class_weight="balanced", max_iter=1000).fit(
            self._scaler.transform(x), y)
        return self

    def p_real(self, features: np.ndarray) -> np.ndarray:
        """Probability that each row is real data."""
        return self._clf.predict_proba(self._scaler.transform(features))[:, 1]

    def accept(self, features: np.ndarray, min_keep: int = 1) -> np.ndarray:
        """Indices kept: P(real) >= threshold, or the ``min_keep`` most real-looking if fewer pass."""
        scores = self.p_real(features)
        keep = np.flatnonzero(scores >= self.threshold)
        if len(keep) < min_keep:
            keep = np.argsort(-scores)[:min_keep]
        return np.sort(keep)


def filtered_synthetic_prompts(model, tokenizer, seeds: Sequence[str], n_generate: int, n_calibration: int,
                               threshold: float = 0.5, min_keep: int = 8, seed: int = 0,
                               temperature: float = 1.0) -> tuple[list[str], dict]:
    """Generate, fit the discriminator on seeds vs a calibration batch, filter the rest; returns (kept, stats)."""
    prompts = generate_synthetic_prompts(model, tokenizer, seeds, n_generate + n_calibration, seed=seed,
                                         temperature=temperature)
    if len(prompts) <= n_calibration:
        raise TransferError(f"Only {len(prompts)} distinct synthetic prompts were generated; need more than "
                            f"n_calibration={n_calibration}. Raise the sampling temperature or add seeds.")
    calibration, pool = prompts[:n_calibration], prompts[n_calibration:]
    disc = Discriminator(threshold=threshold).fit(prompt_features(model, tokenizer, list(seeds)),
                                                  prompt_features(model, tokenizer, calibration))
    keep = disc.accept(prompt_features(model, tokenizer, pool), min_keep=min(min_keep, len(pool)))
    kept = [pool[i] for i in keep]
    stats = {"generated": len(pool), "calibration": len(calibration), "accepted": len(kept),
             "acceptance_rate": round(len(kept) / len(pool), 4), "threshold": threshold}
    return kept, stats
