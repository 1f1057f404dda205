"""``hfcl demo``: the whole story on the embedded default, offline, on a laptop CPU.

1. build (or load) the fictitious world and the embedded models: ``target`` knows every author, ``retain`` never saw
   the forget authors;
2. show what each answers on a few forget and retain questions, with ROUGE-L recall against the truth;
3. ``unlearn``: NPO + GradDiff on all weights of ``target`` (its tuned preset), stopped when a membership attack can
   no longer tell the forget rows from holdout rows (no retain model needed);
4. ``negate``: unlearning by negation, ``W_target - lambda * dW`` of a LoRA trained on the forget set, exact;
5. ``transfer``: an adapter trained on ``base`` moved to the updated ``base-v2``, with the share of its gain kept;
6. ``continual``: naive vs replay + EWC on a stream of new authors learned from ``base``, then the same stream with
   a deletion request (learn A, learn B, forget one author of A, learn C);
7. ``eval``: the TOFU suite (forget quality, model utility, PrivLeak, MIA) for target, retain and unlearned;
8. ``card``: the unlearned run's eval card (README.md with model-index, tables, plots), written locally;
then, on request, ``--hub_model_id REPO`` shares the run on the Hub and ``--space`` serves the models side by side.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import parse_args
from .errors import ConfigError
from .utils.logging import get_logger
from .zoo.config import ZooConfig

logger = get_logger(__name__)

#: The demo's chapters after the target/retain comparison, in the order they run.
STEPS = ("unlearn", "negate", "transfer", "continual", "eval", "card")


@dataclass
class DemoArguments:
    """Options of the demo (the model recipe's options follow)."""

    forget_split: str = field(default="forget10", metadata={"help": "Which authors to forget: forget01, forget05 or "
                                                                    "forget10 (1/5/10%% of authors)."})
    n_questions: int = field(default=4, metadata={"help": "Questions shown per split (forget and retain)."})
    zoo: str = field(default="default", metadata={"help": "Zoo recipe (embedded world + models): 'default' or 'tiny' "
                                                          "(builds in seconds, for a quick look); ZooConfig flags "
                                                          "override it. `--preset tiny` still works for one release.",
                                                  "choices": ["default", "tiny"]})
    output_dir: str = field(default="hfcl-demo", metadata={"help": "Where the demo writes its run directories "
                                                                   "(unlearned/, transfer/)."})
    steps: str = field(default=",".join(STEPS), metadata={"help": "Comma-separated chapters to run after the "
                                                                   "target/retain comparison, in order: "
                                                                   + ", ".join(STEPS) + "."})
    hub_model_id: str = field(default=None, metadata={
        "help": "Hub repo id (user/name) to push the unlearned run, its eval card and the forget/retain data to; off "
                "by default. `--push REPO` still works for one release."})
    space: bool = field(default=False, metadata={"help": "At the end, serve the Gradio Space with target, retain "
                                                         "and the unlearned model side by side (blocks until "
                                                         "Ctrl+C)."})

    def step_list(self) -> list[str]:
        """The chosen chapters, checked against :data:`STEPS`."""
        chosen = [s.strip() for s in self.steps.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in STEPS]
        if unknown:
            raise ConfigError(f"steps: unknown chapter(s) {unknown}; choose from {', '.join(STEPS)}.")
        if "card" in chosen and not {"unlearn", "eval"} <= set(chosen):
            raise ConfigError("steps: 'card' needs 'unlearn' and 'eval' (the card shows the unlearned model's "
                              "evaluation); add them or drop 'card'.")
        if self.hub_model_id and "card" not in chosen:
            raise ConfigError("hub_model_id: pushing needs the 'unlearn', 'eval' and 'card' steps.")
        return chosen


def rouge_l_recall(references: list[str], predictions: list[str]) -> list[float]:
    """ROUGE-L recall of each prediction against its reference: :func:`hfcl.eval.metrics.rouge_l_recall` (the one
    ROUGE-L, Porter stemming as ``hfcl eval``), kept with this module's old ``(references, predictions)`` order."""
    from .eval.metrics.rouge import rouge_l_recall as rouge_l

    return rouge_l(predictions, references).tolist()


def answer_split(model, tokenizer, rows: Any, limit: int | None = None) -> dict[str, Any]:
    """Greedy answers and ROUGE-L recall on ``rows`` (a Dataset in the TOFU schema)."""
    from .zoo.train import greedy_answers

    rows = rows.select(range(min(limit, len(rows)))) if limit else rows
    answers = greedy_answers(model, tokenizer, list(rows["question"]))
    from .eval.metrics.rouge import rouge_l_recall as rouge_l

    scores = rouge_l(answers, list(rows["answer"])).tolist()
    return {"questions": list(rows["question"]), "truth": list(rows["answer"]), "answers": answers,
            "rouge": scores, "mean_rouge": sum(scores) / max(len(scores), 1)}


def run_demo(args: DemoArguments, cfg: ZooConfig, console=None) -> dict[str, Any]:
    """Run the demo and return its numbers (also printed as rich tables)."""
    from rich.console import Console
    from rich.table import Table

    from .data import load_tofu
    from .zoo import build_zoo, load_model

    console = console or Console()
    started = time.perf_counter()
    stages = ["tokenizer", "base", "target", "retain"]
    if "transfer" in args.step_list():
        stages.append("base-v2")
    with console.status("[bold]Building the embedded world and models (cached after the first run)..."):
        build_zoo(cfg, args.forget_split, stages)
    console.print(f"[green]Models ready[/] in {time.perf_counter() - started:.1f}s")
    splits = load_tofu(args.forget_split, world_config=cfg)
    results: dict[str, Any] = {}
    for stage in ("target", "retain"):
        model, tokenizer = load_model(stage, cfg, args.forget_split)
        results[stage] = {split: answer_split(model, tokenizer, splits[split]) for split in ("forget", "retain")}
    for split in ("forget", "retain"):
        table = Table(title=f"{split} questions ({args.forget_split})", show_lines=True)
        table.add_column("question")
        table.add_column("truth")
        for stage in ("target", "retain"):
            table.add_column(f"{stage} model (ROUGE-L)")
        for i in range(min(args.n_questions, len(splits[split]))):
            row = [results["target"][split]["questions"][i], results["target"][split]["truth"][i]]
            for stage in ("target", "retain"):
                res = results[stage][split]
                row.append(f"{res['answers'][i]}  [dim]({res['rouge'][i]:.2f})[/]")
            table.add_row(*row)
        console.print(table)
    summary = Table(title="mean ROUGE-L recall (whole split)")
    summary.add_column("model")
    summary.add_column("forget ↓ after unlearning")
    summary.add_column("retain ↑")
    for stage in ("target", "retain"):
        summary.add_row(stage, f"{results[stage]['forget']['mean_rouge']:.3f}",
                        f"{results[stage]['retain']['mean_rouge']:.3f}")
    console.print(summary)
    _run_chapters(args, cfg, splits, results, console)
    console.print(f"[bold green]Demo finished[/] in {time.perf_counter() - started:.1f}s; outputs in "
                  f"{args.output_dir}/.")
    if args.space:
        from .space import launch_demo_space

        extra = {"unlearned": results["unlearned_dir"]} if "unlearned_dir" in results else {}
        launch_demo_space(cfg, args.forget_split, extra)
    return results


def _run_chapters(args: DemoArguments, cfg: ZooConfig, splits, results: dict[str, Any], console) -> None:
    """Unlearn, negate, transfer, evaluate and write the card: each chapter prints its own table."""
    from pathlib import Path

    from rich.rule import Rule

    from .zoo import load_model

    steps = args.step_list()
    out = Path(args.output_dir)
    if "unlearn" in steps:
        from .unlearn import demo_unlearn

        console.print(Rule("[bold]Forget on request: NPO + GradDiff, stopped when the forget set looks unseen"))
        model, tokenizer = load_model("target", cfg, args.forget_split)
        with console.status("[bold]Unlearning the forget authors..."):
            start = time.perf_counter()
            unlearned = demo_unlearn(model, tokenizer, splits, out / "unlearned")
            seconds = time.perf_counter() - start
        results["unlearned_dir"] = str(out / "unlearned")
        results["unlearned"] = {split: answer_split(unlearned, tokenizer, splits[split])
                                for split in ("forget", "retain")}
        _print_before_after(results, args, console, seconds)
    if "negate" in steps:
        from .compose.demo import negation_demo

        console.print(Rule("[bold]Unlearning by negation: subtract a forget LoRA, exactly"))
        with console.status("[bold]Training a forget LoRA and negating it..."):
            results["negation"] = negation_demo(cfg, args.forget_split, output_dir=None, console=None)
        from .compose.demo import print_table

        print_table(results["negation"], console)
    if "transfer" in steps:
        from .transfer.demo import demo_transfer

        console.print(Rule("[bold]Move what it learned: an adapter from base to the updated base-v2"))
        with console.status("[bold]Training an adapter on base and transferring it..."):
            lines: list[str] = []
            results["transfer"] = demo_transfer(cfg, out / "transfer", print_fn=lines.append)
        for line in lines:
            console.print(line)
    if "continual" in steps:
        from .continual.demo import demo_continual, print_chapter

        console.print(Rule("[bold]Learn continually: naive vs replay + EWC, then a stream that also forgets"))
        with console.status("[bold]Learning 3 tasks of new authors (3 runs)..."):
            start = time.perf_counter()
            runs = demo_continual(cfg, out / "continual")
            seconds = time.perf_counter() - start
        print_chapter(runs, console)
        console.print(f"3 streams in {seconds:.1f}s; the learn-and-forget run is in [bold]{out / 'continual'}[/] "
                      "(accuracy_matrix.json, plots/, stages/).")
        results["continual"] = {name: {**r.summary, "forget_events": r.forget_events} for name, r in runs.items()}
        results["continual_dir"] = str(out / "continual")
    if "eval" in steps:
        from .eval import evaluate_models, print_reports

        console.print(Rule(f"[bold]Prove it: the TOFU suite on {args.forget_split}"))
        models: dict[str, Any] = {"target": "target", "retain": "retain"}
        if "unlearned_dir" in results:
            models["unlearned"] = results["unlearned_dir"]
        with console.status("[bold]Evaluating...") as status:
            reports = evaluate_models(models, world_config=cfg, forget_split=args.forget_split,
                                      progress=lambda name: status.update(f"[bold]Evaluating {name}..."))
        print_reports(reports, title=f"TOFU {args.forget_split} (embedded world)", console=console)
        results["reports"] = reports
    if "card" in steps:
        from .hub import write_eval_card

        reports = results["reports"]
        comparisons = {"target": reports["target"], "retain": reports["retain"]}
        readme = write_eval_card(results["unlearned_dir"], report=reports["unlearned"], comparisons=comparisons)
        results["card"] = str(readme)
        console.print(f"Eval card written to [bold]{readme}[/] (model-index metadata, tables and plots).")
        if args.hub_model_id:
            from .data import load_tofu
            from .hub import push_demo

            pushed = push_demo(results["unlearned_dir"], args.hub_model_id, report=reports["unlearned"],
                               comparisons=comparisons, splits=load_tofu(args.forget_split, world_config=cfg))
            results["pushed"] = pushed
            for result in pushed.values():
                console.print(f"Pushed to the Hub: {result.repo_type} [bold]{result.repo_id}[/] "
                              f"({len(result.files)} files, one commit) {result.commit_url or result.repo_url or ''}")


def _print_before_after(results: dict[str, Any], args: DemoArguments, console, seconds: float) -> None:
    from rich.table import Table

    for split in ("forget", "retain"):
        table = Table(title=f"after unlearning: {split} questions", show_lines=True)
        for column in ("question", "truth", "target (before)", "unlearned (after)"):
            table.add_column(column)
        before, after = results["target"][split], results["unlearned"][split]
        for i in range(min(args.n_questions, len(before["questions"]))):
            table.add_row(before["questions"][i], before["truth"][i],
                          f"{before['answers'][i]}  [dim]({before['rouge'][i]:.2f})[/]",
                          f"{after['answers'][i]}  [dim]({after['rouge'][i]:.2f})[/]")
        console.print(table)
    summary = Table(title=f"mean ROUGE-L recall: unlearning took {seconds:.1f}s")
    for column in ("model", "forget ↓", "retain ↑"):
        summary.add_column(column)
    for name in ("target", "unlearned", "retain"):
        summary.add_row(name, f"{results[name]['forget']['mean_rouge']:.3f}",
                        f"{results[name]['retain']['mean_rouge']:.3f}")
    console.print(summary)


@contextlib.contextmanager
def quiet_libraries():
    """The demo prints its own tables: silence Trainer's per-step log lines and transformers' bars and info lines.

    Warnings are not blanket-ignored: the known harmless ones are silenced once, in one place
    (:func:`hfcl.utils.logging.silence_known_noise`), so a new warning still shows.
    """
    import transformers
    from transformers.trainer_callback import PrinterCallback

    from .utils.logging import silence_known_noise

    silence_known_noise()
    verbosity = transformers.logging.get_verbosity()
    on_log = PrinterCallback.on_log
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    PrinterCallback.on_log = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        PrinterCallback.on_log = on_log
        transformers.utils.logging.enable_progress_bar()
        transformers.logging.set_verbosity(verbosity)


def main(argv: Sequence[str]) -> int:
    """Entry point of ``hfcl demo``."""
    args, cfg = parse_args([DemoArguments, ZooConfig], argv, prog="hfcl demo",
                           description="Tell the whole story on the embedded default (no network, no GPU): build "
                                       "the fictitious world and tiny Llama models, then compare what they know, "
                                       "unlearn, negate, transfer, evaluate and write the eval card.")
    from .config import check_output_writable
    from .zoo.cli import apply_zoo

    args.step_list()  # bad chapter names fail before any work
    check_output_writable(args.output_dir)
    with quiet_libraries():
        run_demo(args, apply_zoo(args.zoo, cfg))
    return 0
