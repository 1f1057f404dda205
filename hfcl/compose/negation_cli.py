"""``hfcl negate``: unlearning by negation of a forget-set LoRA (also the engine of ``hfcl unlearn --method negation``).

    hfcl negate --model target --forget_split forget10 --lam 2 --output_dir out/negation
    hfcl negate --config negation.yaml            # same keys as the flags

Trains a LoRA on the forget split on top of ``--model``, then writes ``W - lam * dW_forget`` as a standard run
directory (full model, or with ``--save adapter`` a PEFT LoRA against ``--model``) plus ``forget_adapter/`` and
``hfcl_run.json``. Evaluate it with ``hfcl eval --model out/negation``; other ``lam`` values need no retraining:
``hfcl compose "-4*forget" --adapter forget=out/negation/forget_adapter --output_dir ...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass
class NegationArguments:
    """Options of ``hfcl negate``."""

    model: str = field(default="target", metadata={"help": "Model to unlearn from: a zoo stage (target), a local "
                                                           "folder or a Hub id."})
    forget_split: str = field(default="forget10", metadata={"help": "Embedded-world forget split: forget01, "
                                                                    "forget05 or forget10."})
    lam: float = field(default=2.0, metadata={"help": "Weight of the subtracted forget LoRA (larger forgets more "
                                                      "and costs more utility)."})
    output_dir: str = field(default="hfcl-negation", metadata={"help": "Run directory to write (refused if it "
                                                                       "exists, unless --overwrite)."})
    save: str = field(default="model", metadata={"help": "'model': the unlearned full model; 'adapter': a PEFT "
                                                         "LoRA holding -lam * dW_forget against --model.",
                                                 "choices": ["model", "adapter"]})
    lora_r: int = field(default=8, metadata={"help": "Rank of the forget LoRA."})
    lora_alpha: float = field(default=16.0, metadata={"help": "lora_alpha of the forget LoRA."})
    num_train_epochs: float = field(default=5.0, metadata={"help": "Epochs of forget-LoRA training."})
    learning_rate: float = field(default=3e-3, metadata={"help": "Learning rate of forget-LoRA training."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Per-device batch size of forget-LoRA "
                                                                          "training."})
    max_length: int = field(default=256, metadata={"help": "Maximum tokens per example."})
    seed: int = field(default=0, metadata={"help": "Seed of LoRA init and data order."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing --output_dir."})
    zoo: str = field(default="default", metadata={"help": "Embedded world and zoo recipe: 'default' or 'tiny' "
                                                          "(the reduced one the tests use).",
                                                  "choices": ["default", "tiny"]})
    method: str = field(default="negation", metadata={"help": "Always 'negation' (so that `hfcl unlearn --method "
                                                              "negation` passes its flags here unchanged)."})

    def __post_init__(self) -> None:
        if not self.lam > 0:
            raise ConfigError(f"lam must be > 0 (the weight of the subtracted forget LoRA), got {self.lam}.")
        if self.method.lower() != "negation":
            raise ConfigError(f"method must be 'negation' here, got {self.method!r}; other methods: hfcl unlearn.")
        if self.forget_split not in ("forget01", "forget05", "forget10"):
            raise ConfigError(f"forget_split must be forget01, forget05 or forget10, got {self.forget_split!r}.")


def main(argv: Sequence[str] | None = None, prog: str = "hfcl negate") -> int:
    """Entry point of ``hfcl negate`` (and of ``hfcl unlearn --method negation``, with ``prog`` to match)."""
    from ..config import parse_args
    from ..zoo import ZooConfig, tiny_config

    (args,) = parse_args([NegationArguments], list(argv or []), prog=prog,
                         description="Unlearn by negation: train a LoRA on the forget split, subtract lam times its "
                                     "weight delta from the model, and save a run directory.")
    cfg = tiny_config() if args.zoo == "tiny" else ZooConfig()
    from ..config import check_output_writable
    from .guards import check_output_dir

    check_output_dir(args.output_dir, args.overwrite)
    check_output_writable(args.output_dir)
    from ..data import load_tofu
    from .negation import unlearn_by_negation

    forget = load_tofu(args.forget_split, world_config=cfg)["forget"]
    result = unlearn_by_negation(args.model, forget, lam=args.lam, output_dir=args.output_dir, zoo_config=cfg,
                                 r=args.lora_r, lora_alpha=args.lora_alpha, epochs=args.num_train_epochs,
                                 learning_rate=args.learning_rate, batch_size=args.per_device_train_batch_size,
                                 max_length=args.max_length, seed=args.seed, save=args.save,
                                 overwrite=args.overwrite, forget_split=args.forget_split)
    print(f"negated a rank-{args.lora_r} forget LoRA ({len(forget)} {args.forget_split} examples) with lam={args.lam:g} "
          f"in {result.recipe['wall_seconds']:.1f}s -> {result.output_dir}")
    return 0
