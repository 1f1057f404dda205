"""The Space's model math: prompts that fit, the probability of the true answer, ROUGE-L, streamed greedy answers.

Everything here is a plain function of ``(model, tokenizer, text)``; the Gradio layer only calls these. Numbers use
the evaluation suite's definitions (:mod:`hfcl.eval`), so what a visitor sees matches ``eval_report.json``:

* ``p(truth)`` = ``exp(-mean NLL)`` of the answer tokens (EOS included) given the chat-templated question: the
  length-normalised probability behind ``forget_prob`` / ``retain_prob``;
* ROUGE-L = recall of the reference's longest common subsequence in the answer (``rouge_score``, Porter stemming):
  the number behind ``forget_rouge`` / ``retain_rouge``.

Streaming is a greedy loop over the KV cache, one token per step, so several models can be advanced in turn and
shown side by side; its output equals ``model.generate(do_sample=False)`` token for token (tested).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data.formatting import prompt_ids, tokenize_example
from ..errors import ConfigError, DataError, SpaceInputError

DEFAULT_MAX_PROMPT_TOKENS = 256
DEFAULT_MAX_NEW_TOKENS = 64


@dataclass(frozen=True)
class FittedPrompt:
    """Prompt token ids that fit the budget, the messages they render, and a notice when something was cut."""

    ids: list[int]
    messages: list[dict[str, str]]
    notice: str | None = None


def _plain(messages: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):  # Gradio 6 history: content is a list of parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append({"role": str(m.get("role", "user")), "content": "" if content is None else str(content)})
    return out


def fit_prompt(tokenizer, messages: Sequence[dict[str, Any]], max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
               ) -> FittedPrompt:
    """Chat-templated prompt ids for ``messages`` (the last one is the user's) within ``max_prompt_tokens``.

    Over budget, the oldest turns are dropped first, then the end of the last message is cut; the returned
    ``notice`` says what happened. An empty last message is a :class:`SpaceInputError`.
    """
    msgs = _plain(messages)
    if not msgs or msgs[-1]["role"] != "user" or not msgs[-1]["content"].strip():
        raise SpaceInputError("Type a question first: the prompt is empty.")
    if max_prompt_tokens < 8:
        raise ConfigError(f"max_prompt_tokens={max_prompt_tokens} is too small (at least 8).")
    msgs[-1] = {"role": "user", "content": msgs[-1]["content"].strip()}
    ids = prompt_ids(tokenizer, msgs)
    if len(ids) <= max_prompt_tokens:
        return FittedPrompt(ids, msgs)
    notes = []
    dropped = 0
    while len(msgs) > 1 and len(ids) > max_prompt_tokens:
        cut = 2 if len(msgs) > 2 else 1
        msgs, dropped = msgs[cut:], dropped + cut
        ids = prompt_ids(tokenizer, msgs)
    if dropped:
        notes.append(f"the {dropped} oldest message(s) were dropped")
    if len(ids) > max_prompt_tokens:
        content_ids = tokenizer(msgs[-1]["content"], add_special_tokens=False)["input_ids"]
        keep = len(content_ids) - (len(ids) - max_prompt_tokens)
        while keep > 0:
            text = tokenizer.decode(content_ids[:keep], skip_special_tokens=True)
            trial = msgs[:-1] + [{"role": "user", "content": text}]
            ids = prompt_ids(tokenizer, trial)
            if len(ids) <= max_prompt_tokens:
                msgs = trial
                break
            keep -= max(1, len(ids) - max_prompt_tokens)
        if keep <= 0:
            raise SpaceInputError(f"The chat template alone exceeds the {max_prompt_tokens}-token prompt budget.")
        notes.append(f"the prompt was truncated to {max_prompt_tokens} tokens "
                     f"(kept the first {keep} of {len(content_ids)} question tokens)")
    return FittedPrompt(ids, msgs, "Notice: " + "; ".join(notes) + ".")


@dataclass(frozen=True)
class TruthScore:
    """How likely the model finds the true answer: ``prob`` = exp(-``mean_nll``) over ``n_tokens`` answer tokens."""

    prob: float
    mean_nll: float
    n_tokens: int


@torch.inference_mode()
def truth_probability(model, tokenizer, question: str, answer: str, max_length: int = 1024) -> TruthScore:
    """Length-normalised probability of ``answer`` (plus EOS) after the chat-templated ``question``."""
    from ..eval.scoring import score_batch

    if not answer.strip():
        raise SpaceInputError("No reference answer to score: pick a preset question or type the true answer.")
    try:
        feature = tokenize_example(tokenizer, {"question": question, "answer": answer.strip()}, max_length)
    except DataError as exc:
        raise SpaceInputError(str(exc)) from exc
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    score = score_batch(model, [feature], pad, tokenizer.eos_token_id)[0]
    nll = score.avg_nll
    return TruthScore(prob=math.exp(-nll), mean_nll=nll, n_tokens=int(score.logprobs.size))


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L recall of ``prediction`` against ``reference`` (the TOFU definition used by ``hfcl eval``)."""
    from ..eval.metrics.rouge import rouge_scores

    return float(rouge_scores([prediction], [reference])[0]["rougeL_recall"])


def _device(model) -> torch.device:
    return next(model.parameters()).device


def stream_greedy(model, tokenizer, ids: Sequence[int], max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                  ) -> Iterator[str]:
    """Greedy answer to prompt ``ids``, yielded as the decoded text so far after every new token.

    Stops at EOS or after ``max_new_tokens``; always yields at least once (an empty answer is ``""``).
    """
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
    eos = tokenizer.eos_token_id
    device = _device(model)
    generated: list[int] = []
    sequence = list(ids)
    step_input = torch.tensor([sequence], dtype=torch.long, device=device)
    past = None
    yielded = False
    for _ in range(max_new_tokens):
        with torch.inference_mode():
            out = model(input_ids=step_input, past_key_values=past, use_cache=True)
        past = out.past_key_values
        next_id = int(out.logits[0, -1].argmax())
        if eos is not None and next_id == eos:
            break
        generated.append(next_id)
        sequence.append(next_id)
        yielded = True
        yield tokenizer.decode(generated, skip_special_tokens=True).strip()
        # a model without a KV cache (ULD's target + assistant) reads the whole sequence again
        step_input = torch.tensor([[next_id]] if past is not None else [sequence], dtype=torch.long, device=device)
    if not yielded:
        yield ""


def interleave(streams: Sequence[Iterator[str] | None]) -> Iterator[tuple[list[str], list[bool]]]:
    """Advance several text streams in turn (one step each per round); yields ``(texts, finished)`` after each
    round. A ``None`` stream counts as finished with empty text."""
    texts = [""] * len(streams)
    done = [s is None for s in streams]
    while not all(done):
        for i, stream in enumerate(streams):
            if done[i]:
                continue
            try:
                texts[i] = next(stream)  # type: ignore[arg-type]
            except StopIteration:
                done[i] = True
        yield list(texts), list(done)
