"""The one batched teacher-forced pass and the batched greedy generation that every metric shares.

:class:`ScoringPlan` collects the (prompt, answer) and raw-text sequences a suite needs, deduplicated, and scores them
all in one pass: per labelled token it keeps the log-probability of the label, the mean and variance of ``log p``
under the model's next-token distribution (for Min-K%++) and whether the argmax equals the label (for exact
memorisation and extraction strength). Probability, truth ratio, membership attacks and memorisation are then pure
functions of these arrays.

Batches are planned globally (sorted by length, fixed size) and dealt round-robin to the processes of an
``accelerate launch``: every sequence is scored exactly once, by one process, in the same batch whatever the number of
processes, so the gathered results are identical to a single-process run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.formatting import IGNORE_INDEX, prompt_ids, tokenize_example, tokenize_text
from ..errors import DataError
from ..utils.logging import get_logger

logger = get_logger(__name__)


@dataclass
class SequenceScore:
    """Teacher-forced statistics of one sequence's labelled tokens (answer tokens, EOS included when present)."""

    logprobs: np.ndarray  # log p(y_t | y_<t, x)
    mu: np.ndarray  # E_p[log p] of the next-token distribution at each labelled position
    var: np.ndarray  # Var_p[log p]
    correct: np.ndarray  # argmax == label
    ends_with_eos: bool

    @property
    def avg_nll(self) -> float:
        """Mean negative log-likelihood over every labelled token (what the training loss averages)."""
        return float(-self.logprobs.mean()) if self.logprobs.size else float("nan")

    def content(self) -> SequenceScore:
        """The same statistics without a trailing EOS token (used by membership attacks and memorisation)."""
        if not self.ends_with_eos or self.logprobs.size <= 1:
            return self
        return SequenceScore(self.logprobs[:-1], self.mu[:-1], self.var[:-1], self.correct[:-1], False)


