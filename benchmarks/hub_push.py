"""Push one unlearned-adapter run directory two ways against the in-process fake Hub, side by side:

- hfcl: ``push_run(run_dir, repo)``: card rendered from the eval report, everything in one commit;
- stock: ``PeftModel.push_to_hub`` + ``upload_file`` for the report, run record and plot (what a user writes by hand).

Prints commits, HTTP requests, wall time (median of 5 on fresh repos) and what the card says. Not a test.
Run: ``python benchmarks/hub_push.py [--json [PATH]]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from bench_json import BenchRecord, add_json_flag
from hub_fixtures import point_clients_at
from hub_runs import make_run_dir
from hub_server import LocalHub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_flag(parser)
    args = parser.parse_args()
    record = BenchRecord("hub_push", "python benchmarks/hub_push.py")
    hub = LocalHub().start()
    home = Path(tempfile.mkdtemp(prefix="hfcl-bench-"))
    point_clients_at(hub.url, home)
    os.environ["HF_TOKEN"] = hub.token
    from huggingface_hub import HfApi, ModelCard
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    from hfcl.hub import prepare_push, push_run

    run = make_run_dir(home / "run")
    extras = {p: s for p, s in prepare_push(run, "x/y").files.items()
              if p in ("eval_report.json", "hfcl_run.json", "plots/forget_vs_utility.png")}
    api = HfApi()

    def stock(repo: str) -> None:
        model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(run.parent / "base"), run)
        model.push_to_hub(repo)
        for path, source in extras.items():
            api.upload_file(path_or_fileobj=source if isinstance(source, bytes) else str(source), path_in_repo=path,
                            repo_id=repo)

    rows = {}
    for name, fn in (("hfcl push_run", lambda repo: push_run(run, repo)), ("stock PEFT + upload_file", stock)):
        times, requests, commits = [], [], []
        for i in range(5):
            repo = f"{hub.user}/{name.split()[0]}-{i}"
            before = len(hub.requests)
            started = time.perf_counter()
            fn(repo)
            times.append(time.perf_counter() - started)
            requests.append(len(hub.requests) - before)
            commits.append(len(hub.commits(repo)) - 1)
        card = ModelCard.load(repo).data.to_dict()
        rows[name] = (statistics.median(times), statistics.median(requests), statistics.median(commits),
                      card.get("library_name"), "model-index" in card, len(hub.files(repo)) - 1)
    staging = []
    for _ in range(5):
        started = time.perf_counter()
        prepare_push(run, "x/y")
        staging.append(time.perf_counter() - started)
    hub.stop()
    print(f"{'':28}{'wall s':>8}{'requests':>10}{'commits':>9}{'library_name':>14}{'model-index':>13}{'files':>7}")
    for name, (wall, req, com, lib, index, files) in rows.items():
        print(f"{name:28}{wall:8.3f}{req:10.0f}{com:9.0f}{lib!s:>14}{index!s:>13}{files:7d}")
    (a, b) = rows.values()
    print(f"ratio stock/hfcl: wall {b[0] / a[0]:.2f}x, requests {b[1] / a[1]:.2f}x, commits {b[2] / a[2]:.0f}x")
    print(f"hfcl staging (card + plot rendering, no network): {statistics.median(staging):.3f} s of "
          f"{a[0]:.3f} s")
    record.add("Hub push of a run: requests / commits vs `PeftModel.push_to_hub` + `upload_file` (local fake Hub)",
               f"{a[1]:.0f} / {a[2]:.0f} vs {b[1]:.0f} / {b[2]:.0f}", order=80,
               hfcl={"requests": a[1], "commits": a[2], "wall_s": round(a[0], 4)},
               stock={"requests": b[1], "commits": b[2], "wall_s": round(b[0], 4)})
    record.write(args.json)


if __name__ == "__main__":
    main()
