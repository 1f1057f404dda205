"""Load adapters (local folder or Hub id) into delta objects, and save standard PEFT adapters plus a recipe.

A saved LoRA is plain PEFT: ``adapter_config.json`` (``peft_type="LORA"``, ``use_rslora=False``, scaling 1 on every
module: ``lora_alpha = r`` and per-module ``rank_pattern`` / ``alpha_pattern`` where ranks differ, ``target_modules``
= the exact module names) and ``adapter_model.safetensors`` with keys ``base_model.model.<module>.lora_A.weight`` /
``lora_B.weight``, so ``PeftModel.from_pretrained(base, out_dir)`` loads it without hfcl. A rank-0 (zero) module is
written as rank 1 with zero factors because PEFT needs ``r >= 1``. ``hfcl_run.json`` next to it records the recipe.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, ModelNotAvailableError
from ..utils.io import atomic_directory, atomic_write_json
from ..utils.logging import get_logger
from ..utils.provenance import provenance
from .deltas import LoraAdapter, LowRankDelta
from .guards import UnsupportedAdapterError, check_supported_config, lora_scaling
from .ia3 import IA3Adapter

logger = get_logger(__name__)
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<which>A|B)(?:\.[^.]+)?\.weight$")
_IA3_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.ia3_l(?:\.[^.]+)?$")
ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"]
RECIPE_FILE = "hfcl_run.json"


def resolve_source(path_or_id: str, revision: str | None = None) -> tuple[Path, str | None]:
    """Local folder for an adapter path or Hub id (``snapshot_download``), and the resolved revision (commit)."""
    if os.path.isdir(path_or_id):
        return Path(path_or_id), revision
    if os.path.exists(path_or_id):
        raise ModelNotAvailableError(f"Adapter path {path_or_id!r} is a file; give the folder that holds "
                                     "adapter_config.json.")
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(path_or_id, revision=revision, allow_patterns=ADAPTER_FILES))
    except Exception as exc:
        raise ModelNotAvailableError(f"Adapter {path_or_id!r} is not a local folder and could not be downloaded "
                                     f"from the Hub ({type(exc).__name__}: {exc}).") from exc
    return folder, folder.name  # snapshot folders are named by commit hash


def read_json_file(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a truncated or invalid file is a :class:`ModelNotAvailableError` naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelNotAvailableError(f"{str(path)!r} is not valid JSON ({exc}); the file is truncated or corrupt: "
                                     "re-save or re-download it.") from exc
    if not isinstance(data, dict):
        raise ModelNotAvailableError(f"{str(path)!r} must hold a JSON object, got {type(data).__name__}.")
    return data


def check_safetensors_file(path: Path) -> None:
    """Read the header of a safetensors file (cheap); a truncated or non-safetensors file is a
    :class:`ModelNotAvailableError` naming it."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as exc:
        raise ModelNotAvailableError(f"{str(path)!r} is not a readable safetensors file ({exc}); it is truncated or "
                                     "not safetensors: re-save or re-download it.") from exc


def check_weight_files(folder: Path) -> None:
    """Check a model or adapter folder's configs (``adapter_config.json``, ``config.json``) and the headers of its
    top-level ``*.safetensors`` files before anything loads them."""
    for name in ("adapter_config.json", "config.json"):
        if (folder / name).is_file():
            read_json_file(folder / name)
    for weights in sorted(folder.glob("*.safetensors")):
        check_safetensors_file(weights)


