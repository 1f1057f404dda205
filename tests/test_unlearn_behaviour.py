"""Unlearning on the tiny embedded world: the demo recipe forgets, keeps the rest, and the CLI writes a run dir."""

from __future__ import annotations

import json

import pytest
from rouge_score import rouge_scorer

from hfcl.errors import OutputExistsError
from hfcl.unlearn import demo_unlearn
from hfcl.unlearn.cli import main as unlearn_main

pytest_plugins = ["hub_fixtures"]  # the fake Hub for the push test
from hfcl.zoo import greedy_answers, load_model

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(model, tokenizer, rows) -> float:
    preds = greedy_answers(model, tokenizer, rows["question"], max_new_tokens=40)
    return sum(SCORER.score(ref, pred)["rougeL"].recall for ref, pred in zip(rows["answer"], preds)) / len(preds)


def test_demo_recipe_npo_graddiff_tuned_forgets_and_keeps_retain(tiny_zoo, tmp_path):
    model, tokenizer = tiny_zoo.load("target")
    forget, retain = tiny_zoo.splits["forget"], tiny_zoo.splits["retain"].select(range(40))
    forget_before, retain_before = rouge_l_recall(model, tokenizer, forget), rouge_l_recall(model, tokenizer, retain)
    assert forget_before > 0.8
    unlearned = demo_unlearn(model, tokenizer, tiny_zoo.splits, tmp_path / "npo")
    forget_after, retain_after = rouge_l_recall(unlearned, tokenizer, forget), rouge_l_recall(unlearned, tokenizer,
                                                                                             retain)
    print(f"forget ROUGE-L {forget_before:.3f} -> {forget_after:.3f}; retain {retain_before:.3f} -> {retain_after:.3f}")
    assert forget_after <= 0.5 * forget_before
    assert retain_after >= 0.8 * retain_before
    run = json.loads((tmp_path / "npo" / "hfcl_run.json").read_text())
    assert run["method"] == "NPO" and run["config"]["retain_loss"] == "nll" and run["config"]["reference"] == "cached"
    assert (tmp_path / "npo" / "model.safetensors").is_file()  # the tuned recipe trains all weights
    assert (tmp_path / "npo" / "reference_logps.safetensors").is_file()
    assert run["early_stop"]["stopped"]["reason"] == "membership"  # ended by the rule, not by the epoch cap


def test_cli_writes_loadable_adapter_run_dir(tiny_zoo, tmp_path):
    out = tmp_path / "run"
    argv = ["--model", str(tiny_zoo.path("target")), "--method", "GradDiff", "--max_steps", "2",
            "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--output_dir", str(out),
            "--lora_target_modules", "q_proj,v_proj", "--disable_tqdm", "true", "--preset", "demo"]
    assert unlearn_main(argv) == 0
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "hfcl_run.json", "tokenizer.json"} <= files
    assert not list(tmp_path.glob(".run*")), "no temporary or checkpoint folder is left behind"
    run = json.loads((out / "hfcl_run.json").read_text())
    assert run["command"] == "unlearn" and run["method"] == "GradDiff" and run["config"]["max_steps"] == 2
    # GradDiff's own demo recipe fills only the options left at their default (NPO's β is not written into it)
    assert run["config"]["preset"] == "demo" and run["config"]["alpha"] == 2.0 and run["config"]["beta"] is None
    assert run["config"]["learning_rate"] == 1e-3 and run["config"]["max_steps"] == 2
    assert run["data_fingerprint"]["forget"] and "versions" in run["provenance"]
    model, _ = load_model(str(out))
    assert type(model).__name__ == "PeftModelForCausalLM"
    with pytest.raises(OutputExistsError):  # refused before any work
        unlearn_main(argv)


def test_cli_yaml_config_and_full_finetuning(tiny_zoo, tmp_path):
    config = tmp_path / "unlearn.yaml"
    config.write_text(f"model: {tiny_zoo.path('target')}\nmethod: SimNPO\nlora: false\nmax_steps: 1\n"
                      f"per_device_train_batch_size: 4\noutput_dir: {tmp_path / 'full'}\ndisable_tqdm: true\n")
    assert unlearn_main(["--config", str(config)]) == 0
    assert (tmp_path / "full" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "full" / "hfcl_run.json").read_text())["config"]["lora"] is False


def test_unlearn_cli_method_negation_dispatches_to_negate(tiny_zoo, tmp_path, capsys):
    """`hfcl unlearn --method negation` is unlearning by negation (compose), with `hfcl negate`'s options."""
    from hfcl.cli import main

    out = tmp_path / "neg"
    assert main(["unlearn", "--method", "negation", "--preset", "tiny", "--lam", "2", "--epochs", "2",
                 "--output_dir", str(out)]) == 0
    assert "lam=2" in capsys.readouterr().out
    assert (out / "hfcl_run.json").is_file()


def test_cli_push_to_hub_pushes_the_run_directory(tiny_zoo, tmp_path, request):
    """`hfcl unlearn --push_to_hub true --hub_model_id user/name` pushes the run dir in one commit (fake Hub)."""
    from huggingface_hub import ModelCard

    hub = request.getfixturevalue("hub")  # the in-process fake Hub (tests/hub_fixtures.py)
    repo = f"{hub.user}/npo-tiny"
    out = tmp_path / "run"
    argv = ["--model", str(tiny_zoo.path("target")), "--method", "NPO", "--max_steps", "2",
            "--per_device_train_batch_size", "4", "--output_dir", str(out), "--disable_tqdm", "true",
            "--preset", "demo", "--push_to_hub", "true", "--hub_model_id", repo]
    assert unlearn_main(argv) == 0
    assert len(hub.commits(repo)) == 2  # the repo's initial commit + the whole run in one commit
    card = ModelCard.load(repo)
    assert card.data.library_name == "peft" and "machine-unlearning" in card.data.tags
