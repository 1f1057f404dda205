"""Continual-learning strategies that compose (``"replay,ewc"``); one class per strategy, one registry line each."""

from __future__ import annotations

from .base import Quadratic, Strategy, Term, add_quadratic_grad_, snapshot, squared_distance
from .ema import EMA
from .lwf import LwF
from .olora import OLoRA
from .regularizers import EWC, L2, OnlineEWC
from .replay import Replay

STRATEGIES: dict[str, type[Strategy]] = {
    "naive": Strategy, "replay": Replay, "ewc": EWC, "online_ewc": OnlineEWC, "l2": L2, "lwf": LwF,
    "olora": OLoRA, "ema": EMA,
}


def build_strategies(args) -> list[Strategy]:
    """One instance per name in ``args.strategy`` (``naive`` alone gives no strategy at all)."""
    return [STRATEGIES[name](args) for name in args.strategy_names if name != "naive"]


__all__ = [
    "EMA",
    "EWC",
    "L2",
    "STRATEGIES",
    "LwF",
    "OLoRA",
    "OnlineEWC",
    "Quadratic",
    "Replay",
    "Strategy",
    "Term",
    "add_quadratic_grad_",
    "build_strategies",
    "snapshot",
    "squared_distance",
]
