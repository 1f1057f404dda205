"""Cold build vs warm load of the embedded default models, side by side in one run.

    python benchmarks/zoo_build.py [--preset default|tiny]

Builds every default stage into a fresh temporary cache (cold), then loads each from it (warm), and prints a table
with the seconds of each and the memorisation figures of the built models (ROUGE-L recall of greedy answers).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=["default", "tiny"])
    parser.add_argument("--keep", action="store_true", help="Build into HF_HOME instead of a temporary cache.")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="Override a ZooConfig field of the preset (repeatable), e.g. --set hidden_size=192.")
    args = parser.parse_args()
    if not args.keep:
        os.environ["HFCL_CACHE"] = tempfile.mkdtemp(prefix="hfcl-bench-")
    from rich.console import Console
    from rich.table import Table

    from hfcl.data import load_tofu
    from hfcl.demo import answer_split
    from hfcl.zoo import ZooConfig, build_zoo, load_model, model_path, tiny_config
    from hfcl.zoo.cache import read_marker

    import dataclasses

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
    build_zoo(cfg, stages=stages)  # target and retain side by side (one process per core)
    total_wall = time.perf_counter() - start
    cold = {stage: (read_marker(model_path(stage, cfg)) or {}).get("build_seconds", 0.0) for stage in stages}
    splits = load_tofu("forget10", world_config=cfg)
    quality = {}
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
    console.print("bars: cold build of all stages <= 180 s on 2 cores; warm load <= 5 s; target forget >= 0.9, "
                  "retain forget <= 0.5, retain retain >= 0.9")


if __name__ == "__main__":
    main()
