"""Cards: metadata, model-index round trip, body tables, dataset and Space cards, the run-directory allow-list.

No server needed: the cards are parsed back with huggingface_hub's own classes and checked with the fake Hub's
independent metadata validator.
"""

from __future__ import annotations

import json

import pytest
import yaml
from huggingface_hub import ModelCard, ModelCardData, SpaceCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from hfcl.hub import (
    RunDirError,
    benchmark_eval_results,
    eval_results_from_report,
    prepare_push,
    read_run_dir,
    render_model_card,
    render_space_card,
)
from hfcl.hub.cards import metric_split, report_dict
from hub_runs import AGGREGATES, RETAIN, TARGET, make_run_dir, report
from hub_server import validate_metadata


def numbers(card: ModelCard) -> dict[str, float]:
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    return {r.metric_type: r.metric_value for r in results}


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("runs"))


def test_adapter_card_metadata_and_model_index_round_trip(adapter_dir):
    card = render_model_card(read_run_dir(adapter_dir), "someone/npo-forget10")
    text = str(card)
    reloaded = ModelCard(text)  # what ModelCard.load does with the downloaded README
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["library_name"] == "peft"
    assert meta["pipeline_tag"] == "text-generation"
    assert {"hfcl", "machine-unlearning", "npo", "peft", "lora", "tofu"} <= set(meta["tags"])
    assert "base_model" not in meta  # the base is a local folder, not a Hub id
    assert meta["license"] == "apache-2.0"
    expected = {k: v for k, v in AGGREGATES.items() if v is not None}
    assert numbers(reloaded) == expected  # privleak=None is left out, every other number comes back exactly
    _, results = model_index_to_eval_results(meta["model-index"])
    splits = {r.metric_type: r.dataset_split for r in results}
    assert splits["forget_rouge"] == "forget10" and splits["retain_rouge"] == "retain90"
    assert {r.dataset_type for r in results} == {"hfcl-embedded-tofu"}
    assert validate_metadata(text) == []
    ModelCardData(**meta)  # parses without errors


def test_card_body_tables_directions_and_comparisons(adapter_dir):
    text = str(render_model_card(read_run_dir(adapter_dir), "someone/npo"))
    header = next(line for line in text.splitlines() if line.startswith("| metric |"))
    assert header == "| metric | better | this model | target | retain |"
    row = next(line for line in text.splitlines() if line.startswith("| forget_rouge |"))
    assert row == f"| forget_rouge | ↓ | {AGGREGATES['forget_rouge']:.4f} | {TARGET['forget_rouge']:.4f} | " \
                  f"{RETAIN['forget_rouge']:.4f} |"
    assert "| model_utility | ↑ |" in text
    assert "| privleak | →0 | — |" in text  # None shows as a dash, direction from hfcl's registry
    assert "Negative preference optimization" in text and "| `beta` | `0.1` |" in text
    assert "| `adapter.r` | `4` |" in text and "PeftModel.from_pretrained" in text
    assert "torch 2.13.0" in text and "**seed**: 3" in text


def test_report_forms_dict_object_path(adapter_dir, tmp_path):
    data = report(AGGREGATES)

    class Report:  # anything with to_dict(), like hfcl.eval.EvalReport
        def to_dict(self):
            return data

    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    assert report_dict(Report()) == report_dict(path) == report_dict(data) == data
    run = read_run_dir(adapter_dir)
    via_object = render_model_card(run, "a/b", report=Report(), comparisons={})
    via_path = render_model_card(run, "a/b", report=path, comparisons={})
    assert str(via_object) == str(via_path)
    assert "| metric | better | this model |" in str(via_object)


def test_real_eval_report_object_renders(adapter_dir):
    from hfcl.eval.definitions import definitions_for
    from hfcl.eval.report import EvalReport

    aggregates = {"forget_quality": 0.2, "forget_rouge": 0.33, "model_utility": 0.5}
    rep = EvalReport(suite="tofu", aggregates=aggregates, definitions=definitions_for(aggregates),
                     data={"source": "locuslab/TOFU", "forget_split": "forget05"})
    card = render_model_card(read_run_dir(adapter_dir), "a/b", report=rep, comparisons={})
    assert numbers(card) == aggregates
    meta = card.data.to_dict()
    assert meta["datasets"] == ["locuslab/TOFU"]
    _, results = model_index_to_eval_results(meta["model-index"])
    assert {r.dataset_split for r in results} == {"forget05", "retain95"}


