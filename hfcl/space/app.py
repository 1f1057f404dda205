"""The Gradio Blocks app: Compare, Chat, Eval card, Compose and Continual tabs over a :class:`ModelRegistry`.

Callbacks are thin: they call :mod:`hfcl.space.compare` / :mod:`hfcl.space.cards` / :mod:`hfcl.space.composer` and
format the result. Input problems become a visible ``gr.Error`` message, never a stack trace. No per-visitor state
lives on the server besides what Gradio passes in; models are loaded once and only read.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HfclError
from ..utils.logging import get_logger
from . import cards as cards_mod
from .compare import ModelAnswer, chat, compare, throttle
from .inference import DEFAULT_MAX_NEW_TOKENS, DEFAULT_MAX_PROMPT_TOKENS
from .models import ModelRegistry
from .presets import Preset, find_preset

logger = get_logger(__name__)

INTRO = ("**See forgetting happen.** Ask the same question to several models side by side. Next to each answer: "
         "the model's probability of the *true* answer (length-normalised, as `hfcl eval` reports it) and the "
         "ROUGE-L recall of its answer. A model that forgot an author gives the truth a low probability; the "
         "`retain` model, which never saw the forget set, is the goal.")


@dataclass
class SpaceSettings:
    """How the app behaves (all visitors share these; they are read-only after the app is built)."""

    title: str = field(default="hfcl: unlearning, side by side", metadata={"help": "Page title."})
    max_new_tokens: int = field(default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "Longest answer in tokens."})
    max_prompt_tokens: int = field(default=DEFAULT_MAX_PROMPT_TOKENS,
                                   metadata={"help": "Longest prompt in tokens; longer prompts are truncated with a "
                                                     "visible notice."})
    stream_interval: float = field(default=0.05, metadata={"help": "Least seconds between two streamed updates of "
                                                                   "an answer (fewer, larger updates when models are "
                                                                   "fast)."})
    concurrency_limit: int = field(default=2, metadata={"help": "Requests run at once (Gradio queue); the rest wait."})
    target_name: str = field(default="target", metadata={"help": "Model that knows the forget set (the eval card "
                                                                 "compares others with it)."})
    retain_name: str = field(default="retain", metadata={"help": "Model never trained on the forget set (the goal "
                                                                 "of unlearning)."})


class _OneModel:
    """A registry of one already-loaded model (the Compose tab's composed model)."""

    def __init__(self, name: str, model: Any, tokenizer: Any) -> None:
        self.names, self._pair = [name], (model, tokenizer)

    def get(self, name: str) -> tuple[Any, Any]:
        return self._pair


def _user_error(exc: Exception):
    import gradio as gr

    return gr.Error(str(exc) if isinstance(exc, HfclError) else f"{type(exc).__name__}: {exc}")


EMPTY_QUESTION = "Type a question (or pick a preset) first: the prompt is empty."


def _empty(text: str | None) -> bool:
    return not (text or "").strip()


def _empty_prompt_outputs(gr, n_outputs: int) -> tuple:
    """For an empty question: a toast, every output left as it was (so no component shows an error badge), and the
    message in the notice (the last output)."""
    gr.Warning(EMPTY_QUESTION)
    return (*[gr.skip()] * (n_outputs - 1), f"**{EMPTY_QUESTION}**")


def api_parameter_names(names: Sequence[str], prefix: str = "weight_") -> list[str]:
    """Python identifiers for API parameters, one per adapter name (``"math-v2"`` -> ``"weight_math_v2"``),
    made unique with a numeric suffix."""
    import re

    out: list[str] = []
    for name in names:
        base = prefix + (re.sub(r"\W", "_", name) or "adapter")
        candidate, i = base, 2
        while candidate in out:
            candidate, i = f"{base}_{i}", i + 1
        out.append(candidate)
    return out


def _columns(answers: Sequence[ModelAnswer], n: int) -> list[str]:
    texts = [a.error and f"[error] {a.error}" or a.text for a in answers] + [""] * (n - len(answers))
    metrics = [a.metrics_markdown() for a in answers] + [""] * (n - len(answers))
    return texts + metrics


def build_app(registry: ModelRegistry, presets: Sequence[Preset] = (), report_paths: dict | None = None,
              composer: Any = None, compose_reason: str = "", settings: SpaceSettings | None = None,
              continual: Any = None):
    """The ``gr.Blocks`` app (not launched). The Eval card tab reads ``report_paths`` (``name -> path``) and the
    ``eval_report.json`` of each model's run directory, on page load and on "Reload reports"; ``composer`` (a
    :class:`~hfcl.space.composer.Composer`) enables the Compose tab, else ``compose_reason`` is shown there;
    ``continual`` (a :class:`~hfcl.space.continual.ContinualRun`) fills the Continual tab."""
    import gradio as gr

    settings = settings or SpaceSettings()
    names = registry.names
    n = len(names)
    presets = list(presets)
    plot_dir = tempfile.mkdtemp(prefix="hfcl-space-plots-")

    def pick_preset(key: str | None):
        preset = find_preset(presets, key)
        if preset is None:
            return gr.update(), gr.update()
        return preset.question, preset.answer

    def run_compare(question: str, truth: str):
        if _empty(question):
            yield _empty_prompt_outputs(gr, 2 * n + 1)
            return
        try:
            for state in throttle(compare(registry, question, truth, names, settings.max_new_tokens,
                                          settings.max_prompt_tokens), settings.stream_interval):
                yield (*_columns(state.answers, n), state.notice)
        except Exception as exc:
            raise _user_error(exc) from exc

    def run_chat(message: str, history: list | None, model_name: str):
        history = list(history or [])
        if _empty(message):
            yield _empty_prompt_outputs(gr, 3)
            return
        try:
            if model_name not in names:
                raise HfclError(f"Unknown model {model_name!r}; choose one of {', '.join(names)}.")
            turn = [{"role": "user", "content": message}]
            for text, notice in throttle(chat(registry, model_name, message, history, settings.max_new_tokens,
                                              settings.max_prompt_tokens), settings.stream_interval):
                yield history + turn + [{"role": "assistant", "content": text}], "", notice
        except Exception as exc:
            raise _user_error(exc) from exc

    eval_lock, eval_cache = threading.Lock(), {}

    def eval_view():
        # Rendered once per set of report files (matplotlib is not thread-safe; visitors share the result).
        with eval_lock:
            found = cards_mod.find_reports(registry.specs, report_paths, zoo_config=registry.zoo_config,
                                           forget_split=registry.forget_split)
            key = tuple(sorted((name, str(path), path.stat().st_mtime_ns) for name, path in found.sources.items()))
            if key not in eval_cache:
                headers, rows = cards_mod.report_table(found.reports)
                table = {"headers": headers, "data": rows or [["(no reports)", "", *[""] * len(found.reports)]]}
                plots = cards_mod.report_plots(found, tempfile.mkdtemp(dir=plot_dir)) if found.reports else []
                key_plot, run_plots = (plots[0][0] if plots else None), plots[1:]
                eval_cache.clear()
                eval_cache[key] = (table, cards_mod.comparison_markdown(found.reports, settings.target_name,
                                                                         settings.retain_name),
                                   key_plot, run_plots, cards_mod.notes_markdown(found))
            return eval_cache[key]

    with gr.Blocks(title=settings.title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {settings.title}\n{INTRO}\n\nModels: " + ", ".join(
            f"`{s.name}` ({s.source})" for s in registry.specs))
        with gr.Tab("Compare", id="tab-compare"):
            preset = gr.Dropdown(choices=[(p.label, p.key) for p in presets], value=None, label="Preset question "
                                 "(forget / retain / holdout set, with its true answer)", elem_id="preset",
                                 filterable=True)
            with gr.Row():
                question = gr.Textbox(label="Question", lines=2, elem_id="question", scale=3)
                truth = gr.Textbox(label="True answer (optional: enables p(truth) and ROUGE-L)", lines=2,
                                   elem_id="truth", scale=3)
            button = gr.Button("Ask every model", variant="primary", elem_id="compare-btn")
            notice = gr.Markdown(elem_id="notice")
            answer_boxes, metric_boxes = [], []
            with gr.Row():
                for i, name in enumerate(names):
                    with gr.Column():
                        answer_boxes.append(gr.Textbox(label=name, lines=4, interactive=False,
                                                       elem_id=f"answer-{i}"))
                        metric_boxes.append(gr.Markdown(elem_id=f"metrics-{i}"))
            preset.change(pick_preset, [preset], [question, truth], api_name="preset",
                          queue=False)
            gr.on([button.click, question.submit], run_compare, [question, truth],
                  [*answer_boxes, *metric_boxes, notice], api_name="compare",
                  concurrency_limit=settings.concurrency_limit, concurrency_id="models")
        with gr.Tab("Chat", id="tab-chat"):
            chat_model = gr.Dropdown(choices=names, value=names[0], label="Model", elem_id="chat-model")
            chatbot = gr.Chatbot(label="Chat", elem_id="chatbot", height=360)
            chat_box = gr.Textbox(label="Message", elem_id="chat-message")
            chat_notice = gr.Markdown()
            chat_box.submit(run_chat, [chat_box, chatbot, chat_model], [chatbot, chat_box, chat_notice],
                            api_name="chat", concurrency_limit=settings.concurrency_limit, concurrency_id="models")
            gr.Button("Clear").click(lambda: ([], ""), None, [chatbot, chat_notice], api_name=False, queue=False)
        with gr.Tab("Eval card", id="tab-eval"):
            gr.Markdown("Aggregates of each model's `eval_report.json` (arrows: which direction is better). Found "
                        "without `--reports`: a run folder's own report; for zoo stages, the "
                        "`eval_report.<stage>.json` that `hfcl eval --compare target,retain` or `hfcl demo` saved "
                        "next to a served run, "
                        f"`./{cards_mod.DEMO_DIR}/*/`, or the report cache (`$HF_HOME/hfcl/reports`).")
            eval_table = gr.Dataframe(interactive=False, elem_id="eval-table", wrap=True)
            eval_compare = gr.Markdown(elem_id="eval-compare")
            eval_plot = gr.Image(label="Key metrics, all models", type="filepath", interactive=False,
                                 elem_id="eval-plot")
            eval_plots = gr.Gallery(label="Plots saved with each report", columns=2, object_fit="contain",
                                    elem_id="eval-plots")
            eval_notes = gr.Markdown(elem_id="eval-notes")
            reload = gr.Button("Reload reports")
            eval_outputs = [eval_table, eval_compare, eval_plot, eval_plots, eval_notes]
            reload.click(eval_view, None, eval_outputs, api_name="eval_card")
            demo.load(eval_view, None, eval_outputs, api_name=False)
        with gr.Tab("Compose", id="tab-compose"):
            _compose_tab(gr, composer, compose_reason, settings)
        with gr.Tab("Continual", id="tab-continual"):
            _continual_tab(gr, demo, continual, settings)
    return demo


