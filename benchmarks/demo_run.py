"""``hfcl demo`` on an already built zoo: its wall time and the behaviour figures the README quotes.

    python benchmarks/demo_run.py [--zoo default|tiny] [--steps unlearn,negate,eval,card] [--json [PATH]]

Runs every chapter of the demo (compare, unlearn, negate, transfer, evaluate, card) into a temporary folder and
records the mean ROUGE-L recall of greedy answers on the forget10 forget and retain splits of the demo's
unlearned model (NPO+GradDiff, tuned preset; next to ``target``'s), plus the whole run's wall time. Builds the zoo first if it is missing
(that time is not counted).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="default", choices=["default", "tiny"])
    parser.add_argument("--steps", default=None, help="The demo's chapters (default: all of them).")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    from rich.console import Console

    from hfcl.demo import STEPS, DemoArguments, quiet_libraries, run_demo
    from hfcl.zoo import ZooConfig, build_zoo, tiny_config

    cfg = tiny_config() if args.zoo == "tiny" else ZooConfig()
    demo_args = DemoArguments(steps=args.steps or ",".join(STEPS))
    steps = demo_args.step_list()
    build_zoo(cfg, "forget10", ["tokenizer", "base", "target", "retain"] + ["base-v2"] * ("transfer" in steps))
    record = BenchRecord("demo_run" + ("_tiny" if args.zoo == "tiny" else ""),
                         "python benchmarks/demo_run.py" + (" --zoo tiny" if args.zoo == "tiny" else "")
                         + (f" --steps {args.steps}" if args.steps else ""))
    with tempfile.TemporaryDirectory(prefix="hfcl-bench-demo-") as tmp, quiet_libraries():
        start = time.perf_counter()
        demo_args.output_dir = str(Path(tmp) / "demo")
        results = run_demo(demo_args, cfg, console=Console(file=io.StringIO(), width=160))
        seconds = time.perf_counter() - start
    rouge = {name: {split: results[name][split]["mean_rouge"] for split in ("forget", "retain")}
             for name in ("target", "retain", "unlearned") if name in results}
    print(f"hfcl demo ({args.zoo} zoo, built): {seconds:.1f} s")
    for name, values in rouge.items():
        print(f"  {name:10s} forget {values['forget']:.3f}  retain {values['retain']:.3f}")
    chapters = ", ".join(["compare", *steps]).replace("eval", "evaluate 3 models")
    record.add(f"`hfcl demo` on a built {args.zoo} zoo ({chapters})",
               f"{seconds:.0f} s", timed=True, order=20, seconds=round(seconds, 2))
    if "unlearned" in rouge:  # target and retain: the zoo_build rows
        values = rouge["unlearned"]
        record.add("mean ROUGE-L recall, forget10 forget / retain split: after the demo's NPO+GradDiff (tuned preset)",
                   f"{values['forget']:.3f} / {values['retain']:.3f} (target: {rouge['target']['forget']:.3f} / "
                   f"{rouge['target']['retain']:.3f})", order=14, **rouge)
    record.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