def test_hub_base_model_relation_and_full_model_card(tmp_path):
    adapter = make_run_dir(tmp_path / "a", base_model_id="hfcl-org/tiny-target")
    meta = render_model_card(read_run_dir(adapter), "a/b").data.to_dict()
    assert meta["base_model"] == "hfcl-org/tiny-target" and meta["base_model_relation"] == "adapter"
    assert "license" not in meta  # a Hub base brings its own license: not guessed
    full = make_run_dir(tmp_path / "m", kind="model", comparisons=False)
    card = render_model_card(read_run_dir(full), "a/merged", base_model=["org/one", "org/two"], license="mit")
    meta = card.data.to_dict()
    assert meta["library_name"] == "transformers" and meta["base_model"] == ["org/one", "org/two"]
    assert meta["base_model_relation"] == "merge" and meta["license"] == "mit"
    assert "AutoModelForCausalLM.from_pretrained(\"a/merged\")" in str(card)
    assert "| metric | better | this model |" in str(card)


def test_metric_splits():
    assert metric_split("forget_quality", "forget01") == "forget01"
    assert metric_split("retain_prob", "forget01") == "retain99"
    assert metric_split("model_utility", "forget05") == "retain95"
    assert metric_split("ra_rouge", "forget10") == "real_authors"
    assert metric_split("wf_prob", "forget10") == "world_facts"
    assert metric_split("mia_min_k_auc", "forget10") == "forget10"
    assert metric_split("bwt", "forget10") == "test"


def test_eval_results_skip_non_numbers():
    results = eval_results_from_report({"suite": "muse", "aggregates": {"a": None, "b": float("nan"), "c": 1},
                                        "data": {"forget_split": "forget10", "source": "embedded"}})
    assert [(r.metric_type, r.metric_value) for r in results] == [("c", 1.0)]


def test_validator_is_able_to_fail():
    bad = "---\nmodel-index:\n- name: x\n  results:\n  - task: {}\n    dataset: {type: d}\n    metrics: " \
          "[{type: m}]\n---\n"
    errors = validate_metadata(bad)
    assert len(errors) == 3


def test_benchmark_eval_results_yaml():
    from huggingface_hub import parse_eval_result_entries

    text = benchmark_eval_results({"acc": 0.75}, "org/bench", {"acc": "main"}, source_url="https://x.y/run")
    entries = parse_eval_result_entries(yaml.safe_load(text))
    assert [(e.dataset_id, e.task_id, e.value, e.source_name) for e in entries] == [("org/bench", "main", 0.75,
                                                                                     "hfcl")]


def test_eval_results_folder_is_pushed_with_the_card(adapter_dir, tmp_path):
    import shutil

    run = shutil.copytree(adapter_dir, tmp_path / "run")
    (run / ".eval_results").mkdir()
    text = benchmark_eval_results({"acc": 0.5}, "org/bench", {"acc": "main"})
    (run / ".eval_results" / "bench.yaml").write_text(text)
    (run / ".cache").mkdir()
    (run / ".cache" / "junk.yaml").write_text("x: 1")
    plan = prepare_push(run, "me/x", make_plots=False)
    assert plan.read(".eval_results/bench.yaml").decode() == text and "README.md" in plan.files
    assert not any(p.startswith(".cache") for p in plan.files)


def test_report_of_other_weights_is_flagged_on_the_card(adapter_dir):
    from hfcl.utils.io import sha256_file

    actual = "sha256:" + sha256_file(adapter_dir / "adapter_model.safetensors")[:16]
    for revision, flagged in ((actual, False), ("sha256:0123456789abcdef", True), ("zoo:target", False)):
        data = report(AGGREGATES)
        data["model"]["adapter_revision"] = revision
        text = prepare_push(adapter_dir, "me/x", report=data, comparisons={}, make_plots=False).card
        assert ("may describe another model" in text) is flagged, revision
        staged = json.loads(prepare_push(adapter_dir, "me/x", report=data, make_plots=False)
                            .read("eval_report.json"))
        assert staged == data  # the note goes on the card only; the pushed report is the report


def test_continual_report_card(tmp_path):
    from hfcl.eval import continual_report

    rep = continual_report([[0.1, 0.1, 0.1], [0.9, 0.2, 0.1], [0.7, 0.8, 0.2], [0.6, 0.7, 0.9]], ["a", "b", "c"])
    run = make_run_dir(tmp_path, kind="model", comparisons=False,
                       extra_run={"command": "continual", "method": "replay"})
    rep.save(run)
    plan = prepare_push(run, "me/cl")
    text = plan.card
    card = ModelCard(text)
    assert "continual-learning" in card.data.tags and "machine-unlearning" not in card.data.tags
    assert numbers(card) == {k: v for k, v in rep.aggregates.items() if v is not None}
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert {r.dataset_type for r in results} == {"hfcl-continual-stream"}
    assert "| `a` | 0.1000 | 0.9000 | 0.6000 | 0.3000 |" in text and "| `c` | 0.1000 | 0.9000 | 0.9000 | — |" in text
    assert "| backward_transfer | ↑ | -0.2000 |" in text
    assert plan.read("plots/accuracy_matrix.png")[:4] == b"\x89PNG" and "![accuracy matrix]" in text
    assert "plots/forget_vs_utility.png" not in plan.files  # no forget metrics in a continual report
    assert "fictitious world" not in text.split("## Limitations")[1]
    assert validate_metadata(text) == []


