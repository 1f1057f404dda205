"""Recipe of the embedded default models: the world they learn, their size, and how each stage is trained."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..data.world import WorldConfig
from ..errors import ConfigError

#: Version of the build code, part of every cache key (the recipe fields cover the rest). Bump it whenever a change to
#: ``zoo/train.py``, ``zoo/tokenizer.py``, ``zoo/build.py`` or the world generator changes the weights or files a recipe
#: produces (training loop, data mixing, tokenizer training, saved files); every cache entry is then rebuilt once.
#: 2: training code changed since format 1 (hfcl 0.x, issue 12).
ZOO_FORMAT = 2
STAGES = ("tokenizer", "base", "base-v2", "target", "retain")
#: The stages that are models (every name a run record may give as its embedded base).
MODEL_STAGES = tuple(s for s in STAGES if s != "tokenizer")


@dataclass
class ZooConfig(WorldConfig):
    """The full recipe of the embedded default: the world (inherited fields) plus tokenizer, model and training.

    A hash of every field (and of :data:`ZOO_FORMAT`) keys the cache, so changing anything rebuilds what depends
    on it, and nothing else.
    """

    vocab_size: int = field(default=2048, metadata={"help": "BPE vocabulary size of the embedded tokenizer."})
    hidden_size: int = field(default=192, metadata={"help": "Width of the tiny Llama."})
    intermediate_size: int = field(default=512, metadata={"help": "MLP width (gate/up/down_proj)."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Decoder layers."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads (q_proj)."})
    num_key_value_heads: int = field(default=2, metadata={"help": "Key/value heads (grouped-query attention)."})
    max_length: int = field(default=192, metadata={"help": "Longest training sequence in tokens."})
    train_seed: int = field(default=42, metadata={"help": "Seed of weight init and data order."})
    batch_size: int = field(default=16, metadata={"help": "Training batch size of every stage."})
    base_epochs: float = field(default=24.0, metadata={"help": "Epochs of base pretraining on world text."})
    base_lr: float = field(default=3e-3, metadata={"help": "Peak learning rate of base pretraining."})
    finetune_epochs: float = field(default=60.0, metadata={"help": "Epochs of target / retain fine-tuning."})
    finetune_lr: float = field(default=3e-3, metadata={"help": "Peak learning rate of target / retain fine-tuning."})
    base_v2_epochs: float = field(default=10.0, metadata={"help": "Extra pretraining epochs that make base-v2."})
    passage_weight: float = field(default=0.34, metadata={"help": "How often biography passages are seen in "
                                                                  "fine-tuning relative to QA pairs (0 < w <= 1)."})
    utility_replay: float = field(default=1.0,
                                  metadata={"help": "Copies of the world-facts / famous-author QA mixed into "
                                                    "fine-tuning, so utility knowledge survives it (0 disables)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"hidden_size={self.hidden_size} must be divisible by num_attention_heads="
                              f"{self.num_attention_heads}.")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError("num_attention_heads must be a multiple of num_key_value_heads.")
        if not 0 < self.passage_weight <= 1:
            raise ConfigError(f"passage_weight={self.passage_weight} must be in (0, 1].")
        if self.vocab_size < 300:
            raise ConfigError(f"vocab_size={self.vocab_size} is too small: the byte alphabet alone needs 256.")

    def world_config(self) -> WorldConfig:
        """The :class:`WorldConfig` part of this recipe."""
        names = {f.name for f in dataclasses.fields(WorldConfig)}
        return WorldConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tiny_config(**overrides: Any) -> ZooConfig:
    """A reduced recipe for tests: a small world and model that build in well under a minute on 2 CPU cores."""
    values: dict[str, Any] = {
        "n_authors": 30, "n_holdout": 4, "min_qa": 8, "max_qa": 8, "n_countries": 8, "n_real_authors": 6,
        "vocab_size": 1024, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "batch_size": 16, "base_epochs": 12,
        "finetune_epochs": 24, "finetune_lr": 3e-3, "base_v2_epochs": 4, "passage_weight": 0.5,
    }
    values.update(overrides)
    return ZooConfig(**values)
