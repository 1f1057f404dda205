"""Every unlearning loss against its formula on hand-built inputs."""

from __future__ import annotations

import math

import pytest
import torch

from hfcl.errors import ConfigError
from hfcl.unlearn import losses as L
from hfcl.unlearn.methods import METHODS, get_method, reference_needs, resolve_retain

# One sequence of 3 positions over a vocab of 2: logits at positions 0 and 1 predict tokens 1 and 2.
LOGITS = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])  # p(0)=.5 ; p(0)=.75 ; ignored
LABELS = torch.tensor([[-100, 0, 0]])  # position 0 is the prompt, answer tokens 1 and 2 are both token 0


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_sequence_and_token_logps_shift_and_mask():
    logp, n = L.sequence_logps(LOGITS, LABELS)
    assert n.tolist() == [2]
    assert logp.item() == pytest.approx(math.log(0.5) + math.log(0.75), abs=1e-6)
    masked = torch.tensor([[-100, -100, 0]])
    assert L.sequence_logps(LOGITS, masked)[0].item() == pytest.approx(math.log(0.75), abs=1e-6)


def test_nll_and_grad_ascent_are_token_means_with_denominator():
    expected = -(math.log(0.5) + math.log(0.75)) / 2
    assert L.nll_loss(LOGITS, LABELS).item() == pytest.approx(expected, abs=1e-6)
    assert L.grad_ascent_loss(LOGITS, LABELS).item() == pytest.approx(-expected, abs=1e-6)
    assert L.nll_loss(LOGITS, LABELS, denominator=4).item() == pytest.approx(expected * 2 / 4, abs=1e-6)


def test_npo_formula_and_limit_to_grad_ascent():
    logps, ref = torch.tensor([-2.0, -1.0]), torch.tensor([-1.5, -1.0])
    beta = 0.5
    expected = -(2 / beta) * (logsig(-beta * -0.5) + logsig(0.0)) / 2
    assert L.npo_loss(logps, ref, beta).item() == pytest.approx(expected, abs=1e-6)
    # gradient of NPO -> gradient of -log π as β -> 0 (the NPO paper's GA limit): d/dlogp = σ(β·r)·2 -> 1
    x = torch.tensor([-2.0], requires_grad=True)
    L.npo_loss(x, torch.tensor([-1.0]), 1e-4).backward()
    assert x.grad.item() == pytest.approx(1.0, abs=1e-3)


def test_simnpo_formula():
    logps, lengths = torch.tensor([-6.0]), torch.tensor([3])
    beta, delta = 2.0, 0.5
    expected = -(2 / beta) * logsig(beta * (6.0 / 3 - delta))
    assert L.simnpo_loss(logps, lengths, beta, delta).item() == pytest.approx(expected, abs=1e-6)


def test_dpo_formula_with_two_over_beta_scaling():
    beta = 0.1
    margin = (-1.0 - -2.0) - (-3.0 - -2.5)  # (chosen - ref_chosen) - (rejected - ref_rejected) = 1.5
    expected = -(2 / beta) * logsig(beta * margin)
    got = L.dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.5]), beta)
    assert got.item() == pytest.approx(expected, abs=1e-5)


def test_wga_weights_are_probabilities_to_the_beta():
    beta = 2.0
    expected = (0.5 ** 2 * math.log(0.5) + 0.75 ** 2 * math.log(0.75)) / 2  # -mean(w·ℓ), ℓ = -log p
    assert L.wga_loss(LOGITS, LABELS, beta).item() == pytest.approx(expected, abs=1e-6)


def test_undial_soft_targets_masked_to_answer_tokens():
    ref = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [9.0, -9.0]]])
    beta = 1.0
    # position 0: ref logits (1,0) - β·onehot(0) = (0,0) -> q=(.5,.5); model p=(.5,.5) -> CE = log 2
    # position 1: ref (0,0) - (1,0) = (-1,0) -> q=(σ(-1), σ(1)); model p=(.75,.25)
    q0, q1 = 1 / (1 + math.e), 1 - 1 / (1 + math.e)
    ce1 = -(q0 * math.log(0.75) + q1 * math.log(0.25))
    expected = (math.log(2) + ce1) / 2
    assert L.undial_loss(LOGITS, ref, LABELS, beta).item() == pytest.approx(expected, abs=1e-6)


