"""Exact PEFT composition: adapter arithmetic on weight deltas, merges, optimal re-factoring, and negation.

>>> from hfcl.compose import load_adapter, compose, save_adapter
>>> math, code = load_adapter("out/math", name="math"), load_adapter("out/code", name="code")
>>> result = compose(0.7 * math + 0.3 * code)                    # exact: delta = 0.7 dW_math + 0.3 dW_code
>>> small = compose(0.7 * math + 0.3 * code, rank=16)            # optimal rank-16 re-factoring, error reported
>>> save_adapter(result.adapter, "out/mix", recipe=result.recipe)  # plain PEFT LoRA + hfcl_run.json

Unlearning by negation for ``hfcl demo``: :func:`hfcl.compose.demo.negation_demo` (imported on use).
"""

from .algebra import Combination, add, linear_combination, negate, scale, subtract
from .apply import adapter_from_dense, delta_weights, merge_into_model
from .compress import Compressed, compress_delta, numerical_rank, truncated_svd
from .deltas import LoraAdapter, LowRankDelta, stack_deltas
from .expression import parse_expression
from .guards import IncompatibleAdaptersError, UnsupportedAdapterError
from .ia3 import IA3Adapter, combine_ia3, negate_ia3
from .io import adapter_from_peft_model, load_adapter, save_adapter
from .merges import MERGE_METHODS, ComposeResult, compose
from .negation import NegationResult, train_lora, unlearn_by_negation
from .task_vectors import ExtractResult, TaskVector, apply_task_vector, extract_lora, merge_task_vectors

__all__ = [
           "MERGE_METHODS",
           "Combination",
           "ComposeResult",
           "Compressed",
           "ExtractResult",
           "IA3Adapter",
           "IncompatibleAdaptersError",
           "LoraAdapter",
           "LowRankDelta",
           "NegationResult",
           "TaskVector",
           "UnsupportedAdapterError",
           "adapter_from_dense",
           "adapter_from_peft_model",
           "add",
           "apply_task_vector",
           "combine_ia3",
           "compose",
           "compress_delta",
           "delta_weights",
           "extract_lora",
           "linear_combination",
           "load_adapter",
           "merge_into_model",
           "merge_task_vectors",
           "negate",
           "negate_ia3",
           "numerical_rank",
           "parse_expression",
           "save_adapter",
           "scale",
           "stack_deltas",
           "subtract",
           "train_lora",
           "truncated_svd",
           "unlearn_by_negation",
]
