"""Optimal low-rank re-factoring of a stacked LoRA delta without forming the dense matrix.

For ``dW = B @ A`` with ``B: (m, R)``, ``A: (R, n)`` (scaling folded) take thin QR factorisations
``B = Q_b R_b`` and ``A^T = Q_a R_a``. Then ``dW = Q_b (R_b R_a^T) Q_a^T`` and the SVD of the small core
``R_b R_a^T = U S V^T`` gives the exact SVD ``dW = (Q_b U) S (Q_a V)^T``. Truncating to ``k`` singular values is the
Eckart-Young optimum; its relative Frobenius error is ``sqrt(sum_{i>k} S_i^2 / sum_i S_i^2)``, computed from ``S``.
Cost ``O((m + n) R^2 + R^3)`` instead of PEFT ``svd``'s dense ``O(m n min(m, n))`` SVD per module.

The new factors split the singular values evenly (``B' = Q_b U_k sqrt(S_k)``, ``A' = sqrt(S_k) V_k^T Q_a^T``), like
mergekit's ``extract-lora --distribute-scale`` (PEFT ``svd`` puts all of ``S`` in ``B``); the product is the same.
The maths runs in float64 by default and the factors come back in the input dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .deltas import LowRankDelta


@dataclass(frozen=True)
class Compressed:
    """A re-factored delta, the singular values of the original, and the relative Frobenius error of the cut."""

    delta: LowRankDelta
    singular_values: torch.Tensor
    rel_error: float

    @property
    def rank(self) -> int:
        return self.delta.rank


def numerical_rank(singular_values: torch.Tensor, rtol: float | None = None) -> int:
    """Number of singular values above ``rtol * max`` (default: ``len * eps`` of float32, i.e. only round-off)."""
    if singular_values.numel() == 0 or float(singular_values[0]) == 0.0:
        return 0
    if rtol is None:
        rtol = max(singular_values.numel(), 1) * torch.finfo(torch.float32).eps
    return int((singular_values > rtol * singular_values[0]).sum())


def _choose_rank(s: torch.Tensor, rank: int | None, rtol: float | None) -> int:
    """``rank`` capped by the number of singular values; with ``rtol`` also by the numerical rank."""
    if rank is None:
        return numerical_rank(s, rtol)
    cap = numerical_rank(s, rtol) if rtol is not None else s.numel()
    return min(rank, cap)


def _tail_error(s: torch.Tensor, k: int) -> float:
    total = float((s ** 2).sum())
    return 0.0 if total == 0.0 else float(((s[k:] ** 2).sum() / total).sqrt())


def _from_svd(u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, k: int, dtype: torch.dtype) -> LowRankDelta:
    root = s[:k].sqrt()
    return LowRankDelta((root[:, None] * vh[:k]).to(dtype).contiguous(), (u[:, :k] * root).to(dtype).contiguous())


def compress_delta(delta: LowRankDelta, rank: int | None = None, rtol: float | None = None,
                   compute_dtype: torch.dtype = torch.float64) -> Compressed:
    """Best rank-``rank`` approximation of ``delta`` (``rank=None``: its numerical rank, i.e. lossless).

    ``rtol`` drops singular values below ``rtol * max`` (default with ``rank=None``: round-off level only).

    ``rank`` larger than the stacked rank keeps every direction (exact up to round-off).
    """
    if rank is not None and rank < 0:
        raise ConfigError(f"rank must be >= 0, got {rank}.")
    dtype = delta.A.dtype
    out_f, in_f = delta.shape
    if delta.rank == 0:
        return Compressed(LowRankDelta.zero(out_f, in_f, dtype), torch.zeros(0, dtype=compute_dtype), 0.0)
    a = delta.A.to(compute_dtype) * delta.scaling
    b = delta.B.to(compute_dtype)
    q_b, r_b = torch.linalg.qr(b)          # (m, p), (p, R)
    q_a, r_a = torch.linalg.qr(a.T)        # (n, q), (q, R)
    u, s, vh = torch.linalg.svd(r_b @ r_a.T, full_matrices=False)
    k = _choose_rank(s, rank, rtol)
    core = _from_svd(u, s, vh, k, compute_dtype)
    new = LowRankDelta((core.A @ q_a.T).to(dtype).contiguous(), (q_b @ core.B).to(dtype).contiguous())
    return Compressed(new, s, _tail_error(s, k))


def truncated_svd(dense: torch.Tensor, rank: int | None = None, rtol: float | None = None,
                  compute_dtype: torch.dtype = torch.float64) -> Compressed:
    """Best rank-``rank`` LowRankDelta of a dense ``(out, in)`` matrix (reduced SVD; for merges and task vectors)."""
    if dense.dim() != 2:
        raise ConfigError(f"truncated_svd needs a 2-D matrix, got shape {tuple(dense.shape)}.")
    u, s, vh = torch.linalg.svd(dense.to(compute_dtype), full_matrices=False)
    k = _choose_rank(s, rank, rtol)
    return Compressed(_from_svd(u, s, vh, k, dense.dtype), s, _tail_error(s, k))
