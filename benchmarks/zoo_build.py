"""Cold build vs warm load of the embedded default models, side by side in one run.

    python benchmarks/zoo_build.py [--preset default|tiny] [--json [PATH]]
    python benchmarks/zoo_build.py --from_cache --json   # the zoo already in HF_HOME: its recorded build times

Builds every default stage into a fresh temporary cache (cold), then loads each from it (warm), and prints a table
with the seconds of each and the memorisation figures of the built models (ROUGE-L recall of greedy answers).
``--from_cache`` builds nothing: it reads the build seconds that each stage recorded in its cache marker when it was
built (with that build's date and hardware) and measures warm loads and memorisation on the cached models; the cold
wall time is then tokenizer + base + the slower of target and retain (those two train side by side).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=["default", "tiny"])
    parser.add_argument("--keep", action="store_true", help="Build into HF_HOME instead of a temporary cache.")
    parser.add_argument("--from_cache", action="store_true",
                        help="Build nothing: report the build times recorded by the zoo already in HF_HOME.")
    parser.add_argument("--build_note", default="",
                        help="With --from_cache: what the machine was doing during that build (e.g. 'load 11-13').")
    add_json_flag(parser)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="Override a ZooConfig field of the preset (repeatable), e.g. --set hidden_size=192.")
    args = parser.parse_args()
    command = "python benchmarks/zoo_build.py" + (" --from_cache" if args.from_cache else "") + \
        (f" --preset {args.preset}" if args.preset != "default" else "")
    record = BenchRecord("zoo_build" + ("_tiny" if args.preset == "tiny" else ""), command)
    if not args.keep and not args.from_cache:
        os.environ["HFCL_CACHE"] = tempfile.mkdtemp(prefix="hfcl-bench-")
    import dataclasses

    from rich.console import Console
    from rich.table import Table

    from hfcl.data import load_tofu
    from hfcl.demo import answer_split
    from hfcl.zoo import ZooConfig, build_zoo, load_model, model_path, tiny_config
    from hfcl.zoo.cache import read_marker

    cfg = tiny_config() if args.preset == "tiny" else ZooConfig()
    if args.set:
        types = {f.name: f.type for f in dataclasses.fields(cfg)}
        overrides = {}
        for item in args.set:
            key, _, value = item.partition("=")
            if key not in types:
                parser.error(f"--set {key}: not a ZooConfig field; valid: {', '.join(sorted(types))}")
            overrides[key] = (float if "float" in str(types[key]) else int if "int" in str(types[key]) else str)(value)
        cfg = dataclasses.replace(cfg, **overrides)
    table = Table(title=f"zoo build ({args.preset}; cache {os.environ.get('HFCL_CACHE', 'HF_HOME')})")
    for column in ("stage", "params", "stage build s", "warm load s"):
        table.add_column(column, justify="right")
    stages = ("tokenizer", "base", "target", "retain")
    start = time.perf_counter()
    if args.from_cache:
        from hfcl.zoo.build import _folder
        from hfcl.zoo.cache import is_complete

        missing = [s for s in stages if not is_complete(_folder(s, cfg, "forget10"), verify_hashes=False)]
        if missing:
            parser.error(f"--from_cache: stage(s) {', '.join(missing)} are not built; run `hfcl zoo` first.")
    build_zoo(cfg, stages=stages)  # target and retain side by side (one process per core)
    total_wall = time.perf_counter() - start
    markers = {stage: read_marker(model_path(stage, cfg)) or {} for stage in stages}
    cold = {stage: markers[stage].get("build_seconds", 0.0) for stage in stages}
    if args.from_cache:
        total_wall = cold["tokenizer"] + cold["base"] + max(cold["target"], cold["retain"])
    splits = load_tofu("forget10", world_config=cfg)
    quality = {}
    warm_seconds: dict[str, float] = {}
    for stage in ("tokenizer", "base", "target", "retain"):
        params = ""
        start = time.perf_counter()
        if stage == "tokenizer":
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(model_path(stage, cfg))
        else:
            model, tok = load_model(stage, cfg)
            params = f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M"
        warm = time.perf_counter() - start
        warm_seconds[stage] = warm
        if stage in ("target", "retain"):
            quality[stage] = {s: answer_split(model, tok, splits[s])["mean_rouge"] for s in ("forget", "retain")}
        marker = read_marker(model_path(stage, cfg)) or {}
        table.add_row(stage, params, f"{cold[stage]:.1f}", f"{warm:.2f}")
        del marker
    table.add_row("all (cold, wall)", "", f"{total_wall:.1f}", "")
    console = Console()
    console.print(table)
    q = Table(title="memorisation (mean ROUGE-L recall, greedy)")
    for column in ("model", "forget", "retain"):
        q.add_column(column)
    for stage, values in quality.items():
        q.add_row(stage, f"{values['forget']:.3f}", f"{values['retain']:.3f}")
    console.print(q)
    built = (markers["target"].get("provenance") or {})
    when = f"built {built.get('created_at', '?')}, {(built.get('hardware') or {}).get('cpu_count', '?')} CPUs" \
        + (f", {args.build_note}" if args.build_note else "") if args.from_cache else "this run"
    record.add(f"cold build of the embedded {args.preset} zoo (tokenizer, base, target, retain)",
               f"**{total_wall / 60:.1f} min** wall (base {cold['base']:.0f} s, then target and retain side by side "
               f"{max(cold['target'], cold['retain']):.0f} s; {when})", timed=not args.from_cache, order=10,
               seconds=round(total_wall, 2), stages={k: round(v, 2) for k, v in cold.items()})
    record.add("warm load of a built model (target)", f"{warm_seconds['target']:.2f} s", timed=True, order=11,
               seconds=round(warm_seconds["target"], 4))
    for stage, order in (("target", 12), ("retain", 13)):
        values = quality[stage]
        label = "target (knows every author)" if stage == "target" else "retain (never saw the forget authors)"
        record.add(f"mean ROUGE-L recall, forget10 forget / retain split: {label}",
                   f"{values['forget']:.3f} / {values['retain']:.3f}", order=order,
                   forget=round(values["forget"], 4), retain=round(values["retain"], 4))
    record.write(args.json)
    console.print("bars: cold build of all stages <= 180 s on 2 cores; warm load <= 5 s; target forget >= 0.9, "
                  "retain forget <= 0.5, retain retain >= 0.9")


if __name__ == "__main__":
    main()
