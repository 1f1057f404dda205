"""ULD (unlearning from logit difference): the combination formula, the truncated assistant, the wrapper model that
saves, loads, generates and is evaluated like any model, and the method's behaviour on the tiny embedded world."""

from __future__ import annotations

import json

import pytest
import torch

from hfcl.errors import ConfigError
from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
from hfcl.unlearn import losses as L
from hfcl.unlearn.data import PairedCollator, tokenize_rows
from hfcl.unlearn.uld import FILTERED_MARGIN, LogitDifferenceModel, build_assistant, logit_difference
from hfcl.zoo import load_model

pytest_plugins = ["hub_fixtures"]  # the fake Hub for the push round trip


def test_logit_difference_formula_filter_and_flat_assistant():
    torch.manual_seed(0)
    z_t, z_a = torch.randn(2, 3, 7) * 3, torch.randn(2, 3, 7)
    torch.testing.assert_close(logit_difference(z_t, z_a, -0.8, 0.0), z_t - 0.8 * z_a)
    z = logit_difference(z_t, z_a, -0.8, 0.1)
    logp = torch.log_softmax(z_t, -1)
    keep = logp >= logp.max(-1, keepdim=True).values + torch.log(torch.tensor(0.1))
    torch.testing.assert_close(z[keep], (z_t - 0.8 * z_a)[keep])
    floor = (z_t - 0.8 * z_a).masked_fill(~keep, float("-inf")).amax(-1, keepdim=True) - FILTERED_MARGIN
    torch.testing.assert_close(z[~keep], floor.expand_as(z)[~keep])
    assert bool(keep.any(-1).all())
    flat = torch.full_like(z_a, 4.0)  # a uniform assistant: the target's distribution over kept tokens is unchanged
    p = torch.softmax(logit_difference(z_t, flat, -0.8, 0.1), -1)
    expected = torch.softmax(z_t.masked_fill(~keep, float("-inf")), -1)
    torch.testing.assert_close(p, expected, atol=1e-12, rtol=1e-5)  # filtered tokens: e^-50 of the best
    assert float(L.uniform_kl_loss(flat, torch.zeros(2, 3, dtype=torch.long))) == pytest.approx(0.0, abs=1e-6)


def test_assistant_is_a_truncated_independent_copy(tiny_zoo):
    model, tok = tiny_zoo.load("target")
    ids = tok("Where was the author born?", return_tensors="pt")
    whole = build_assistant(model, model.config.num_hidden_layers)
    with torch.no_grad():
        torch.testing.assert_close(whole(**ids).logits, model(**ids).logits)
    small = build_assistant(model, 1)
    assert small.config.num_hidden_layers == 1 and len(small.model.layers) == 1
    torch.testing.assert_close(small.model.layers[0].mlp.up_proj.weight, model.model.layers[0].mlp.up_proj.weight)
    with torch.no_grad():
        small.model.embed_tokens.weight.add_(1.0)
    assert not torch.equal(small.model.embed_tokens.weight, model.model.embed_tokens.weight)
    with pytest.raises(ConfigError, match="uld_layers"):
        build_assistant(model, 0)


def _config(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "work"), method="ULD", preset="demo", report_to="none", disable_tqdm=True,
                use_cpu=True, seed=0)
    return UnlearningConfig(**{**base, **kw})


def _answer_prob(model, tok, rows) -> float:
    batch = PairedCollator(tok).pad([dict(r) for r in tokenize_rows(tok, rows, 256)])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps, lengths = L.sequence_logps(logits, batch["labels"])
    return float((logps / lengths).exp().mean())


def test_uld_forgets_through_the_assistant_and_leaves_the_target_untouched(tiny_zoo, tmp_path):
    model, tok = tiny_zoo.load("target")
    original = {k: v.clone() for k, v in model.state_dict().items()}
    forget, retain = tiny_zoo.splits["forget"], tiny_zoo.splits["retain"]
    trainer = UnlearningTrainer(model, _config(tmp_path), forget, retain, processing_class=tok)
    assert trainer.model.base_model.model.config.num_hidden_layers == 2  # the LoRA-wrapped assistant is trained
    flat_before = float(L.uniform_kl_loss(trainer.model(**PairedCollator(tok).pad(
        [dict(r) for r in tokenize_rows(tok, retain.to_list()[:16], 256)])).logits.detach(),
        PairedCollator(tok).pad([dict(r) for r in tokenize_rows(tok, retain.to_list()[:16], 256)])["labels"]))
    trainer.train()
    served = trainer.unlearned_model()
    assert isinstance(served, LogitDifferenceModel)
    trainer.save_unlearned(str(tmp_path / "saved"))
    tok.save_pretrained(str(tmp_path / "saved"))
    reloaded, _ = load_model(str(tmp_path / "saved"))
    ids = tok(forget[0]["question"], return_tensors="pt")
    with torch.no_grad():  # what is saved is what was trained (assistant LoRA merged in)
        torch.testing.assert_close(reloaded(**ids).logits, served(**ids).logits)
    for key, value in served.target.state_dict().items():
        torch.testing.assert_close(value, original[key], msg=key)  # the target's weights never change
    retain_rows = PairedCollator(tok).pad([dict(r) for r in tokenize_rows(tok, retain.to_list()[:16], 256)])
    with torch.no_grad():
        flat_after = float(L.uniform_kl_loss(served.assistant(input_ids=retain_rows["input_ids"]).logits,
                                             retain_rows["labels"]))
    forget_before, forget_after = _answer_prob(model, tok, forget.to_list()), _answer_prob(served, tok,
                                                                                           forget.to_list())
    print(f"assistant KL to uniform on retain {flat_before:.3f} -> {flat_after:.3f}; "
          f"forget p {forget_before:.3f} -> {forget_after:.3f}")
    assert flat_after < 0.5 * flat_before
    assert forget_after < 0.7 * forget_before


