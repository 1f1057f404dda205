"""The reference model stays the model before unlearning: frozen through training in every mode, base+adapter for
an already-trained adapter, and read back (fingerprint-checked) from a checkpoint on resume."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from test_unlearn_trainer import FORGET, RETAIN, config, tiny_model

from hfcl.errors import ConfigError
from hfcl.unlearn import UnlearningTrainer
from hfcl.unlearn.methods import forward_with_hidden
from hfcl.unlearn.reference import CACHE_FILE

LORA = {"r": 4, "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"}


def _batch(trainer):
    return trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])


@pytest.mark.parametrize("method,retain,lora,mode", [
    ("NPO", "kl", True, "adapter_disabled"),     # KL retain, reference = adapter off
    ("NPO", "kl", True, "model"),                # KL retain, frozen copy of the PEFT model
    ("NPO", "kl", False, "model"),               # KL retain, full fine-tuning
    ("UNDIAL", "auto", False, "model"),
    ("UNDIAL", "auto", True, "adapter_disabled"),
    ("RMU", "auto", False, "model"),             # RMU's `embed` retain term reads reference hidden states
    ("RMU", "auto", True, "adapter_disabled"),
])
def test_reference_stays_the_initial_model_through_training(tmp_path, tiny_tokenizer, method, retain, lora, mode):
    model = tiny_model(len(tiny_tokenizer))
    initial = copy.deepcopy(model).eval()
    args = config(tmp_path, method=method, retain_loss=retain, reference=mode, max_steps=3, optim="adamw_torch",
                  learning_rate=5e-2, rmu_layer=0, per_device_train_batch_size=4)
    trainer = UnlearningTrainer(model, args, FORGET, RETAIN, processing_class=tiny_tokenizer,
                                peft_config=LoraConfig(**LORA) if lora else None)
    assert trainer.reference_mode == mode
    trainer.train()
    trainer.model.eval()
    batch, layer = _batch(trainer), trainer.rmu_layer if trainer.rmu_layer is not None else 0
    for part in [p for p in ("forget", "retain") if p in batch]:
        with torch.no_grad():
            want_logits, want_hidden = forward_with_hidden(initial, batch[part], layer)
            live_logits, _ = forward_with_hidden(trainer.model, batch[part], layer)
        ref_logits, ref_hidden = trainer.reference.forward(trainer.model, batch[part], layer)
        assert (live_logits - want_logits).abs().max() > 1e-3, "training must move the live model"
        torch.testing.assert_close(ref_logits, want_logits, atol=1e-5, rtol=0, msg=f"{part} logits")
        torch.testing.assert_close(ref_hidden, want_hidden, atol=1e-5, rtol=0, msg=f"{part} hidden")


def _trained_adapter(vocab_size: int):
    """A PeftModel whose adapter already changes the model (LoRA B != 0), as after a fine-tuning run."""
    peft_model = get_peft_model(tiny_model(vocab_size), LoraConfig(**LORA))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return peft_model


def test_trained_adapter_reference_is_base_plus_adapter(tmp_path, tiny_tokenizer):
    model = _trained_adapter(len(tiny_tokenizer))
    batch_source = UnlearningTrainer(copy.deepcopy(model), config(tmp_path, method="GradAscent"), FORGET, RETAIN,
                                     processing_class=tiny_tokenizer)
    batch = _batch(batch_source)["forget"]
    with torch.no_grad():
        with_adapter, _ = forward_with_hidden(model.eval(), batch, None)
        with model.disable_adapter():
            base_only, _ = forward_with_hidden(model, batch, None)
    assert (with_adapter - base_only).abs().max() > 1e-2, "the adapter must matter for this test"

    with pytest.raises(ConfigError, match="already trained"):
        UnlearningTrainer(copy.deepcopy(model), config(tmp_path, method="UNDIAL", reference="adapter_disabled"),
                          FORGET, RETAIN, processing_class=tiny_tokenizer)
    trainer = UnlearningTrainer(copy.deepcopy(model), config(tmp_path, method="UNDIAL"), FORGET, RETAIN,
                                processing_class=tiny_tokenizer)
    assert trainer.reference_mode == "model"
    ref_logits, _ = trainer.reference.forward(trainer.model, batch, None)
    torch.testing.assert_close(ref_logits, with_adapter, atol=1e-5, rtol=0)

    npo = UnlearningTrainer(copy.deepcopy(model), config(tmp_path, method="NPO"), FORGET, RETAIN,
                            processing_class=tiny_tokenizer)
    assert npo.reference_mode == "cached"
    from hfcl.unlearn.losses import sequence_logps

    torch.testing.assert_close(npo.reference.cache["forget"], sequence_logps(with_adapter, batch["labels"])[0],
                               atol=1e-4, rtol=0)


RESUME = {"method": "NPO", "max_steps": 4, "per_device_train_batch_size": 2, "optim": "adamw_torch",
          "learning_rate": 1e-2, "save_strategy": "steps", "save_steps": 2, "lr_scheduler_type": "linear",
          "logging_steps": 1}


def _losses(trainer, step):
    entry = next(e for e in trainer.state.log_history if e.get("step") == step and "forget_loss" in e)
    return entry["forget_loss"], entry["retain_loss"]


def test_resume_reads_the_cache_back_and_logs_like_an_uninterrupted_run(tmp_path, tiny_tokenizer):
    full = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path / "a", **RESUME), FORGET, RETAIN,
                             processing_class=tiny_tokenizer)
    full.train()
    checkpoint = tmp_path / "a" / "out" / "checkpoint-2"
    resumed = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path / "b", **RESUME), FORGET, RETAIN,
                                processing_class=tiny_tokenizer)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for step in (3, 4):
        assert _losses(resumed, step) == pytest.approx(_losses(full, step), rel=1e-4)

    # the cache is read from the checkpoint, not recomputed: a (fingerprint-preserving) edit of the file shows up
    path = checkpoint / CACHE_FILE
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file({k: v - 1.0 for k, v in load_file(str(path)).items()}, str(path), metadata=metadata)
    edited = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path / "c", **RESUME), FORGET, RETAIN,
                               processing_class=tiny_tokenizer)
    computed = edited.reference.cache["forget"].clone()
    edited.train(resume_from_checkpoint=str(checkpoint))
    torch.testing.assert_close(edited.reference.cache["forget"], computed - 1.0)

    other_data = FORGET[:-1] + [{"question": "Where was author 99 born?", "answer": "In city 99."}]
    with pytest.raises(ConfigError, match="forget data differs"):
        UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path / "d", **RESUME), other_data, RETAIN,
                          processing_class=tiny_tokenizer).train(resume_from_checkpoint=str(checkpoint))
    with pytest.raises(ConfigError, match="reference model differs"):
        UnlearningTrainer(tiny_model(len(tiny_tokenizer), seed=1), config(tmp_path / "e", **RESUME), FORGET, RETAIN,
                          processing_class=tiny_tokenizer).train(resume_from_checkpoint=str(checkpoint))
