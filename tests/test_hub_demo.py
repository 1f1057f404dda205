"""The demo's share path on the tiny zoo: a LoRA adapter unlearned from the tiny target model by gradient ascent,
evaluated with ``hfcl.eval`` (target and retain as comparisons), its card written locally, then pushed with its
splits through the real client to the fake Hub and loaded back (``PeftModel``, ``load_dataset``, ``EvalReport``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, snapshot_download
from huggingface_hub.repocard_data import model_index_to_eval_results

from hfcl.eval import EvalReport, build_reference_log, evaluate_model
from hfcl.hub import privacy, push_demo, write_eval_card

pytest_plugins = ["hub_fixtures"]  # the fake Hub: `hub` and `local_hub_server` fixtures

EVAL = {"retain_eval_size": 16, "max_new_tokens": 32, "distributed": False}


def gradient_ascent_adapter(tiny_zoo, out: Path, steps: int = 10) -> Path:
    """A LoRA on the target model trained to push the forget answers' likelihood down; saved as a run directory."""
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq

    from hfcl.data.formatting import tokenize_example

    torch.manual_seed(0)
    model, tokenizer = tiny_zoo.load("target")
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    forget = tiny_zoo.splits["forget"]
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    batch = collate([tokenize_example(tokenizer, row, 128) for row in forget])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    model.train()
    for _ in range(steps):
        loss = -model(**batch).loss  # gradient ascent on the forget answers
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "hfcl_run.json").write_text(json.dumps({
        "command": "unlearn", "method": "grad_ascent", "seed": 0, "zoo": True,
        "config": {"method": "grad_ascent", "learning_rate": 2e-2, "max_steps": steps, "seed": 0},
        "base_model": {"id": "target", "revision": "zoo"}}))
    return out


