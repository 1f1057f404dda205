"""``hfcl eval``: evaluate a model on the TOFU or MUSE suite and write ``eval_report.json`` (+ plots).

    hfcl eval --model target --suite tofu --forget_split forget10 --retain_logs auto --output_dir runs/target-eval
    hfcl eval --model retain --save_reference_log retain_tofu.json --output_dir runs/retain-eval
    hfcl eval --model runs/npo --retain_logs auto --compare target,retain   # into the run dir, card re-rendered
    accelerate launch --num_processes 2 -m hfcl.eval.cli --model target --output_dir runs/x   # shared by processes

``--compare target,retain`` also evaluates those models (``NAME=SOURCE`` for others) with the same settings and
writes ``eval_report.<name>.json`` beside ``eval_report.json``: the card's comparison columns and the plot's
reference points. When the output folder is a run directory, its card (``README.md``) is re-rendered at the end.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..config import check_output_writable, load_config, parse_args
from ..errors import ConfigError, OutputExistsError
from .report import REPORT_FILE
from .suites import EvalConfig

DESCRIPTION = ("Evaluate a model (zoo stage, local folder, PEFT adapter folder or Hub id) on the TOFU or MUSE suite: "
               "forget quality, model utility, truth ratio, ROUGE, PrivLeak, membership attacks and memorisation. "
               "Writes OUTPUT_DIR/eval_report.json (+ eval_report.<name>.json for --compare) and OUTPUT_DIR/plots/*.png, "
               "prints a table, and re-renders the card when OUTPUT_DIR is a run directory.")


@dataclass
class EvalArguments:
    """What ``hfcl eval`` evaluates and where it writes; the :class:`EvalConfig` fields follow as further flags."""

    model: str = field(metadata={
        "help": "Zoo stage (target, retain, base), local folder (run directory, full model or PEFT adapter) or Hub "
                "id."})
    adapter: str | None = field(default=None, metadata={
        "help": "PEFT adapter folder applied on top of --model; it must have been trained on --model (the base it "
                "records in adapter_config.json or hfcl_run.json), else an error names the right --model."})
    force: bool = field(default=False, metadata={
        "help": "Evaluate --adapter on --model even when the adapter records another base (a warning instead of "
                "the error)."})
    retain_logs: str | None = field(default=None, metadata={
        "help": "Retain-model reference log (JSON) for forget_quality and privleak; 'auto' builds/reuses the embedded "
                "retain model's. Without it both are reported as null, with a note."})
    save_reference_log: str | None = field(default=None, metadata={
        "help": "Also save this run's reference log here (evaluate the retain model to make one)."})
    output_dir: str | None = field(default=None, metadata={
        "help": "Output directory; defaults to --model when that is a local run directory."})
    compare: str = field(default="", metadata={
        "help": "Comma-separated comparison models evaluated with the same settings, NAME or NAME=SOURCE (e.g. "
                "'target,retain'); each report is written as OUTPUT_DIR/eval_report.NAME.json, which the card shows "
                "as columns next to this model."})
    card: bool = field(default=True, metadata={
        "help": "Re-render OUTPUT_DIR/README.md (the eval card) when OUTPUT_DIR is a run directory (--no_card to "
                "skip)."})
    world_config: str | None = field(default=None, metadata={
        "help": "YAML of ZooConfig fields (world + zoo recipe) for stage names and the embedded data."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing OUTPUT_DIR/eval_report.json."})
    plots: bool = field(default=True, metadata={"help": "Write OUTPUT_DIR/plots/*.png (--no_plots to skip)."})


_NAME = re.compile(r"[\w.-]+")


def comparison_models(spec: str) -> dict[str, str]:
    """``"target,retain,npo=runs/npo"`` -> ``{"target": "target", "retain": "retain", "npo": "runs/npo"}``."""
    models: dict[str, str] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, sep, source = item.partition("=")
        name, source = name.strip(), (source.strip() if sep else name.strip())
        if not _NAME.fullmatch(name) or not source:
            raise ConfigError(f"--compare {item!r}: use NAME or NAME=SOURCE with NAME made of letters, digits, '.', "
                              "'_' or '-'.")
        if name in models:
            raise ConfigError(f"--compare names {name!r} twice.")
        models[name] = source
    return models


def check_model_files(*sources: str | None) -> None:
    """Refuse a local model or adapter folder whose config or weights cannot be read, naming the file (before any
    work: a truncated ``adapter_model.safetensors`` would otherwise fail deep inside loading)."""
    from ..compose.io import check_weight_files

    for source in sources:
        if source and Path(source).is_dir():
            check_weight_files(Path(source))


def output_dir(args: EvalArguments) -> Path:
    """Where the report goes; raises before any work if it cannot be written."""
    if args.output_dir:
        out = Path(args.output_dir)
    elif Path(args.model).is_dir():
        out = Path(args.model)
    else:
        raise ConfigError(f"--model {args.model!r} is not a local run directory: pass --output_dir DIR for the "
                          "report.")
    if (out / REPORT_FILE).exists() and not args.overwrite:
        raise OutputExistsError(f"{out / REPORT_FILE} already exists; pass --overwrite or choose another "
                                "--output_dir.")
    check_output_writable(out)
    return out


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a model or adapter (so its card can be rendered)."""
    return (path / "adapter_config.json").is_file() or (path / "config.json").is_file()


