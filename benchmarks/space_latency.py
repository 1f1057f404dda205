"""What a Space visitor waits for, measured side by side in one process on the same models:

1. streamed greedy answer (hfcl.space's KV-cache loop, one token per step) vs ``model.generate`` (same tokens);
2. time to the first visible token vs the whole answer;
3. two models interleaved (side by side) vs one after the other: until every column shows text, and in total;
4. p(truth) (one teacher-forced pass) vs generating the answer;
5. 10 requests through the launched app (gradio_client) with ``concurrency_limit`` 1 vs 2.

    python benchmarks/space_latency.py           # the reduced test zoo (seconds)
    python benchmarks/space_latency.py --default # the embedded default models (built on first use)
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from hfcl.space.compare import compare, final
from hfcl.space.inference import fit_prompt, interleave, stream_greedy, truth_probability
from hfcl.space.models import ModelRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_throughput(zoo_config, rows, limit: int, max_new_tokens: int, interval: float) -> float:
    """Seconds for ``len(rows)`` concurrent /compare requests with ``concurrency_limit=limit`` and
    ``stream_interval=interval``."""
    from gradio_client import Client

    from hfcl.space import SpaceSettings, build_space, launch

    settings = SpaceSettings(max_new_tokens=max_new_tokens, concurrency_limit=limit, stream_interval=interval)
    demo = build_space("target,retain", zoo_config=zoo_config, presets_per_split=1, settings=settings)
    launch(demo, port=free_port(), block=False, quiet=True, concurrency_limit=limit)
    try:
        client = Client(demo.local_url, verbose=False)
        client.predict(rows[0]["question"], rows[0]["answer"], api_name="/compare")  # warm-up, not timed
        start = time.perf_counter()
        jobs = [client.submit(r["question"], r["answer"], api_name="/compare") for r in rows]
        for job in jobs:
            job.result(timeout=600)
        return time.perf_counter() - start
    finally:
        demo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--default", action="store_true", help="Use the embedded default models (not the tiny zoo).")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--max_new_tokens", type=int, default=48)
    add_json_flag(parser)
    args = parser.parse_args()
    record = BenchRecord("space_latency" + ("" if args.default else "_tiny"),
                         "python benchmarks/space_latency.py" + (" --default" if args.default else ""))
    from hfcl.data import load_tofu
    from hfcl.zoo import tiny_config

    cfg = None if args.default else tiny_config()
    registry = ModelRegistry("target,retain", cfg)
    registry.load_all()
    (target, tok), (retain, _) = registry.get("target"), registry.get("retain")
    rows = load_tofu("forget10", world_config=cfg)["forget"]
    row = rows[0]
    ids = fit_prompt(tok, [{"role": "user", "content": row["question"]}]).ids
    n = args.max_new_tokens
    print(f"threads={torch.get_num_threads()}  models={'default' if args.default else 'tiny'}  max_new_tokens={n}")

    def stream():
        return list(stream_greedy(target, tok, ids, n))

    def generate():
        return target.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False,
                               pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)

    def first_token():
        return next(stream_greedy(target, tok, ids, n))

    def side_by_side():
        return list(interleave([stream_greedy(target, tok, ids, n), stream_greedy(retain, tok, ids, n)]))

    def sequential():
        return stream_greedy_all(target), stream_greedy_all(retain)

    def all_visible_interleaved():
        return next(interleave([stream_greedy(target, tok, ids, n), stream_greedy(retain, tok, ids, n)]))

    def all_visible_sequential():
        return stream_greedy_all(target), next(stream_greedy(retain, tok, ids, n))

    def stream_greedy_all(model):
        return list(stream_greedy(model, tok, ids, n))

    def p_truth():
        return truth_probability(target, tok, row["question"], row["answer"])

    def whole_compare():
        return final(compare(registry, row["question"], row["answer"], max_new_tokens=n))

    t = {name: timed(fn, args.repeats) for name, fn in [
        ("stream", stream), ("generate", generate), ("first_token", first_token), ("side_by_side", side_by_side),
        ("sequential", sequential), ("visible_inter", all_visible_interleaved),
        ("visible_seq", all_visible_sequential), ("p_truth", p_truth), ("compare", whole_compare)]}
    tokens = len(stream())
    print(f"answer length: {tokens} tokens")
    print(f"{'measure':44s} {'seconds':>10s} {'ratio':>8s}")
    print(f"{'streamed greedy answer (KV loop)':44s} {t['stream']:10.4f} {'':>8s}")
    print(f"{'model.generate, same tokens':44s} {t['generate']:10.4f} {t['stream'] / t['generate']:7.2f}x "
          "(stream / generate)")
    print(f"{'first visible token':44s} {t['first_token']:10.4f} {t['first_token'] / t['stream']:7.2f}x "
          "(of the whole answer)")
    print(f"{'2 models: every column shows text, interleaved':44s} {t['visible_inter']:10.4f} "
          f"{t['visible_inter'] / t['visible_seq']:7.2f}x (of one after the other)")
    print(f"{'2 models: both answers complete, interleaved':44s} {t['side_by_side']:10.4f} "
          f"{t['side_by_side'] / t['sequential']:7.2f}x (of one after the other)")
    print(f"{'p(truth), one pass':44s} {t['p_truth']:10.4f} {t['p_truth'] / t['stream']:7.2f}x (of generating)")
    print(f"{'whole /compare (2 models, p + ROUGE-L)':44s} {t['compare']:10.4f}")
    batch = [rows[i] for i in range(min(10, len(rows)))]
    served: dict[tuple[int, float], float] = {}
    for _ in range(2):  # alternate the settings twice and keep each one's best: the machine may be shared
        for key in ((1, 0.05), (2, 0.05), (2, 0.0)):
            served[key] = min(served.get(key, float("inf")), served_throughput(cfg, batch, *key[:1], n, key[1]))
    print(f"{'10 concurrent requests, concurrency_limit=1':44s} {served[1, 0.05]:10.4f}")
    print(f"{'10 concurrent requests, concurrency_limit=2':44s} {served[2, 0.05]:10.4f} "
          f"{served[2, 0.05] / served[1, 0.05]:7.2f}x (of limit 1)")
    print(f"{'  same, an update per token (no throttle)':44s} {served[2, 0.0]:10.4f} "
          f"{served[2, 0.0] / served[2, 0.05]:7.2f}x (of 50 ms throttle)")
    zoo = "default" if args.default else "tiny"
    record.add(f"Space: time until every column shows text, 2 models interleaved vs one after the other ({zoo} zoo)",
               f"{t['visible_inter'] / t['visible_seq']:.2f}x", order=90,
               interleaved_s=round(t["visible_inter"], 5), sequential_s=round(t["visible_seq"], 5))
    record.add(f"Space: streamed greedy answer (KV-cache loop) vs `model.generate`, same tokens ({zoo} zoo)",
               f"{t['stream'] / t['generate']:.2f}x", order=91, stream_s=round(t["stream"], 5),
               generate_s=round(t["generate"], 5))
    record.add(f"Space: 10 concurrent requests, `concurrency_limit` 2 vs 1 ({zoo} zoo)",
               f"{served[2, 0.05] / served[1, 0.05]:.2f}x the time", order=92,
               limit1_s=round(served[1, 0.05], 3), limit2_s=round(served[2, 0.05], 3))
    record.write(args.json)


if __name__ == "__main__":
    main()
