"""``hfcl compose`` and ``hfcl extract-lora``.

    hfcl compose "0.7*math + 0.3*code - 0.5*toxic" --adapter math=PATH_OR_ID --adapter code=... \\
        --adapter toxic=... --base MODEL --output_dir DIR [--lora_r R|auto] \\
        [--method linear|ties|dare_linear|dare_ties|magnitude_prune] [--density D] [--seed S] [--overwrite] [--force]
    hfcl extract-lora --model FINETUNED --base BASE --output_dir DIR [--lora_r R]
    hfcl compose --config compose.yaml          # keys = the flags; `expression:` may stand in for the positional

A Hub adapter can be pinned as ``NAME=owner/repo@REVISION``. ``--lora_r`` is the rank of the LoRA written (as in
every hfcl command): for compose it re-factors the result by truncated SVD (``auto``: each module's numerical rank,
lossless); the old ``--rank`` still works for one release. Every check (expression, bindings, adapter files and types,
base models, shapes, output directory) runs before any composition work.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import check_output_writable, parse_args
from ..errors import ConfigError
from ..utils.logging import get_logger
from .expression import parse_expression
from .guards import IncompatibleAdaptersError, check_against_base, check_output_dir, normalize_base
from .merges import MAJORITY_SIGN, MERGE_METHODS

logger = get_logger(__name__)


@dataclass
class ComposeArguments:
    """What to compose and how (the expression may be given positionally)."""

    expression: str = field(metadata={"help": 'Linear expression over adapter names, e.g. "0.7*math + 0.3*code - '
                                              '0.5*toxic" (also the first positional argument).'})
    adapter: list[str] = field(default_factory=list, metadata={
        "help": "Bind a name used in the expression to a local adapter folder or Hub id, NAME=PATH_OR_ID[@REV] "
                "(repeat the flag; in YAML a list or a NAME: PATH mapping).", "repeatable": True})
    base: str | None = field(default=None, metadata={
        "help": "Base model (zoo stage name, local folder or Hub id) the adapters belong to; its module shapes are "
                "checked and it is recorded in adapter_config.json."})
    output_dir: str | None = field(default=None, metadata={"help": "Output directory (required; refused if it "
                                                                   "exists, unless --overwrite)."})
    method: str = field(default="linear", metadata={
        "help": "linear = exact task arithmetic (default); the others merge true deltas element-wise.",
        "choices": list(MERGE_METHODS)})
    lora_r: str | None = field(default=None, metadata={
        "help": "Rank of the written LoRA: re-factor to this rank (optimal truncated SVD; the per-module relative "
                "error is reported), or 'auto' for each module's numerical rank (lossless). Default: exact stacked "
                "factors (linear) or the sum of source ranks (other methods)."})
    density: float | None = field(default=None, metadata={"help": "Fraction kept by ties/dare/magnitude_prune."})
    seed: int = field(default=0, metadata={"help": "Seed of DARE's random drop."})
    majority_sign: str = field(default="total", metadata={"help": "TIES sign election.",
                                                          "choices": list(MAJORITY_SIGN)})
    strict_modules: bool = field(default=False, metadata={
        "help": "Refuse adapters that target different modules (default: a module an adapter lacks counts as a "
                "zero delta, which is exact)."})
    force: bool = field(default=False, metadata={"help": "Compose adapters trained on different base models."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output directory."})

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ConfigError("--output_dir is required: the folder the composed adapter is written to.")


@dataclass
class ExtractArguments:
    """Which fine-tune to factor, against which base, into which folder."""

    model: str = field(metadata={"help": "Fine-tuned model (zoo stage, local folder or Hub id)."})
    base: str = field(metadata={"help": "The base model it was fine-tuned from."})
    output_dir: str = field(metadata={"help": "Output directory for the adapter (refused if it exists, unless "
                                              "--overwrite)."})
    lora_r: int = field(default=16, metadata={"help": "Maximum LoRA rank per module."})
    rtol: float | None = field(default=None, metadata={
        "help": "Also drop singular values below rtol * largest (per module)."})
    target_modules: list[str] | None = field(default=None, metadata={
        "help": "Only these module names (suffix match)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output directory."})


COMPOSE_DESCRIPTION = ("Compose PEFT adapters exactly on their weight deltas and save a standard PEFT LoRA adapter "
                       "plus hfcl_run.json.")
EXTRACT_DESCRIPTION = ("Extract a PEFT LoRA from a full fine-tune by truncated SVD of the weight delta "
                       "(W_ft - W_base) of every Linear module.")


def parse_bindings(items: Sequence[str] | Mapping[str, str]) -> dict[str, tuple[str, str | None]]:
    """``["math=path", "code=org/repo@v1"]`` -> ``{"math": ("path", None), "code": ("org/repo", "v1")}``; a mapping
    (a YAML ``adapter: {math: path}``) works too."""
    if isinstance(items, Mapping):
        items = [f"{name}={target}" for name, target in items.items()]
    elif isinstance(items, str):
        items = [items]
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

    (args,) = parse_args([ComposeArguments], argv, prog="hfcl compose", description=COMPOSE_DESCRIPTION,
                         positional=("expression",))
    started = time.perf_counter()
    weights = parse_expression(args.expression)
    bindings = parse_bindings(args.adapter)
    unbound = [n for n in weights if n not in bindings]
    if unbound:
        raise ConfigError(f"Expression uses {unbound} but no --adapter binds them; add --adapter NAME=PATH_OR_ID.")
    unused = [n for n in bindings if n not in weights]
    if unused:
        raise ConfigError(f"--adapter {unused} are not used in the expression {args.expression!r}.")
    check_output_dir(args.output_dir, args.overwrite)
    check_output_writable(args.output_dir)
    base = _resolve_base(args.base)
    adapters = {n: load_adapter(path, name=n, revision=rev) for n, (path, rev) in bindings.items()}
    if base is not None:
        for adapter in adapters.values():
            if adapter.base_model_name_or_path and normalize_base(adapter.base_model_name_or_path) != normalize_base(base) \
                    and not args.force:
                raise IncompatibleAdaptersError(
                    f"Adapter {adapter.name!r} was trained on {adapter.base_model_name_or_path!r}, not on --base "
                    f"{args.base!r}; pass --force if they are the same model.")
        meta = _meta_model(base)
        for adapter in adapters.values():
            check_against_base(adapter, meta)
    combination = Combination.from_weights(adapters, weights)
    result = compose(combination, method=args.method, rank=args.lora_r, density=args.density, seed=args.seed,
                     majority_sign=args.majority_sign, modules="strict" if args.strict_modules else "union",
                     force=args.force)
    first = next(iter(adapters.values()))
    recipe = {"command": "compose", "expression": args.expression, "base_model": base or first.base_model_name_or_path,
              "base_revision": first.base_revision,
              "config": dataclasses.asdict(args),
              "bindings": {n: {"source": p, "revision": adapters[n].revision} for n, (p, _) in bindings.items()},
              **result.recipe, "wall_seconds": round(time.perf_counter() - started, 3)}
    save_adapter(result.adapter, args.output_dir, overwrite=args.overwrite, base_model_name_or_path=base,
                 recipe=recipe, tokenizer=_tokenizer(base))
    ranks = [d.rank for d in result.adapter.deltas.values()] if hasattr(result.adapter, "deltas") else []
    print(f"composed {args.expression!r} with method={args.method}: {len(result.adapter.modules)} modules"
          + (f", rank {min(ranks)}-{max(ranks)}" if ranks else "")
          + f", max relative error {result.max_error:.2e} -> {args.output_dir}")
    return 0


def extract_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hfcl extract-lora``."""
    from ..zoo import resolve
    from .io import save_adapter
    from .task_vectors import extract_lora

    (args,) = parse_args([ExtractArguments], argv, prog="hfcl extract-lora", description=EXTRACT_DESCRIPTION)
    check_output_dir(args.output_dir, args.overwrite)
    check_output_writable(args.output_dir)
    started = time.perf_counter()
    base_path, model_path = resolve(args.base), resolve(args.model)
    base, finetuned = _load_causal_lm(base_path), _load_causal_lm(model_path)
    tokenizer = _tokenizer(model_path)
    result = extract_lora(base, finetuned, rank=args.lora_r, rtol=args.rtol, target_modules=args.target_modules)
    recipe = {"command": "extract-lora", "config": dataclasses.asdict(args), "base_model": base_path,
              "finetuned_model": model_path, **result.recipe(),
              "wall_seconds": round(time.perf_counter() - started, 3)}
    save_adapter(result.adapter, args.output_dir, overwrite=args.overwrite, base_model_name_or_path=base_path,
                 recipe=recipe, tokenizer=tokenizer)
    share = sum(result.uncaptured.values())
    print(f"extracted rank-{result.adapter.max_rank} LoRA on {len(result.adapter.deltas)} modules: max relative "
          f"error {result.max_error:.2e}; {share:.1%} of the delta norm^2 is outside Linear layers -> "
          f"{args.output_dir}")
    return 0
