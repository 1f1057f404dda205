"""The transfer chapter of ``hfcl demo``: an adapter trained on ``base`` moved to ``base-v2``, gain retained."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def demo_transfer(zoo_config=None, workdir: str | Path | None = None, n_seeds: int = 16,
                  print_fn=print) -> dict[str, Any]:
    """Train the sentence-answer adapter on ``base``, move it to ``base-v2`` by copy and by data-free distill.

    Returns ``{"rows": [...], "source_gain": float}``; each row has the method, the task score on base-v2 with the
    moved adapter and the share of the source gain it keeps. ``print_fn`` receives a short table (``None`` = quiet).
    """
    from ..zoo import load_model, model_path
    from .api import transfer
    from .distill import TransferConfig
    from .task import save_task_adapter, sentence_task, train_task_adapter

    data = sentence_task(zoo_config)
    base_dir = model_path("base", zoo_config)
    model_path("base-v2", zoo_config)
    with tempfile.TemporaryDirectory(prefix="hfcl-demo-transfer-") as tmp:
        root = Path(workdir or tmp)
        model, tokenizer = load_model("base", zoo_config)
        model = train_task_adapter(model, tokenizer, data["train"])
        adapter = save_task_adapter(model, tokenizer, root / "adapter-base", base_dir, overwrite=True)
        seeds = [dict(r) for r in data["train"].shuffle(seed=0).select(range(min(n_seeds, len(data["train"]))))]
        rows = []
        for method in ("copy", "distill"):
            config = TransferConfig(output_dir=None, use_cpu=True, disable_tqdm=True)
            summary = transfer(adapter, "base-v2", method=method, output_dir=root / f"adapter-base-v2-{method}",
                               seeds=seeds if method == "distill" else None, eval_rows=data["test"],
                               config=config, zoo_config=zoo_config, overwrite=True)
            ev = summary["evaluation"]
            rows.append({"method": method, "scores": ev["scores"], "gain_retained": ev["gain_retained"],
                         "seconds": summary["wall_seconds"], "output_dir": summary["output_dir"],
                         "acceptance_rate": summary["transfer"].get("filter_acceptance_rate")})
    scores = rows[0]["scores"]
    result = {"rows": rows, "source_gain": round(scores["source_base+adapter"] - scores["source_base"], 6),
              "metric": "answer probability on held-out questions"}
    if print_fn is not None:
        print_fn(f"Transfer: sentence-answer adapter trained on base, moved to base-v2 "
                 f"(answer probability, {len(data['test'])} held-out questions)")
        print_fn(f"  base {scores['source_base']:.3f} -> base+adapter {scores['source_base+adapter']:.3f}; "
                 f"base-v2 alone {scores['target_base']:.3f}")
        for row in rows:
            extra = f", {len(seeds)} seeds, filter kept {row['acceptance_rate']:.0%}" if row["method"] == "distill" else ""
            print_fn(f"  {row['method']:<8} base-v2+adapter {row['scores']['target_base+adapter']:.3f}  gain retained "
                     f"{_share(row['gain_retained'])}  ({row['seconds']:.0f}s{extra})")
    return result


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"
