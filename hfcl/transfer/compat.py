"""Can an adapter move to another base as is? Shapes, modules, architecture and tokenizer, read from file headers.

Nothing here loads a model: base weights' shapes come from safetensors headers, so the check is instant and runs
before any transfer work.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import IncompatibleBaseError, TransferError

ADAPTER_PREFIX = "base_model.model."


def adapter_files(adapter_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """``(adapter_config, weights file)`` of a PEFT adapter folder, or :class:`TransferError`."""
    folder = Path(adapter_dir)
    config, weights = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not config.is_file() or not weights.is_file():
        raise TransferError(f"{folder} is not a PEFT adapter folder (needs adapter_config.json and "
                            "adapter_model.safetensors); pass the folder written by save_pretrained.")
    return json.loads(config.read_text()), weights


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors file header (no weights read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open, not a dict)


def model_shapes(model_dir: str | Path) -> dict[str, tuple[int, ...]]:
    """Shapes of every weight of a saved model folder (one or several safetensors files)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise TransferError(f"{model_dir} has no *.safetensors weights; save the base with save_pretrained.")
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        shapes.update(safetensors_shapes(f))
    return shapes


def base_key(adapter_key: str) -> tuple[str, str]:
    """``(base weight name, 'A' | 'B')`` of a LoRA tensor name (``...q_proj.lora_A.weight``)."""
    name = adapter_key.removeprefix(ADAPTER_PREFIX)
    for part in ("A", "B"):
        marker = f".lora_{part}."
        if marker in name:
            return name.split(marker)[0] + ".weight", part
    return name, ""


def shape_mismatches(adapter: dict[str, tuple[int, ...]], base: dict[str, tuple[int, ...]]) -> list[str]:
    """Human-readable list of LoRA tensors that do not fit ``base`` (missing module or wrong in/out size)."""
    problems = []
    for key, shape in sorted(adapter.items()):
        weight, part = base_key(key)
        if not part:
            continue
        if weight not in base:
            problems.append(f"{weight}: not in the base")
            continue
        out_features, in_features = base[weight][0], base[weight][-1]
        if part == "A" and shape[-1] != in_features:
            problems.append(f"{key}: input size {shape[-1]} but the base's {weight} takes {in_features}")
        if part == "B" and shape[0] != out_features:
            problems.append(f"{key}: output size {shape[0]} but the base's {weight} gives {out_features}")
    return problems


def _model_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _vocab(model_dir: Path) -> dict[str, int] | None:
    if not (model_dir / "tokenizer.json").is_file() and not (model_dir / "tokenizer_config.json").is_file():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir).get_vocab()


def weight_similarity(adapter: dict[str, tuple[int, ...]], source_dir: Path, target_dir: Path) -> float | None:
    """Mean cosine similarity of the adapted base weights between source and target (higher = safer copy)."""
    import torch
    from safetensors import safe_open

    names = sorted({base_key(k)[0] for k in adapter if base_key(k)[1]})

    def tensors(folder: Path) -> dict[str, torch.Tensor]:
        out = {}
        for f in sorted(folder.glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as handle:
                out.update({k: handle.get_tensor(k) for k in handle.keys() if k in names})  # noqa: SIM118
        return out

    src, tgt = tensors(source_dir), tensors(target_dir)
    sims = [torch.nn.functional.cosine_similarity(src[n].flatten().float(), tgt[n].flatten().float(), dim=0).item()
            for n in names if n in src and n in tgt and src[n].shape == tgt[n].shape]
    return round(sum(sims) / len(sims), 6) if sims else None


@dataclass
class CompatibilityReport:
    """What :func:`check_compatibility` found; ``copyable`` is True when ``copy`` may run."""

    adapter: str
    adapter_base: str | None
    target_base: str
    source_base: str | None = None
    architecture_match: bool = True
    tokenizer_match: bool | None = None
    shape_problems: list[str] = field(default_factory=list)
    weight_similarity: float | None = None

    @property
    def copyable(self) -> bool:
        return self.architecture_match and not self.shape_problems and self.tokenizer_match is not False

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "copyable": self.copyable}


def check_compatibility(adapter_dir: str | Path, target_dir: str | Path, source_dir: str | Path | None = None,
                        method: str = "copy") -> CompatibilityReport:
    """Check that the adapter fits ``source_dir`` (if given) and, for ``copy``, ``target_dir``; raise if not.

    Folders must be local (zoo stages: pass :func:`hfcl.zoo.model_path`). Raises :class:`TransferError` when the
    adapter does not fit its stated source base, and :class:`IncompatibleBaseError` (suggesting ``distill``) when
    ``method="copy"`` and the target's architecture, shapes or tokenizer differ.
    """
    config, weights = adapter_files(adapter_dir)
    adapter = safetensors_shapes(weights)
    target = Path(target_dir)
    report = CompatibilityReport(adapter=str(adapter_dir), adapter_base=config.get("base_model_name_or_path"),
                                 target_base=str(target), source_base=str(source_dir) if source_dir else None)
    if source_dir is not None:
        source = Path(source_dir)
        wrong = shape_mismatches(adapter, model_shapes(source))
        if wrong:
            raise TransferError(f"The adapter {adapter_dir} does not fit the source base {source_dir} it is said to "
                                f"be trained on ({len(wrong)} tensors, e.g. {wrong[0]}); pass the base the adapter "
                                "was trained on as --source_base.")
        src_cfg, tgt_cfg = _model_config(source), _model_config(target)
        report.architecture_match = (src_cfg.get("model_type"), src_cfg.get("architectures")) == (
            tgt_cfg.get("model_type"), tgt_cfg.get("architectures"))
        src_vocab, tgt_vocab = _vocab(source), _vocab(target)
        if src_vocab is not None and tgt_vocab is not None:
            report.tokenizer_match = src_vocab == tgt_vocab
    report.shape_problems = shape_mismatches(adapter, model_shapes(target))
    if source_dir is not None and not report.shape_problems:
        report.weight_similarity = weight_similarity(adapter, Path(source_dir), target)
    if method == "copy" and not report.copyable:
        reasons = []
        if not report.architecture_match:
            reasons.append("the source and target architectures differ")
        if report.tokenizer_match is False:
            reasons.append("the target uses a different tokenizer, so the adapter's learned token mapping is "
                           "meaningless there")
        if report.shape_problems:
            reasons.append(f"{len(report.shape_problems)} LoRA tensors do not fit the target "
                           f"(e.g. {report.shape_problems[0]})")
        raise IncompatibleBaseError(f"Cannot copy {adapter_dir} onto {target_dir}: {'; '.join(reasons)}. Use "
                                    "--method distill to train a new adapter for the target from the source "
                                    "model's behaviour.")
    return report
