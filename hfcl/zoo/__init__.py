"""The embedded default models: a BPE tokenizer and a tiny Llama trained on the fictitious world, built on first use.

>>> from hfcl.zoo import load_model
>>> model, tokenizer = load_model("target")   # builds tokenizer, base and target on first call (~minutes on CPU)
"""

from .build import build_zoo, load_model, load_tokenizer, model_path, resolve, stage_key
from .cache import cache_root
from .config import STAGES, ZooConfig, tiny_config
from .real import REAL_STAGES
from .train import greedy_answers

__all__ = [
           "REAL_STAGES",
           "STAGES",
           "ZooConfig",
           "build_zoo",
           "cache_root",
           "greedy_answers",
           "load_model",
           "load_tokenizer",
           "model_path",
           "resolve",
           "stage_key",
           "tiny_config",
]
