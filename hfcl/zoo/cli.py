"""``hfcl zoo``: build (or find) the embedded default models and show where they are."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

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
    preset: str = field(default="default", metadata={"help": "Recipe preset: 'default' or 'tiny' (the test recipe); "
                                                             "other flags override it.",
                                                     "choices": ["default", "tiny"]})


def main(argv: Sequence[str]) -> int:
    args, cfg = parse_args([ZooArguments, ZooConfig], argv, prog="hfcl zoo",
                           description="Build or locate the embedded default models (cached under HF_HOME/hfcl).")
    cfg = apply_preset(args.preset, cfg, argv)
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


def apply_preset(preset: str, cfg: ZooConfig, argv: Sequence[str]) -> ZooConfig:
    """``tiny`` preset with any ZooConfig flag given on the command line applied on top."""
    if preset != "tiny":
        return cfg
    import dataclasses

    given = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(ZooConfig)
             if any(a == f"--{f.name}" or a.startswith(f"--{f.name}=") for a in argv)}
    return tiny_config(**given)