@pytest.fixture(scope="module")
def demo(tiny_zoo, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    run_dir = gradient_ascent_adapter(tiny_zoo, root / "grad_ascent")
    log = build_reference_log("retain", world_config=tiny_zoo.config, **EVAL)
    reports = {name: evaluate_model(name, world_config=tiny_zoo.config, reference_log=log, **EVAL)
               for name in ("target", "retain")}
    unlearned = evaluate_model("target", adapter=str(run_dir), world_config=tiny_zoo.config, reference_log=log,
                               **EVAL)
    return run_dir, unlearned, reports


def numbers(card: ModelCard) -> dict[str, float]:
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    return {r.metric_type: r.metric_value for r in results}


def test_unlearned_adapter_moved_the_forget_metrics(demo):
    _, unlearned, reports = demo
    assert unlearned.aggregates["forget_prob"] < reports["target"].aggregates["forget_prob"] - 0.1
    assert unlearned.model["adapter_id"]


def test_write_eval_card_locally(demo, tmp_path):
    import shutil

    run_dir, unlearned, reports = demo
    local = shutil.copytree(run_dir, tmp_path / "run")
    readme = write_eval_card(local, report=unlearned, comparisons=reports)
    assert readme == local / "README.md"
    card = ModelCard.load(readme)
    assert card.data.library_name == "peft" and {"machine-unlearning", "gradascent"} <= set(card.data.tags)
    expected = {k: v for k, v in unlearned.aggregates.items() if v is not None}
    assert numbers(card) == pytest.approx(expected, rel=0, abs=0)  # every number, exactly
    assert "| metric | better | this model | target | retain |" in card.text
    assert "gradient ascent on the forget set" in card.text.lower()
    assert "your-username/run" in card.text  # usage snippet until it is pushed
    assert (local / "plots" / "forget_vs_utility.png").read_bytes()[:4] == b"\x89PNG"
    assert EvalReport.load(local).to_dict() == unlearned.to_dict()
    assert EvalReport.load(local / "eval_report.retain.json").aggregates == reports["retain"].aggregates
    assert "# " in card.text and "[More Information Needed]" not in card.text


def test_push_demo_round_trip(hub, demo, tiny_zoo, tmp_path):
    from datasets import load_dataset
    from peft import PeftModel

    run_dir, unlearned, reports = demo
    repo = f"{hub.user}/hfcl-demo"
    splits = tiny_zoo.splits  # the whole DatasetDict: QA splits and utility splits (other columns)
    results = push_demo(run_dir, repo, report=unlearned, comparisons=reports, splits=splits)
    assert results["dataset"].repo_id == f"{repo}-data" and results["model"].commit_oid
    assert len(hub.commits(repo)) == 2 and len(hub.commits(f"{repo}-data", repo_type="dataset")) == 2

    local = Path(snapshot_download(repo, cache_dir=tmp_path / "cache"))
    assert (local / "README.md").read_bytes() == (run_dir / "README.md").read_bytes()  # local card == pushed card
    # the pushed report is the local one with this machine's paths replaced (hfcl.hub.privacy)
    assert EvalReport.load(local).to_dict() == privacy.scrub(unlearned.to_dict(), run_dir)
    assert EvalReport.load(local).to_dict() != unlearned.to_dict()
    assert {p.name for p in local.glob("eval_report.*.json")} == {"eval_report.target.json",
                                                                   "eval_report.retain.json"}
    card = ModelCard.load(repo)
    assert card.data.datasets == [f"{repo}-data"]
    _, results_ = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert {r.dataset_type for r in results_} == {f"{repo}-data"}
    assert {r.metric_type: r.metric_value for r in results_} == \
        {k: v for k, v in unlearned.aggregates.items() if v is not None}

    target, tokenizer = tiny_zoo.load("target")
    ids = tokenizer(tiny_zoo.splits["forget"][0]["question"], return_tensors="pt").input_ids
    with torch.no_grad():
        expected = PeftModel.from_pretrained(tiny_zoo.load("target")[0], run_dir)(ids).logits
        loaded = PeftModel.from_pretrained(target, repo)(ids).logits
    assert torch.equal(loaded, expected)

    data = load_dataset(f"{repo}-data", cache_dir=str(tmp_path / "ds"))
    assert set(data) == {"forget", "retain", "holdout"}
    assert data["forget"].to_list() == splits["forget"].to_list()
    utility = load_dataset(f"{repo}-data", "utility", cache_dir=str(tmp_path / "ds"))
    assert utility["real_authors"].to_list() == splits["real_authors"].to_list()


def test_push_demo_dry_run_pushes_nothing(hub, demo, tiny_zoo, tmp_path):
    run_dir, unlearned, reports = demo
    results = push_demo(run_dir, f"{hub.user}/dry", report=unlearned, comparisons=reports, write_card=False,
                        splits={"forget": tiny_zoo.splits["forget"]}, dry_run=tmp_path / "preview")
    assert hub.requests == []
    assert (results["model"].dry_run_dir / "adapter_model.safetensors").is_file()
    assert (results["dataset"].dry_run_dir / "data" / "forget-00000-of-00001.parquet").is_file()
    assert results["dataset"].dry_run_dir == tmp_path / "preview-dataset"


def test_hfcl_demo_push_flag_shares_the_unlearned_run(hub, tiny_zoo, tmp_path, capsys):
    """`hfcl demo --hub_model_id REPO`: the demo's own unlearned run, card and data land on the Hub and load back."""
    from hfcl.demo import DemoArguments, run_demo

    repo = f"{hub.user}/demo-run"
    args = DemoArguments(n_questions=1, output_dir=str(tmp_path / "demo"), steps="unlearn,eval,card", hub_model_id=repo)
    results = run_demo(args, tiny_zoo.config)
    assert "Pushed to the Hub" in capsys.readouterr().out
    assert len(hub.commits(repo)) >= 1 and len(hub.commits(f"{repo}-data", repo_type="dataset")) >= 1
    card = ModelCard.load(repo)
    assert card.data.library_name == "transformers" and card.data.datasets == [f"{repo}-data"]
    assert numbers(card)["forget_quality"] == pytest.approx(results["reports"]["unlearned"].aggregates["forget_quality"])
