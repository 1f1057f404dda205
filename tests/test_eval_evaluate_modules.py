"""The metrics load as offline `evaluate` modules by path and give the pure functions' values."""

import pytest

from hfcl.errors import ConfigError
from hfcl.eval import metrics as M
from hfcl.eval.evaluate_modules import MODULES, load, module_path


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))


def test_rouge_module():
    out = load("hfcl_rouge").compute(predictions=["the cat sat", "x"], references=["the cat sat on the mat", "x"])
    assert out["rougeL_recall"] == pytest.approx((0.5 + 1.0) / 2)


def test_truth_ratio_and_forget_quality_modules():
    tr = load("hfcl_truth_ratio").compute(predictions=[0.7, 0.2], references=[[1.0, 2.0], [0.1, 0.3]],
                                          aggregator="true_better")
    expected = M.truth_ratio([0.7, 0.2], [[1.0, 2.0], [0.1, 0.3]])
    assert tr["truth_ratio"] == pytest.approx(M.truth_ratio_true_better(expected))
    fq = load("hfcl_forget_quality").compute(predictions=[1, 2, 3, 4, 5], references=[6, 7, 8, 9, 10])
    assert fq["forget_quality"] == pytest.approx(2 / 252)


def test_mia_and_continual_modules():
    out = load("hfcl_mia_auc").compute(predictions=[1, 3, 2, 4], references=[0, 0, 1, 1], reference_auc=0.5)
    assert out["auc"] == pytest.approx(0.75) and out["privleak"] == pytest.approx(-50.0)
    R = [[0.1, 0.2, 0.3], [0.8, 0.3, 0.35], [0.9, 0.85, 0.4], [0.6, 0.9, 0.95]]
    cl = load("hfcl_continual").compute(predictions=R)
    assert cl["backward_transfer"] == pytest.approx(-0.075) and cl["forward_transfer"] == pytest.approx(0.1)


def test_every_module_is_shipped_and_unknown_names_fail():
    for name in MODULES:
        assert module_path(name).endswith(name)
    with pytest.raises(ConfigError, match="Unknown"):
        module_path("rouge")
