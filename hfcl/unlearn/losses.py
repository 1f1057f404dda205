"""Unlearning losses as pure functions over tensors.

Conventions (see ``shared/research/unlearning.md`` §1.6):

* ``labels`` use ``-100`` on prompt and padding tokens; a causal LM's logits at position ``t`` predict token ``t+1``,
  so every token-level function shifts once (``logits[:, :-1]`` against ``labels[:, 1:]``).
* ``log π(y|x)`` is the **sum** of answer-token log-probabilities (sequence level), never raw logits.
* Every loss is a sum over its units (answer tokens or examples) divided by ``denominator``. The default is the
  number of units in the batch, i.e. the plain mean that the formulas state. The trainer passes the number of units in
  the whole optimizer step (all accumulation micro-batches, all processes), so gradient accumulation and data
  parallelism give exactly the full-batch update.

Where we differ from OpenUnlearning, and why:

* KL retain and UNDIAL are averaged over answer tokens only; OpenUnlearning flattens every position (prompt and
  padding included) and divides by ``B·T``, and its UNDIAL one-hot lands on vocabulary id ``V-100`` at masked
  positions.
* RMU averages the squared error over the hidden size and then over answer positions of the whole batch, instead of
  per example then per batch, so accumulation is exact.
* RMU steers (and, for the ``embed`` retain term, matches) the hidden states at the positions whose *next* token is
  an answer token (:func:`answer_positions`, the positions every token loss here uses: the last prompt position up
  to the one before EOS). OpenUnlearning uses ``labels != -100``, the positions holding an answer token (the first
  answer token up to EOS): the same number of positions, shifted right by one.
* OpenUnlearning's RMU mean divides per-example sums ``S`` of shape ``[B]`` by token counts ``N`` of shape
  ``[B, 1]``: broadcasting makes a ``[B, B]`` matrix, so its loss is ``mean(S)·mean(1/N)`` rather than
  ``mean(S/N)``. The two agree when every example has the same number of answer tokens (e.g. batch size 1);
  hfcl's ``sum(S)/sum(N)`` agrees with both then (``tests/test_unlearn_losses.py`` checks the three).
* NPO/SimNPO/IdkDPO keep OpenUnlearning's ``2/β`` scaling so published hyperparameters carry over.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _reduce(total: torch.Tensor, denominator, default) -> torch.Tensor:
    den = default if denominator is None else denominator
    if torch.is_tensor(den):
        den = den.to(total.device, total.dtype)
    return total / den


def shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logits[:, :-1], labels[:, 1:] with -100 replaced by 0, mask of answer positions)``."""
    target = labels[:, 1:]
    mask = target.ne(IGNORE_INDEX)
    return logits[:, :-1].float(), target.masked_fill(~mask, 0), mask


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position ``log p(y_t)`` (0 where masked) and the answer mask, both ``[B, T-1]``."""
    lg, target, mask = shift(logits, labels)
    logp = -F.cross_entropy(lg.reshape(-1, lg.shape[-1]), target.reshape(-1), reduction="none")
    return logp.view(target.shape) * mask, mask


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log π(y|x) summed over answer tokens [B], number of answer tokens [B])``."""
    logp, mask = token_logps(logits, labels)
    return logp.sum(-1), mask.sum(-1)


def nll_loss(logits, labels, denominator=None) -> torch.Tensor:
    """Mean answer-token negative log-likelihood (HF's causal-LM loss). Retain NLL, IdkNLL."""
    logp, mask = token_logps(logits, labels)
    return _reduce(-logp.sum(), denominator, mask.sum())


def grad_ascent_loss(logits, labels, denominator=None) -> torch.Tensor:
    """GradAscent / GradDiff forget term: ``-NLL`` (minimising it raises the forget NLL)."""
    return -nll_loss(logits, labels, denominator)


def npo_loss(logps, ref_logps, beta: float, denominator=None) -> torch.Tensor:
    """NPO: ``-(2/β)·mean logσ(-β·(log π_θ(y|x) - log π_ref(y|x)))`` over forget examples."""
    total = -(2.0 / beta) * F.logsigmoid(-beta * (logps - ref_logps)).sum()
    return _reduce(total, denominator, logps.numel())


def simnpo_loss(logps, lengths, beta: float, delta: float = 0.0, denominator=None) -> torch.Tensor:
    """SimNPO: ``-(2/β)·mean logσ(β·(NLL(y|x)/|y| - δ))``; reference-free, length-normalised."""
    ell = -logps / lengths.clamp(min=1) - delta
    total = -(2.0 / beta) * F.logsigmoid(beta * ell).sum()
    return _reduce(total, denominator, logps.numel())


def dpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta: float,
             denominator=None) -> torch.Tensor:
    """IdkDPO: ``-(2/β)·mean logσ(β·[(log π_θ(y_w)-log π_ref(y_w)) - (log π_θ(y_l)-log π_ref(y_l))])``.

    ``y_w`` is the refusal ("I don't know") answer, ``y_l`` the original forget answer.
    """
    margin = (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)
    total = -(2.0 / beta) * F.logsigmoid(beta * margin).sum()
    return _reduce(total, denominator, chosen_logps.numel())


