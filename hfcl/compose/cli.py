"""``hfcl compose`` and ``hfcl extract-lora``.

    hfcl compose "0.7*math + 0.3*code - 0.5*toxic" --adapter math=PATH_OR_ID --adapter code=... \\
        --adapter toxic=... --base MODEL --out DIR [--rank R] \
        [--method linear|ties|dare_linear|dare_ties|magnitude_prune] [--density D] [--seed S] [--overwrite] [--force]
    hfcl extract-lora --model FINETUNED --base BASE --out DIR [--rank R]

A Hub adapter can be pinned as ``NAME=owner/repo@REVISION``. Every check (expression, bindings, adapter types, base
models, shapes, output directory) runs before any composition work.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Sequence

from ..errors import ConfigError
from ..utils.logging import get_logger
from .expression import parse_expression
from .guards import IncompatibleAdaptersError, _norm_base, check_against_base, check_output_dir
from .merges import MAJORITY_SIGN, MERGE_METHODS

logger = get_logger(__name__)


def _compose_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hfcl compose", description="Compose PEFT adapters exactly on their weight "
                                "deltas and save a standard PEFT LoRA adapter plus hfcl_run.json.")
    p.add_argument("expression", help='Linear expression over adapter names, e.g. "0.7*math + 0.3*code - 0.5*toxic".')
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH_OR_ID[@REV]",
                   help="Bind a name used in the expression to a local adapter folder or Hub id (repeatable).")
    p.add_argument("--base", default=None, help="Base model (zoo stage name, local folder or Hub id) the adapters "
                   "belong to; its module shapes are checked and it is recorded in adapter_config.json.")
    p.add_argument("--out", "--output_dir", dest="out", required=True,
                   help="Output directory (refused if it exists, unless --overwrite).")
    p.add_argument("--method", default="linear", choices=list(MERGE_METHODS),
                   help="linear = exact task arithmetic (default); the others merge true deltas element-wise.")
    p.add_argument("--rank", default=None, help="Re-factor to this rank (optimal truncated SVD; the per-module "
                   "relative error is reported), or 'auto' for each module's numerical rank (lossless). Default: "
                   "exact stacked factors (linear) or the sum of source ranks (other methods).")
    p.add_argument("--density", type=float, default=None, help="Fraction kept by ties/dare/magnitude_prune.")
    p.add_argument("--seed", type=int, default=0, help="Seed of DARE's random drop.")
    p.add_argument("--majority-sign", "--majority_sign", dest="majority_sign", default="total",
                   choices=list(MAJORITY_SIGN), help="TIES sign election.")
    p.add_argument("--strict-modules", "--strict_modules", dest="strict_modules", action="store_true",
                   help="Refuse adapters that target different modules "
                   "(default: a module an adapter lacks counts as a zero delta, which is exact).")
    p.add_argument("--force", action="store_true", help="Compose adapters trained on different base models.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing output directory.")
    return p


def parse_bindings(items: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """``["math=path", "code=org/repo@v1"]`` -> ``{"math": ("path", None), "code": ("org/repo", "v1")}``."""
    bindings: dict[str, tuple[str, str | None]] = {}
    for item in items:
        name, sep, target = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not target:
            raise ConfigError(f"--adapter {item!r} must look like NAME=PATH_OR_ID with NAME an identifier.")
        if name in bindings:
            raise ConfigError(f"Adapter name {name!r} is bound twice.")
        revision = None
        if not os.path.exists(target) and "@" in target:
            target, revision = target.rsplit("@", 1)
        bindings[name] = (target, revision)
    return bindings


def _meta_model(base: str) -> Any:
    """The base architecture on the meta device (module names and shapes, no weights loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def _resolve_base(base: str | None) -> str | None:
    if base is None:
        return None
    from ..zoo import resolve

    return resolve(base)


def _load_causal_lm(path: str) -> Any:
    from transformers import AutoModelForCausalLM

    from ..errors import ModelNotAvailableError

    try:
        return AutoModelForCausalLM.from_pretrained(path).eval()
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(f"Could not load {path!r} as a causal LM ({type(exc).__name__}: {exc}). Give a "
                                     "local model folder, a zoo stage (base, target, retain) or a reachable Hub id.") \
            from exc


def _tokenizer(base: str | None) -> Any:
    if base is None or not os.path.isdir(base):
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hfcl compose``."""
    from .algebra import Combination
    from .io import load_adapter, save_adapter
    from .merges import compose

    args = _compose_parser().parse_args(argv)
    started = time.perf_counter()
    weights = parse_expression(args.expression)
    bindings = parse_bindings(args.adapter)
    unbound = [n for n in weights if n not in bindings]
    if unbound:
        raise ConfigError(f"Expression uses {unbound} but no --adapter binds them; add --adapter NAME=PATH_OR_ID.")
    unused = [n for n in bindings if n not in weights]
    if unused:
        raise ConfigError(f"--adapter {unused} are not used in the expression {args.expression!r}.")
    check_output_dir(args.out, args.overwrite)
    base = _resolve_base(args.base)
    adapters = {n: load_adapter(path, name=n, revision=rev) for n, (path, rev) in bindings.items()}
    if base is not None:
        for adapter in adapters.values():
            if adapter.base_model_name_or_path and _norm_base(adapter.base_model_name_or_path) != _norm_base(base) \
                    and not args.force:
                raise IncompatibleAdaptersError(
                    f"Adapter {adapter.name!r} was trained on {adapter.base_model_name_or_path!r}, not on --base "
                    f"{args.base!r}; pass --force if they are the same model.")
        meta = _meta_model(base)
        for adapter in adapters.values():
            check_against_base(adapter, meta)
    combination = Combination.from_weights(adapters, weights)
    result = compose(combination, method=args.method, rank=args.rank, density=args.density, seed=args.seed,
                     majority_sign=args.majority_sign, modules="strict" if args.strict_modules else "union",
                     force=args.force)
    first = next(iter(adapters.values()))
    recipe = {"command": "compose", "expression": args.expression, "base_model": base or first.base_model_name_or_path,
              "base_revision": first.base_revision,
              "config": {k: v for k, v in vars(args).items()},
              "bindings": {n: {"source": p, "revision": adapters[n].revision} for n, (p, _) in bindings.items()},
              **result.recipe, "wall_seconds": round(time.perf_counter() - started, 3)}
    save_adapter(result.adapter, args.out, overwrite=args.overwrite, base_model_name_or_path=base,
                 recipe=recipe, tokenizer=_tokenizer(base))
    ranks = [d.rank for d in result.adapter.deltas.values()] if hasattr(result.adapter, "deltas") else []
    print(f"composed {args.expression!r} with method={args.method}: {len(result.adapter.modules)} modules"
          + (f", rank {min(ranks)}-{max(ranks)}" if ranks else "")
          + f", max relative error {result.max_error:.2e} -> {args.out}")
    return 0


def _extract_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hfcl extract-lora", description="Extract a PEFT LoRA from a full fine-tune "
                                "by truncated SVD of the weight delta (W_ft - W_base) of every Linear module.")
    p.add_argument("--model", required=True, help="Fine-tuned model (zoo stage, local folder or Hub id).")
    p.add_argument("--base", required=True, help="The base model it was fine-tuned from.")
    p.add_argument("--out", "--output_dir", dest="out", required=True, help="Output directory for the adapter.")
    p.add_argument("--rank", type=int, default=16, help="Maximum LoRA rank per module.")
    p.add_argument("--rtol", type=float, default=None,
                   help="Also drop singular values below rtol * largest (per module).")
    p.add_argument("--target-modules", "--target_modules", dest="target_modules", nargs="*", default=None,
                   help="Only these module names (suffix match).")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing output directory.")
    return p


def extract_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hfcl extract-lora``."""
    from ..zoo import resolve
    from .io import save_adapter
    from .task_vectors import extract_lora

    args = _extract_parser().parse_args(argv)
    if args.rank < 1:
        raise ConfigError(f"--rank must be >= 1, got {args.rank}.")
    check_output_dir(args.out, args.overwrite)
    started = time.perf_counter()
    base_path, model_path = resolve(args.base), resolve(args.model)
    base, finetuned = _load_causal_lm(base_path), _load_causal_lm(model_path)
    tokenizer = _tokenizer(model_path)
    result = extract_lora(base, finetuned, rank=args.rank, rtol=args.rtol, target_modules=args.target_modules)
    recipe = {"command": "extract-lora", "config": vars(args), "base_model": base_path,
              "finetuned_model": model_path, **result.recipe(),
              "wall_seconds": round(time.perf_counter() - started, 3)}
    save_adapter(result.adapter, args.out, overwrite=args.overwrite, base_model_name_or_path=base_path,
                 recipe=recipe, tokenizer=tokenizer)
    share = sum(result.uncaptured.values())
    print(f"extracted rank-{result.adapter.max_rank} LoRA on {len(result.adapter.deltas)} modules: max relative "
          f"error {result.max_error:.2e}; {share:.1%} of the delta norm^2 is outside Linear layers -> {args.out}")
    return 0
