"""Path-level transfer: check, move (copy or distill), evaluate, and write a run directory with the recipe.

>>> from hfcl.transfer import transfer
>>> summary = transfer("runs/my-adapter", target_base="base-v2", method="distill", seeds=seed_rows,
...                    output_dir="runs/my-adapter-v2", eval_rows=task_rows)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, HfclError, OutputExistsError
from ..utils.io import atomic_directory, atomic_write_json, sha256_file, stable_hash
from ..utils.logging import get_logger
from ..utils.provenance import provenance
from .compat import adapter_files, check_compatibility
from .errors import TransferError

logger = get_logger(__name__)
METHODS = ("copy", "distill")
INITS = ("auto", "source", "fresh")
DESCRIPTIONS = {
    "copy": "Direct transfer: the source adapter's LoRA weights loaded unchanged onto the target base after a "
            "shape / architecture / tokenizer check.",
    "distill": "Data-free Trans-LoRA transfer: synthetic prompts from the source model, filtered by a "
               "real-vs-synthetic discriminator trained on a few seed examples, distilled into a LoRA on the "
               "target base. The original training data is not used beyond the seeds.",
}


def resolve_base(name_or_path: str, zoo_config=None) -> Path:
    """Local folder of a zoo stage or saved model; :class:`TransferError` if it is not a local folder."""
    from ..zoo import resolve

    path = Path(resolve(str(name_or_path), zoo_config))
    if not path.is_dir():
        raise TransferError(f"Base model {name_or_path!r} is not a local folder or zoo stage (base, base-v2, target, "
                            "retain); transfer reads weight headers locally, so download it first.")
    return path


def dir_revision(path: Path) -> str | None:
    """``sha256:<16 hex>`` of a local folder's (first) safetensors weights: a content revision for the recipe."""
    files = sorted(Path(path).glob("*.safetensors"))
    return "sha256:" + sha256_file(files[0])[:16] if files else None


