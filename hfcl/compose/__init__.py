"""Exact PEFT composition: adapter arithmetic on weight deltas, merges, optimal re-factoring, and negation.

>>> from hfcl.compose import load_adapter, compose, save_adapter
>>> math, code = load_adapter("out/math", name="math"), load_adapter("out/code", name="code")
>>> result = compose(0.7 * math + 0.3 * code)                    # exact: delta = 0.7 dW_math + 0.3 dW_code
>>> small = compose(0.7 * math + 0.3 * code, rank=16)            # optimal rank-16 re-factoring, error reported
>>> save_adapter(result.adapter, "out/mix", recipe=result.recipe)  # plain PEFT LoRA + hfcl_run.json

Unlearning by negation for ``hfcl demo``: :func:`hfcl.compose.demo.negation_demo` (imported on use).
"""

from .apply import adapter_from_dense, delta_weights, merge_into_model
from .algebra import Combination, add, linear_combination, negate, scale, subtract
from .compress import Compressed, compress_delta, numerical_rank, truncated_svd
from .deltas import LoraAdapter, LowRankDelta, stack_deltas
from .expression import parse_expression
from .guards import IncompatibleAdaptersError, UnsupportedAdapterError
from .ia3 import IA3Adapter, combine_ia3, negate_ia3
from .io import adapter_from_peft_model, load_adapter, save_adapter
from .merges import MERGE_METHODS, ComposeResult, compose
from .negation import NegationResult, train_lora, unlearn_by_negation
from .task_vectors import ExtractResult, TaskVector, apply_task_vector, extract_lora, merge_task_vectors

__all__ = ["LowRankDelta", "LoraAdapter", "IA3Adapter", "Combination", "stack_deltas", "linear_combination", "add",
           "subtract", "scale", "negate", "combine_ia3", "negate_ia3", "Compressed", "compress_delta",
           "truncated_svd", "numerical_rank", "parse_expression", "IncompatibleAdaptersError",
           "UnsupportedAdapterError", "load_adapter", "save_adapter", "adapter_from_peft_model", "compose",
           "ComposeResult", "MERGE_METHODS", "merge_into_model", "delta_weights", "adapter_from_dense",
           "TaskVector", "merge_task_vectors", "apply_task_vector", "extract_lora", "ExtractResult",
           "train_lora", "unlearn_by_negation", "NegationResult"]