def test_composition_recipe_card(tmp_path):
    run = make_run_dir(tmp_path, comparisons=False, extra_run={
        "command": "compose", "method": None, "config": {"method": "exact"}, "expression": "a - 0.5 * b",
        "bindings": {"a": {"source": "org/a", "revision": "abc123"}, "b": {"source": "/runs/b", "revision": None}}})
    text = prepare_push(run, "me/mix").card
    assert "model-merging" in ModelCard(text).data.tags
    assert "the expression `a - 0.5 * b`" in text
    assert "- `a`: `org/a` @ `abc123`" in text and "- `b`: `/runs/b`" in text


def test_space_card():
    card = render_space_card("hfcl demo", models=["me/npo"], sdk_version="6.31.0")
    text = str(card)
    assert 'python_version: "3.12"' in text or "python_version: '3.12'" in text
    meta = SpaceCard(text).data.to_dict()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["models"] == ["me/npo"]
    assert meta["python_version"] == "3.12" and meta["emoji"]
    assert validate_metadata(text) == []


def test_allow_list_and_run_dir_errors(adapter_dir, tmp_path):
    run = read_run_dir(adapter_dir)
    assert run.kind == "adapter"
    assert "training_args.bin" in run.skipped and "checkpoint-5/optimizer.pt" in run.skipped
    assert set(run.files) == {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
                              "tokenizer_config.json", "hfcl_run.json", "eval_report.json",
                              "eval_report.target.json", "eval_report.retain.json"}
    assert list(run.comparisons) == ["target", "retain"]
    plan = prepare_push(adapter_dir, "me/x")
    assert "README.md" in plan.files and "plots/forget_vs_utility.png" in plan.files
    assert plan.read("README.md").decode() != (adapter_dir / "README.md").read_text()  # PEFT's card is replaced
    with pytest.raises(RunDirError, match="does not exist"):
        read_run_dir(tmp_path / "nope")
    pickles = tmp_path / "pickles"
    pickles.mkdir()
    (pickles / "config.json").write_text("{}")
    (pickles / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(RunDirError, match="safe_serialization"):
        read_run_dir(pickles)
    (pickles / "config.json").unlink()
    with pytest.raises(RunDirError, match="neither"):
        read_run_dir(pickles)


def test_bare_save_pretrained_folder_gets_a_truthful_card(tmp_path):
    from hub_runs import tiny_llama

    tiny_llama().save_pretrained(tmp_path / "plain")
    plan = prepare_push(tmp_path / "plain", "me/plain")
    assert set(plan.files) == {"config.json", "generation_config.json", "model.safetensors", "README.md"}
    text = plan.card
    meta = ModelCard(text).data.to_dict()
    assert meta["library_name"] == "transformers" and "model-index" not in meta
    assert "no\n`hfcl_run.json`" in text or "no `hfcl_run.json`" in text
    assert "## Results" not in text and "![" not in text
    assert validate_metadata(text) == []


def test_missing_templates_say_how_to_fix(monkeypatch, tmp_path):
    from hfcl.errors import ConfigError
    from hfcl.hub import cards

    assert cards.template("model_card.md").is_file()
    monkeypatch.setattr(cards, "TEMPLATE_DIRS", [tmp_path])
    with pytest.raises(ConfigError, match="HFCL_CARD_TEMPLATES"):
        render_space_card("x")


def test_transfer_recipe_rendered_on_card():
    from hfcl.hub.cards import _sources

    run = {"transfer": {"source_adapter": {"path": "runs/task", "revision": "sha256:ab"},
                        "source_base": {"id": "base", "revision": "sha256:01"},
                        "target_base": {"id": "base-v2", "revision": "sha256:02"}, "method": "distill",
                        "original_data_used": "seed examples only", "seeds": 16, "seed_fingerprint": "ff",
                        "synthetic_generated": 256, "synthetic_accepted": 26, "filter_acceptance_rate": 0.1016},
           "evaluation": {"gain_retained": 0.91, "metric": "probability", "n": 38}}
    lines = "\n".join(_sources(run))
    assert "`runs/task` @ `sha256:ab`" in lines and "`base-v2` @ `sha256:02`" in lines
    assert "seed examples only" in lines and "26 of 256" in lines and "10%" in lines and "91%" in lines