def _continual_tab(gr, demo, run: Any, settings: SpaceSettings) -> None:
    from .continual import ANSWER_HEADERS

    if run is None:
        gr.Markdown("**No continual run loaded.** Serve one with `hfcl space --continual RUN_DIR` (an `hfcl "
                    "continual` output folder) or `--continual user/repo` (a repo pushed with `hfcl push --stages`): "
                    "pick a stage and see the accuracy matrix up to it, forget events marked, and its model's "
                    "answers next to the previous stage's.", elem_id="continual-off")
        return
    labels = [s.label for s in run.stages]
    shown = Path(run.source).name if run.local else run.source  # a folder's name, never a local path
    gr.Markdown(f"`{shown}`: {len(run.stages)} stages. Pick one: the heat map shows R up to it (rows framed in "
                "red: forget events); the table asks that stage's model and the previous one the same questions.")
    stage = gr.Dropdown(choices=labels, value=labels[-1], label="Stage", elem_id="continual-stage")
    with gr.Row():
        heatmap = gr.Image(label="Accuracy matrix so far", type="filepath", interactive=False,
                           elem_id="continual-heatmap", scale=2)
        info = gr.Markdown(elem_id="continual-info")
    answers = gr.Dataframe(headers=ANSWER_HEADERS, interactive=False, wrap=True, elem_id="continual-answers")
    lock = threading.Lock()  # matplotlib and the stage cache are shared by every visitor

    def view(label: str):
        try:
            chosen = run.stage(label)
            with lock:
                image, text = run.heatmap(chosen), run.describe(chosen)
                rows = run.answers(chosen, settings.max_new_tokens)
            return image, text, {"headers": ANSWER_HEADERS, "data": rows or [["(no examples)", "", "", "", ""]]}
        except Exception as exc:
            raise _user_error(exc) from exc

    stage.change(view, [stage], [heatmap, info, answers], api_name="continual_stage",
                 concurrency_limit=settings.concurrency_limit, concurrency_id="models")
    demo.load(view, [stage], [heatmap, info, answers], api_name=False)