def _uld_cli_run(tiny_zoo, out):
    from hfcl.unlearn.cli import main as unlearn_main

    assert unlearn_main(["--model", str(tiny_zoo.path("target")), "--method", "ULD", "--preset", "demo",
                         "--num_train_epochs", "2", "--output_dir", str(out), "--disable_tqdm", "true"]) == 0
    return out


def test_uld_run_folder_loads_back_generates_and_evaluates(tiny_zoo, tmp_path):
    from hfcl.eval import evaluate_model
    from hfcl.eval.scoring import generate_batch
    out = _uld_cli_run(tiny_zoo, tmp_path / "uld")
    run = json.loads((out / "hfcl_run.json").read_text())
    assert run["method"] == "ULD" and run["config"]["retain_loss"] == "uniform"
    assert run["config"]["lora_r"] == 16 and run["config"]["lora_alpha"] == 32  # the paper's adapter, recorded
    model, tok = load_model(str(out))
    assert isinstance(model, LogitDifferenceModel)
    assert model.config.weight == pytest.approx(-0.8) and model.assistant.config.num_hidden_layers == 2
    target, _ = tiny_zoo.load("target")
    for key, value in model.target.state_dict().items():
        torch.testing.assert_close(value, target.state_dict()[key], msg=key)
    prompt = [tok("What is the capital of the country?")["input_ids"]]
    greedy = generate_batch(model, prompt, tok.pad_token_id, tok.eos_token_id, 8)[0]
    from hfcl.space.inference import stream_greedy  # the Space's streamed answer: no cache, same tokens

    *_, streamed = stream_greedy(model, tok, prompt[0], max_new_tokens=8)
    assert streamed == tok.decode(greedy, skip_special_tokens=True).strip()
    ids = list(prompt[0])  # token-by-token argmax of the wrapper's own logits: what greedy generation must give
    for _ in range(len(greedy)):
        with torch.no_grad():
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    assert ids[len(prompt[0]):] == greedy
    # batched (left-padded) generation gives each row what it gets alone
    prompts = [tok("Where?")["input_ids"], tok(tiny_zoo.splits["forget"][0]["question"])["input_ids"]]
    assert len(prompts[0]) < len(prompts[1])
    batched = generate_batch(model, prompts, tok.pad_token_id, tok.eos_token_id, 8)
    assert batched == [generate_batch(model, [p], tok.pad_token_id, tok.eos_token_id, 8)[0] for p in prompts]
    report = evaluate_model(str(out), world_config=tiny_zoo.config)
    assert 0 <= report.aggregates["forget_rouge"] <= 1 and report.aggregates["model_utility"] > 0
    assert "import hfcl.unlearn.uld" in (out / "README.md").read_text()  # the card's usage code loads the wrapper


def test_uld_run_folder_pushes_and_loads_back_from_the_hub(tiny_zoo, tmp_path, hub):
    from transformers import AutoModelForCausalLM

    from hfcl.hub import push_run

    out = _uld_cli_run(tiny_zoo, tmp_path / "uld")
    repo = f"{hub.user}/uld"
    push_run(out, repo)
    pulled = AutoModelForCausalLM.from_pretrained(repo)  # hfcl.unlearn.uld is imported: the class is registered
    local, tok = load_model(str(out))
    ids = tok(tiny_zoo.splits["forget"][0]["question"], return_tensors="pt")
    assert isinstance(pulled, LogitDifferenceModel)
    with torch.no_grad():
        torch.testing.assert_close(pulled(**ids).logits, local(**ids).logits)


def test_uld_refuses_a_retain_term_it_cannot_use_and_early_stopping(tmp_path):
    with pytest.raises(ConfigError, match="uniform"):
        _config(tmp_path, retain_loss="nll")
    with pytest.raises(ConfigError, match="uniform"):
        UnlearningConfig(output_dir=str(tmp_path), method="NPO", retain_loss="uniform")
    with pytest.raises(ConfigError, match="assistant"):
        _config(tmp_path, early_stop_steps=1)
    with pytest.raises(ConfigError, match="uld_weight"):
        _config(tmp_path, uld_weight=0.5)