def wga_loss(logits, labels, beta: float = 1.0, denominator=None) -> torch.Tensor:
    """WGA: ``-mean_t(w_t·ℓ_t)`` with ``w_t = p_θ(y_t)^β`` detached (weighted gradient ascent)."""
    logp, mask = token_logps(logits, labels)
    weight = torch.exp(beta * logp.detach()) * mask
    return _reduce((weight * logp).sum(), denominator, mask.sum())


def undial_loss(logits, ref_logits, labels, beta: float = 10.0, denominator=None) -> torch.Tensor:
    """UNDIAL: cross-entropy to ``softmax(z_ref - β·onehot(y_t))`` averaged over answer positions."""
    lg, target, mask = shift(logits, labels)
    ref = ref_logits[:, :-1].float().detach()
    ref = ref - beta * F.one_hot(target, ref.shape[-1]).to(ref.dtype)
    soft = F.softmax(ref, dim=-1)
    ce = -(soft * F.log_softmax(lg, dim=-1)).sum(-1)
    return _reduce((ce * mask).sum(), denominator, mask.sum())


def kl_loss(logits, ref_logits, labels, denominator=None) -> torch.Tensor:
    """Retain KL: ``KL(p_ref ‖ p_θ)`` per answer position (summed over the vocabulary), averaged over positions."""
    lg, _, mask = shift(logits, labels)
    ref_logp = F.log_softmax(ref_logits[:, :-1].float().detach(), dim=-1)
    logp = F.log_softmax(lg, dim=-1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return _reduce((kl * mask).sum(), denominator, mask.sum())


def teacher_kl_loss(logits, rows, positions, teacher_ids, teacher_logp, denominator=None) -> torch.Tensor:
    """WHP counterfactual term: ``KL(p_teacher ‖ p_θ)`` at the teacher's positions, summed over its top-k tokens.

    ``logits[rows[k], positions[k]]`` is the student's prediction that teacher entry ``k`` (token ids
    ``teacher_ids[k]``, renormalised log-probs ``teacher_logp[k]``) targets; the student is normalised over the
    whole vocabulary, so the truncated KL is still >= 0. Summed over entries, divided by ``denominator`` (default:
    the number of entries).
    """
    if rows.numel() == 0:
        return logits.sum() * 0.0  # no aligned token in this micro-batch: a zero that keeps the graph
    logp = F.log_softmax(logits[rows, positions].float(), dim=-1).gather(-1, teacher_ids)
    teacher = teacher_logp.float()
    kl = (teacher.exp() * (teacher - logp)).sum(-1)
    return _reduce(kl.sum(), denominator, rows.numel())


def uniform_kl_loss(logits, labels, denominator=None) -> torch.Tensor:
    """ULD's retain term for the assistant: ``KL(p_θ ‖ uniform) = Σ_v p_v log p_v + log V`` per answer position,
    averaged over positions (0 when the assistant has no opinion: the subtraction then leaves the target alone)."""
    lg, _, mask = shift(logits, labels)
    logp = F.log_softmax(lg, dim=-1)
    kl = (logp.exp() * logp).sum(-1) + math.log(lg.shape[-1])
    return _reduce((kl * mask).sum(), denominator, mask.sum())


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """Mask ``[B, T]`` of positions whose next token is an answer token (the positions token losses use)."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:].ne(IGNORE_INDEX)
    return mask


def rmu_forget_loss(hidden, control, mask, denominator=None) -> torch.Tensor:
    """RMU forget term: ``mean over masked positions of mean_d (h - c·u)²`` (``control = c·u``, shape ``[d]``)."""
    err = (hidden.float() - control.to(hidden.device, torch.float32)).pow(2).mean(-1)
    return _reduce((err * mask).sum(), denominator, mask.sum())


def rmu_retain_loss(hidden, ref_hidden, mask, denominator=None) -> torch.Tensor:
    """RMU retain term: ``mean over masked positions of mean_d (h_θ - h_ref)²``."""
    err = (hidden.float() - ref_hidden.float().detach()).pow(2).mean(-1)
    return _reduce((err * mask).sum(), denominator, mask.sum())


def rmu_control_vector(hidden_size: int, coeff: float, seed: int) -> torch.Tensor:
    """``c·u`` with ``u`` uniform on [0, 1)^d normalised to unit length, fixed by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(hidden_size, generator=gen)
    return coeff * u / u.norm()


__all__ = [
    "IGNORE_INDEX",
    "answer_positions",
    "dpo_loss",
    "grad_ascent_loss",
    "kl_loss",
    "nll_loss",
    "npo_loss",
    "rmu_control_vector",
    "rmu_forget_loss",
    "rmu_retain_loss",
    "sequence_logps",
    "shift",
    "simnpo_loss",
    "token_logps",
    "undial_loss",
    "uniform_kl_loss",
    "teacher_kl_loss",
    "wga_loss",
]
