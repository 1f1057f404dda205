"""``hfcl space``: serve the Gradio Space locally on the embedded default or any models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config import parse_args
from ..zoo.config import ZooConfig
from .app import SpaceSettings


@dataclass
class SpaceArguments:
    """Which models to show and where to serve them (the model recipe's options follow)."""

    models: str = field(default="target,retain",
                        metadata={"help": "Comma-separated models, NAME=SOURCE or SOURCE: zoo stages (target, retain, "
                                          "base), local folders (full model, PEFT adapter, run directory) or Hub ids; "
                                          "1 to 4."})
    reports: str = field(default="", metadata={"help": "Extra eval reports, NAME=PATH,... (a run directory's "
                                                       "eval_report.json is found without this)."})
    forget_split: str = field(default="forget10", metadata={"help": "Forget split of the zoo models and presets."})
    zoo: str = field(default="default", metadata={"help": "Zoo recipe of the stage names: 'default' or 'tiny' "
                                                          "(builds in seconds); ZooConfig flags override it.",
                                                  "choices": ["default", "tiny"]})
    presets_per_split: int = field(default=12, metadata={"help": "Preset questions per split (forget, retain, "
                                                                 "holdout)."})
    continual: str | None = field(default=None, metadata={
        "help": "A continual run for the Continual tab: an `hfcl continual` output folder or a Hub repo pushed "
                "with `hfcl push --stages` (pick a stage: R so far, forget events, answers vs the previous stage)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to serve on (0.0.0.0 for your network)."})
    port: int = field(default=7860, metadata={"help": "Port to serve on."})
    share: bool = field(default=False, metadata={"help": "Also open a public gradio.live link (off by default)."})


def main(argv: Sequence[str]) -> int:
    """Entry point of ``hfcl space``."""
    args, settings, cfg = parse_args(
        [SpaceArguments, SpaceSettings, ZooConfig], argv, prog="hfcl space",
        description="Serve the Gradio Space: several models answer side by side with their probability of the true "
                    "answer, a chat, the eval cards, adapter composition and a continual run stage by stage.")
    from ..zoo.cli import apply_zoo
    from .serve import launch_space

    cfg = apply_zoo(args.zoo, cfg)
    launch_space(args.models, host=args.host, port=args.port, share=args.share, settings=settings, zoo_config=cfg,
                 forget_split=args.forget_split, reports=args.reports or None,
                 presets_per_split=args.presets_per_split, continual=args.continual)
    return 0