def _compose_tab(gr, composer, reason: str, settings: SpaceSettings) -> None:
    if composer is None:
        gr.Markdown("**Compose is not active.** " + (reason or "") + "\n\nLoad one or more PEFT LoRA adapter "
                    "folders trained on the same base (`hfcl space --models target,a=DIR,b=DIR`) and, with "
                    "`hfcl.compose` installed, sliders here set their weights; answers then come from the exactly "
                    "composed adapter `w1*a + w2*b` (task arithmetic on the weight deltas).", elem_id="compose-off")
        return
    gr.Markdown("Weights of each adapter; the answer comes from the base model plus the exactly composed delta "
                "`sum(w_i * dW_i)`.")
    sliders = [gr.Slider(-2.0, 2.0, value=1.0, step=0.1, label=name, elem_id=f"weight-{i}")
               for i, name in enumerate(composer.names)]
    param_names = api_parameter_names(composer.names)
    with gr.Row():
        question = gr.Textbox(label="Question", lines=2, elem_id="compose-question")
        truth = gr.Textbox(label="True answer (optional)", lines=2, elem_id="compose-truth")
    button = gr.Button("Compose and answer", variant="primary", elem_id="compose-btn")
    answer = gr.Textbox(label="Composed model", lines=4, interactive=False, elem_id="compose-answer")
    metrics = gr.Markdown(elem_id="compose-metrics")
    recipe = gr.JSON(label="Recipe")

    def run(question: str, truth: str, **weights: float):
        if _empty(question):
            gr.Warning(EMPTY_QUESTION)
            yield gr.skip(), f"**{EMPTY_QUESTION}**", gr.skip()
            return
        try:
            model, tokenizer, info = composer.model_for({n: weights[p] for n, p in zip(composer.names, param_names)})
            one = _OneModel("composed", model, tokenizer)
            for state in throttle(compare(one, question, truth, None, settings.max_new_tokens,
                                          settings.max_prompt_tokens), settings.stream_interval):
                a = state.answers[0]
                yield (f"[error] {a.error}" if a.error else a.text), a.metrics_markdown(), info
        except Exception as exc:
            raise _user_error(exc) from exc

    # named API parameters: question, truth, weight_<adapter> (gradio_client: predict(..., weight_a=1.0))
    button.click(run, [question, truth], [answer, metrics, recipe], api_name="compose",
                 inputs_kwargs=dict(zip(param_names, sliders)),
                 concurrency_limit=settings.concurrency_limit, concurrency_id="models")
