"""Merge methods against hand-computed values, guards, (IA)^3, save/load round trips and the compose CLI."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from hfcl.compose import (IncompatibleAdaptersError, UnsupportedAdapterError, combine_ia3, compose,
                          load_adapter, negate_ia3, parse_expression, save_adapter)
from hfcl.compose.cli import main as compose_main
from hfcl.compose.merges import dare_linear, dare_ties, magnitude_prune, module_generator, ties
from hfcl.compose.synthetic import apply_dense_deltas, random_peft_lora, tiny_llama
from hfcl.errors import ConfigError, OutputExistsError

T = torch.tensor([[3.0, -2.0, 1.0, 0.0], [-1.0, -4.0, 2.0, 5.0]])
INPUT = torch.tensor([[1, 5, 9, 17, 33, 2, 64, 100, 3, 7]])


def logits(model):
    with torch.no_grad():
        return model(INPUT).logits


def peft_logits(base, folder):
    from peft import PeftModel

    return logits(PeftModel.from_pretrained(copy.deepcopy(base), str(folder)).eval())


@pytest.fixture(scope="module")
def base():
    return tiny_llama(seed=0)


@pytest.fixture(scope="module")
def lora_dirs(base, tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    random_peft_lora(base, root / "a", seed=1, r=4, target_modules=("q_proj", "v_proj"))
    random_peft_lora(base, root / "b", seed=2, r=4, target_modules=("q_proj", "v_proj"))
    random_peft_lora(base, root / "k", seed=3, r=2, target_modules=("k_proj",))
    random_peft_lora(base, root / "other", seed=4, r=4, target_modules=("q_proj",), base_model_name_or_path="other")
    base.save_pretrained(root / "base")
    return root


# ---- merge functions: hand-computed values ---------------------------------------------------------------------

def test_ties_hand_computed():
    # trim to 2 of 4: [3,-2,0,0], [0,-4,0,5]; elected sign of the sum [3,-6,0,5] -> [+,-,+,+]; disjoint means.
    assert torch.equal(ties(T, torch.tensor([1.0, 1.0]), density=0.5), torch.tensor([3.0, -3.0, 0.0, 5.0]))
    # A negative weight votes against: weighted [0,4,0,-5] flips entries 1 and 3.
    assert torch.equal(ties(T, torch.tensor([1.0, -1.0]), density=0.5), torch.tensor([3.0, 4.0, 0.0, -5.0]))
    # frequency: signs [[+,-,0,0],[0,-,0,+]] -> [+,-,+(tie),+]
    out = ties(T, torch.tensor([2.0, 1.0]), density=0.5, majority_sign="frequency")
    assert torch.equal(out, torch.tensor([6.0, -4.0, 0.0, 5.0]))


def test_magnitude_prune_hand_computed():
    out = magnitude_prune(T, torch.tensor([0.5, 2.0]), density=0.5)
    assert torch.equal(out, torch.tensor([1.5, -9.0, 0.0, 10.0]))


def test_dare_is_seeded_rescaled_and_unbiased():
    x = torch.randn(2, 64, 64, generator=torch.Generator().manual_seed(0))
    w = torch.tensor([1.0, 0.0])
    one = dare_linear(x, w, density=0.25, generator=module_generator(7, "m"))
    again = dare_linear(x, w, density=0.25, generator=module_generator(7, "m"))
    other = dare_linear(x, w, density=0.25, generator=module_generator(8, "m"))
    assert torch.equal(one, again) and not torch.equal(one, other)
    kept = one != 0
    assert torch.allclose(one[kept], 4.0 * x[0][kept])          # rescaled by 1/density
    assert 0.2 < kept.float().mean().item() < 0.3
    draws = torch.stack([dare_linear(x, w, 0.5, generator=module_generator(s, "m")) for s in range(200)])
    assert (draws.mean(0) - x[0]).abs().mean() < 0.1 * x[0].abs().mean()  # E[DARE(T)] = T
    assert torch.equal(dare_ties(x[:1], torch.tensor([1.0]), density=1.0), x[0])


def test_merges_on_real_adapters_differ_from_linear_and_are_reproducible(lora_dirs):
    a, b = load_adapter(str(lora_dirs / "a"), name="a"), load_adapter(str(lora_dirs / "b"), name="b")
    module = "model.layers.0.self_attn.q_proj"
    exact = a.deltas[module].dense() + b.deltas[module].dense()
    lin = compose(a + b).adapter.deltas[module].dense()
    assert torch.allclose(lin, exact, atol=1e-6)
    t1 = compose(a + b, method="ties", density=0.3)
    expected = ties(torch.stack([a.deltas[module].dense(), b.deltas[module].dense()]), torch.tensor([1.0, 1.0]), 0.3)
    s = torch.linalg.svdvals(expected.double())
    assert t1.errors[module] == pytest.approx(float((s[8:] ** 2).sum().sqrt() / (s ** 2).sum().sqrt()), rel=1e-4)
    d1 = compose(a + b, method="dare_ties", density=0.5, seed=3, rank=32)
    d2 = compose(a + b, method="dare_ties", density=0.5, seed=3, rank=32)
    assert torch.equal(d1.adapter.deltas[module].dense(), d2.adapter.deltas[module].dense())
    assert d1.recipe["seed"] == 3 and d1.recipe["method"] == "dare_ties"
    with pytest.raises(ConfigError, match="density"):
        compose(a + b, method="ties")
    with pytest.raises(ConfigError, match="method"):
        compose(a + b, method="svd")


# ---- guards ------------------------------------------------------------------------------------------------------

def test_unsupported_adapters_refused(base, tmp_path):
    random_peft_lora(base, tmp_path / "dora", use_dora=True)
    with pytest.raises(UnsupportedAdapterError, match="DoRA"):
        load_adapter(str(tmp_path / "dora"))
    random_peft_lora(base, tmp_path / "bias", lora_bias=True)
    with pytest.raises(UnsupportedAdapterError, match="lora_bias"):
        load_adapter(str(tmp_path / "bias"))
    random_peft_lora(base, tmp_path / "mts", modules_to_save=["lm_head"])
    with pytest.raises(UnsupportedAdapterError, match="modules_to_save"):
        load_adapter(str(tmp_path / "mts"))
    cfg = json.loads((tmp_path / "mts" / "adapter_config.json").read_text())
    cfg.update(modules_to_save=None, init_lora_weights="pissa")
    (tmp_path / "mts" / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedAdapterError, match="path_initial_model_for_weight_conversion"):
        load_adapter(str(tmp_path / "mts"))


def test_different_base_models_refused_unless_forced(lora_dirs):
    a, other = load_adapter(str(lora_dirs / "a"), name="a"), load_adapter(str(lora_dirs / "other"), name="o")
    with pytest.raises(IncompatibleAdaptersError, match="different base models"):
        compose(a + other)
    assert compose(a + other, force=True).adapter.max_rank == 8


def test_mismatched_target_modules_union_exact_or_strict_error(base, lora_dirs, tmp_path):
    a, k = load_adapter(str(lora_dirs / "a"), name="a"), load_adapter(str(lora_dirs / "k"), name="k")
    with pytest.raises(ConfigError, match="does not target"):
        compose(a - 2 * k, modules="strict")
    result = compose(a - 2 * k)
    assert len(result.adapter.deltas) == 6
    save_adapter(result.adapter, tmp_path / "u")
    dense = {m: d.dense() for m, d in a.deltas.items()}
    dense.update({m: -2 * d.dense() for m, d in k.deltas.items()})
    want = logits(apply_dense_deltas(base, dense))
    assert (peft_logits(base, tmp_path / "u") - want).abs().max().item() <= 1e-5


def test_gpt2_conv1d_fan_in_fan_out(tmp_path):
    from peft import PeftModel
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=128, n_positions=32,
                                      bos_token_id=0, eos_token_id=0)).eval()
    for i, seed in enumerate((1, 2)):
        random_peft_lora(gpt2, tmp_path / f"g{i}", seed=seed, target_modules=("c_attn", "c_fc"), fan_in_fan_out=True)
    g0, g1 = (load_adapter(str(tmp_path / f"g{i}"), name=f"g{i}") for i in range(2))
    assert g0.fan_in_fan_out and g0.deltas["transformer.h.0.attn.c_attn"].shape == (96, 32)
    result = compose(0.5 * g0 - 1.5 * g1)
    save_adapter(result.adapter, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["fan_in_fan_out"] is True
    dense = {m: 0.5 * g0.deltas[m].dense() - 1.5 * g1.deltas[m].dense() for m in g0.deltas}
    want = logits(apply_dense_deltas(gpt2, dense, fan_in_fan_out=True))
    got = logits(PeftModel.from_pretrained(copy.deepcopy(gpt2), str(tmp_path / "out")).eval())
    assert (got - want).abs().max().item() <= 1e-5
    plain = load_adapter(str(tmp_path / "g0"), name="plain")
    plain.fan_in_fan_out = False
    with pytest.raises(IncompatibleAdaptersError, match="fan_in_fan_out"):
        compose(g0 + plain)


def test_existing_output_refused_unless_overwrite(lora_dirs, tmp_path):
    a = load_adapter(str(lora_dirs / "a"), name="a")
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError):
        save_adapter(compose(a).adapter, tmp_path / "out")
    save_adapter(compose(a).adapter, tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


# ---- (IA)^3 ------------------------------------------------------------------------------------------------------

def test_ia3_addition_and_negation(base, tmp_path):
    from peft import IA3Config, PeftModel, get_peft_model

    dirs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = get_peft_model(copy.deepcopy(base), IA3Config(target_modules=["k_proj", "down_proj"],
                                                             feedforward_modules=["down_proj"]))
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "ia3_l" in n:
                    p.add_(0.2 * torch.randn_like(p))
        model.save_pretrained(tmp_path / f"ia3_{seed}")
        dirs.append(tmp_path / f"ia3_{seed}")
    x, y = (load_adapter(str(d), name=f"i{i}") for i, d in enumerate(dirs))
    module = "model.layers.0.mlp.down_proj"
    neg = negate_ia3(x)
    assert torch.allclose(neg.vectors[module], 2 - x.vectors[module])
    mix = combine_ia3(0.3 * x + 0.7 * y)
    assert torch.allclose(mix.vectors[module], 0.3 * x.vectors[module] + 0.7 * y.vectors[module], atol=1e-6)
    assert module in mix.feedforward
    save_adapter(neg, tmp_path / "neg")
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "neg"))
    state = {k: v for k, v in loaded.state_dict().items() if "ia3_l" in k and "layers.0.mlp.down_proj" in k}
    assert torch.allclose(next(iter(state.values())), neg.vectors[module])
    a = random_peft_lora(base, tmp_path / "lora", seed=5)
    del a
    with pytest.raises(ConfigError, match="different types"):
        compose(x + load_adapter(str(tmp_path / "lora")))


# ---- expression and CLI --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["a*b", "a + 1", "2*(a", "a $ b", "", "3", "a/b", "a/0", "import os"])
def test_expression_errors(bad):
    with pytest.raises(ConfigError):
        parse_expression(bad)


def test_expression_values():
    assert parse_expression("0.7*math + 0.3*code - 0.5*toxic") == {"math": 0.7, "code": 0.3, "toxic": -0.5}
    assert parse_expression("-(a - 2*b)/4 + a") == pytest.approx({"a": 0.75, "b": 0.5})
    assert parse_expression("a - a") == {"a": 0.0}
    assert parse_expression("1e-1*a") == pytest.approx({"a": 0.1})


def test_cli_compose_round_trip(base, lora_dirs, tmp_path):
    out = tmp_path / "cli_out"
    argv = ["0.7*a - 0.5*b + k", "--adapter", f"a={lora_dirs / 'a'}", "--adapter", f"b={lora_dirs / 'b'}",
            "--adapter", f"k={lora_dirs / 'k'}", "--base", str(lora_dirs / "base"), "--out", str(out), "--force"]
    assert compose_main(argv) == 0
    recipe = json.loads((out / "hfcl_run.json").read_text())
    assert recipe["weights"] == {"a": 0.7, "b": -0.5, "k": 1.0} and recipe["method"] == "linear"
    assert recipe["compression"]["max_rel_error"] == 0.0 and "versions" in recipe["provenance"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(lora_dirs / "base") and config["use_rslora"] is False
    a, b, k = (load_adapter(str(lora_dirs / n), name=n) for n in "abk")
    dense = {m: 0.7 * a.deltas[m].dense() - 0.5 * b.deltas[m].dense() for m in a.deltas}
    dense.update({m: d.dense() for m, d in k.deltas.items()})
    want = logits(apply_dense_deltas(base, dense))
    assert (peft_logits(base, out) - want).abs().max().item() <= 1e-5
    with pytest.raises(OutputExistsError):
        compose_main(argv)
    assert compose_main(argv + ["--overwrite", "--rank", "2"]) == 0
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 2


def test_cli_errors_before_work(lora_dirs, tmp_path):
    with pytest.raises(ConfigError, match="no --adapter binds"):
        compose_main(["a + c", "--adapter", f"a={lora_dirs / 'a'}", "--out", str(tmp_path / "x")])
    with pytest.raises(ConfigError, match="not used"):
        compose_main(["a", "--adapter", f"a={lora_dirs / 'a'}", "--adapter", f"b={lora_dirs / 'b'}",
                      "--out", str(tmp_path / "x")])
    with pytest.raises(IncompatibleAdaptersError, match="--force"):
        compose_main(["a", "--adapter", f"a={lora_dirs / 'a'}", "--base", str(lora_dirs / "base"),
                      "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_saved_adapter_reloads_with_same_deltas_and_hub_errors_are_typed(lora_dirs, tmp_path, monkeypatch):
    from hfcl.errors import ModelNotAvailableError

    a, k = load_adapter(str(lora_dirs / "a"), name="a"), load_adapter(str(lora_dirs / "k"), name="k")
    result = compose(0.25 * a - k)
    save_adapter(result.adapter, tmp_path / "rt")
    config = json.loads((tmp_path / "rt" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == config["lora_alpha"]
    assert set(config["rank_pattern"].values()) == {2}  # k_proj modules keep their own rank
    again = load_adapter(str(tmp_path / "rt"))
    for module, delta in result.adapter.deltas.items():
        assert torch.allclose(again.deltas[module].dense(), delta.dense(), atol=1e-7)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="could not be downloaded"):
        load_adapter("someone/not-a-cached-adapter")
