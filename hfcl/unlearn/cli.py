"""``hfcl unlearn``: unlearn a forget split from a model and write a run directory.

    hfcl unlearn --output_dir out/npo                               # NPO+GradDiff, LoRA, embedded target, forget10
    hfcl unlearn --config unlearn.yaml --method SimNPO --lora false
    hfcl unlearn --model ./my-model --forget_file forget.jsonl --retain_file retain.jsonl --output_dir out/x
    hfcl unlearn --method negation --lam 2 --output_dir out/neg     # task-vector negation (``hfcl negate``'s options)

Every option of :class:`~hfcl.unlearn.run.UnlearnRunArgs` and :class:`~hfcl.unlearn.UnlearningConfig` (including
all ``TrainingArguments``) is a flag and a YAML key of the same name.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import parse_args


def _requested_method(argv: Sequence[str]) -> str | None:
    """``--method`` from the flags (or the ``--config`` YAML), read without parsing or changing anything else."""
    import argparse

    from ..config import read_yaml

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--method", default=None)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(list(argv))
    if known.method is None and known.config:
        return read_yaml(known.config).get("method")
    return known.method


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv or [])
    if (_requested_method(argv) or "").lower() == "negation":
        # Unlearning by negation is weight arithmetic, not a loss: train a forget LoRA, subtract lam * dW.
        from ..compose.negation_cli import main as negate_main

        return negate_main(argv, prog="hfcl unlearn --method negation")
    from .config import UnlearningConfig
    from .run import UnlearnRunArgs, unlearn

    run, config = parse_args([UnlearnRunArgs, UnlearningConfig], argv, prog="hfcl unlearn",
                             description="Make a model forget a split (NPO, GradDiff, SimNPO, IdkDPO, RMU, ...) and "
                                         "save the adapter or model, the tokenizer and hfcl_run.json atomically. "
                                         "`--method negation` takes `hfcl negate`'s options instead (see `hfcl "
                                         "unlearn --method negation --help`).")
    from ..config import check_output_writable

    if config.output_dir:
        check_output_writable(config.output_dir)
    out = unlearn(run, config)
    from ..utils.distributed import is_main_process

    if is_main_process():
        print(f"Unlearned with {config.method} -> {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main(sys.argv[1:]))