def read_adapter_dir(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(adapter_config dict, state dict)`` of a PEFT adapter folder (a damaged file is named in the error)."""
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise ModelNotAvailableError(f"{str(folder)!r} has no adapter_config.json; is it a PEFT adapter folder?")
    config = read_json_file(config_file)
    if (folder / "adapter_model.safetensors").is_file():
        from safetensors.torch import load_file

        check_safetensors_file(folder / "adapter_model.safetensors")
        try:
            state = load_file(str(folder / "adapter_model.safetensors"))
        except Exception as exc:
            raise ModelNotAvailableError(f"{str(folder / 'adapter_model.safetensors')!r} cannot be read ({exc}); "
                                         "re-save or re-download the adapter.") from exc
    elif (folder / "adapter_model.bin").is_file():
        state = torch.load(folder / "adapter_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ModelNotAvailableError(f"{str(folder)!r} has no adapter_model.safetensors or adapter_model.bin.")
    return config, state


def adapter_from_state(config: dict[str, Any], state: dict[str, torch.Tensor], name: str = "adapter",
                       source: str | None = None, revision: str | None = None) -> LoraAdapter | IA3Adapter:
    """Build a LoraAdapter / IA3Adapter from a PEFT config dict and state dict (guards run first)."""
    kind = check_supported_config(config, source or name)
    common = {"name": name, "source": source, "revision": revision,
                  "base_model_name_or_path": config.get("base_model_name_or_path"),
                  "base_revision": config.get("revision"), "fan_in_fan_out": bool(config.get("fan_in_fan_out", False)),
                  "task_type": config.get("task_type"), "peft_config": config}
    if kind == "ia3":
        vectors, unknown = {}, []
        for key, value in state.items():
            match = _IA3_KEY.match(key)
            (unknown.append(key) if match is None else vectors.__setitem__(match["module"], value))
        _refuse_unknown(unknown, source or name)
        ff_names = config.get("feedforward_modules") or []
        ff = {m for m in vectors if any(m == f or m.endswith("." + f) for f in ff_names)}
        return IA3Adapter(vectors=vectors, feedforward=ff, **common)
    factors: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in state.items():
        match = _LORA_KEY.match(key)
        if match is None:
            unknown.append(key)
            continue
        factors.setdefault(match["module"], {})[match["which"]] = value
    _refuse_unknown(unknown, source or name)
    deltas = {}
    for module, pair in sorted(factors.items()):
        if set(pair) != {"A", "B"}:
            missing = sorted({"A", "B"} - set(pair))
            raise ConfigError(f"Adapter {source or name!r}: module {module!r} has no lora_{missing[0]} weight.")
        if pair["A"].dim() != 2:
            raise UnsupportedAdapterError(f"Adapter {source or name!r}: module {module!r} is a convolution LoRA "
                                          f"(lora_A shape {tuple(pair['A'].shape)}); hfcl composes Linear LoRA only.")
        delta = LowRankDelta(pair["A"], pair["B"])
        deltas[module] = LowRankDelta(pair["A"], pair["B"], lora_scaling(config, module, delta.rank))
    return LoraAdapter(deltas=deltas, **common)


def _refuse_unknown(keys: list[str], source: str) -> None:
    if not keys:
        return
    hint = ""
    if any("lora_embedding" in k for k in keys):
        hint = " (embedding LoRA)"
    elif any("magnitude" in k for k in keys):
        hint = " (DoRA magnitude vectors)"
    elif any(k.endswith(".bias") for k in keys):
        hint = " (trained biases)"
    raise UnsupportedAdapterError(f"Adapter {source!r} holds tensors hfcl cannot compose{hint}: "
                                  f"{keys[:3]}{' ...' if len(keys) > 3 else ''}.")


def load_adapter(path_or_id: str, name: str | None = None, revision: str | None = None) -> LoraAdapter | IA3Adapter:
    """Load a PEFT LoRA or (IA)^3 adapter from a local folder or a Hub repo id (optionally at ``revision``)."""
    folder, resolved = resolve_source(str(path_or_id), revision)
    config, state = read_adapter_dir(folder)
    label = name or Path(str(path_or_id).rstrip("/")).name
    return adapter_from_state(config, state, name=label, source=str(path_or_id), revision=resolved)


def adapter_from_peft_model(model: Any, adapter_name: str = "default", name: str | None = None) -> LoraAdapter:
    """The in-memory adapter of a ``PeftModel`` (no save/load round trip)."""
    from peft import get_peft_model_state_dict

    config = model.peft_config[adapter_name].to_dict()
    config["peft_type"] = str(getattr(config["peft_type"], "value", config["peft_type"]))
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model, adapter_name=adapter_name).items()}
    return adapter_from_state(config, state, name=name or adapter_name, source=None)


def _lora_config_dict(adapter: LoraAdapter, base: str | None, base_revision: str | None) -> tuple[dict, dict]:
    from peft import LoraConfig

    state: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    for module, delta in sorted(adapter.deltas.items()):
        delta = delta.folded()
        if delta.rank == 0:
            out_f, in_f = delta.shape
            delta = LowRankDelta(torch.zeros(1, in_f, dtype=delta.A.dtype), torch.zeros(out_f, 1, dtype=delta.B.dtype))
        state[f"base_model.model.{module}.lora_A.weight"] = delta.A.contiguous()
        state[f"base_model.model.{module}.lora_B.weight"] = delta.B.contiguous()
        ranks[module] = delta.rank
    if not ranks:
        raise ConfigError("Cannot save an adapter with no modules.")
    common = Counter(ranks.values()).most_common(1)[0][0]
    pattern = {m: r for m, r in ranks.items() if r != common}
    config = LoraConfig(r=common, lora_alpha=common, target_modules=sorted(ranks), rank_pattern=pattern,
                        alpha_pattern=dict(pattern), fan_in_fan_out=adapter.fan_in_fan_out, use_rslora=False,
                        lora_dropout=0.0, bias="none", base_model_name_or_path=base, revision=base_revision,
                        task_type=adapter.task_type, init_lora_weights=True)
    return config, state


def _ia3_config_dict(adapter: IA3Adapter, base: str | None, base_revision: str | None) -> tuple[Any, dict]:
    from peft import IA3Config

    state = {f"base_model.model.{m}.ia3_l": v.contiguous() for m, v in sorted(adapter.vectors.items())}
    config = IA3Config(target_modules=sorted(adapter.vectors), feedforward_modules=sorted(adapter.feedforward),
                       fan_in_fan_out=adapter.fan_in_fan_out, base_model_name_or_path=base, revision=base_revision,
                       task_type=adapter.task_type)
    return config, state


def save_adapter(adapter: LoraAdapter | IA3Adapter, out_dir: str | os.PathLike, overwrite: bool = False,
                 base_model_name_or_path: str | None = None, base_revision: str | None = None,
                 recipe: dict[str, Any] | None = None, tokenizer: Any = None) -> Path:
    """Write a standard PEFT adapter (+ ``hfcl_run.json`` when ``recipe`` is given, + tokenizer) atomically."""
    from safetensors.torch import save_file

    if getattr(adapter, "kind", None) not in ("lora", "ia3"):
        raise ConfigError(f"save_adapter writes LoRA or (IA)^3 adapters, not {type(adapter).__name__}. For a "
                          "full-model task vector use extract_lora (a LoRA of it) or apply_task_vector and then "
                          "model.save_pretrained.")
    base = base_model_name_or_path or adapter.base_model_name_or_path
    revision = base_revision if base_revision is not None else adapter.base_revision
    build = _ia3_config_dict if adapter.kind == "ia3" else _lora_config_dict
    config, state = build(adapter, base, revision)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        config.save_pretrained(str(tmp))
        save_file(state, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        if recipe is not None:
            atomic_write_json(tmp / RECIPE_FILE, {**recipe, "provenance": provenance()})
    logger.info("Saved %s adapter with %d modules to %s", adapter.kind, len(state) // 2, out_dir)
    return Path(out_dir)
