"""``hfcl zoo``: build (or find) the embedded default models and show where they are."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config import parse_args
from .build import build_zoo
from .cache import read_marker
from .config import ZooConfig, tiny_config


@dataclass
class ZooArguments:
    """What to build."""

    stages: str = field(default="tokenizer,base,target,retain",
                        metadata={"help": "Comma-separated stages to build: tokenizer, base, base-v2, target, retain."})
    forget_split: str = field(default="forget10", metadata={"help": "Forget split the retain model excludes."})
    zoo: str = field(default="default", metadata={"help": "Zoo recipe: 'default' or 'tiny' (the test recipe); the "
                                                          "ZooConfig flags below override it.",
                                                  "choices": ["default", "tiny"]})


def main(argv: Sequence[str]) -> int:
    args, cfg = parse_args([ZooArguments, ZooConfig], argv, prog="hfcl zoo",
                           description="Build or locate the embedded default models (cached under HF_HOME/hfcl).")
    cfg = apply_zoo(args.zoo, cfg)
    from rich.console import Console
    from rich.table import Table

    from .train import set_progress

    set_progress(True)
    table = Table(title="hfcl zoo")
    for column in ("stage", "path", "build s", "train loss"):
        table.add_column(column)
    started = time.perf_counter()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    for stage, path in build_zoo(cfg, args.forget_split, stages).items():
        marker = read_marker(path) or {}
        loss = (marker.get("train_metrics") or {}).get("train_loss")
        table.add_row(marker.get("stage", stage), str(path), f"{marker.get('build_seconds', 0):.1f}",
                      "" if loss is None else f"{loss:.3f}")
    Console().print(table)
    Console().print(f"done in {time.perf_counter() - started:.1f}s")
    return 0


def apply_zoo(zoo: str, cfg: ZooConfig) -> ZooConfig:
    """The zoo recipe ``zoo`` ('default' or 'tiny') with the ZooConfig options set explicitly (flags or YAML keys,
    see :func:`hfcl.config.given_fields`) applied on top."""
    if zoo != "tiny":
        return cfg
    from ..config import given_fields

    return tiny_config(**{name: getattr(cfg, name) for name in given_fields(cfg)})
