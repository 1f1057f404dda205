"""Transfer on the tiny zoo: an adapter trained on ``base`` moved to ``base-v2`` by copy and by data-free distill."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from hfcl.errors import OutputExistsError
from hfcl.transfer.api import transfer
from hfcl.transfer.cli import main
from hfcl.transfer.distill import TransferConfig
from hfcl.transfer.errors import TransferError
from hfcl.transfer.task import save_task_adapter, sentence_task, task_score, train_task_adapter


@pytest.fixture(scope="module")
def setup(tiny_zoo, tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    tiny_zoo.path("base-v2")
    data = sentence_task(tiny_zoo.config)
    model, tokenizer = tiny_zoo.load("base")
    model = train_task_adapter(model, tokenizer, data["train"], epochs=12)
    adapter = save_task_adapter(model, tokenizer, root / "adapter", tiny_zoo.path("base"))
    seeds = [dict(r) for r in data["train"].shuffle(seed=0).select(range(12))]
    return {"root": root, "data": data, "adapter": adapter, "seeds": seeds, "zoo": tiny_zoo}


def small_config(**kw) -> TransferConfig:
    values = {"output_dir": None, "use_cpu": True, "disable_tqdm": True, "n_synthetic": 96, "n_calibration": 32,
              "num_train_epochs": 6, "min_accepted": 16}
    values.update(kw)
    return TransferConfig(**values)


def test_copy_writes_loadable_adapter_with_recipe_and_evaluation(setup):
    from peft import PeftModel

    zoo, out = setup["zoo"], setup["root"] / "copy"
    summary = transfer(setup["adapter"], "base-v2", method="copy", output_dir=out, eval_rows=setup["data"]["test"],
                       zoo_config=zoo.config)
    scores = summary["evaluation"]["scores"]
    assert scores["source_base+adapter"] > scores["source_base"] + 0.03  # the adapter teaches the task
    assert scores["target_base+adapter"] > scores["target_base"]  # and some of it survives the copy
    run = json.loads((out / "hfcl_run.json").read_text())
    recipe = run["transfer"]
    assert run["method"] == "transfer-copy" and recipe["original_data_used"] == "none"
    assert recipe["target_base"]["revision"].startswith("sha256:") and recipe["source_adapter"]["revision"]
    assert recipe["compatibility"]["copyable"] and 0.5 < recipe["compatibility"]["weight_similarity"] <= 1.0
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(zoo.path("base-v2"))
    # the written adapter is the source adapter, now on base-v2: same logits as loading the source one there
    moved, tokenizer = zoo.load(str(out))
    v2, _ = zoo.load("base-v2")
    direct = PeftModel.from_pretrained(v2, setup["adapter"]).eval()
    ids = tokenizer(["What is the capital of somewhere?"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(moved(ids).logits, direct(ids).logits, atol=1e-5)
    with pytest.raises(OutputExistsError):
        transfer(setup["adapter"], "base-v2", method="copy", output_dir=out, zoo_config=zoo.config)


def test_distill_data_free_recovers_gain_and_records_recipe(setup):
    zoo, out = setup["zoo"], setup["root"] / "distill"
    summary = transfer(setup["adapter"], "base-v2", method="distill", output_dir=out, seeds=setup["seeds"],
                       eval_rows=setup["data"]["test"], config=small_config(), zoo_config=zoo.config, init="fresh")
    ev = summary["evaluation"]
    assert ev["gain_retained"] > 0.15, ev  # a LoRA trained from zero on synthetic data only recovers real gain
    recipe = json.loads((out / "hfcl_run.json").read_text())["transfer"]
    assert recipe["method"] == "distill" and recipe["original_data_used"] == "seed examples only"
    assert recipe["seeds"] == 12 and recipe["synthetic_generated"] == 96
    assert 0 < recipe["filter_acceptance_rate"] <= 1 and recipe["synthetic_accepted"] >= 16
    assert recipe["distillation"]["kd_mode"] == "logits" and recipe["distillation"]["init"] == "fresh"
    moved, tokenizer = zoo.load(str(out))
    assert task_score(moved, tokenizer, setup["data"]["test"]) == pytest.approx(
        ev["scores"]["target_base+adapter"], abs=1e-4)


def test_distill_warm_start_sequence_mode(setup):
    summary = transfer(setup["adapter"], "base-v2", method="distill", seeds=setup["seeds"],
                       eval_rows=setup["data"]["test"], config=small_config(kd_mode="sequence", num_train_epochs=3),
                       zoo_config=setup["zoo"].config, init="source")
    assert summary["transfer"]["distillation"]["kd_mode"] == "sequence"
    assert summary["transfer"]["distillation"]["init"] == "source adapter"
    assert summary["evaluation"]["gain_retained"] > 0.5


def test_distill_refuses_too_few_seeds_before_work(setup):
    with pytest.raises(TransferError, match="at least 4 seed"):
        transfer(setup["adapter"], "base-v2", method="distill", seeds=setup["seeds"][:2],
                 zoo_config=setup["zoo"].config)


def test_trans_peft_training_changes_adapter_and_still_learns(setup):
    from peft import get_peft_model_state_dict

    zoo, data = setup["zoo"], setup["data"]
    plain_model, tokenizer = zoo.load("base")
    plain = get_peft_model_state_dict(train_task_adapter(plain_model, tokenizer, data["train"], epochs=4, seed=1))
    model, _ = zoo.load("base")
    model = train_task_adapter(model, tokenizer, data["train"], epochs=4, seed=1, drop_rate=0.2, mask_rate=0.1)
    robust = get_peft_model_state_dict(model)
    assert any(not torch.allclose(plain[k], robust[k]) for k in plain)
    base, _ = zoo.load("base")
    assert task_score(model, tokenizer, data["test"]) > task_score(base, tokenizer, data["test"])
    assert all(not m._forward_hooks for m in model.modules())  # the callback removed its hooks
    out = save_task_adapter(model, tokenizer, setup["root"] / "robust", zoo.path("base"), drop_rate=0.2,
                            mask_rate=0.1)
    summary = transfer(out, "base-v2", method="copy", zoo_config=zoo.config)
    assert summary["transfer"]["trans_peft_trained"] is True


def test_cli_copy_and_errors(setup, capsys):
    out = setup["root"] / "cli-copy"
    code = main(["--adapter", str(setup["adapter"]), "--target_base", "base-v2", "--method", "copy",
                 "--output_dir", str(out), "--zoo", "tiny"])
    assert code == 0 and (out / "adapter_model.safetensors").is_file()
    assert "gain retained" in capsys.readouterr().out
    code = main(["--adapter", str(setup["adapter"]), "--target_base", "base-v2", "--method", "distill",
                 "--output_dir", str(setup["root"] / "never"), "--zoo", "tiny", "--n_seeds", "2"])
    assert code == 2 and "at least 4 seed" in capsys.readouterr().err
    assert not (setup["root"] / "never").exists()
    code = main(["--adapter", str(setup["root"]), "--target_base", "base-v2", "--output_dir",
                 str(setup["root"] / "never"), "--zoo", "tiny"])
    assert code == 2 and "not a PEFT adapter folder" in capsys.readouterr().err


def test_differently_sized_base_copy_refused_distill_works(setup):
    from hfcl.transfer.errors import IncompatibleBaseError
    from hfcl.zoo import model_path

    zoo = setup["zoo"]
    narrow = model_path("base", replace(zoo.config, hidden_size=96, intermediate_size=192))  # same tokenizer
    with pytest.raises(IncompatibleBaseError, match="distill"):
        transfer(setup["adapter"], str(narrow), method="copy", zoo_config=zoo.config)
    summary = transfer(setup["adapter"], str(narrow), method="distill", seeds=setup["seeds"],
                       eval_rows=setup["data"]["test"], config=small_config(), zoo_config=zoo.config)
    assert summary["transfer"]["distillation"]["init"] == "fresh"  # auto: shapes differ, so no warm start
    assert not summary["transfer"]["compatibility"]["copyable"]
    assert summary["evaluation"]["gain_retained"] > 0.05
