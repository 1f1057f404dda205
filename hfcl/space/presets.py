"""Preset questions with their true answers from the forget, retain and holdout splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

PRESET_SPLITS = ("forget", "retain", "holdout")


@dataclass(frozen=True)
class Preset:
    """A question from ``split`` with its true ``answer``; ``key`` (``"forget:3"``) is the dropdown value."""

    split: str
    index: int
    question: str
    answer: str

    @property
    def key(self) -> str:
        return f"{self.split}:{self.index}"

    @property
    def label(self) -> str:
        return f"[{self.split}] {self.question}"


def presets_from_splits(splits: Any, per_split: int = 12, split_names: Sequence[str] = PRESET_SPLITS,
                        ) -> list[Preset]:
    """The first ``per_split`` questions of each of ``split_names`` in ``splits`` (a DatasetDict or a mapping of
    row lists in the TOFU schema); missing splits are skipped."""
    if per_split < 1:
        raise ConfigError(f"per_split must be >= 1, got {per_split}.")
    out: list[Preset] = []
    for split in split_names:
        if split not in splits:
            continue
        rows = splits[split]
        n = min(per_split, len(rows))
        for i in range(n):
            row = rows[i]
            out.append(Preset(split, i, str(row["question"]), str(row["answer"])))
    return out


def load_presets(zoo_config: Any = None, forget_split: str = "forget10", per_split: int = 12,
                 source: str = "embedded") -> list[Preset]:
    """Presets from the embedded world of ``zoo_config`` (or real TOFU with ``source="hub"``)."""
    from ..data import load_tofu

    return presets_from_splits(load_tofu(forget_split, source=source, world_config=zoo_config), per_split)


def find_preset(presets: Sequence[Preset], key: str | None) -> Preset | None:
    """The preset whose ``key`` (or ``label``) is ``key``; ``None`` when not found or empty."""
    if not key:
        return None
    for preset in presets:
        if key in (preset.key, preset.label):
            return preset
    return None
