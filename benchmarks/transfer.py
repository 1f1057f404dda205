"""Adapter transfer from ``base`` to ``base-v2`` on the embedded sentence-answer task, all tiers side by side.

    python benchmarks/transfer.py            # default zoo (builds base and base-v2 on first use)
    python benchmarks/transfer.py --tiny     # the reduced test zoo (about a minute)

Rows: copy, Trans-PEFT-trained copy, data-free distill from zero (Trans-LoRA) and warm-started from the source
adapter, and retraining on base-v2 with the original data (upper bound). "retained" = (score of base-v2 + moved
adapter - base-v2 alone) / (its source adapter's score on base - base alone). Times are measured in this run, so
the distill / retrain ratio compares like with like.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="Use the reduced test zoo.")
    parser.add_argument("--n_seeds", type=int, default=16, help="Seed examples for distill.")
    parser.add_argument("--drop_rate", type=float, default=0.1, help="Trans-PEFT FFN dropping rate.")
    parser.add_argument("--mask_rate", type=float, default=0.0, help="Trans-PEFT FFN masking rate.")
    parser.add_argument("--epochs", type=float, default=20.0, help="Task adapter training epochs.")
    parser.add_argument("--n_synthetic", type=int, default=256, help="Synthetic prompts generated for distill.")
    parser.add_argument("--distill_epochs", type=float, default=10.0, help="Distillation epochs.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="Override a TransferConfig field for distill (repeatable), e.g. --set seed_repeats=4.")
    add_json_flag(parser)
    args = parser.parse_args(argv)
    record = BenchRecord("transfer" + "_tiny" * args.tiny, "python benchmarks/transfer.py" + " --tiny" * args.tiny
                         + "".join(f" --set {item}" for item in args.set))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from transformers.utils import logging as hf_logging

    from hfcl.transfer.api import transfer
    from hfcl.transfer.distill import TransferConfig
    from hfcl.transfer.task import gain_retained, save_task_adapter, sentence_task, task_score, train_task_adapter
    from hfcl.zoo import ZooConfig, load_model, model_path, tiny_config

    hf_logging.set_verbosity_error()
    cfg = tiny_config() if args.tiny else ZooConfig()
    t = time.perf_counter()
    base_dir, _ = model_path("base", cfg), model_path("base-v2", cfg)
    print(f"zoo ready in {time.perf_counter() - t:.0f}s ({'tiny' if args.tiny else 'default'})")
    data = sentence_task(cfg)
    print(f"task: {len(data['train'])} train / {len(data['test'])} held-out questions; {args.n_seeds} seeds")
    seeds = [dict(r) for r in data["train"].shuffle(seed=args.seed).select(range(args.n_seeds))]
    rows = []

    def train(stage: str, **kw):
        model, tok = load_model(stage, cfg)
        start = time.perf_counter()
        model = train_task_adapter(model, tok, data["train"], epochs=args.epochs, seed=args.seed, **kw)
        return model, tok, time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="hfcl-bench-transfer-") as tmp:
        root = Path(tmp)
        plain, tok, plain_seconds = train("base")
        plain_dir = save_task_adapter(plain, tok, root / "plain", base_dir)
        robust, _, robust_seconds = train("base", drop_rate=args.drop_rate, mask_rate=args.mask_rate)
        robust_dir = save_task_adapter(robust, tok, root / "robust", base_dir, drop_rate=args.drop_rate,
                                       mask_rate=args.mask_rate)

        def run(label: str, adapter, method: str, **kw):
            extra = {k: type(getattr(TransferConfig, k, ""))(v) if not isinstance(getattr(TransferConfig, k, None), bool)
                     else v.lower() in ("1", "true") for k, v in (item.split("=", 1) for item in args.set)}
            config = TransferConfig(output_dir=None, use_cpu=True, disable_tqdm=True, seed=args.seed,
                                    n_synthetic=args.n_synthetic, num_train_epochs=args.distill_epochs, **extra)
            s = transfer(adapter, "base-v2", method=method, seeds=seeds if method == "distill" else None,
                         eval_rows=data["test"], config=config, zoo_config=cfg, **kw)
            ev = s["evaluation"]
            rows.append((label, ev["scores"]["source_base+adapter"], ev["scores"]["target_base+adapter"],
                         ev["gain_retained"], s["transfer_seconds"],
                         s["transfer"].get("filter_acceptance_rate")))
            return ev

        ev = run("copy", plain_dir, "copy")
        base_score, v2_score = ev["scores"]["source_base"], ev["scores"]["target_base"]
        source_score = ev["scores"]["source_base+adapter"]
        run(f"Trans-PEFT copy (drop {args.drop_rate}, mask {args.mask_rate})", robust_dir, "copy")
        run("distill, fresh LoRA (Trans-LoRA)", plain_dir, "distill", init="fresh")
        run("distill, warm start (copy + distill)", plain_dir, "distill", init="source")
        retrained, _, retrain_seconds = train("base-v2")
        score = task_score(retrained, tok, data["test"])
        rows.append(("retrain on base-v2 with original data", source_score, score,
                     round(gain_retained(score, v2_score, source_score, base_score), 4), retrain_seconds, None))

    print(f"\nanswer probability: base {base_score:.3f}, base+adapter {source_score:.3f}, base-v2 {v2_score:.3f}"
          f" (plain adapter training {plain_seconds:.1f}s, Trans-PEFT {robust_seconds:.1f}s)\n")
    print(f"{'method':<44} {'src+A':>7} {'v2+A':>7} {'retained':>9} {'seconds':>8} {'filter kept':>11}")
    for label, src, tgt, kept, seconds, acc in rows:
        acc_text = f"{acc:.0%}" if acc is not None else "-"
        print(f"{label:<44} {src:7.3f} {tgt:7.3f} {kept:9.0%} {seconds:8.1f} {acc_text:>11}")
    distill_fresh, distill_warm = rows[2][4], rows[3][4]
    print(f"\ntime ratio distill / retrain: fresh {distill_fresh / retrain_seconds:.2f}x, warm "
          f"{distill_warm / retrain_seconds:.2f}x (distill includes loading both models, generation and filtering)")
    kept = [row[3] for row in rows]
    figure = " / ".join(f"**{k:.0%}**" if i == 3 else f"{k:.0%}" for i, k in enumerate(kept))
    record.add("adapter transfer base -> base-v2, share of the gain kept (one run, seed "
               f"{args.seed}): copy / Trans-PEFT copy / fresh distill / warm distill / retrain", figure, order=100,
               gain_retained=dict(zip(("copy", "trans_peft_copy", "distill_fresh", "distill_warm", "retrain"), kept,
                                      strict=False)))
    record.add("adapter transfer: time of distill / retrain with the original data (fresh, warm)",
               f"{distill_fresh / retrain_seconds:.2f}x, {distill_warm / retrain_seconds:.2f}x", timed=True,
               order=101, retrain_s=round(retrain_seconds, 2))
    record.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
