"""Exactness of hfcl composition on a tiny random Llama with real PEFT LoRA adapters."""

from __future__ import annotations

import copy

import pytest
import torch

from hfcl.compose import (Combination, LowRankDelta, compose, compress_delta, load_adapter, parse_expression,
                          save_adapter, stack_deltas, truncated_svd)
from hfcl.compose.synthetic import apply_dense_deltas, random_peft_lora, tiny_llama
from hfcl.errors import ConfigError

TARGETS = ("q_proj", "v_proj", "up_proj", "down_proj")
INPUT = torch.tensor([[1, 5, 9, 17, 33, 2, 64, 100, 3, 7]])


@pytest.fixture(scope="module")
def base():
    return tiny_llama(seed=0)


@pytest.fixture(scope="module")
def adapters(base, tmp_path_factory):
    """Three saved LoRAs with different ranks, alphas and (for c) rsLoRA scaling."""
    root = tmp_path_factory.mktemp("adapters")
    specs = {"a": dict(seed=1, r=4, lora_alpha=8), "b": dict(seed=2, r=2, lora_alpha=16),
             "c": dict(seed=3, r=8, lora_alpha=4, use_rslora=True)}
    loaded = {}
    for name, spec in specs.items():
        random_peft_lora(base, root / name, target_modules=TARGETS, **spec)
        loaded[name] = load_adapter(str(root / name), name=name)
    return loaded


def logits(model):
    with torch.no_grad():
        return model(INPUT).logits


def peft_logits(base, folder):
    from peft import PeftModel

    model = PeftModel.from_pretrained(copy.deepcopy(base), str(folder)).eval()
    return logits(model)


def reference_logits(base, weights, adapters):
    dense = {}
    for name, w in weights.items():
        for module, delta in adapters[name].deltas.items():
            dense[module] = dense.get(module, 0) + w * delta.dense(torch.float64)
    return logits(apply_dense_deltas(base, {k: v.float() for k, v in dense.items()}))


def test_loaded_delta_matches_peft_get_delta_weight(base, adapters, tmp_path):
    model = random_peft_lora(base, tmp_path / "x", seed=3, r=8, lora_alpha=4, use_rslora=True,
                             target_modules=TARGETS)
    x = load_adapter(str(tmp_path / "x"))
    layer = dict(model.base_model.model.named_modules())["model.layers.0.self_attn.q_proj"]
    expected = layer.get_delta_weight("default")
    assert torch.allclose(x.deltas["model.layers.0.self_attn.q_proj"].dense(), expected, atol=1e-7)
    assert x.deltas["model.layers.0.self_attn.q_proj"].scaling == pytest.approx(4 / 8 ** 0.5)


@pytest.mark.parametrize("weights", [{"a": 0.7, "b": 0.3, "c": -0.5}, {"a": 1.0, "c": 2.0}, {"b": -1.0}])
def test_composed_adapter_output_equals_base_plus_weighted_deltas(base, adapters, weights, tmp_path):
    combo = Combination.from_weights(adapters, weights)
    result = compose(combo)
    assert result.max_error == 0.0
    save_adapter(result.adapter, tmp_path / "out", recipe=result.recipe)
    got = peft_logits(base, tmp_path / "out")
    want = reference_logits(base, weights, adapters)
    assert (got - want).abs().max().item() <= 1e-5
    assert (want - logits(base)).abs().max().item() > 1e-2  # the deltas really change the output


def test_operators_and_expression_agree(adapters):
    a, b, c = adapters["a"], adapters["b"], adapters["c"]
    by_ops = (0.7 * a + 0.3 * b - 0.5 * c).weight_map()
    by_text = parse_expression("0.7*a + 0.3*b - 0.5*c")
    assert by_ops == pytest.approx(by_text)
    assert (2 * (a - b) / 4).weight_map() == pytest.approx({"a": 0.5, "b": -0.5})


def test_a_minus_a_is_exact_zero(base, adapters, tmp_path):
    a = adapters["a"]
    result = compose(a - a)
    for delta in result.adapter.deltas.values():
        assert delta.rank == 0 and torch.count_nonzero(delta.dense()) == 0
    save_adapter(result.adapter, tmp_path / "zero")
    assert torch.equal(peft_logits(base, tmp_path / "zero"), logits(base))


def test_half_plus_half_equals_a(base, adapters, tmp_path):
    a = adapters["a"]
    result = compose(0.5 * a + 0.5 * a)
    for module, delta in result.adapter.deltas.items():
        assert torch.allclose(delta.dense(), a.deltas[module].dense(), atol=1e-7)
    # Also without the symbolic collapse: two distinct copies of the same adapter, stacked.
    twin = copy.copy(a)
    stacked = compose(0.5 * a + 0.5 * twin).adapter
    assert stacked.max_rank == 2 * a.max_rank
    for module, delta in stacked.deltas.items():
        assert torch.allclose(delta.dense(), a.deltas[module].dense(), atol=1e-6)
    # rank="auto" finds that the two copies share their directions: back to rank r, still exact.
    auto = compose(0.5 * a + 0.5 * twin, rank="auto")
    assert auto.adapter.max_rank == a.max_rank and auto.recipe["rank"] == "auto" and auto.max_error < 1e-6
    for module, delta in auto.adapter.deltas.items():
        assert torch.allclose(delta.dense(), a.deltas[module].dense(), atol=1e-6)
    with pytest.raises(ConfigError, match="auto"):
        compose(a, rank="half")


