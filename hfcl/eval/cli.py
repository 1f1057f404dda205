"""``hfcl eval``: evaluate a model on the TOFU or MUSE suite and write ``eval_report.json`` (+ plots).

    hfcl eval --model target --suite tofu --forget_split forget10 --retain_logs auto --out runs/target-eval
    hfcl eval --model retain --save_reference_log retain_tofu.json --out runs/retain-eval
    hfcl eval --model runs/npo --retain_logs retain_tofu.json          # writes into the run directory
    accelerate launch --num_processes 2 -m hfcl.eval.cli --model target --out runs/x   # shared between processes
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..config import load_config, parse_args
from ..errors import ConfigError, OutputExistsError
from .report import REPORT_FILE
from .suites import EvalConfig

DESCRIPTION = ("Evaluate a model (zoo stage, local folder, PEFT adapter folder or Hub id) on the TOFU or MUSE suite: "
               "forget quality, model utility, truth ratio, ROUGE, PrivLeak, membership attacks and memorisation. "
               "Writes OUT/eval_report.json and OUT/plots/*.png and prints a table.")


@dataclass
class EvalArguments:
    """What ``hfcl eval`` evaluates and where it writes; the :class:`EvalConfig` fields follow as further flags."""

    model: str = field(metadata={
        "help": "Zoo stage (target, retain, base), local folder (run directory, full model or PEFT adapter) or Hub "
                "id."})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder applied on top of --model."})
    retain_logs: str | None = field(default=None, metadata={
        "help": "Retain-model reference log (JSON) for forget_quality and privleak; 'auto' builds/reuses the embedded "
                "retain model's. Without it both are reported as null, with a note."})
    save_reference_log: str | None = field(default=None, metadata={
        "help": "Also save this run's reference log here (evaluate the retain model to make one)."})
    out: str | None = field(default=None, metadata={
        "help": "Output directory; defaults to --model when that is a local run directory."})
    world_config: str | None = field(default=None, metadata={
        "help": "YAML of ZooConfig fields (world + zoo recipe) for stage names and the embedded data."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing OUT/eval_report.json."})
    plots: bool = field(default=True, metadata={"help": "Write OUT/plots/*.png (--no_plots to skip)."})


def output_dir(args: EvalArguments) -> Path:
    """Where the report goes; raises before any work if it cannot be written."""
    if args.out:
        out = Path(args.out)
    elif Path(args.model).is_dir():
        out = Path(args.model)
    else:
        raise ConfigError(f"--model {args.model!r} is not a local run directory: pass --out DIR for the report.")
    if (out / REPORT_FILE).exists() and not args.overwrite:
        raise OutputExistsError(f"{out / REPORT_FILE} already exists; pass --overwrite or choose another --out.")
    return out


def main(argv: list[str] | None = None) -> int:
    """``hfcl eval``: returns 0 on success; bad options raise :class:`~hfcl.errors.ConfigError` before any work."""
    args, config = parse_args([EvalArguments, EvalConfig], argv, prog="hfcl eval", description=DESCRIPTION)
    out = output_dir(args)
    world = None
    if args.world_config:
        from ..zoo import ZooConfig

        world = load_config(ZooConfig, args.world_config)

    from .api import evaluate_model, reference_log_from_report
    from .scoring import _process_info

    report = evaluate_model(args.model, config=config, world_config=world, reference_log=args.retain_logs,
                            adapter=args.adapter)
    if _process_info(True)[0] != 0:  # under accelerate launch only the main process writes and prints
        return 0
    path = report.save(out / REPORT_FILE)
    written = [path]
    if args.save_reference_log:
        written.append(reference_log_from_report(report).save(args.save_reference_log))
    if args.plots:
        from .plots import write_plots
        from .reference_log import ReferenceLog

        ref = None
        if report.reference_log and report.reference_log.get("path"):
            ref = ReferenceLog.load(report.reference_log["path"])
        written += write_plots(report, out / "plots", ref)
    report.print()
    for item in written:
        print(f"wrote {item}")
    return 0


if __name__ == "__main__":  # pragma: no cover - `accelerate launch -m hfcl.eval.cli ...`
    sys.exit(main(sys.argv[1:]))