def _adapter_run(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / "hfcl_run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _load(base_dir: Path, adapter_dir: Path | None = None):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    return model, tokenizer


#: What the CLI and cards print instead of a share when the source adapter gains nothing on its own base.
NO_GAIN = "n/a (the adapter gains nothing on its own base)"


def evaluate_transfer(source, source_tokenizer, target, target_tokenizer, rows, metric: str = "probability") -> dict:
    """Task scores of source alone / source+adapter / target alone / target+adapter, and the gain retained.

    ``source`` and ``target`` are PeftModels; their adapters are disabled for the "alone" scores. ``gain_retained``
    is ``None`` (with ``gain_note``) when the source gain is not above its noise (:func:`~.task.gain_noise`: twice
    the standard error of the per-row differences, at least :data:`~.task.GAIN_FLOOR`).
    """
    from .task import gain_noise, gain_retained, task_values

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    with source.disable_adapter():
        source_alone = task_values(source, source_tokenizer, rows, metric)
    with target.disable_adapter():
        target_alone = task_values(target, target_tokenizer, rows, metric)
    source_adapted = task_values(source, source_tokenizer, rows, metric)
    scores = {"source_base": mean(source_alone), "source_base+adapter": mean(source_adapted),
              "target_base": mean(target_alone),
              "target_base+adapter": mean(task_values(target, target_tokenizer, rows, metric))}
    scores = {k: round(v, 6) for k, v in scores.items()}
    noise = gain_noise(source_adapted, source_alone)
    retained = gain_retained(scores["target_base+adapter"], scores["target_base"], scores["source_base+adapter"],
                             scores["source_base"], noise=noise)
    out = {"metric": metric, "n": len(rows), "scores": scores,
           "source_gain": round(scores["source_base+adapter"] - scores["source_base"], 6),
           "gain_noise": round(noise, 6), "gain_retained": None if math.isnan(retained) else round(retained, 4)}
    if out["gain_retained"] is None:
        out["gain_note"] = NO_GAIN
        logger.warning("The adapter's gain on its own base (%+.4f) is within noise (%.4f): gain retained is n/a. "
                       "Was it trained for this task, and on the source base %s?", out["source_gain"], noise,
                       getattr(getattr(source, "config", None), "name_or_path", "?"))
    return out


def format_gain(evaluation: dict) -> str:
    """``"gain retained 19%"`` or ``"gain retained: n/a (...)"`` for an :func:`evaluate_transfer` result."""
    if evaluation.get("gain_retained") is None:
        return f"gain retained: {NO_GAIN}"
    return f"gain retained {evaluation['gain_retained']:.0%}"


def source_base_name(adapter_dir: Path, source_base: str | None, zoo_config=None) -> str:
    """The base ``adapter_dir`` was trained on: ``source_base`` if given (refused when it clearly differs from the
    base the adapter records), else the first recorded base (adapter_config.json, then hfcl_run.json) that is
    available here."""
    from ..utils.recorded_base import adapter_base, base_identity, display_name, recorded_bases, same_base

    recorded = adapter_base(adapter_dir, zoo_config)
    if source_base:
        if recorded is not None and same_base(recorded[1], base_identity(source_base, zoo_config)) is False:
            fix = display_name(recorded[1], recorded[0], zoo_config)
            raise TransferError(f"--source_base {source_base!r} is not the base the adapter {str(adapter_dir)!r} "
                                f"records ({recorded[0]!r}); the source scores and the gain retained would be "
                                f"measured on the wrong model. Drop --source_base or pass --source_base {fix}.")
        return source_base
    names = recorded_bases(adapter_dir)
    if not names:
        raise TransferError(f"The adapter {str(adapter_dir)!r} does not record its base model (no "
                            "base_model_name_or_path, no hfcl_run.json); pass --source_base.")
    from ..zoo import resolve

    for name in names:
        try:
            if Path(resolve(name, zoo_config)).is_dir():
                return name
        except HfclError:
            continue
    return names[0]  # resolve_base names it in its error


def transfer(adapter: str | Path, target_base: str, method: str = "copy", output_dir: str | Path | None = None,
             source_base: str | None = None, seeds: Sequence[dict] | None = None, eval_rows=None,
             config=None, zoo_config=None, overwrite: bool = False, init: str = "auto",
             metric: str = "probability") -> dict[str, Any]:
    """Move ``adapter`` to ``target_base`` by ``method`` ("copy" or "distill"); returns the run summary.

    Checks everything before loading a model: adapter folder, output folder, source fit, (for copy) target shapes
    and tokenizer, (for distill) seed count. With ``output_dir`` the new adapter is written atomically with
    ``hfcl_run.json`` (recipe under ``"transfer"``); with ``eval_rows`` (question/answer rows of the task) the
    source and target are evaluated with and without the adapter. ``init`` (distill only): ``"source"`` warm-starts
    the new LoRA from the source adapter, ``"fresh"`` starts from zero (Trans-LoRA), ``"auto"`` = source when the
    shapes fit.
    """
    from .distill import TransferConfig, check_seeds, distill_transfer

    started = time.perf_counter()
    if method not in METHODS:
        raise ConfigError(f"method={method!r}: choose one of {', '.join(METHODS)}.")
    if init not in INITS:
        raise ConfigError(f"init={init!r}: choose one of {', '.join(INITS)}.")
    adapter_dir = Path(adapter)
    adapter_files(adapter_dir)  # a readable PEFT adapter folder, or TransferError
    if output_dir is not None and Path(output_dir).exists() and not overwrite:
        raise OutputExistsError(f"Output directory {str(output_dir)!r} already exists; pass overwrite=True "
                                "(CLI: --overwrite) or choose another output_dir.")
    source_name = source_base_name(adapter_dir, source_base, zoo_config)
    source_dir, target_dir = resolve_base(source_name, zoo_config), resolve_base(target_base, zoo_config)
    compat = check_compatibility(adapter_dir, target_dir, source_dir, method=method)
    if method == "distill":
        check_seeds(list(seeds or []))
        if init == "source" and not compat.copyable:
            raise TransferError("init='source' needs an adapter whose shapes fit the target; use init='fresh'.")
    config = config or TransferConfig(output_dir=None, use_cpu=True, disable_tqdm=True)

    source, source_tok = _load(source_dir, adapter_dir)
    stats: dict[str, Any] = {}
    if method == "copy":
        target, target_tok = _load(target_dir, adapter_dir)
    else:
        from peft import PeftConfig, get_peft_model_state_dict

        base, target_tok = _load(target_dir)
        lora = PeftConfig.from_pretrained(adapter_dir)
        lora.base_model_name_or_path = str(target_dir)
        lora.inference_mode = False  # a saved config is frozen; the new adapter must train
        use_source = init == "source" or (init == "auto" and compat.copyable)
        init_state = get_peft_model_state_dict(source) if use_source else None
        import tempfile

        final = config.output_dir
        with tempfile.TemporaryDirectory(prefix="hfcl-transfer-") as tmp:
            config.output_dir = tmp  # Trainer scratch; the adapter goes to output_dir below
            try:
                target, stats = distill_transfer(source, source_tok, base, target_tok, list(seeds), config, lora,
                                                 init_state=init_state)
            finally:
                config.output_dir = final
    transfer_seconds = round(time.perf_counter() - started, 2)
    evaluation = evaluate_transfer(source, source_tok, target, target_tok, eval_rows, metric) if eval_rows else None
    recipe = {
        "method": method, "source_adapter": {"path": str(adapter_dir), "revision": dir_revision(adapter_dir),
                                             "hfcl_run": _adapter_run(adapter_dir).get("transfer_task")},
        "source_base": {"id": str(source_name), "path": str(source_dir), "revision": dir_revision(source_dir)},
        "target_base": {"id": str(target_base), "path": str(target_dir), "revision": dir_revision(target_dir)},
        "compatibility": compat.to_dict(),
        "trans_peft_trained": bool((_adapter_run(adapter_dir).get("trans_peft") or {}).get("enabled")),
        "original_data_used": "seed examples only" if method == "distill" else "none",
    }
    if method == "distill":
        recipe.update({"seeds": len(seeds), "seed_fingerprint": stable_hash([dict(s) for s in seeds]),
                       "synthetic_generated": stats.get("generated"), "synthetic_accepted": stats.get("accepted"),
                       "filter_acceptance_rate": stats.get("acceptance_rate"), "distillation": stats})
    summary = {"command": "transfer", "method": f"transfer-{method}", "method_description": DESCRIPTIONS[method],
               "base_model": {"id": str(target_base), "path": str(target_dir), "revision": dir_revision(target_dir)},
               "transfer": recipe,
               "evaluation": evaluation, "seed": config.seed if method == "distill" else None,
               "config": {"method": method, "init": init, "metric": metric,
                          **({k: getattr(config, k) for k in ("kd_mode", "kd_temperature", "n_synthetic",
                                                              "n_calibration", "accept_threshold", "num_train_epochs",
                                                              "learning_rate")} if method == "distill" else {})},
               "zoo": getattr(zoo_config, "to_dict", lambda: None)() if target_base in ("base", "base-v2") else None}
    summary["transfer_seconds"] = transfer_seconds  # checks + loading + moving, without the evaluation
    summary["wall_seconds"] = round(time.perf_counter() - started, 2)
    if output_dir is not None:
        save_transferred(target, target_tok, target_dir, output_dir, summary, overwrite)
        summary["output_dir"] = str(output_dir)
    return summary


def save_transferred(model, tokenizer, target_dir: Path, output_dir: str | Path, summary: dict,
                     overwrite: bool = False) -> Path:
    """Write ``model``'s adapter (pointing at ``target_dir``), the tokenizer and ``hfcl_run.json`` atomically."""
    with atomic_directory(output_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        config_path = tmp / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = str(target_dir)
        atomic_write_json(config_path, config)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "hfcl_run.json", {**summary, "provenance": provenance()})
    return Path(output_dir)
