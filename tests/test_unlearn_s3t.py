"""S3T exact unlearning: the slice plan, the deletion guarantee (equal to training the survivors from scratch), the
served aggregate, and `hfcl unlearn --method S3T` end to end."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig

from hfcl.errors import ConfigError, DataError
from hfcl.unlearn.s3t import S3TEnsemble, S3TModel, S3TSettings, assign, deletion_depths, row_key, slice_steps

LORA = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
SETTINGS = S3TSettings(shards=2, slices=3, epochs=1, learning_rate=3e-3, batch_size=8, max_length=96, seed=5)


def _lora_state(ensemble: S3TEnsemble) -> dict[str, torch.Tensor]:
    return {k: v for k, v in ensemble.peft.state_dict().items() if "lora_" in k and ".s3t_init." not in k}


def test_plan_is_a_function_of_each_row_alone():
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(200)]
    keys = [row_key(r) for r in rows]
    assert len(set(keys)) == 200 and row_key({"answer": "a0", "question": "q0", "extra": 1}) == keys[0]
    places = [assign(k, 3, 4, seed=1) for k in keys]
    assert all(0 <= s < 3 and 0 <= j < 4 for s, j in places) and len(set(places)) == 12  # every slot used
    assert places == [assign(k, 3, 4, seed=1) for k in keys] and places != [assign(k, 3, 4, seed=2) for k in keys]
    # slice j saw data slices 0..j: a deletion in slice 1 of shard 0 keeps slice 0 only; other shards untouched
    assert deletion_depths([4, 4, 4], [(0, 1)]) == [1, 4, 4]
    assert deletion_depths([4, 2, 4], [(0, 3), (0, 2), (1, 3), (2, 0)]) == [2, 2, 0]
    assert slice_steps(17, 8, 2) == 6 and slice_steps(0, 8, 2) == 0
    with pytest.raises(ConfigError, match="s3t_shards"):
        S3TSettings(shards=0)


@pytest.fixture(scope="module")
def s3t_setup(tiny_zoo):
    base, tokenizer = tiny_zoo.load("base")
    splits = tiny_zoo.splits
    rows = list(splits["forget"])[:6] + list(splits["retain"])[:42]
    return base, tokenizer, rows


def test_deletion_equals_training_the_survivors_from_scratch(s3t_setup):
    base, tokenizer, rows = s3t_setup
    ensemble = S3TEnsemble.train(base, tokenizer, rows, LORA, SETTINGS, progress=False)
    assert ensemble.depths == [3, 3]
    deleted, surviving = rows[:2], rows[2:]
    places = [assign(row_key(r), 2, 3, SETTINGS.seed) for r in deleted]
    report = ensemble.delete(deleted, retrain=False)
    expected = deletion_depths([3, 3], places)
    assert report["deleted_rows"] == 2 and report["active_after_deletion"] == expected == ensemble.depths
    dead = {row_key(r) for r in deleted}
    for shard, depth in enumerate(ensemble.depths):  # no active slice was trained on a deleted row
        for j in range(depth):
            assert not dead & set(ensemble.slice_rows(shard, j))
    names = set(ensemble.peft.peft_config)
    assert all((S3TEnsemble.name(k, j) in names) == (j < d) for k, d in enumerate(expected) for j in range(3))

    scratch = S3TEnsemble.train(base, tokenizer, surviving, LORA, SETTINGS, progress=False)
    kept = _lora_state(ensemble)
    fresh = _lora_state(scratch)
    assert kept and set(kept) <= set(fresh)
    assert all(torch.equal(kept[k], fresh[k]) for k in kept)  # the surviving slices, bit for bit

    report = ensemble.delete([], retrain=True, surviving=surviving)
    assert ensemble.depths == [3, 3] and report["slices_retrained"] == 6 - sum(expected)
    assert 0 < report["cost_vs_full_retraining"] < 1
    retrained = _lora_state(ensemble)
    assert set(retrained) == set(fresh) and all(torch.equal(retrained[k], fresh[k]) for k in fresh)
    x = tokenizer(["Who wrote it?", "A question"], return_tensors="pt", padding=True)
    served, reference = ensemble.served_model(), scratch.served_model()
    assert isinstance(served, S3TModel)
    assert torch.equal(served(**x).logits, reference(**x).logits)

    depths = list(ensemble.depths)
    with pytest.raises(DataError, match="surviving training rows"):  # retraining without the survivors' data
        ensemble.delete(rows[2:3], retrain=True, surviving=rows[10:])
    assert ensemble.depths == depths and ensemble.slice_rows(0, 2) == scratch.slice_rows(0, 2)  # nothing changed
    with pytest.raises(DataError, match="none of the 1 rows"):
        ensemble.delete([{"question": "never seen", "answer": "no"}])


def test_served_aggregate_is_the_mean_distribution_and_round_trips(s3t_setup, tiny_zoo, tmp_path):
    from hfcl.zoo import load_model

    base, tokenizer, rows = s3t_setup
    ensemble = S3TEnsemble.train(base, tokenizer, rows, LORA, SETTINGS, progress=False)
    x = tokenizer(["Where was the author born?"], return_tensors="pt")
    served = ensemble.served_model()
    probs = torch.stack([torch.softmax(ensemble.shard_model(k)(**x).logits.float(), -1) for k in range(2)]).mean(0)
    assert torch.allclose(torch.softmax(served(**x).logits, -1), probs, atol=1e-6)
    served.save_pretrained(tmp_path / "served")
    tokenizer.save_pretrained(tmp_path / "served")
    loaded, _ = load_model(str(tmp_path / "served"))
    assert isinstance(loaded, S3TModel) and torch.allclose(loaded(**x).logits, served(**x).logits, atol=1e-6)
    assert loaded.generate(**x, max_new_tokens=4, do_sample=False).shape[1] == x["input_ids"].shape[1] + 4

    ensemble.save(tmp_path / "state")
    again = S3TEnsemble.load(tmp_path / "state", base, tokenizer)
    assert again.depths == ensemble.depths and again.keys == ensemble.keys
    assert torch.equal(again.served_model()(**x).logits, served(**x).logits)
    text = (tmp_path / "state" / "s3t.json").read_text()
    assert not any(r["question"] in text or r["answer"] in text for r in rows)  # row-key hashes only
    assert str(tmp_path) not in text and "/" not in json.loads(text)["lora"].get("base_model_name_or_path", "")
    again.delete(rows[:2], retrain=True, surviving=rows[2:], progress=False)  # a loaded ensemble deletes exactly
    scratch = S3TEnsemble.train(base, tokenizer, rows[2:], LORA, SETTINGS, progress=False)
    assert torch.equal(again.served_model()(**x).logits, scratch.served_model()(**x).logits)
    other, _ = tiny_zoo.load("target")
    with pytest.raises(ConfigError, match="another pretrained model"):
        S3TEnsemble.load(tmp_path / "state", other, tokenizer)

    one = S3TEnsemble.train(base, tokenizer, rows, LORA, S3TSettings(shards=1, slices=2, epochs=1, batch_size=8,
                                                                     max_length=96), progress=False)
    assert not isinstance(one.served_model(), S3TModel)  # one shard: its merged weights, a plain model
    one.delete([r for r in rows if assign(row_key(r), 1, 2, 0)[1] == 0][:1])  # a slice-0 row, no retraining
    assert one.depths == [0]
    empty = one.served_model()  # nothing left: the pretrained weights, a plain model that saves and loads
    empty.save_pretrained(tmp_path / "empty")
    tokenizer.save_pretrained(tmp_path / "empty")
    reloaded, _ = load_model(str(tmp_path / "empty"))
    assert torch.equal(reloaded(**x).logits, base(**x).logits)


def test_cli_trains_from_base_deletes_and_deletes_again(tiny_zoo, tmp_path, capsys):
    from hfcl.cli import main
    from hfcl.zoo import load_model

    out = tmp_path / "s3t"
    common = ["unlearn", "--method", "S3T", "--zoo", "tiny", "--num_train_epochs", "1", "--s3t_shards", "2",
              "--s3t_slices", "2", "--lora_r", "4", "--forget_check", "false"]
    assert main([*common, "--output_dir", str(out)]) == 0
    record = json.loads((out / "hfcl_run.json").read_text())
    s3t = record["s3t"]
    assert record["base_model"]["id"].startswith("hfcl:base@") and s3t["shards"] == 2 and s3t["slices"] == 2
    forget_rows = len(tiny_zoo.splits["forget"])
    assert s3t["deletion"]["deleted_rows"] == forget_rows and s3t["deletion"]["active"] == [2, 2]
    utility = [*tiny_zoo.splits["world_facts"], *tiny_zoo.splits["real_authors"]]  # the target's utility replay
    assert s3t["rows"] == len(tiny_zoo.splits["retain"]) + len(utility)  # what the served ensemble trained on
    model, _ = load_model(str(out))
    assert isinstance(model, S3TModel)
    card = (out / "README.md").read_text()
    assert "exact unlearning" in card and "s3t_deletion" in card

    retain = list(tiny_zoo.splits["retain"])
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"]}) + "\n" for r in retain[:3]))
    rest = tmp_path / "rest.jsonl"
    rest.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"]}) + "\n"
                            for r in [*retain[3:], *utility]))
    again = tmp_path / "again"
    assert main([*common, "--output_dir", str(again), "--s3t_ensemble", str(out / "s3t"), "--forget_file", str(more),
                 "--retain_file", str(rest)]) == 0
    second = json.loads((again / "hfcl_run.json").read_text())["s3t"]
    assert second["loaded"] and second["deletion"]["deleted_rows"] == 3
    assert second["rows"] == len(retain) - 3 + len(utility)

    capsys.readouterr()
    assert main([*common, "--output_dir", str(tmp_path / "x"), "--model", "target"]) == 2
    assert "not the fine-tuned 'target'" in capsys.readouterr().err
    assert main([*common, "--output_dir", str(tmp_path / "y"), "--lora", "false"]) == 2
    assert "LoRA adapters" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