def main(argv: list[str] | None = None) -> int:
    """``hfcl eval``: returns 0 on success; bad options raise :class:`~hfcl.errors.ConfigError` before any work."""
    args, config = parse_args([EvalArguments, EvalConfig], argv, prog="hfcl eval", description=DESCRIPTION)
    out = output_dir(args)
    compare = comparison_models(args.compare)
    check_model_files(args.model, args.adapter, *compare.values())
    world = None
    if args.world_config:
        from ..zoo import ZooConfig

        world = load_config(ZooConfig, args.world_config)

    from .api import evaluate_model, reference_log_from_report
    from .scoring import process_info

    report = evaluate_model(args.model, config=config, world_config=world, reference_log=args.retain_logs,
                            adapter=args.adapter, force=args.force)
    others = {}
    if compare:
        from .demo import evaluate_models

        others = evaluate_models(compare, world_config=world, reference_log=args.retain_logs, config=config,
                                 distributed=True)
    if process_info(True)[0] != 0:  # under accelerate launch only the main process writes and prints
        return 0
    path = report.save(out / REPORT_FILE)
    written = [path]
    for name, other in others.items():
        written.append(other.save(out / f"eval_report.{name}.json"))
    if args.save_reference_log:
        written.append(reference_log_from_report(report).save(args.save_reference_log))
    if args.plots:
        from .plots import write_plots
        from .reference_log import ReferenceLog

        ref = None
        if report.reference_log and report.reference_log.get("path"):
            ref = ReferenceLog.load(report.reference_log["path"])
        written += write_plots(report, out / "plots", ref)
    if args.card and is_run_dir(out):
        written += _render_card(out)
    if others:
        from .report import print_reports

        print_reports({"this model": report, **others}, title=f"{config.suite} {config.forget_split}")
    else:
        report.print()
    for item in written:
        print(f"wrote {item}")
    return 0


def _render_card(out: Path) -> list[Path]:
    """Re-render the run directory's card from its reports (hfcl.hub); a folder the hub cannot read is noted."""
    from ..hub import write_eval_card
    from ..hub.errors import HubError, RunDirError

    try:
        return [write_eval_card(out)]
    except (HubError, RunDirError) as exc:
        print(f"card not rendered: {exc}", file=sys.stderr)
        return []


if __name__ == "__main__":  # pragma: no cover - `accelerate launch -m hfcl.eval.cli ...`
    sys.exit(main(sys.argv[1:]))