# --- distribution --------------------------------------------------------------------------------------------------
def plan_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), at most ``batch_size`` items and, if given,
    at most ``max_tokens`` padded tokens each. Deterministic in its inputs."""
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}.")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and (len(current) >= batch_size or (max_tokens and (len(current) + 1) * width > max_tokens)):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def process_info(distributed: bool) -> tuple[int, int]:
    """``(process index, number of processes)``: ``(0, 1)`` unless launched with several processes."""
    if not distributed:
        return 0, 1
    import os

    from accelerate import PartialState

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and not PartialState._shared_state:
        return 0, 1  # not launched with several processes: no process group needed
    # PartialState only picks the gloo (MULTI_CPU) backend when told the run is on the CPU; without CUDA it must be.
    state = PartialState(cpu=not torch.cuda.is_available())
    return state.process_index, state.num_processes


_process_info = process_info  # the old private name


def run_batches(batches: list[list[int]], fn: Callable[[list[int]], list[Any]], distributed: bool = True,
                ) -> tuple[dict[int, Any], list[int]]:
    """Run ``fn`` on this process's share of ``batches`` (round-robin) and gather every result on every process.

    Returns ``({index: result}, items_per_process)``.
    """
    rank, world = process_info(distributed)
    local = []
    for batch in batches[rank::world]:
        local.extend(zip(batch, fn(batch)))
    if world == 1:
        return dict(local), [len(local)]
    from accelerate.utils import gather_object

    gathered = gather_object(local)
    counts = gather_object([len(local)])
    results = dict(gathered)
    if len(results) != len(gathered):  # pragma: no cover - guards the "scored exactly once" contract
        raise RuntimeError("An item was scored by more than one process.")
    return results, list(counts)


def _device(model) -> torch.device:
    return next(model.parameters()).device


# --- teacher-forced scoring ----------------------------------------------------------------------------------------
@torch.inference_mode()
def score_batch(model, features: list[dict[str, list[int]]], pad_token_id: int, eos_token_id: int | None,
                ) -> list[SequenceScore]:
    """Score right-padded ``features`` (``input_ids`` + ``labels``) with one forward pass."""
    width = max(len(f["input_ids"]) for f in features)
    n = len(features)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    for row, f in enumerate(features):
        size = len(f["input_ids"])
        input_ids[row, :size] = torch.tensor(f["input_ids"])
        attention[row, :size] = 1
        labels[row, :size] = torch.tensor(f["labels"])
    device = _device(model)
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits[:, :-1]
    target = labels[:, 1:].to(device)
    mask = target != IGNORE_INDEX
    logp = torch.log_softmax(logits[mask].float(), dim=-1)  # only labelled positions: [N, V]
    gold = target[mask]
    token_lp = logp.gather(1, gold[:, None]).squeeze(1)
    probs = logp.exp()
    mu = (probs * logp).sum(-1)
    var = (probs * logp.square()).sum(-1) - mu.square()
    correct = logp.argmax(-1) == gold
    counts = mask.sum(1).tolist()
    columns = [t.double().cpu().numpy() if t.dtype != torch.bool else t.cpu().numpy()
               for t in (token_lp, mu, var, correct)]
    out, start = [], 0
    for count in counts:
        sl = slice(start, start + count)
        last = int(gold[start + count - 1]) if count else None
        out.append(SequenceScore(*(c[sl] for c in columns), ends_with_eos=last is not None and last == eos_token_id))
        start += count
    return out


# --- generation ----------------------------------------------------------------------------------------------------
@torch.inference_mode()
def generate_batch(model, prompts: list[list[int]], pad_token_id: int, eos_token_id: int | None,
                   max_new_tokens: int) -> list[list[int]]:
    """Greedy continuations of left-padded ``prompts``, cut at the first EOS (token ids, EOS excluded)."""
    from transformers import GenerationConfig

    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, p in enumerate(prompts):
        input_ids[row, width - len(p):] = torch.tensor(p)
        attention[row, width - len(p):] = 1
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=pad_token_id, eos_token_id=eos_token_id)
    device = _device(model)
    out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), generation_config=config)
    results = []
    for row in out[:, width:].tolist():
        if eos_token_id is not None and eos_token_id in row:
            row = row[: row.index(eos_token_id)]
        results.append(row)
    return results


# --- plans ---------------------------------------------------------------------------------------------------------
class ScoringPlan:
    """Deduplicated sequences to score and prompts to continue, run in one batched pass each."""

    def __init__(self, tokenizer, max_length: int = 512) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.features: list[dict[str, list[int]]] = []
        self._seq_index: dict[tuple, int] = {}
        self.prompts: list[list[int]] = []
        self._prompt_index: dict[tuple, int] = {}
        self._prompt_cache: dict[str, list[int]] = {}
        self.stats: dict[str, Any] = {}

    def _add(self, key: tuple, make: Callable[[], dict[str, list[int]]]) -> int:
        if key not in self._seq_index:
            feature = make()
            if not any(label != IGNORE_INDEX for label in feature["labels"]):
                raise DataError(f"Sequence {key[1][:60]!r}... has no answer token left at max_length="
                                f"{self.max_length}; raise max_length.")
            self._seq_index[key] = len(self.features)
            self.features.append(feature)
        return self._seq_index[key]

    def qa(self, question: str, answer: str) -> int:
        """Register ``answer`` given ``question`` (chat-templated prompt, loss on answer + EOS); returns its id."""
        def make() -> dict[str, list[int]]:
            return tokenize_example(self.tokenizer, {"question": question, "answer": answer}, self.max_length)
        return self._add(("qa", question, answer), make)

    def text(self, text: str) -> int:
        """Register a raw text (BOS + text + EOS, every token after BOS labelled); returns its id."""
        return self._add(("text", text), lambda: tokenize_text(self.tokenizer, text, self.max_length))

    def question_prompt(self, question: str) -> int:
        """Register a greedy answer to ``question`` (the chat-templated prompt); returns its id."""
        key = ("q", question)
        if key not in self._prompt_index:
            self._prompt_index[key] = len(self.prompts)
            self.prompts.append(prompt_ids(self.tokenizer, [{"role": "user", "content": question}]))
        return self._prompt_index[key]

    def ids_prompt(self, ids: Sequence[int]) -> int:
        """Register a greedy continuation of raw token ids; returns its id."""
        key = ("ids", tuple(ids))
        if key not in self._prompt_index:
            self._prompt_index[key] = len(self.prompts)
            self.prompts.append(list(ids))
        return self._prompt_index[key]

    def _special_ids(self) -> tuple[int, int | None]:
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        if pad is None:
            raise DataError("The tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token.")
        return pad, eos

    def score(self, model, batch_size: int = 32, max_tokens: int | None = 16384, distributed: bool = True,
              ) -> list[SequenceScore]:
        """Score every registered sequence (one teacher-forced pass, batched and shared between processes)."""
        pad, eos = self._special_ids()
        started = time.perf_counter()
        batches = plan_batches([len(f["input_ids"]) for f in self.features], batch_size, max_tokens)
        results, counts = run_batches(
            batches, lambda b: score_batch(model, [self.features[i] for i in b], pad, eos), distributed)
        self.stats["sequences_scored_per_process"] = counts
        self.stats["scoring_seconds"] = round(time.perf_counter() - started, 3)
        return [results[i] for i in range(len(self.features))]

    def generate(self, model, max_new_tokens: int, batch_size: int = 32, distributed: bool = True) -> list[str]:
        """Greedy continuation of every registered prompt, decoded without special tokens and stripped."""
        if not self.prompts:
            return []
        pad, eos = self._special_ids()
        started = time.perf_counter()
        batches = plan_batches([len(p) for p in self.prompts], batch_size)
        results, counts = run_batches(
            batches, lambda b: generate_batch(model, [self.prompts[i] for i in b], pad, eos, max_new_tokens),
            distributed)
        self.stats["prompts_generated_per_process"] = counts
        self.stats["generation_seconds"] = round(time.perf_counter() - started, 3)
        return [self.tokenizer.decode(results[i], skip_special_tokens=True).strip() for i in range(len(self.prompts))]
