"""``hfcl transfer``: move an adapter to another base, and ``hfcl transfer task``: train the embedded task adapter.

    hfcl transfer --adapter DIR --target_base base-v2 --method copy|distill --output_dir OUT [--source_base base]
        [--seeds embedded|FILE.jsonl] [--n_seeds 16] [--eval_data embedded|FILE.jsonl|none] [--zoo tiny]
    hfcl transfer task --output_dir DIR [--base base] [--drop_rate 0.1 --mask_rate 0.0] [--zoo tiny]

Every check (adapter folder, output folder, source fit, target shapes and tokenizer for copy, seed count for
distill) runs before a model is loaded. Exit code 0 on success, 2 on bad input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError, HfclError
from ..utils.logging import get_logger

logger = get_logger(__name__)


@dataclass
class TransferArguments:
    """What to move where (the distillation knobs are the :class:`TransferConfig` fields)."""

    adapter: str = field(metadata={"help": "Folder of the PEFT adapter to move."})
    target_base: str = field(metadata={"help": "Base to move it to: zoo stage (base-v2...) or local folder."})
    method: str = field(default="copy", metadata={"help": "copy (check + load as is) or distill (data-free "
                                                          "Trans-LoRA)."})
    source_base: str | None = field(default=None, metadata={"help": "Base the adapter was trained on (default: "
                                                                    "the base the adapter records: adapter_config.json's "
                                                                    "base_model_name_or_path, else its hfcl_run.json; "
                                                                    "a different base is refused)."})
    seeds: str = field(default="embedded", metadata={"help": "distill: seed examples, a JSON/JSONL file of "
                                                             "question/answer rows, or 'embedded' (the embedded "
                                                             "sentence task's training split)."})
    n_seeds: int = field(default=16, metadata={"help": "Seed examples taken from --seeds."})
    eval_data: str = field(default="embedded", metadata={"help": "Task rows to evaluate source/target with and "
                                                                 "without the adapter: file, 'embedded' or 'none'."})
    metric: str = field(default="probability", metadata={"help": "Task metric: probability or rouge."})
    init: str = field(default="auto", metadata={"help": "distill: start the new LoRA from the source adapter "
                                                        "('source'), from zero ('fresh', Trans-LoRA) or 'auto'."})
    zoo: str = field(default="default", metadata={"help": "Zoo recipe for stage names: default or tiny."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output directory."})


@dataclass
class TaskArguments:
    """Train the embedded sentence-answer task adapter (optionally with Trans-PEFT)."""

    output_dir: str = field(metadata={"help": "Where the adapter is written."})
    base: str = field(default="base", metadata={"help": "Base to train on (zoo stage or folder)."})
    drop_rate: float = field(default=0.0, metadata={"help": "Trans-PEFT FFN dropping rate (0 disables)."})
    mask_rate: float = field(default=0.0, metadata={"help": "Trans-PEFT FFN intermediate masking rate."})
    num_train_epochs: float = field(default=20.0, metadata={"help": "Training epochs."})
    learning_rate: float = field(default=3e-3, metadata={"help": "Peak learning rate."})
    seed: int = field(default=0, metadata={"help": "Training seed."})
    zoo: str = field(default="default", metadata={"help": "Zoo recipe for stage names: default or tiny."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output directory."})


def zoo_config(name: str):
    """The zoo recipe named ``name`` ("default" or "tiny")."""
    from ..zoo import ZooConfig, tiny_config

    if name not in ("default", "tiny"):
        raise ConfigError(f"zoo={name!r}: choose 'default' or 'tiny'.")
    return tiny_config() if name == "tiny" else ZooConfig()


def read_rows(path: str) -> list[dict]:
    """Rows of a JSON list or JSONL file with at least a ``question`` column."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{path} is not a file; give a JSON/JSONL file of question/answer rows or 'embedded'.")
    text = file.read_text()
    rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x.strip()]
    if not all(isinstance(r, dict) and "question" in r for r in rows):
        raise DataError(f"{path}: every row needs a 'question' (and, for evaluation, an 'answer').")
    return rows


def _task_main(argv: Sequence[str]) -> int:
    from ..config import parse_args
    from .api import resolve_base
    from .task import save_task_adapter, sentence_task, train_task_adapter

    (args,) = parse_args([TaskArguments], argv, "hfcl transfer task",
                         "Train the embedded sentence-answer task adapter on a base (optionally with Trans-PEFT), the "
                         "adapter `hfcl transfer` then moves to another base.")
    from ..config import check_output_writable

    cfg = zoo_config(args.zoo)
    if Path(args.output_dir).exists() and not args.overwrite:
        raise ConfigError(f"Output directory {args.output_dir!r} exists; pass --overwrite.")
    check_output_writable(args.output_dir)
    base_dir = resolve_base(args.base, cfg)
    from ..zoo.build import load_model

    model, tokenizer = load_model(str(base_dir))
    data = sentence_task(cfg)
    model = train_task_adapter(model, tokenizer, data["train"], epochs=args.num_train_epochs,
                               learning_rate=args.learning_rate, seed=args.seed, mask_rate=args.mask_rate,
                               drop_rate=args.drop_rate)
    save_task_adapter(model, tokenizer, args.output_dir, base_dir, mask_rate=args.mask_rate,
                      drop_rate=args.drop_rate, overwrite=args.overwrite)
    print(f"Task adapter written to {args.output_dir}")
    return 0


def _transfer_main(argv: Sequence[str]) -> int:
    from ..config import parse_args
    from .api import format_gain, transfer
    from .distill import TransferConfig
    from .task import sentence_task

    args, config = parse_args([TransferArguments, TransferConfig], argv, "hfcl transfer",
                              "Move a PEFT adapter to a new or updated base model (copy or data-free distill). "
                              "`hfcl transfer task --help`: train the embedded task adapter to move.")
    if config.output_dir is None:
        raise ConfigError("--output_dir is required: the folder the moved adapter is written to.")
    from ..config import check_output_writable

    check_output_writable(config.output_dir)
    cfg = zoo_config(args.zoo)
    seeds = eval_rows = None
    embedded = None
    if args.method == "distill":
        if args.seeds == "embedded":
            embedded = sentence_task(cfg)
            train = embedded["train"].shuffle(seed=config.seed)
            seeds = [dict(r) for r in train.select(range(min(args.n_seeds, len(train))))]
        else:
            seeds = read_rows(args.seeds)[: args.n_seeds]
    if args.eval_data == "embedded":
        eval_rows = (embedded or sentence_task(cfg))["test"]
    elif args.eval_data != "none":
        eval_rows = read_rows(args.eval_data)
    out = config.output_dir
    summary = transfer(args.adapter, args.target_base, method=args.method, output_dir=out,
                       source_base=args.source_base, seeds=seeds, eval_rows=eval_rows, config=config, zoo_config=cfg,
                       overwrite=args.overwrite, init=args.init, metric=args.metric)
    ev = summary.get("evaluation")
    if ev:
        s = ev["scores"]
        print(f"{args.metric}: source {s['source_base']:.3f} -> +adapter {s['source_base+adapter']:.3f} | target "
              f"{s['target_base']:.3f} -> +adapter {s['target_base+adapter']:.3f} | {format_gain(ev)}")
    print(f"Adapter for {args.target_base} written to {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hfcl transfer``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "task":
            return _task_main(argv[1:])
        return _transfer_main(argv)
    except HfclError as exc:
        print(f"hfcl transfer: error: {exc}", file=sys.stderr)
        return 2
