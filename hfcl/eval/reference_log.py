"""Retain-model reference logs: what forget quality and PrivLeak compare against.

A reference log holds the retain model's per-question forget-set truth ratios (TOFU), its Min-K% membership AUC and
its per-example membership losses on the forget and holdout sets (for the reference-model attack), plus the data
fingerprint and settings they were computed with. It is saved as JSON with a fingerprint of its content, computed
once and reused; loading checks both the fingerprint (integrity) and that the data and settings match the run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CacheError, ConfigError
from ..utils.io import atomic_write_json, stable_hash

#: 2: ``mia_loss`` keeps the EOS token (as the LOSS / reference attacks of OpenUnlearning); /1 logs are rebuilt.
FORMAT = "hfcl-eval-reference-log/2"
#: Settings whose change changes the logged values; a log is only used with the same ones.
MATCHED_SETTINGS = ("suite", "forget_split", "max_length", "mia_k", "truth_ratio_answer")
MISSING_NOTE = ("{metric} is not computed: no retain-model reference log. Pass reference_log=... (CLI: "
                "--retain_logs FILE, or --retain_logs auto for the embedded world) built with build_reference_log().")


@dataclass
class ReferenceLog:
    """Per-example statistics of the retain-only model, keyed to the exact data and settings they came from."""

    suite: str
    forget_split: str
    data_fingerprint: str
    settings: dict[str, Any]
    model: dict[str, Any]
    mia_min_k_auc: float
    mia_loss: dict[str, list[float]]  # {"forget": [...], "holdout": [...]} per-example mean NLL (EOS included)
    forget_truth_ratio: list[float] | None = None  # TOFU only
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    path: str | None = field(default=None, compare=False)

    def content(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return data

    @property
    def fingerprint(self) -> str:
        """Hash of the log's content (model, data, settings and values)."""
        return stable_hash(self.content())

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "fingerprint": self.fingerprint, **self.content()}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the log as JSON, atomically."""
        out = atomic_write_json(path, self.to_dict())
        self.path = str(out)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "reference log") -> ReferenceLog:
        if data.get("format") != FORMAT:
            raise ConfigError(f"{source} is not an hfcl reference log (format {data.get('format')!r}, expected "
                              f"{FORMAT!r}). Build one with hfcl.eval.build_reference_log().")
        claimed = data.get("fingerprint")
        fields = {k: v for k, v in data.items() if k not in ("format", "fingerprint")}
        try:
            log = cls(**fields)
        except TypeError as exc:
            raise ConfigError(f"{source} has unexpected fields: {exc}") from exc
        if claimed != log.fingerprint:
            raise CacheError(f"{source} does not match its fingerprint ({claimed} vs {log.fingerprint}): it was edited "
                             "or is corrupt. Rebuild it with build_reference_log().")
        return log

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReferenceLog:
        """Read and verify a saved log."""
        if not os.path.isfile(path):
            raise ConfigError(f"Reference log {str(path)!r} does not exist. Build it with "
                              "`hfcl eval --model retain --save_reference_log FILE` or build_reference_log().")
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CacheError(f"Reference log {str(path)!r} is not valid JSON: {exc}") from exc
        log = cls.from_dict(data, f"Reference log {str(path)!r}")
        log.path = str(path)
        return log

    def check_compatible(self, data_fingerprint: str, settings: dict[str, Any]) -> None:
        """Raise :class:`ConfigError` unless this log was computed on the same data with the same settings."""
        if self.data_fingerprint != data_fingerprint:
            raise ConfigError(f"The reference log {self.path or ''} was computed on other data (fingerprint "
                              f"{self.data_fingerprint}, this run {data_fingerprint}): same suite, forget split, "
                              "world and data source are needed. Rebuild it for this data.")
        wrong = [f"{k}={self.settings.get(k)!r} (run: {settings.get(k)!r})" for k in MATCHED_SETTINGS
                 if self.settings.get(k) != settings.get(k)]
        if wrong:
            raise ConfigError(f"The reference log {self.path or ''} was computed with different settings: "
                              f"{', '.join(wrong)}. Rebuild it with the run's settings.")


def log_from_values(suite: str, forget_split: str, data_fingerprint: str, settings: dict[str, Any],
                    model: dict[str, Any], per_example: dict[str, dict[str, list]],
                    aggregates: dict[str, Any]) -> ReferenceLog:
    """Extract a reference log from a suite's results on the retain model."""
    return ReferenceLog(
        suite=suite, forget_split=forget_split, data_fingerprint=data_fingerprint,
        settings={k: settings.get(k) for k in MATCHED_SETTINGS}, model=model,
        mia_min_k_auc=aggregates["mia_min_k_auc"],
        mia_loss={"forget": per_example["forget"]["mia_loss"], "holdout": per_example["holdout"]["mia_loss"]},
        forget_truth_ratio=per_example["forget"].get("truth_ratio"),
    )
