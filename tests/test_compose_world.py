"""Behaviour on the embedded world: fact-family LoRAs compose, and negation unlearns one family but not another."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from datasets import Dataset

from hfcl.compose import compose, load_adapter, save_adapter
from hfcl.compose.negation import answer_nll, apply_lora_in_place, train_lora, unlearn_by_negation
from hfcl.errors import ConfigError, OutputExistsError

FAMILY_A, FAMILY_B = "birthplace", "award"
TRAIN = dict(r=8, lora_alpha=16, epochs=5, learning_rate=3e-3, batch_size=8, seed=0)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def families(tiny_zoo):
    rows = tiny_zoo.splits["forget"].to_list() + tiny_zoo.splits["retain"].to_list()
    a = [r for r in rows if r["family"] == FAMILY_A]
    b = [r for r in rows if r["family"] == FAMILY_B]
    assert len(a) >= 10 and len(b) >= 10
    return a, b


def prob(model, tokenizer, rows) -> float:
    """Mean per-token answer probability (TOFU's normalised answer probability)."""
    return torch.exp(-answer_nll(model, tokenizer, rows)).mean().item()


def test_family_loras_compose_to_answer_both(tiny_zoo, families, tmp_path):
    from peft import PeftModel

    a_rows, b_rows = families
    base, tokenizer = tiny_zoo.load("base")
    lora_a = train_lora(base, tokenizer, a_rows, name="a", **TRAIN)
    lora_b = train_lora(base, tokenizer, b_rows, name="b", **TRAIN)
    both_rows = a_rows + b_rows
    scores = {}
    for name, combo in (("a", lora_a), ("b", lora_b)):
        model = apply_lora_in_place(copy.deepcopy(base), compose(combo).adapter)
        scores[name] = answer_nll(model, tokenizer, both_rows).mean().item()
    # The sum goes through `hfcl compose` and the saved PEFT adapter, loaded without hfcl.
    from hfcl.compose.cli import main as compose_main

    save_adapter(lora_a, tmp_path / "a")
    save_adapter(lora_b, tmp_path / "b")
    assert lora_a.base_model_name_or_path and lora_a.base_model_name_or_path == lora_b.base_model_name_or_path
    assert compose_main(["a + b", "--adapter", f"a={tmp_path / 'a'}", "--adapter", f"b={tmp_path / 'b'}",
                         "--base", str(tiny_zoo.path("base")), "--output_dir", str(tmp_path / "ab")]) == 0
    assert (tmp_path / "ab" / "tokenizer_config.json").is_file()
    model = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "ab")).eval()
    scores["a+b"] = answer_nll(model, tokenizer, both_rows).mean().item()
    assert scores["a+b"] < scores["a"] and scores["a+b"] < scores["b"], scores
    assert answer_nll(base, tokenizer, both_rows).mean().item() > scores["a+b"]


def test_unlearn_by_negation_forgets_family_a_keeps_b(tiny_zoo, families, tmp_path):
    from transformers import AutoModelForCausalLM

    a_rows, b_rows = families
    target, tokenizer = tiny_zoo.load("target")
    out = tmp_path / "neg"
    result = unlearn_by_negation(str(tiny_zoo.path("target")), Dataset.from_list(a_rows), lam=1.0, output_dir=out,
                                 zoo_config=tiny_zoo.config, **TRAIN)
    unlearned = AutoModelForCausalLM.from_pretrained(out).eval()
    p_a0, p_b0 = prob(target, tokenizer, a_rows), prob(target, tokenizer, b_rows)
    p_a, p_b = prob(unlearned, tokenizer, a_rows), prob(unlearned, tokenizer, b_rows)
    assert p_a < p_a0 - 0.05, (p_a0, p_a)
    assert p_b >= 0.9 * p_b0, (p_b0, p_b)
    recipe = json.loads((out / "hfcl_run.json").read_text())
    assert recipe["method"] == "negation" and recipe["lam"] == 1.0 and recipe["forget_examples"] == len(a_rows)
    # The saved positive forget LoRA reproduces other lambdas exactly: lam=2 forgets more.
    forget = load_adapter(str(out / "forget_adapter"), name="forget")
    stronger = apply_lora_in_place(copy.deepcopy(target), compose(-2.0 * forget).adapter)
    assert prob(stronger, tokenizer, a_rows) < p_a
    with pytest.raises(OutputExistsError):
        unlearn_by_negation(str(tiny_zoo.path("target")), a_rows, output_dir=out, zoo_config=tiny_zoo.config)


