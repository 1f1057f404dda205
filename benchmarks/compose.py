"""Exact composition and compression of LoRA sets: hfcl vs PEFT ``add_weighted_adapter``, side by side.

    python benchmarks/compose.py                   # 24 layers x 7 modules, 2048/8192, r=16, 3 adapters
    python benchmarks/compose.py --peft-layers 24  # PEFT on every layer too (slow: ~5 s per module)

Synthetic Llama-shaped LoRAs (q/k/v/o 2048x2048, gate/up 8192x2048, down 2048x8192), weights 0.7, 0.3, -0.5.
Errors are the relative Frobenius error ``||dW_merged - sum_i w_i dW_i|| / ||sum_i w_i dW_i||`` against a dense
float64 reference; "optimal" is the Eckart-Young error of the best rank-k approximation. PEFT is measured on the first
``--peft-layers`` decoder layers (default 2 = 14 modules) because its dense SVD takes seconds per module on a 2-core
CPU; hfcl is timed on the same subset (for the ratio) and on every layer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

from hfcl.compose import compose
from hfcl.compose.synthetic import llama_shapes, synthetic_lora

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_json import BenchRecord, add_json_flag

WEIGHTS = (0.7, 0.3, -0.5)


def linear_shell(shapes: dict[str, tuple[int, int]]) -> nn.Module:
    """An nn.Module tree with an (uninitialised) nn.Linear at every dotted name: enough for PEFT."""
    root = nn.Module()
    for name, (out_f, in_f) in shapes.items():
        parent = root
        *path, leaf = name.split(".")
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(leaf, nn.Linear(in_f, out_f, bias=False, device="meta"))
    return root.to_empty(device="cpu")


def reference(adapters, module: str) -> torch.Tensor:
    return sum(w * a.deltas[module].dense(torch.float64) for w, a in zip(WEIGHTS, adapters))


def rel_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float(torch.linalg.norm(got.double() - want) / torch.linalg.norm(want))


def optimal_error(want: torch.Tensor, k: int) -> float:
    s = torch.linalg.svdvals(want)
    return float((s[k:] ** 2).sum().sqrt() / (s ** 2).sum().sqrt())


def run_peft(adapters, shapes, rank: int, total_rank: int, kinds: list[str]) -> dict[str, tuple[float, dict]]:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(linear_shell(shapes), LoraConfig(r=rank, lora_alpha=2 * rank,
                                                            target_modules=sorted({n.split(".")[-1] for n in shapes})),
                           adapter_name="a0")
    for i in range(1, len(adapters)):
        model.add_adapter(f"a{i}", LoraConfig(r=rank, lora_alpha=2 * rank,
                                              target_modules=sorted({n.split(".")[-1] for n in shapes})))
    layers = {n[len("base_model.model."):]: m for n, m in model.named_modules() if hasattr(m, "lora_A")
              and n.startswith("base_model.model.")}
    with torch.no_grad():
        for i, adapter in enumerate(adapters):
            for name, delta in adapter.deltas.items():
                layers[name].lora_A[f"a{i}"].weight.copy_(delta.A)
                layers[name].lora_B[f"a{i}"].weight.copy_(delta.B)
    names = [f"a{i}" for i in range(len(adapters))]
    results = {}
    for kind in kinds:
        combo, _, svd_rank = kind.partition("@")
        new = kind.replace("@", "_r")
        started = time.perf_counter()
        model.add_weighted_adapter(names, list(WEIGHTS), new, combination_type=combo,
                                   svd_rank=int(svd_rank) if svd_rank else None)
        seconds = time.perf_counter() - started
        deltas = {name: layer.get_delta_weight(new) for name, layer in layers.items()}
        results[kind] = (seconds, deltas)
        model.delete_adapter(new)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--peft-layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--intermediate", type=int, default=8192)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    add_json_flag(p)
    args = p.parse_args()
    record = BenchRecord("compose", "python benchmarks/compose.py")
    torch.set_num_threads(args.threads)
    k, total = args.rank, args.rank * len(WEIGHTS)
    shapes = llama_shapes(args.layers, args.hidden, args.intermediate)
    sub = {n: s for n, s in shapes.items() if int(n.split(".")[2]) < args.peft_layers}
    adapters = [synthetic_lora(shapes, args.rank, seed=i, name=f"a{i}") for i in range(len(WEIGHTS))]
    combo = sum((w * a for w, a in zip(WEIGHTS, adapters)), start=0 * adapters[0])
    sub_adapters = [type(a)(deltas={n: a.deltas[n] for n in sub}, name=a.name, base_model_name_or_path="synthetic")
                    for a in adapters]
    sub_combo = sum((w * a for w, a in zip(WEIGHTS, sub_adapters)), start=0 * sub_adapters[0])
    print(f"{len(WEIGHTS)} adapters, rank {args.rank}, hidden {args.hidden}, intermediate {args.intermediate}; "
          f"{len(shapes)} modules in all, PEFT subset = first {args.peft_layers} layers ({len(sub)} modules); "
          f"torch threads {torch.get_num_threads()}")

    warm = synthetic_lora({"w": (64, 32)}, 4, seed=9)
    compose(warm + 0.5 * synthetic_lora({"w": (64, 32)}, 4, seed=8), rank=2)  # first-call library set-up, untimed
    torch.linalg.svd(torch.randn(64, 32))
    refs = {n: reference(sub_adapters, n) for n in sub}
    optimal = {n: optimal_error(r, k) for n, r in refs.items()}
    rows = []

    def row(label, seconds, deltas, rank):
        errors = [rel_error(deltas[n], refs[n]) for n in sub]
        rows.append((label, rank, seconds, max(errors), sum(errors) / len(errors)))

    for label, rank in (("hfcl linear (exact, stacked)", None), (f"hfcl linear --rank {total}", total),
                        (f"hfcl linear --rank {k}", k)):
        started = time.perf_counter()
        result = compose(sub_combo, rank=rank)
        seconds = time.perf_counter() - started
        row(label, seconds, {n: d.dense(torch.float64) for n, d in result.adapter.deltas.items()},
            rank or result.adapter.max_rank)
    peft = run_peft(sub_adapters, sub, args.rank, total, ["linear", "cat", "svd", f"svd@{total}"])
    for kind, (seconds, deltas) in peft.items():
        rank = {"linear": k, "cat": total, "svd": k}.get(kind, total)
        row(f"PEFT {kind.replace('@', ' svd_rank=')}", seconds, deltas, rank)

    print(f"\nOn the PEFT subset ({len(sub)} modules); optimal (Eckart-Young) rank-{k} error: "
          f"max {max(optimal.values()):.4f}, mean {sum(optimal.values()) / len(optimal):.4f}")
    print(f"{'method':34s} {'rank':>5s} {'seconds':>9s} {'max rel err':>12s} {'mean rel err':>13s}")
    for label, rank, seconds, mx, mean in rows:
        print(f"{label:34s} {rank:5d} {seconds:9.3f} {mx:12.2e} {mean:13.2e}")
    times = {label: seconds for label, _, seconds, _, _ in rows}
    print(f"\nspeed-up at rank {k}:  PEFT svd / hfcl = {times['PEFT svd'] / times[f'hfcl linear --rank {k}']:.0f}x")
    print(f"speed-up at rank {total}: PEFT svd svd_rank={total} / hfcl = "
          f"{times[f'PEFT svd svd_rank={total}'] / times[f'hfcl linear --rank {total}']:.0f}x")

    started = time.perf_counter()
    full_exact = compose(combo)
    t_exact = time.perf_counter() - started
    started = time.perf_counter()
    full_k = compose(combo, rank=k)
    t_k = time.perf_counter() - started
    started = time.perf_counter()
    full_total = compose(combo, rank=total)
    t_total = time.perf_counter() - started
    print(f"\nhfcl on all {len(shapes)} modules: exact stacking {t_exact:.2f} s (rank {full_exact.adapter.max_rank}); "
          f"--rank {total} {t_total:.2f} s (reported cut error {full_total.max_error:.1e}); "
          f"--rank {k} {t_k:.2f} s (reported cut error, max {full_k.max_error:.4f}; "
          "reported errors come from the singular values, no dense matrix)")
    if args.peft_layers < args.layers:
        per_module = times["PEFT svd"] / len(sub)
        print(f"PEFT svd extrapolated to all {len(shapes)} modules: ~{per_module * len(shapes):.0f} s "
              f"(~{per_module * len(shapes) / t_k:.0f}x hfcl --rank {k})")
    by_label = {label: (seconds, mx) for label, _, seconds, mx, _ in rows}
    exact_s, exact_err = by_label["hfcl linear (exact, stacked)"]
    record.add(f"exact composition of {len(WEIGHTS)} rank-{k} adapters, {args.hidden}/{args.intermediate} shapes, "
               f"{len(sub)} modules", f"{exact_s:.3f} s, error {exact_err:.1e} (PEFT `linear`: "
               f"{by_label['PEFT linear'][1]:.0%} error)", timed=True, order=60, seconds=exact_s,
               max_rel_error=exact_err, peft_linear_error=by_label["PEFT linear"][1])
    record.add(f"optimal re-factoring to rank {k} vs PEFT `svd` at rank {k}",
               f"**{times['PEFT svd'] / times[f'hfcl linear --rank {k}']:.0f}x** faster (max error hfcl "
               f"{by_label[f'hfcl linear --rank {k}'][1]:.3f}, PEFT {by_label['PEFT svd'][1]:.3f})", order=61,
               hfcl_s=times[f"hfcl linear --rank {k}"], peft_s=times["PEFT svd"])
    record.write(args.json)


if __name__ == "__main__":
    main()
