"""Full-model task vectors and LoRA extraction (library and ``hfcl extract-lora``)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from hfcl.compose.cli import extract_main
from hfcl.compose.task_vectors import TaskVector, apply_task_vector, extract_lora, merge_task_vectors
from hfcl.compose.synthetic import tiny_llama
from hfcl.errors import ConfigError, OutputExistsError

INPUT = torch.tensor([[1, 5, 9, 17, 33, 2, 64, 100, 3, 7]])
LOW_RANK = {"model.layers.0.self_attn.q_proj": 3, "model.layers.1.mlp.down_proj": 2, "model.layers.1.mlp.up_proj": 3}


def logits(model):
    with torch.no_grad():
        return model(INPUT).logits


@pytest.fixture(scope="module")
def base():
    return tiny_llama(seed=0)


def finetune(base, seed: int, touch_norm: bool = False):
    """``base`` plus known low-rank changes on three Linear layers (and optionally a norm change)."""
    model = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, rank in LOW_RANK.items():
            w = modules[name].weight
            w += 0.3 * torch.randn(w.shape[0], rank, generator=gen) @ torch.randn(rank, w.shape[1], generator=gen) \
                / w.shape[1] ** 0.5
        if touch_norm:
            modules["model.norm"].weight += 0.05
    return model


def test_task_vector_algebra(base):
    ft1, ft2 = finetune(base, 1), finetune(base, 2)
    tv1, tv2 = TaskVector.from_models(base, ft1, name="t1"), TaskVector.from_models(base, ft2, name="t2")
    rebuilt = apply_task_vector(base, tv1)
    for (n, p), (_, q) in zip(rebuilt.named_parameters(), ft1.named_parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    zero = merge_task_vectors(tv1 - tv1)
    assert all(torch.count_nonzero(d) == 0 for d in zero.deltas.values())
    avg = merge_task_vectors(0.5 * tv1 + 0.5 * tv2)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert torch.allclose(avg.deltas[name], 0.5 * (tv1.deltas[name] + tv2.deltas[name]))
    same = merge_task_vectors(tv1, method="ties", density=1.0)
    assert torch.allclose(same.deltas[name], tv1.deltas[name])
    pruned = merge_task_vectors(tv1 + tv2, method="magnitude_prune", density=0.1)
    assert 0 < torch.count_nonzero(pruned.deltas[name]) <= int(0.1 * pruned.deltas[name].numel()) * 2
    negated = apply_task_vector(ft1, -tv1)  # forgetting by negation brings ft1 back to the base
    assert (logits(negated) - logits(base)).abs().max() < 1e-5


def test_extract_lora_exact_at_true_rank_and_optimal_below(base, tmp_path):
    from peft import PeftModel

    ft = finetune(base, 3, touch_norm=True)
    result = extract_lora(base, ft, rank=3)
    assert set(result.adapter.deltas) == set(LOW_RANK)
    assert result.max_error < 1e-6
    assert set(result.uncaptured) == {"model.norm.weight"} and 0 < result.uncaptured["model.norm.weight"] < 1
    result.adapter.base_model_name_or_path = None
    from hfcl.compose import save_adapter

    save_adapter(result.adapter, tmp_path / "lora")
    with torch.no_grad():
        ft_no_norm = copy.deepcopy(ft)
        ft_no_norm.model.norm.weight.copy_(base.model.norm.weight)
    got = logits(PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "lora")).eval())
    assert (got - logits(ft_no_norm)).abs().max().item() <= 1e-5
    cut = extract_lora(base, ft, rank=1)
    name = "model.layers.0.self_attn.q_proj"
    diff = dict(ft.named_modules())[name].weight - dict(base.named_modules())[name].weight
    s = torch.linalg.svdvals(diff.detach().double())
    assert cut.errors[name] == pytest.approx(float((s[1:] ** 2).sum().sqrt() / (s ** 2).sum().sqrt()), rel=1e-4)
    with pytest.raises(ConfigError, match="nothing to extract"):
        extract_lora(base, copy.deepcopy(base))


def test_extract_lora_cli(base, tmp_path):
    from peft import PeftModel

    ft = finetune(base, 4)
    base.save_pretrained(tmp_path / "base")
    ft.save_pretrained(tmp_path / "ft")
    argv = ["--model", str(tmp_path / "ft"), "--base", str(tmp_path / "base"), "--out", str(tmp_path / "out"),
            "--rank", "4"]
    assert extract_main(argv) == 0
    recipe = json.loads((tmp_path / "out" / "hfcl_run.json").read_text())
    assert recipe["command"] == "extract-lora" and recipe["compression"]["max_rel_error"] < 1e-6
    got = logits(PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "out")).eval())
    assert (got - logits(ft)).abs().max().item() <= 1e-5
    with pytest.raises(OutputExistsError):
        extract_main(argv)


def test_compose_accepts_task_vectors(base):
    from hfcl.compose import compose

    tv1, tv2 = TaskVector.from_models(base, finetune(base, 5), name="t1"), TaskVector.from_models(
        base, finetune(base, 6), name="t2")
    name = "model.layers.1.mlp.up_proj.weight"
    result = compose(0.5 * tv1 - tv2)
    assert isinstance(result.adapter, TaskVector)
    assert torch.allclose(result.adapter.deltas[name], 0.5 * tv1.deltas[name] - tv2.deltas[name], atol=1e-7)
    assert result.recipe["method"] == "linear" and result.recipe["kind"] == "full"
    tied = compose(tv1 + tv2, method="ties", density=0.5).adapter.deltas[name]
    assert 0 < torch.count_nonzero(tied) < tied.numel()
    with pytest.raises(ConfigError, match="rank"):
        compose(tv1, rank=2)
    from hfcl.compose import save_adapter

    with pytest.raises(ConfigError, match="extract_lora"):
        save_adapter(result.adapter, "unused-dir")