def test_negation_adapter_mode_matches_model_mode(tiny_zoo, families, tmp_path):
    from peft import PeftModel

    a_rows, _ = families
    target, tokenizer = tiny_zoo.load("target")
    res = unlearn_by_negation(target, a_rows[:8], lam=1.5, output_dir=tmp_path / "adapter", tokenizer=tokenizer,
                              save="adapter", r=4, lora_alpha=8, epochs=2, learning_rate=3e-3, seed=1)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    peft = PeftModel.from_pretrained(copy.deepcopy(target), str(tmp_path / "adapter")).eval()
    merged = apply_lora_in_place(copy.deepcopy(target), compose(-1.5 * res.forget_adapter).adapter)
    batch = torch.tensor([[tokenizer.bos_token_id or 1, 5, 9, 17, 33, 2, 64, 100]])
    with torch.no_grad():
        assert (peft(batch).logits - merged(batch).logits).abs().max().item() <= 1e-4
    with pytest.raises(ConfigError, match="lam"):
        unlearn_by_negation(target, a_rows, lam=0.0, tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="tokenizer"):
        unlearn_by_negation(target, a_rows)


def test_negation_demo_reports_forgetting_with_before_after_numbers(tiny_zoo, tmp_path):
    import io

    from rich.console import Console

    from hfcl.compose.demo import negation_demo

    out = io.StringIO()
    res = negation_demo(tiny_zoo.config, lams=(4.0,), retain_limit=16, output_dir=str(tmp_path / "demo"),
                        console=Console(file=out, width=160))
    target, negated, retain = (res["models"][k] for k in ("target", "negation lam=4", "retain"))
    assert negated["forget"]["prob"] < target["forget"]["prob"] - 0.2, res
    assert negated["forget"]["rouge_l"] < target["forget"]["rouge_l"] - 0.2, res
    forget_drop = target["forget"]["prob"] - negated["forget"]["prob"]
    assert forget_drop > target["retain"]["prob"] - negated["retain"]["prob"], res  # forgets more than it damages
    assert retain["forget"]["rouge_l"] < 0.5 < target["forget"]["rouge_l"]
    assert res["forget_examples"] == len(tiny_zoo.splits["forget"])
    assert (tmp_path / "demo" / "forget_adapter" / "adapter_config.json").is_file()
    assert "negation lam=4" in out.getvalue()
    with pytest.raises(ConfigError, match="lams"):
        negation_demo(tiny_zoo.config, lams=(0.0,))


def test_negate_cli_writes_a_run_directory(tiny_zoo, tmp_path):
    from hfcl.compose.negation_cli import main as negate_main

    out = tmp_path / "neg"
    argv = ["--preset", "tiny", "--lam", "2", "--epochs", "1", "--r", "4", "--save", "adapter",
            "--output_dir", str(out)]
    assert negate_main(argv) == 0
    recipe = json.loads((out / "hfcl_run.json").read_text())
    assert recipe["method"] == "negation" and recipe["lam"] == 2.0 and recipe["config"]["r"] == 4
    assert recipe["forget_examples"] == len(tiny_zoo.splits["forget"])
    negated, forget = load_adapter(str(out), name="neg"), load_adapter(str(out / "forget_adapter"), name="f")
    module = next(iter(forget.deltas))
    assert torch.allclose(negated.dense(module), -2.0 * forget.dense(module), atol=1e-6)
    with pytest.raises(OutputExistsError):
        negate_main(argv)
    with pytest.raises(ConfigError, match="lam"):
        negate_main(argv + ["--lam", "0", "--overwrite"])
