"""Bad input to the Python API is one clear error naming the field, before any training (issue 11)."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig
from test_unlearn_trainer import FORGET, RETAIN, config, tiny_model

from hfcl.errors import ConfigError, DataError, TrainingError
from hfcl.unlearn import UnlearningConfig, UnlearningTrainer


@pytest.mark.parametrize("kw,match", [
    ({"learning_rate": -1e-5}, "learning_rate=-1e-05 must be > 0"),
    ({"learning_rate": 0.0}, "learning_rate=0.0 must be > 0"),
    ({"per_device_train_batch_size": 0}, "per_device_train_batch_size=0 must be >= 1"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps=0"),
    ({"max_steps": 0}, "max_steps=0"),
    ({"lerning_rate": 1e-3}, "did you mean 'learning_rate'"),
    ({"method": "NPO", "preset": "fast"}, "NPO has the presets demo, tuned, rwku, none"),
])
def test_config_errors(tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        UnlearningConfig(output_dir=str(tmp_path), report_to="none", **kw)


def _trainer(tmp_path, tokenizer, forget=FORGET, **lora):
    return UnlearningTrainer(tiny_model(len(tokenizer)), config(tmp_path), forget, RETAIN, processing_class=tokenizer,
                             peft_config=LoraConfig(task_type="CAUSAL_LM", **lora) if lora else None)


def test_lora_target_module_that_does_not_exist(tmp_path, tiny_tokenizer):
    with pytest.raises(ConfigError, match=r"'qproj' name no module.*q_proj"):
        _trainer(tmp_path, tiny_tokenizer, r=4, target_modules=["qproj", "v_proj"])
    with pytest.raises(ConfigError, match="matches no module"):
        _trainer(tmp_path, tiny_tokenizer, r=4, target_modules=r".*\.attn_x")


def test_lora_rank_larger_than_every_target(tmp_path, tiny_tokenizer):
    # the tiny model's widest target is 64 x 32 (MLP): a rank above 32 cannot be used by any module
    with pytest.raises(ConfigError, match=r"lora_r=100000 exceeds .* rank 32"):
        _trainer(tmp_path, tiny_tokenizer, r=100000, target_modules="all-linear")
    assert _trainer(tmp_path, tiny_tokenizer, r=32, target_modules="all-linear").model is not None


@pytest.mark.parametrize("row,match", [
    ({"question": "Where was X born?", "answer": None}, "answer is None"),
    ({"question": "", "answer": "In Y."}, "question is ''"),
    ({"prompt": "Where?", "completion": None}, "completion is None"),
    ({"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": None}]},
     r"messages\[1\].content is None"),
])
def test_rows_with_missing_text(tmp_path, tiny_tokenizer, row, match):
    with pytest.raises(DataError, match=match):
        _trainer(tmp_path, tiny_tokenizer, forget=FORGET[:3] + [row])


def test_empty_or_unreadable_forget_file_is_a_data_error(tmp_path):
    from hfcl.unlearn.run import UnlearnRunArgs, load_unlearning_data

    empty = tmp_path / "forget.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_unlearning_data(UnlearnRunArgs(forget_file=str(empty)))
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="is empty"):
        load_unlearning_data(UnlearnRunArgs(forget_file=str(empty)))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "Q?", "answer": \n')
    with pytest.raises(DataError, match="could not be read"):
        load_unlearning_data(UnlearnRunArgs(forget_file=str(broken)))


@pytest.mark.parametrize("max_grad_norm,hint", [(1.0, False), (0.0, True)])
def test_non_finite_hint_mentions_max_grad_norm_only_when_off(tmp_path, tiny_tokenizer, max_grad_norm, hint):
    trainer = UnlearningTrainer(tiny_model(len(tiny_tokenizer)), config(tmp_path, method="GradDiff",
                                                                         max_grad_norm=max_grad_norm),
                                FORGET, RETAIN, processing_class=tiny_tokenizer)
    with torch.no_grad():
        trainer.model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(TrainingError) as info:
        trainer.train()
    assert ("max_grad_norm" in str(info.value)) is hint
