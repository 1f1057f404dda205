"""The metric registry: a metric registered once reaches the suite, the report, the card, the Space and evaluate."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import yaml

from hfcl.errors import DataError
from hfcl.eval import metrics as M
from hfcl.eval.metrics.registry import METRICS, Metric, compute_metrics, register_metric, unregister_metric

FAST = {"retain_eval_size": 8}
WORDS = Metric("forget_answer_words", "Mean number of words of the greedy answers to forget questions.", "lower",
               "forget", ("forget.generation",), lambda answers: float(np.mean([len(a.split()) for a in answers])),
               feature="string")
GAP = Metric("min_k_auc_gap", "Min-K% AUC of this model minus the retain model's.", "ideal", "holdout",
             ("agg.mia_min_k_auc", "reference.mia_min_k_auc"), lambda own, ref: own - ref, ideal=0.0, feature=None)


@pytest.fixture(scope="module")
def registered():
    for metric in (WORDS, GAP):
        register_metric(metric)
    yield
    for metric in (WORDS, GAP):
        unregister_metric(metric.name)


@pytest.fixture(scope="module")
def report(registered, tiny_zoo, tmp_path_factory):
    from hfcl.eval import build_reference_log, evaluate_model

    log = build_reference_log("retain", world_config=tiny_zoo.config,
                              path=tmp_path_factory.mktemp("ref") / "retain.json", **FAST)
    return evaluate_model("target", world_config=tiny_zoo.config, reference_log=log, **FAST)


def test_registered_metric_is_computed_into_the_report(report):
    generations = report.per_example["forget"]["generation"]
    assert report.aggregates["forget_answer_words"] == pytest.approx(np.mean([len(g.split()) for g in generations]))
    assert report.definitions["forget_answer_words"].direction == "lower"
    assert report.definitions["min_k_auc_gap"].arrow == "→0"
    rows = {r["metric"]: r for r in report.rows()}
    assert rows["forget_answer_words"]["description"] == WORDS.description
    order = report.ordered_metrics()
    assert order.index("forget_answer_words") < order.index("min_k_auc_gap")  # registry order, not alphabetical


def test_reference_stage_metric_follows_the_reference_log(report):
    from hfcl.eval import ReferenceLog, with_reference

    log = ReferenceLog.load(report.reference_log["path"])
    assert report.aggregates["min_k_auc_gap"] == pytest.approx(report.aggregates["mia_min_k_auc"] - log.mia_min_k_auc)
    cleared = with_reference(report, None)
    assert cleared.aggregates["min_k_auc_gap"] is None and any("min_k_auc_gap" in n for n in cleared.notes)
    assert cleared.aggregates["forget_answer_words"] == report.aggregates["forget_answer_words"]
    again = with_reference(cleared, log)
    assert again.aggregates["min_k_auc_gap"] == pytest.approx(report.aggregates["min_k_auc_gap"])
    assert again.notes == report.notes == []  # the "not computed" notes of the cleared report are gone


def test_registered_metric_shows_in_the_card_the_space_and_evaluate(report, tmp_path, monkeypatch):
    from hfcl.hub.cards import render_model_card
    from hfcl.hub.run_dir import RunDir
    from hfcl.space.cards import report_table

    run = RunDir(path=tmp_path, kind="adapter", files={}, run={"command": "unlearn", "method": "NPO", "config": {}},
                 report=report.to_dict())
    text = str(render_model_card(run, "someone/npo"))
    value = report.aggregates["forget_answer_words"]
    assert f"| forget_answer_words | ↓ | {value:.4f} |" in text
    assert f"- **forget_answer_words** (↓): {WORDS.description}" in text
    meta = yaml.safe_load(text.split("---")[1])
    splits = {m["type"]: r["dataset"]["split"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert splits["forget_answer_words"] == "forget10" and splits["min_k_auc_gap"] == "holdout"
    _, rows = report_table({"this": report})
    assert ["forget_answer_words", "↓", f"{value:.4f}"] in rows
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    from hfcl.eval.evaluate_modules import load

    out = load("forget_answer_words").compute(predictions=["a b", "c d e f"])
    assert out == {"forget_answer_words": 3.0}


def test_builtin_metrics_are_declared_once_with_inputs():
    from hfcl.eval.definitions import DEFINITIONS
    from hfcl.eval.report import DISPLAY_ORDER

    assert list(DEFINITIONS) == list(METRICS) and set(DISPLAY_ORDER) <= set(METRICS)
    for metric in METRICS.values():
        assert metric.inputs and metric.compute is not None, metric.name
    assert METRICS["forget_quality"].stage == "reference" and METRICS["forget_prob"].stage == "suite"
    assert METRICS["retain_rouge"].split == "retain" and METRICS["ra_prob"].split == "real_authors"


def test_compute_metrics_orders_dependencies_and_names_missing_inputs():
    first = Metric("x_sum", "sum", "higher", "forget", ("agg.x_double", "forget.x"), lambda d, x: d + sum(x))
    second = Metric("x_double", "double", "higher", "forget", ("forget.x",), lambda x: 2 * sum(x))
    assert compute_metrics([first, second], {"forget.x": [1, 2]}) == {"x_sum": 9, "x_double": 6}
    with pytest.raises(DataError, match="x_double.*forget.x"):
        compute_metrics([second], {"forget.y": [1]})
    with pytest.raises(ValueError, match="already registered"):
        register_metric(Metric("forget_prob", "again", "lower", "forget", ("forget.prob",), M.mean))


def test_loss_zlib_and_reference_attacks_keep_eos_min_k_drops_it():
    from hfcl.eval.scoring import SequenceScore
    from hfcl.eval.suites import _mia_scores

    lp = np.log(np.array([0.5, 0.25, 0.9]))  # the last labelled token is EOS
    score = SequenceScore(lp, np.zeros(3), np.ones(3), np.array([True, False, True]), ends_with_eos=True)
    out = _mia_scores([score], ["an answer"], k=1.0)
    assert out["mia_loss"][0] == pytest.approx(-lp.mean())  # all three tokens, as OpenUnlearning's LOSS
    assert out["mia_zlib"][0] == pytest.approx(-lp.mean() / len(zlib.compress(b"an answer")))
    assert out["mia_min_k"][0] == pytest.approx(-lp[:2].mean())  # content only
