"""Transfer math and checks on hand-made tensors and random tiny Llamas (no zoo needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hfcl.errors import ConfigError
from hfcl.transfer.compat import base_key, check_compatibility, shape_mismatches
from hfcl.transfer.distill import TransferConfig, check_seeds, kd_loss, sequence_loss
from hfcl.transfer.errors import IncompatibleBaseError, TransferError
from hfcl.transfer.synthetic import Discriminator, cut_question
from hfcl.transfer.task import answer_probability, gain_retained
from hfcl.transfer.trans_peft import TransPeftCallback, ffn_modules, mask_intermediate, trans_peft_hooks


def tiny_llama(hidden: int = 32, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=hidden, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))


# --- pure math ------------------------------------------------------------------------------------------------------
def test_kd_loss_matches_hand_computed_kl():
    # one sequence of 3 positions, vocab 2; only the prediction at position 1 (label at 2) counts
    student = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]]])
    teacher = torch.tensor([[[9.0, -9.0], [math.log(3.0), 0.0], [0.0, 0.0]]])
    labels = torch.tensor([[-100, -100, 1]])
    p = torch.tensor([0.75, 0.25])
    expected = float((p * (p.log() - torch.tensor([0.5, 0.5]).log())).sum())
    assert kd_loss(student, teacher, labels).item() == pytest.approx(expected, rel=1e-5)
    # temperature: T^2 * KL of the softened distributions
    pt = torch.softmax(torch.tensor([math.log(3.0), 0.0]) / 2.0, dim=0)
    expected_t = 4.0 * float((pt * (pt.log() - torch.tensor([0.5, 0.5]).log())).sum())
    assert kd_loss(student, teacher, labels, temperature=2.0).item() == pytest.approx(expected_t, rel=1e-5)
    # num_items_in_batch divides the sum (gradient accumulation)
    assert kd_loss(student, teacher, labels, num_items=4).item() == pytest.approx(expected / 4, rel=1e-5)


def test_kd_loss_zero_for_identical_logits_and_refuses_vocab_mismatch():
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    assert kd_loss(logits, logits.clone(), labels).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(TransferError, match="sequence"):
        kd_loss(logits, torch.randn(2, 5, 12), labels)


def test_sequence_loss_is_shifted_cross_entropy():
    logits = torch.randn(2, 4, 7)
    labels = torch.tensor([[-100, 3, 4, 1], [-100, -100, 2, -100]])
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)
    assert sequence_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-5)


def test_answer_probability_is_geometric_mean_of_label_tokens():
    logits = torch.zeros(1, 3, 4)  # uniform: every token has probability 1/4
    logits[0, 1, 2] = math.log(3.0 * 3)  # p(token 2 | pos 1) = 9 / (9 + 3) = 0.75
    labels = torch.tensor([[-100, 1, 2]])
    value = answer_probability(logits, labels).item()
    assert value == pytest.approx(math.sqrt(0.25 * 0.75), rel=1e-5)


def test_gain_retained():
    assert gain_retained(0.6, 0.2, 0.9, 0.1) == pytest.approx(0.5)
    assert gain_retained(0.2, 0.2, 0.9, 0.1) == pytest.approx(0.0)
    assert math.isnan(gain_retained(0.5, 0.1, 0.3, 0.3))


def test_cut_question():
    assert cut_question("What is the capital", " of Tatox. It is big") == "What is the capital of Tatox?"
    assert cut_question("Who wrote", " The Tower\nmore") == "Who wrote The Tower?"
    assert cut_question("Which river", "") == "Which river?"


def test_discriminator_separates_and_keeps_real_looking():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(2.0, 0.3, (8, 4)), rng.normal(-2.0, 0.3, (40, 4))
    disc = Discriminator().fit(real, fake)
    pool = np.concatenate([rng.normal(2.0, 0.3, (5, 4)), rng.normal(-2.0, 0.3, (5, 4))])
    assert list(disc.accept(pool)) == [0, 1, 2, 3, 4]
    assert len(disc.accept(rng.normal(-2.0, 0.3, (6, 4)), min_keep=3)) == 3  # fallback: the 3 most real-looking


# --- Trans-PEFT hooks -----------------------------------------------------------------------------------------------
def test_mask_intermediate_rate():
    x = torch.ones(200, 100)
    assert torch.equal(mask_intermediate(x, 0.0), x)
    kept = mask_intermediate(x, 0.3, torch.Generator().manual_seed(0)).mean().item()
    assert kept == pytest.approx(0.7, abs=0.02)


def test_trans_peft_hooks_only_in_training_and_removed():
    model = tiny_llama()
    ids = torch.randint(0, 128, (2, 6))
    model.eval()
    reference = model(ids).logits
    with trans_peft_hooks(model, mask_rate=0.0, drop_rate=0.999) as n:
        assert n == 2
        assert torch.allclose(model(ids).logits, reference)  # eval mode: hooks inert
        model.train()
        assert len(ffn_modules(model)) == 2
        dropped = model.model.layers[0].mlp(torch.randn(1, 3, 32))  # FFN skipped: zero output, residual only
        assert torch.count_nonzero(dropped) == 0
        assert not torch.allclose(model(ids).logits, reference)
        model.eval()
    model.train()
    assert torch.count_nonzero(model.model.layers[0].mlp(torch.randn(1, 3, 32))) > 0  # hooks gone
    with pytest.raises(ConfigError):
        TransPeftCallback(drop_rate=1.0)


def test_masking_changes_training_forward_only():
    model = tiny_llama()
    ids = torch.randint(0, 128, (2, 6))
    model.train()
    with torch.no_grad():
        clean = model(ids).logits
        with trans_peft_hooks(model, mask_rate=0.5, drop_rate=0.0):
            masked = model(ids).logits
    assert not torch.allclose(clean, masked)


# --- compatibility checks --------------------------------------------------------------------------------------------
def test_base_key_and_shape_mismatches():
    assert base_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") == (
        "model.layers.0.self_attn.q_proj.weight", "A")
    base = {"m.q.weight": (32, 16)}
    adapter = {"base_model.model.m.q.lora_A.weight": (4, 16), "base_model.model.m.q.lora_B.weight": (32, 4)}
    assert shape_mismatches(adapter, base) == []
    problems = shape_mismatches(adapter, {"m.q.weight": (64, 8)})
    assert len(problems) == 2 and "input size 16" in problems[0] and "output size 32" in problems[1]
    assert "not in the base" in shape_mismatches(adapter, {})[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_tokenizer):
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("compat")
    folders = {}
    for name, hidden, seed in (("src", 32, 0), ("tgt", 32, 1), ("wide", 64, 2)):
        model = tiny_llama(hidden, seed)
        model.save_pretrained(root / name)
        tiny_tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    other = tiny_llama(32, 3)
    other.save_pretrained(root / "othertok")
    tok = tiny_tokenizer.__class__.from_pretrained(root / "src")
    tok.add_tokens(["<brand_new_token>"])
    tok.save_pretrained(root / "othertok")
    folders["othertok"] = root / "othertok"
    peft_model = get_peft_model(tiny_llama(32, 0), LoraConfig(r=4, target_modules=["q_proj", "down_proj"],
                                                              init_lora_weights=False))
    peft_model.save_pretrained(root / "adapter")
    folders["adapter"] = root / "adapter"
    return folders


def test_copy_allowed_between_same_shapes(saved):
    report = check_compatibility(saved["adapter"], saved["tgt"], saved["src"], method="copy")
    assert report.copyable and report.tokenizer_match and report.shape_problems == []
    assert report.weight_similarity is not None and -1.0 <= report.weight_similarity < 0.5  # independent inits


def test_copy_refused_on_shapes_and_tokenizer_suggesting_distill(saved):
    with pytest.raises(IncompatibleBaseError, match="distill"):
        check_compatibility(saved["adapter"], saved["wide"], saved["src"], method="copy")
    with pytest.raises(IncompatibleBaseError, match="tokenizer"):
        check_compatibility(saved["adapter"], saved["othertok"], saved["src"], method="copy")
    # distill accepts both (it trains a new adapter)
    assert not check_compatibility(saved["adapter"], saved["wide"], saved["src"], method="distill").copyable


def test_adapter_source_mismatch_and_bad_folder(saved, tmp_path):
    with pytest.raises(TransferError, match="source base"):
        check_compatibility(saved["adapter"], saved["tgt"], saved["wide"])
    with pytest.raises(TransferError, match="adapter_config.json"):
        check_compatibility(tmp_path, saved["tgt"], saved["src"])


def test_seed_and_config_validation():
    with pytest.raises(TransferError, match="at least 4"):
        check_seeds([{"question": "a?"}] * 3)
    with pytest.raises(TransferError, match="no 'question'"):
        check_seeds([{"question": "a?"}] * 4 + [{"answer": "x"}])
    with pytest.raises(ConfigError, match="kd_mode"):
        TransferConfig(output_dir=None, kd_mode="magic")
    with pytest.raises(ConfigError, match="accept_threshold"):
        TransferConfig(output_dir=None, accept_threshold=2.0)


# --- TransferTrainer under gradient accumulation -------------------------------------------------------------------
def _distill_step(tmp_path, batch: int, accumulation: int, mode: str) -> dict[str, torch.Tensor]:
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import default_data_collator

    from hfcl.transfer.distill import TransferTrainer

    teacher = tiny_llama(seed=5).eval()
    student = get_peft_model(tiny_llama(seed=6), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                            init_lora_weights=False))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 128, (4, 8), generator=g)
    labels = ids.clone()
    labels[:, :3] = -100
    labels[0, 3:6] = -100  # uneven answer lengths: a per-batch mean would weigh tokens differently
    rows = [{"input_ids": i.tolist(), "attention_mask": [1] * 8, "labels": lab.tolist()} for i, lab in zip(ids, labels)]
    args = TransferConfig(output_dir=str(tmp_path), use_cpu=True, disable_tqdm=True, per_device_train_batch_size=batch,
                          gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=0.1, optim="sgd",
                          lr_scheduler_type="constant", max_grad_norm=0.0, kd_mode=mode,
                          train_sampling_strategy="sequential", logging_steps=1)
    TransferTrainer(model=student, args=args, train_dataset=Dataset.from_list(rows), data_collator=default_data_collator,
                    teacher=teacher).train()
    return {n: p.detach().clone() for n, p in student.named_parameters() if "lora_" in n}


@pytest.mark.parametrize("mode", ["logits", "sequence"])
def test_transfer_trainer_gradient_accumulation_is_exact(tmp_path, mode):
    full = _distill_step(tmp_path / "a", batch=4, accumulation=1, mode=mode)
    accumulated = _distill_step(tmp_path / "b", batch=1, accumulation=4, mode=mode)
    for name in full:
        assert torch.allclose(full[name], accumulated[name], atol=1e-6), name
