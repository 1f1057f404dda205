"""UnlearningTrainer under the Trainer's real conditions, on a tiny random Llama and the embedded tokenizer."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig
from transformers import LlamaConfig, LlamaForCausalLM

from hfcl.errors import ConfigError, DataError, TrainingError
from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
from hfcl.unlearn.data import PairedUnlearningDataset

FORGET = [{"question": f"Where was author {i} born?", "answer": f"Author {i} was born in city number {i}."}
          for i in range(8)]
RETAIN = [{"question": f"What did writer {i} write?", "answer": f"Writer {i} wrote book {i} and more."}
          for i in range(5)]


def tiny_model(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))


def config(tmp_path, **kw) -> UnlearningConfig:
    values = {"output_dir": str(tmp_path / "out"), "per_device_train_batch_size": 8, "max_steps": 1,
              "learning_rate": 0.1, "optim": "sgd", "max_grad_norm": 0.0, "report_to": "none", "disable_tqdm": True,
              "use_cpu": True, "seed": 0, "save_strategy": "no", "logging_steps": 1, "lr_scheduler_type": "constant"}
    values.update(kw)
    return UnlearningConfig(**values)


def params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("method,retain", [("GradAscent", "auto"), ("GradDiff", "auto"), ("NPO", "auto"),
                                           ("NPO", "kl"), ("SimNPO", "auto"), ("IdkDPO", "auto"),
                                           ("IdkNLL", "auto"), ("RMU", "auto"), ("UNDIAL", "auto"), ("WGA", "auto")])
def test_gradient_accumulation_matches_full_batch(tmp_path, tiny_tokenizer, method, retain):
    results = []
    for batch, accum in ((8, 1), (2, 4)):
        model = tiny_model(len(tiny_tokenizer))
        args = config(tmp_path, method=method, retain_loss=retain, per_device_train_batch_size=batch,
                      gradient_accumulation_steps=accum, rmu_layer=0,
                      learning_rate=10.0 if method == "UNDIAL" else 0.1)  # UNDIAL's gradient is tiny at the start
        before = params(model)
        trainer = UnlearningTrainer(model, args, FORGET, RETAIN, processing_class=tiny_tokenizer)
        trainer.train()
        results.append({n: p.detach() - before[n] for n, p in trainer.model.named_parameters()})
    moved = max(d.abs().max().item() for d in results[0].values())
    assert moved > 1e-4, "the step must change the weights"
    for name, delta in results[0].items():
        torch.testing.assert_close(results[1][name], delta, atol=1e-5, rtol=0, msg=name)


def _first_loss(trainer) -> float:
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    with torch.no_grad():
        return float(trainer.compute_loss(trainer.model, batch))


def test_reference_modes_agree_at_start(tmp_path, tiny_tokenizer):
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    losses = {}
    for mode in ("cached", "adapter_disabled", "model"):
        trainer = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path, method="NPO", reference=mode),
                                    FORGET, RETAIN, processing_class=tiny_tokenizer, peft_config=lora)
        assert trainer.reference_mode == mode
        losses[mode] = _first_loss(trainer)
    # at the start π_θ = π_ref, so NPO's forget term is (2/β)·log 2 whatever the mode
    assert losses["cached"] == pytest.approx(losses["adapter_disabled"], abs=1e-5)
    assert losses["model"] == pytest.approx(losses["cached"], abs=1e-5)
    auto = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path, method="NPO", retain_loss="kl"),
                             FORGET, RETAIN, processing_class=tiny_tokenizer, peft_config=lora)
    assert auto.reference_mode == "adapter_disabled"
    full = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path, method="NPO"), FORGET, RETAIN,
                             processing_class=tiny_tokenizer)
    assert full.reference_mode == "cached" and full.reference.ref_model is None
    assert full.reference.cache["forget"].shape == (len(FORGET),)


def test_input_errors_before_training(tmp_path, tiny_tokenizer):
    model = tiny_model(len(tiny_tokenizer))
    with pytest.raises(ConfigError, match="cached"):
        config(tmp_path, method="UNDIAL", reference="cached")
    with pytest.raises(ConfigError, match="Unknown unlearning method"):
        config(tmp_path, method="Amnesia")
    with pytest.raises(ConfigError, match="PEFT"):
        UnlearningTrainer(model, config(tmp_path, reference="adapter_disabled"), FORGET, RETAIN,
                          processing_class=tiny_tokenizer)
    with pytest.raises(DataError, match="empty"):
        UnlearningTrainer(model, config(tmp_path), [], RETAIN, processing_class=tiny_tokenizer)
    with pytest.raises(DataError, match="columns"):
        UnlearningTrainer(model, config(tmp_path), [{"text": "x"}], RETAIN, processing_class=tiny_tokenizer)
    with pytest.raises(DataError, match="same question"):
        UnlearningTrainer(model, config(tmp_path), FORGET, RETAIN + FORGET[:2], processing_class=tiny_tokenizer)
    with pytest.raises(DataError, match="retain_dataset"):
        UnlearningTrainer(model, config(tmp_path, method="GradDiff"), FORGET, None, processing_class=tiny_tokenizer)
    with pytest.raises(ConfigError, match="rmu_layer"):
        UnlearningTrainer(model, config(tmp_path, method="RMU", rmu_layer=7), FORGET, RETAIN,
                          processing_class=tiny_tokenizer)
    with pytest.raises(ConfigError, match="trainable_params_regex"):
        UnlearningTrainer(model, config(tmp_path, trainable_params_regex="nothing_matches"), FORGET, RETAIN,
                          processing_class=tiny_tokenizer)


def test_non_finite_loss_names_step_and_method(tmp_path, tiny_tokenizer):
    model = tiny_model(len(tiny_tokenizer))
    trainer = UnlearningTrainer(model, config(tmp_path, method="GradDiff", max_steps=3), FORGET, RETAIN,
                                processing_class=tiny_tokenizer)
    with torch.no_grad():
        trainer.model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match=r"step 1 with method GradDiff"):
        trainer.train()


def test_lora_with_gradient_checkpointing_trains(tmp_path, tiny_tokenizer):
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    args = config(tmp_path, method="NPO", gradient_checkpointing=True, optim="adamw_torch", learning_rate=1e-2)
    trainer = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), args, FORGET, RETAIN,
                                processing_class=tiny_tokenizer, peft_config=lora)
    before = params(trainer.model)
    trainer.train()
    after = params(trainer.model)
    b_names = [n for n in before if "lora_B" in n]
    assert b_names and all(not torch.equal(before[n], after[n]) for n in b_names)
    assert all(torch.equal(before[n], after[n]) for n in before if "lora_" not in n)


def test_resume_from_checkpoint_reaches_same_weights(tmp_path, tiny_tokenizer):
    kw = {"method": "NPO", "max_steps": 4, "per_device_train_batch_size": 2, "optim": "adamw_torch",
          "learning_rate": 1e-2, "save_strategy": "steps", "save_steps": 2, "lr_scheduler_type": "linear"}
    full = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path / "a", **kw), FORGET, RETAIN,
                             processing_class=tiny_tokenizer)
    full.train()
    resumed = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path / "b", **kw), FORGET, RETAIN,
                                processing_class=tiny_tokenizer)
    checkpoint = tmp_path / "a" / "out" / "checkpoint-2"
    assert (checkpoint / "reference_logps.safetensors").is_file()
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


def test_salun_changes_only_salient_weights(tmp_path, tiny_tokenizer):
    args = config(tmp_path, method="GradDiff", salun_sparsity=0.2, optim="adamw_torch", weight_decay=0.1,
                  learning_rate=1e-2, max_steps=2)
    trainer = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), args, FORGET, RETAIN,
                                processing_class=tiny_tokenizer)
    assert trainer.salun.fraction() == pytest.approx(0.2, abs=0.01)
    before = params(trainer.model)
    trainer.train()
    changed = frozen_changed = 0
    for name, p in trainer.model.named_parameters():
        mask = trainer.salun.masks[name]
        diff = p.detach() != before[name]
        frozen_changed += int((diff & ~mask).sum())
        changed += int((diff & mask).sum())
    assert frozen_changed == 0
    assert changed > 0.5 * sum(int(m.sum()) for m in trainer.salun.masks.values())


def test_soul_swaps_only_the_optimizer(tmp_path, tiny_tokenizer):
    from hfcl.unlearn.optim import SophiaG

    plain = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path, method="NPO"), FORGET, RETAIN,
                              processing_class=tiny_tokenizer)
    args = config(tmp_path, method="NPO", soul=True, learning_rate=1e-3, soul_rho=0.04)
    soul = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), args, FORGET, RETAIN, processing_class=tiny_tokenizer)
    assert _first_loss(soul) == pytest.approx(_first_loss(plain), abs=1e-6)  # same loss
    before = params(soul.model)
    soul.train()
    inner = soul.optimizer.optimizer if hasattr(soul.optimizer, "optimizer") else soul.optimizer
    assert isinstance(inner, SophiaG)
    # first Sophia step: ratio |m|/(ρ·bs·h) = (1-β1)|g| / (ρ·bs·(1-β2)·g²) >= 1 for small g, so |Δθ| = lr exactly
    deltas = torch.cat([(p.detach() - before[n]).flatten() for n, p in soul.model.named_parameters()])
    moved = deltas[deltas != 0].abs()
    assert moved.numel() > 0 and torch.all(moved <= 1e-3 * (1 + 1e-4))
    assert (moved > 0.999e-3).float().mean() > 0.5


def test_sophia_step_by_hand():
    from hfcl.unlearn.optim import SophiaG

    p = torch.nn.Parameter(torch.tensor([1.0, 1.0, 1.0]))
    opt = SophiaG([p], lr=0.1, betas=(0.9, 0.95), rho=1.0, weight_decay=0.0)
    p.grad = torch.tensor([100.0, 0.01, -1000.0])
    opt.step()
    # m = .1 g, h = .05 g²: ratio = .1|g|/(.05 g²) = 2/|g| -> [.02, 1 (clipped), .002]
    torch.testing.assert_close(p.detach(), torch.tensor([1 - 0.1 * 0.02, 1 - 0.1, 1 + 0.1 * 0.002]))


def test_pairing_cycles_retain_and_rotates_by_epoch():
    ds = PairedUnlearningDataset(forget=[{"f": i} for i in range(4)], retain=[{"r": j} for j in range(3)], seed=0)
    first = [ds[i]["retain"]["r"] for i in range(4)]
    assert len(set(first)) == 3  # 4 forget examples use all 3 retain examples, one twice
    ds.set_epoch(1)
    assert [ds[i]["retain"]["r"] for i in range(4)] != first


def test_formats_mask_prompt_tokens(tmp_path, tiny_tokenizer):
    forget = [{"messages": [{"role": "user", "content": "Who wrote X?"}, {"role": "assistant", "content": "A."}]},
              {"prompt": "Who wrote Y?", "completion": "B."}]
    trainer = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path, method="IdkNLL"), forget, RETAIN,
                                processing_class=tiny_tokenizer)
    item = trainer.train_dataset[0]
    n_answer = sum(1 for t in item["forget"]["labels"] if t != -100)
    assert n_answer == len(tiny_tokenizer("A.", add_special_tokens=False)["input_ids"]) + 1  # + EOS
    idk = tiny_tokenizer.decode([t for t in item["idk"]["labels"] if t != -100], skip_special_tokens=True)
    assert "know" in idk or "sure" in idk or "information" in idk or "answer" in idk


def test_config_loads_from_yaml_dict_with_method_defaults(tmp_path):
    from hfcl.config import load_config

    cfg = load_config(UnlearningConfig, {"output_dir": str(tmp_path), "method": "simnpo", "delta": 0.5})
    assert cfg.method == "SimNPO" and cfg.retain_kind == "nll" and cfg.forget_weight == 0.125
    assert cfg.learning_rate == 1e-5 and cfg.remove_unused_columns is False
    with pytest.raises(ConfigError, match="did you mean 'retain_loss'"):
        load_config(UnlearningConfig, {"output_dir": str(tmp_path), "retain_los": "kl"})
