"""Side-by-side answers and chat turns as plain generators over a :class:`~hfcl.space.models.ModelRegistry`.

The Gradio callbacks in :mod:`hfcl.space.app` only format what these yield. A model that fails to load or answer
gets its error text in its own column; the other models still answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import HfclError
from ..utils.logging import get_logger
from .answers import garbage_note, garbage_reason
from .inference import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MAX_PROMPT_TOKENS,
    SpaceInputError,
    fit_prompt,
    interleave,
    rouge_l,
    stream_greedy,
    truth_probability,
)

logger = get_logger(__name__)


@dataclass(frozen=True)
class ModelAnswer:
    """One column of the comparison: the answer so far and, when a reference is known, its scores."""

    name: str
    text: str = ""
    done: bool = False
    p_truth: float | None = None
    rouge_l: float | None = None
    error: str | None = None

    @property
    def garbage(self) -> str | None:
        """Why the finished answer is broken output rather than text (:func:`~hfcl.space.answers.garbage_reason`),
        else ``None``; always ``None`` while generating or after an error."""
        return garbage_reason(self.text) if self.done and not self.error else None

    def metrics_markdown(self) -> str:
        """``p(truth)`` and ROUGE-L as one Markdown line (``—`` when unknown), with a mark when the answer is
        garbled, so a ROUGE-L of 0 from broken output is not read as clean forgetting."""
        if self.error:
            return f"**error:** {self.error}"
        p = "—" if self.p_truth is None else f"{self.p_truth:.3f}"
        r = "—" if self.rouge_l is None else f"{self.rouge_l:.2f}"
        status = "" if self.done else " · generating…"
        note = garbage_note(self.garbage, self.rouge_l)
        return f"p(truth) **{p}** · ROUGE-L **{r}**{status}" + (f" · {note}" if note else "")


@dataclass(frozen=True)
class CompareState:
    """Every model's answer at one moment, plus a notice (truncation) for the visitor."""

    answers: list[ModelAnswer] = field(default_factory=list)
    notice: str = ""


def _error_text(exc: Exception) -> str:
    return str(exc) if isinstance(exc, HfclError) else f"{type(exc).__name__}: {exc}"


def compare(registry, question: str, truth: str = "", names: Sequence[str] | None = None,
            max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
            ) -> Iterator[CompareState]:
    """Stream greedy answers of ``names`` (default: every registry model) to ``question``, side by side.

    With a reference ``truth``, each model's probability of it is computed before generation and ROUGE-L after.
    Empty ``question`` raises :class:`SpaceInputError` before any model runs.
    """
    names = list(names or registry.names)
    question = (question or "").strip()
    if not question:
        raise SpaceInputError("Type a question (or pick a preset) first: the prompt is empty.")
    truth = (truth or "").strip()
    answers: list[ModelAnswer] = []
    streams: list[Iterator[str] | None] = []
    notice = ""
    for name in names:
        try:
            model, tokenizer = registry.get(name)
            fitted = fit_prompt(tokenizer, [{"role": "user", "content": question}], max_prompt_tokens)
            notice = notice or (fitted.notice or "")
            used_question = fitted.messages[-1]["content"]
            p = truth_probability(model, tokenizer, used_question, truth).prob if truth else None
            answers.append(ModelAnswer(name, p_truth=p))
            streams.append(stream_greedy(model, tokenizer, fitted.ids, max_new_tokens))
        except SpaceInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - shown in this model's column, other models still answer
            logger.warning("Model %s failed: %s", name, exc)
            answers.append(ModelAnswer(name, done=True, error=_error_text(exc)))
            streams.append(None)
    yield CompareState(list(answers), notice)
    finished = [a.done for a in answers]
    try:
        for texts, done in interleave(streams):
            for i, answer in enumerate(answers):
                if answer.error is None:
                    answers[i] = replace(answer, text=texts[i])
            newly = [i for i, d in enumerate(done) if d and not finished[i]]
            for i in newly:
                finished[i] = True
                answers[i] = replace(answers[i], done=True,
                                     rouge_l=rouge_l(answers[i].text, truth) if truth else None)
            yield CompareState(list(answers), notice)
    except Exception as exc:  # noqa: BLE001 - a failure mid-generation is shown, not raised as a trace
        logger.warning("Generation failed: %s", exc)
        answers = [a if a.done else replace(a, done=True, error=_error_text(exc)) for a in answers]
        yield CompareState(list(answers), notice)


def throttle(states: Iterator[Any], min_interval: float, clock=time.monotonic) -> Iterator[Any]:
    """Pass on the first and the last item of ``states`` and, in between, at most one per ``min_interval``
    seconds (the newest), so a fast model does not flood the browser with one update per token."""
    nothing = object()
    last_sent, pending = None, nothing
    for item in states:
        now = clock()
        if last_sent is None or now - last_sent >= min_interval:
            last_sent, pending = now, nothing
            yield item
        else:
            pending = item
    if pending is not nothing:
        yield pending


def final(states: Iterator[CompareState]) -> CompareState:
    """Run a stream to its end and return the last state."""
    state = CompareState()
    for state in states:
        pass
    return state


def chat(registry, name: str, message: str, history: Sequence[dict[str, Any]] | None = None,
         max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
         ) -> Iterator[tuple[str, str]]:
    """One chat turn with model ``name``: yields ``(answer so far, notice)``; ``history`` is a list of
    ``{"role", "content"}`` messages (Gradio 6 part lists accepted). The chat template is applied to every turn."""
    model, tokenizer = registry.get(name)
    messages = [m for m in (history or []) if m.get("role") in ("user", "assistant")]
    fitted = fit_prompt(tokenizer, [*messages, {"role": "user", "content": message or ""}], max_prompt_tokens)
    for text in stream_greedy(model, tokenizer, fitted.ids, max_new_tokens):
        yield text, fitted.notice or ""