@pytest.mark.parametrize("method", ["linear", "ties", "dare_linear", "dare_ties", "magnitude_prune"])
def test_identity_merge_gives_same_logits(base, adapters, method, tmp_path):
    result = compose(adapters["c"], method=method, density=None if method == "linear" else 1.0)
    save_adapter(result.adapter, tmp_path / method)
    got = peft_logits(base, tmp_path / method)
    want = peft_logits(base, adapters["c"].source)
    assert (got - want).abs().max().item() <= 1e-5


def test_stack_deltas_is_weighted_sum():
    gen = torch.Generator().manual_seed(0)
    d1 = LowRankDelta(torch.randn(3, 7, generator=gen), torch.randn(5, 3, generator=gen), 2.0)
    d2 = LowRankDelta(torch.randn(2, 7, generator=gen), torch.randn(5, 2, generator=gen), 0.5)
    out = stack_deltas([(0.3, d1), (-1.2, d2)])
    assert out.rank == 5
    assert torch.allclose(out.dense(), 0.3 * d1.dense() - 1.2 * d2.dense(), atol=1e-6)
    assert out.sq_norm() == pytest.approx(float((out.dense().double() ** 2).sum()), rel=1e-6)
    with pytest.raises(ConfigError):
        stack_deltas([(1.0, d1), (1.0, LowRankDelta(torch.randn(2, 6), torch.randn(5, 2)))])


def test_compression_full_rank_exact_and_low_rank_eckart_young():
    gen = torch.Generator().manual_seed(1)
    parts = [LowRankDelta(torch.randn(4, 40, generator=gen), torch.randn(30, 4, generator=gen), s)
             for s in (1.0, 0.5, 2.0)]
    stacked = stack_deltas([(0.7, parts[0]), (0.3, parts[1]), (-0.5, parts[2])])
    dense = stacked.dense(torch.float64)
    full = compress_delta(stacked, rank=12)
    assert full.rel_error < 1e-12
    assert (full.delta.dense(torch.float64) - dense).abs().max() < 1e-5
    exact_rank = compress_delta(stacked)  # numerical rank: lossless
    assert exact_rank.rank == 12
    s = torch.linalg.svdvals(dense)
    for k in (1, 4, 8):
        cut = compress_delta(stacked, rank=k)
        optimal = float((s[k:] ** 2).sum().sqrt() / (s ** 2).sum().sqrt())
        measured = float(torch.linalg.norm(cut.delta.dense(torch.float64) - dense) / torch.linalg.norm(dense))
        assert cut.rank == k
        assert cut.rel_error == pytest.approx(optimal, rel=1e-5)
        assert measured == pytest.approx(optimal, rel=1e-4)
        assert torch.allclose(cut.singular_values[:12], s[:12], rtol=1e-6)
    dense_cut = truncated_svd(dense.float(), rank=4)
    assert dense_cut.rel_error == pytest.approx(float((s[4:] ** 2).sum().sqrt() / (s ** 2).sum().sqrt()), rel=1e-5)


def test_compose_with_rank_reports_optimal_error(base, adapters, tmp_path):
    combo = 0.7 * adapters["a"] + 0.3 * adapters["b"] - 0.5 * adapters["c"]
    exact = compose(combo).adapter
    small = compose(combo, rank=3)
    module = "model.layers.1.mlp.up_proj"
    dense = exact.deltas[module].dense(torch.float64)
    s = torch.linalg.svdvals(dense)
    assert small.errors[module] == pytest.approx(float((s[3:] ** 2).sum().sqrt() / (s ** 2).sum().sqrt()), rel=1e-5)
    assert small.adapter.deltas[module].rank == 3
    assert small.recipe["compression"]["max_rel_error"] == pytest.approx(small.max_error)
    full = compose(combo, rank=14)  # 4 + 2 + 8: every direction kept
    assert full.max_error < 1e-6
    save_adapter(full.adapter, tmp_path / "full")
    want = reference_logits(base, {"a": 0.7, "b": 0.3, "c": -0.5}, adapters)
    assert (peft_logits(base, tmp_path / "full") - want).abs().max().item() <= 1e-5


def test_merge_into_model_delta_weights_and_adapter_from_dense(base, adapters):
    from hfcl.compose import IncompatibleAdaptersError, LoraAdapter, adapter_from_dense, delta_weights, merge_into_model

    weights = {"a": 0.7, "b": 0.3, "c": -0.5}
    combo = Combination.from_weights(adapters, weights)
    composed = compose(combo).adapter
    before = logits(base)
    merged = merge_into_model(base, composed, in_place=False)
    assert torch.equal(logits(base), before)  # the base is untouched with in_place=False
    assert (logits(merged) - reference_logits(base, weights, adapters)).abs().max().item() <= 1e-5
    assert (logits(merge_into_model(merged, composed, weight=-1.0)) - before).abs().max().item() <= 1e-5
    dense = delta_weights(composed)
    rebuilt, errors = adapter_from_dense(dense, like=composed, name="rebuilt")
    assert max(errors.values()) < 1e-6 and rebuilt.max_rank <= 14
    assert rebuilt.base_model_name_or_path == composed.base_model_name_or_path
    for module, want in dense.items():
        assert torch.allclose(rebuilt.dense(module), want, atol=1e-6)
    _, cut = adapter_from_dense(dense, rank=2)
    assert cut == pytest.approx(compose(combo, rank=2).errors, rel=1e-4)  # same Eckart-Young optimum both ways
    stray = LoraAdapter({"model.layers.0.self_attn.nope": LowRankDelta(torch.ones(1, 32), torch.ones(32, 1))})
    with pytest.raises(IncompatibleAdaptersError, match="does not have"):
        merge_into_model(base, stray)
