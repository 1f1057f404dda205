"""The embedded real-knowledge set (RWKU schema): splits, the record filter, the unlearn CLI's rwku source and the
rwku suite's aggregates (computed on the tiny model: the mechanics, not the knowledge)."""

from __future__ import annotations

import pytest

from hfcl.data import rwku
from hfcl.errors import ConfigError


def test_splits_and_schema():
    splits = rwku.load_rwku("William Shakespeare")
    assert set(splits) == {"forget", "forget_probe", "neighbor", "utility", "retain"}
    assert all("William Shakespeare" in row["question"] for row in splits["forget"])
    assert all(row["target"] != "William Shakespeare" for row in splits["neighbor"])
    assert {"question", "answer", "probe", "target"} <= set(splits["forget_probe"].column_names)
    assert not any("Shakespeare" in row["question"] for row in splits["retain"])  # other targets only


def test_only_probes_the_recorded_model_answers_are_kept():
    record = rwku.probe_record()["probes"]
    wrong = [q for q, p in record.items() if not p["correct"]]
    assert wrong  # the record does filter something (e.g. an answer the 135M model gets wrong)
    kept = {q for target in rwku.TARGETS for split in ("forget_probe", "neighbor", "utility")
            for q in rwku.load_rwku(target)[split]["question"]}
    assert not kept & set(wrong)
    assert len(rwku.load_rwku("William Shakespeare", known_only=False)["neighbor"]) == \
        len(rwku.TARGETS["William Shakespeare"]["neighbor"])
    assert set(record) == {r["question"] for r in rwku.candidate_probes()}  # the record covers every candidate


def test_unknown_target_is_a_clear_error():
    with pytest.raises(ConfigError, match="forget_target='Nobody'.*William Shakespeare"):
        rwku.load_rwku("Nobody")


def test_unlearn_reads_the_rwku_source():
    from hfcl.unlearn.run import UnlearnRunArgs, load_unlearning_data

    forget, retain = load_unlearning_data(UnlearnRunArgs(data_source="rwku", forget_target="Albert Einstein"))
    assert all("Einstein" in q for q in forget["question"]) and len(retain) > 0


def test_rwku_suite_aggregates_are_means_of_the_rows(tiny_zoo):
    from hfcl.eval import evaluate_model

    report = evaluate_model(tiny_zoo.path("target"), suite="rwku", reference_log=None, distributed=False,
                            max_new_tokens=8, world_config=tiny_zoo.config)
    for role in ("forget", "neighbor", "utility"):
        rows = report.per_example[role]
        assert report.aggregates[f"{role}_rouge"] == pytest.approx(sum(rows["rouge"]) / len(rows["rouge"]))
        assert report.aggregates[f"{role}_prob"] == pytest.approx(sum(rows["prob"]) / len(rows["prob"]))
    assert "forget_quality" not in report.aggregates


def test_demo_preset_on_the_rwku_source_is_the_methods_rwku_recipe():
    from hfcl.config import parse_args
    from hfcl.unlearn import UnlearningConfig
    from hfcl.unlearn.methods import METHODS
    from hfcl.unlearn.run import UnlearnRunArgs, _run_recipe

    argv = ["--model", "smollm2-135m", "--data_source", "rwku", "--method", "NPO", "--preset", "demo",
            "--report_to", "none"]
    run, config = parse_args([UnlearnRunArgs, UnlearningConfig], argv, "hfcl unlearn", "test")
    config = _run_recipe(run, config, None)
    recipe = METHODS["NPO"].presets["rwku"]
    assert config.preset == "rwku" and config.learning_rate == recipe["learning_rate"]
    assert config.retain_loss == recipe["retain_loss"]
    run, config = parse_args([UnlearnRunArgs, UnlearningConfig], [*argv, "--learning_rate", "1e-5"], "hfcl unlearn",
                             "test")
    assert _run_recipe(run, config, None).learning_rate == 1e-5  # a given option still wins


@pytest.mark.parametrize("extra, message", [
    (["--model", "smollm2-135m", "--preset", "tuned"], "early_stop_steps 1 \\(the preset sets it\\) with --data_source rwku"),
    (["--model", "target", "--preset", "demo"], "never learned: pass a real model"),
])
def test_rwku_runs_that_cannot_work_are_refused_before_loading(extra, message, tmp_path):
    from hfcl.unlearn.cli import main as unlearn_main

    with pytest.raises(ConfigError, match=message):
        unlearn_main(["--data_source", "rwku", "--method", "NPO", *extra, "--output_dir", str(tmp_path / "o"),
                      "--report_to", "none"])
    assert not (tmp_path / "o").exists()


def test_answers_match_on_word_boundaries():
    assert rwku.answer_matches("The chemical symbol for gold is Au.", "Au")
    assert not rwku.answer_matches("It is gold because it shines.", "Au")


def test_rwku_reports_name_their_target_and_cards_say_what_the_data_is():
    from hfcl.hub.cards import _limitations, dataset_of

    report = {"suite": "rwku", "data": {"source": "embedded", "forget_target": "Albert Einstein"}}
    kind, name = dataset_of(report)
    assert kind == "hfcl-embedded-rwku" and "Albert Einstein" in name and "fictitious" not in name

    class Run:
        run = {"command": "unlearn", "method": "NPO"}

    text = " ".join(_limitations(Run(), report))
    assert "real-knowledge probes" in text and "fictitious" not in text