def test_kl_is_ref_to_model_on_answer_tokens_only():
    ref = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [100.0, -100.0]]])  # the ignored last position must not count
    # position 0: KL(.5,.5 || .5,.5) = 0 ; position 1: KL(.5,.5 || .75,.25)
    kl1 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert L.kl_loss(LOGITS, ref, LABELS).item() == pytest.approx(kl1 / 2, abs=1e-6)
    assert L.kl_loss(LOGITS, LOGITS, LABELS).item() == pytest.approx(0.0, abs=1e-7)


def test_rmu_terms_and_control_vector():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 1.0], [7.0, 7.0]]])
    mask = L.answer_positions(LABELS)
    assert mask.tolist() == [[True, True, False]]
    control = torch.tensor([1.0, 0.0])
    # position 0: ((0)²+(1)²)/2 = .5 ; position 1: ((2)²+(1)²)/2 = 2.5 ; mean = 1.5
    assert L.rmu_forget_loss(hidden, control, mask).item() == pytest.approx(1.5)
    assert L.rmu_retain_loss(hidden, hidden + 1.0, mask).item() == pytest.approx(1.0)
    u = L.rmu_control_vector(16, 6.5, seed=3)
    assert u.norm().item() == pytest.approx(6.5, rel=1e-6)
    assert torch.equal(u, L.rmu_control_vector(16, 6.5, seed=3))


def test_registry_lookup_defaults_and_reference_needs():
    assert set(METHODS) == {"GradAscent", "GradDiff", "NPO", "SimNPO", "IdkDPO", "IdkNLL", "RMU", "UNDIAL", "WGA", "WHP",
                            "ULD", "ECO", "GuardFilter", "GuardPrompt", "S3T"}
    assert get_method("grad_diff").name == "GradDiff" and get_method("npo").name == "NPO"
    with pytest.raises(ConfigError, match="Unknown unlearning method"):
        get_method("forgetful")
    assert resolve_retain(get_method("GradAscent"), "auto") == "none"
    assert resolve_retain(get_method("NPO"), "auto") == "nll"
    assert resolve_retain(get_method("RMU"), "auto") == "embed"
    with pytest.raises(ConfigError, match="RMU"):
        resolve_retain(get_method("NPO"), "embed")
    assert reference_needs(get_method("NPO"), "nll") == {"logps"}
    assert reference_needs(get_method("NPO"), "kl") == {"logps", "logits"}
    assert reference_needs(get_method("SimNPO"), "none") == set()


def test_rmu_mean_against_openunlearnings_broadcast_mean():
    """hfcl: sum(S)/sum(N). OpenUnlearning: (S[B] / N[B,1]).mean() = mean(S)·mean(1/N) (a broadcasting slip).
    They agree when every example has the same number of answer tokens, and differ otherwise."""
    gen = torch.Generator().manual_seed(0)
    hidden, control = torch.randn(3, 5, 4, generator=gen), torch.zeros(4)

    def both(mask):
        per_position = hidden.pow(2).mean(-1) * mask
        S, N = per_position.sum(1), mask.sum(1, keepdim=True).float()
        return L.rmu_forget_loss(hidden, control, mask).item(), (S / N).mean().item(), (S / N.squeeze(1)).mean()

    equal = torch.tensor([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)
    hfcl, broadcast, per_example = both(equal)
    assert hfcl == pytest.approx(broadcast, rel=1e-6) and hfcl == pytest.approx(float(per_example), rel=1e-6)
    ragged = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    hfcl, broadcast, per_example = both(ragged)
    S = (hidden.pow(2).mean(-1) * ragged).sum(1)
    assert broadcast == pytest.approx(float(S.mean() * (1 / ragged.sum(1).float()).mean()), rel=1e-6)
    assert abs(broadcast - hfcl) > 1e-3 and abs(broadcast - float(per_example)) > 1e-3
