"""Pure metric functions against hand-computed values."""

import math
import zlib

import numpy as np
import pytest

from hfcl.errors import DataError
from hfcl.eval import metrics as M

LN2, LN4, LN16 = math.log(2), math.log(4), math.log(16)


# --- TOFU -------------------------------------------------------------------------------------------------------
def test_answer_probability_is_length_normalised():
    np.testing.assert_allclose(M.answer_probability([0.0, LN2]), [1.0, 0.5])


def test_normalized_probability_over_options():
    # p(a) = 1/2, two wrong options at 1/4 each -> 0.5 / (0.5 + 0.5)
    np.testing.assert_allclose(M.normalized_probability([LN2], [[LN4, LN4]]), [0.5])
    # one option, 1D wrong input: 0.5 / (0.5 + 0.25)
    np.testing.assert_allclose(M.normalized_probability([LN2], [LN4]), [2 / 3])


def test_truth_ratio_uses_geometric_mean_of_perturbed():
    # correct 1/2; wrong 1/4 and 1/16 -> geometric mean 1/8 -> R = 1/4 (an arithmetic mean would give 0.3125)
    np.testing.assert_allclose(M.truth_ratio([LN2], [[LN4, LN16]]), [0.25])


def test_truth_ratio_aggregators():
    assert M.truth_ratio_closer_to_1([0.5, 4.0]) == pytest.approx((0.5 + 0.25) / 2)
    assert M.truth_ratio_true_better([0.5, 4.0]) == pytest.approx((0.5 + 0.0) / 2)


