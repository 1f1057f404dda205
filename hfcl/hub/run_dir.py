"""Read a run directory (see DESIGN.md "One run directory") and decide exactly which of its files may be shared.

Only an allow-list leaves the machine: safetensors weights and their index, model/adapter/generation configs,
tokenizer files, ``hfcl_run.json``, ``eval_report*.json``, ``plots/*.png|svg`` and ``.eval_results/*.yaml``.
Pickle weights (``*.bin``, ``*.pt``...), checkpoints, optimizer states and logs are skipped and reported.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..utils.logging import get_logger
from .errors import RunDirError

logger = get_logger(__name__)

RUN_FILE = "hfcl_run.json"
REPORT_FILE = "eval_report.json"
CONFIG_FILES = ("adapter_config.json", "config.json", "generation_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "vocab.txt", "merges.txt", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json")
HFCL_FILES = (RUN_FILE, REPORT_FILE)
COMPARISON_FILE = re.compile(r"eval_report\.([\w.-]+)\.json")  # another model's report, shown next to this one
DRY_RUN_DIR = "hub_dry_run"  # `hfcl push --dry-run` writes here by default; never pushed
COMPARISON_ORDER = ("target", "retain", "base")  # how eval_report.<name>.json columns are ordered on the card
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_ALLOWED_PATTERNS = (re.compile(r"[^/]+\.safetensors"), re.compile(r"[^/]+\.safetensors\.index\.json"),
                     re.compile(r"eval_report\.[\w.-]+\.json"), re.compile(r"plots/[\w.-]+\.(png|svg)"),
                     re.compile(r"\.eval_results/[\w.-]+\.ya?ml"),
                     re.compile(r"accuracy_matrix\.json"),  # a continual run's R with every step (hfcl continual)
                     re.compile(r"stream_examples\.json"))  # a few question/answer pairs per task (the Space)


@dataclass
class RunDir:
    """What a run directory holds: its kind, the files that may be pushed, and the parsed hfcl metadata.

    ``comparisons`` are other models' reports found as ``eval_report.<name>.json`` (for example ``target`` and
    ``retain``): the card shows them next to this model's numbers.
    """

    path: Path
    kind: str  # "adapter" or "model"
    files: dict[str, Path | bytes]  # path in repo -> local file (or bytes, once cleaned of local paths)
    skipped: list[str] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)
    adapter_config: dict[str, Any] | None = None
    model_config: dict[str, Any] | None = None

    @property
    def plots(self) -> list[str]:
        return sorted(p for p in self.files if p.startswith("plots/"))

    @property
    def readme(self) -> Path | None:
        path = self.path / "README.md"
        return path if path.is_file() else None


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"Cannot read {what} {str(path)!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise RunDirError(f"{what} {str(path)!r} must hold a JSON object.")
    return data


def is_allowed(rel: str) -> bool:
    """Whether a file (POSIX path relative to the run directory) is shareable."""
    if rel in CONFIG_FILES or rel in TOKENIZER_FILES or rel in HFCL_FILES:
        return True
    return any(p.fullmatch(rel) for p in _ALLOWED_PATTERNS)


def read_run_dir(path: str | os.PathLike) -> RunDir:
    """Inspect ``path``; raise :class:`RunDirError` if it is not a pushable run directory."""
    root = Path(path)
    if not root.is_dir():
        raise RunDirError(f"Run directory {str(root)!r} does not exist (expected the output_dir of an hfcl command "
                          "or a save_pretrained folder).")
    files: dict[str, Path] = {}
    skipped: list[str] = []
    for file in sorted(root.rglob("*")):
        if not file.is_file():
            continue
        rel = file.relative_to(root).as_posix()
        if rel == "README.md" or rel.startswith(DRY_RUN_DIR + "/"):
            continue  # the card is rendered (or kept) explicitly by the push
        if is_allowed(rel):
            files[rel] = file
        elif not any(part.startswith(".") and part != ".eval_results" for part in rel.split("/")):
            skipped.append(rel)
    adapter = "adapter_config.json" in files
    weights = [p for p in files if p.endswith(".safetensors") and "/" not in p]
    if not adapter and "config.json" not in files:
        raise RunDirError(f"{str(root)!r} holds neither adapter_config.json (a PEFT adapter) nor config.json (a full "
                          "model): nothing to push.")
    if not weights:
        pickles = [p for p in skipped if p.endswith(PICKLE_SUFFIXES)]
        hint = (f" It has pickle weights ({', '.join(pickles)}), which hfcl never uploads: re-save with "
                "save_pretrained(..., safe_serialization=True).") if pickles else ""
        raise RunDirError(f"{str(root)!r} has no *.safetensors weights.{hint}")
    if skipped:
        logger.info("Not pushing %d file(s) outside the allow-list: %s", len(skipped), ", ".join(skipped[:10]))
    run = _read_json(files[RUN_FILE], "run record") if RUN_FILE in files else {}
    report = _read_json(files[REPORT_FILE], "eval report") if REPORT_FILE in files else None
    found = {}
    for rel, file in files.items():
        match = COMPARISON_FILE.fullmatch(rel)
        if match:
            found[match.group(1)] = _read_json(file, "eval report")
    order = {name: i for i, name in enumerate(COMPARISON_ORDER)}
    comparisons = {k: found[k] for k in sorted(found, key=lambda k: (order.get(k, len(order)), k))}
    return RunDir(
        path=root, kind="adapter" if adapter else "model", files=files, skipped=skipped, run=run, report=report,
        comparisons=comparisons,
        adapter_config=_read_json(files["adapter_config.json"], "adapter config") if adapter else None,
        model_config=_read_json(files["config.json"], "model config") if "config.json" in files else None,
    )