def test_forget_quality_ks_pvalue():
    same = [0.2, 0.5, 0.9, 1.3]
    assert M.forget_quality(same, same) == 1.0
    # fully separated samples of 5 vs 5: exact two-sided p = 2 / C(10, 5)
    assert M.forget_quality([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    # invariant to the reciprocal (TOFU's legacy 1/R)
    a, b = np.array([0.3, 0.6, 0.9, 1.5]), np.array([0.5, 0.8, 1.1, 2.0])
    assert M.forget_quality(a, b) == pytest.approx(M.forget_quality(1 / a, 1 / b))
    with pytest.raises(ValueError):
        M.forget_quality([], [1.0])


def test_model_utility_is_harmonic_mean_of_nine():
    values = dict.fromkeys(M.MODEL_UTILITY_KEYS, 0.5)
    values["retain_prob"], values["wf_rouge"] = 1.0, 0.25
    expected = 9 / (1 / 1.0 + 1 / 0.25 + 7 / 0.5)
    assert M.model_utility(values) == pytest.approx(expected)
    assert M.harmonic_mean([1.0, 0.5, 0.25]) == pytest.approx(3 / 7)
    values["ra_truth_ratio"] = 0.0
    assert M.model_utility(values) == 0.0
    del values["ra_rouge"]
    with pytest.raises(KeyError, match="ra_rouge"):
        M.model_utility(values)


# --- ROUGE -------------------------------------------------------------------------------------------------------
def test_rouge_l_recall_and_f1():
    pred, ref = ["the cat sat"], ["the cat sat on the mat"]
    assert M.rouge_l_recall(pred, ref)[0] == pytest.approx(0.5)
    assert M.rouge_l_f1(pred, ref)[0] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert M.rouge_l_recall(["x"], ["the cat"])[0] == 0.0
    with pytest.raises(ValueError):
        M.rouge_scores(["a"], [])


# --- memorisation ------------------------------------------------------------------------------------------------
def test_exact_memorization_and_extraction_strength():
    c = [True, True, False, True, True]
    assert M.exact_memorization(c) == pytest.approx(0.8)
    assert M.extraction_strength(c) == pytest.approx(1 - 3 / 5)
    assert M.extraction_strength([True] * 4) == 1.0
    assert M.extraction_strength([True, True, False]) == 0.0  # OpenUnlearning would report 1/3 here
    assert math.isnan(M.extraction_strength([]))


# --- membership inference ----------------------------------------------------------------------------------------
def test_mia_scores():
    lp = [-1.0, -2.0, -3.0, -4.0, -5.0]
    assert M.loss_score(lp) == pytest.approx(3.0)
    assert M.min_k_score(lp, k=0.4) == pytest.approx(4.5)  # lowest int(0.4*5)=2 values: -5, -4
    assert M.min_k_score(lp, k=0.1) == pytest.approx(5.0)  # at least one token
    assert M.min_k_plus_plus_score(lp, np.zeros(5), np.ones(5), k=0.4) == pytest.approx(4.5)
    assert M.min_k_plus_plus_score(lp, np.full(5, -1.0), np.full(5, 4.0), k=0.4) == pytest.approx((4 + 3) / 2 / 2)
    assert M.zlib_score(lp, "aaaa") == pytest.approx(3.0 / len(zlib.compress(b"aaaa")))
    assert M.reference_score(2.5, 1.0) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        M.min_k_score(lp, k=0.0)


def test_mia_auc_and_privleak():
    assert M.mia_auc([1, 2], [3, 4]) == 1.0  # forget losses lower: memorised
    assert M.mia_auc([3, 4], [1, 2]) == 0.0
    assert M.mia_auc([1, 3], [2, 4]) == pytest.approx(0.75)
    assert M.privleak(1.0, 0.5) == pytest.approx(-100.0)
    assert M.privleak(0.5, 0.5) == 0.0
    assert M.privleak(0.25, 0.5) == pytest.approx(50.0)
    assert math.isnan(M.privleak(0.7, 1.0))


# --- continual learning --------------------------------------------------------------------------------------------
R = np.array([
    [0.1, 0.2, 0.3],   # base model, before any task
    [0.8, 0.3, 0.35],  # after task 1
    [0.9, 0.85, 0.4],  # after task 2 (task 1 still improves)
    [0.6, 0.9, 0.95],  # after task 3
])


def test_textbook_continual_metrics():
    assert M.final_average_accuracy(R) == pytest.approx(2.45 / 3)
    assert M.average_incremental_accuracy(R) == pytest.approx((0.8 + 0.875 + 2.45 / 3) / 3)
    assert M.backward_transfer(R) == pytest.approx(((0.6 - 0.8) + (0.9 - 0.85)) / 2)
    assert M.forward_transfer(R) == pytest.approx(((0.3 - 0.2) + (0.4 - 0.3)) / 2)
    assert M.forward_transfer(R, baseline=[0.0, 0.1, 0.1]) == pytest.approx(((0.3 - 0.1) + (0.4 - 0.1)) / 2)


def test_forgetting_variants():
    np.testing.assert_allclose(M.forgetting_per_task(R), [0.9 - 0.6, 0.85 - 0.9])
    assert M.average_forgetting(R) == pytest.approx((0.3 - 0.05) / 2)
    assert M.average_forgetting(R, reference="max_all") == pytest.approx((0.3 + 0.0) / 2)
    assert M.average_forgetting(R, reference="first") == pytest.approx((0.2 - 0.05) / 2)
    assert M.average_forgetting(R, k=2) == pytest.approx(0.8 - 0.9)
    assert math.isnan(M.average_forgetting(R, k=1))
    with pytest.raises(DataError):
        M.average_forgetting(R, reference="mean")


def test_intransigence_and_bundle():
    np.testing.assert_allclose(M.intransigence(R, [0.95, 0.9, 0.97]), [0.15, 0.05, 0.02])
    out = M.continual_metrics(R, joint=[0.95, 0.9, 0.97])
    assert out["backward_transfer"] == pytest.approx(-0.075)
    assert out["intransigence"] == pytest.approx(0.22 / 3)


def test_continual_edge_cases():
    one = [[0.2], [0.9]]
    assert M.final_average_accuracy(one) == pytest.approx(0.9)
    assert math.isnan(M.backward_transfer(one)) and math.isnan(M.forward_transfer(one))
    with pytest.raises(DataError, match="shape"):
        M.backward_transfer(np.zeros((3, 3)))
    with pytest.raises(DataError, match="baseline"):
        M.forward_transfer(R, baseline=[0.1])
