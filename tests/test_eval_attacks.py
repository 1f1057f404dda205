"""Robustness attacks: the quantizer against hand-computed values and its rounding-away property, the relearning
attack restoring a gradient-ascent-unlearned model far more than the retain model (the control), and
`hfcl eval --attacks` writing robustness_* aggregates with definitions."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from hfcl.errors import ConfigError
from hfcl.eval.attacks import parse_attacks, quantize_rtn, quantized_copy, run_attacks, split_rows
from hfcl.eval.suites import EvalConfig


def test_quantize_rtn_by_hand():
    w = torch.tensor([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [0.75, 0.375, -0.125]])
    # 3 bits: qmax 3; row 0 scale 1/3: [1.5, -3, 0.75] -> round half to even [2, -3, 1] -> [2/3, -1, 1/3]
    q = quantize_rtn(w, 3)
    torch.testing.assert_close(q[0], torch.tensor([2 / 3, -1.0, 1 / 3]))
    torch.testing.assert_close(q[1], torch.zeros(3))  # a zero row stays zero
    torch.testing.assert_close(q[2], torch.tensor([0.75, 0.5, 0.0]))  # scale 0.25: [3, 1.5 -> 2, -0.5 -> -0]
    with pytest.raises(ValueError, match="2-D"):
        quantize_rtn(torch.ones(3), 4)


def test_quantization_rounds_small_updates_away():
    """The mechanism of Zhang et al.: weights on the 4-bit grid plus an update smaller than half a step (each row's
    largest weights kept) quantize back to exactly the original weights."""
    gen = torch.Generator().manual_seed(0)
    w = quantize_rtn(torch.randn(16, 32, generator=gen), 4)
    step = w.abs().amax(dim=1, keepdim=True) / 7
    delta = (torch.rand(16, 32, generator=gen) - 0.5) * 0.8 * step  # |delta| < 0.4 step
    delta[w.abs() >= w.abs().amax(dim=1, keepdim=True) - 1e-6] = 0  # keep every row's scale
    torch.testing.assert_close(quantize_rtn(w + delta, 4), w, rtol=0, atol=1e-6)  # the update is gone
    survived = (quantize_rtn(w + 2 * delta, 4) - w).abs() > 0.5 * step  # a larger one moves weights a whole step
    assert survived.any()


def test_quantized_copy_leaves_the_model_alone(tiny_zoo):
    model, _ = tiny_zoo.load("target")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    q = quantized_copy(model, 4)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    qp = dict(q.named_parameters())
    assert not torch.equal(qp["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(qp["model.embed_tokens.weight"], before["model.embed_tokens.weight"])


def test_split_and_bad_options():
    rows = [{"question": f"q{i}", "answer": "a"} for i in range(10)]
    shown, held = split_rows(rows, 0.2)
    assert [r["question"] for r in shown] == ["q0", "q5"] and len(held) == 8
    assert not {r["question"] for r in shown} & {r["question"] for r in held}
    with pytest.raises(ConfigError, match="unknown"):
        parse_attacks("relearn,quantise")
    with pytest.raises(ConfigError, match="quantize_bits"):
        EvalConfig(attacks="quantize", quantize_bits="8,1")
    with pytest.raises(ConfigError, match="relearn_fraction"):
        EvalConfig(attacks="relearn", relearn_fraction=1.5)
    with pytest.raises(ConfigError, match="TOFU"):
        EvalConfig(suite="muse", attacks="relearn")


@pytest.mark.slow
def test_relearning_restores_an_ascent_unlearned_model_not_the_retain_model(tiny_zoo):
    from hfcl.unlearn import UnlearningConfig, UnlearningTrainer

    model, tok = tiny_zoo.load("target")
    args = UnlearningConfig(output_dir="unused", method="GradAscent", learning_rate=1e-3, num_train_epochs=3,
                            per_device_train_batch_size=8, use_cpu=True, report_to="none", disable_tqdm=True,
                            save_strategy="no", logging_steps=1000)
    trainer = UnlearningTrainer(model, args, tiny_zoo.splits["forget"], None, processing_class=tok)
    trainer.train()
    config = EvalConfig(attacks="relearn,quantize")
    rows = list(tiny_zoo.splits["forget"])
    ascent, _, ascent_record = run_attacks(trainer.model, tok, rows, config)
    retain, _, _ = run_attacks(tiny_zoo.load("retain")[0], tok, rows, config)
    print({k: round(v, 3) for k, v in ascent.items()}, {k: round(v, 3) for k, v in retain.items()})
    assert ascent_record["before"]["prob"] < 0.5  # it did unlearn (target: 0.97)
    # measured: +0.26 answer probability on the 80% of forget rows the attack never saw, vs -0.01 for the control
    assert ascent["robustness_relearn_gain_prob"] > retain["robustness_relearn_gain_prob"] + 0.1
    assert ascent["robustness_relearn_forget_prob"] > ascent_record["before"]["prob"]
    assert set(ascent) >= {"robustness_quant8_gain_prob", "robustness_quant4_forget_rouge"}


def test_cli_attacks_write_robustness_aggregates(tiny_zoo, tmp_path):
    from hfcl.eval.cli import main

    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(tiny_zoo.config.to_dict()))
    out = tmp_path / "retain"
    assert main(["--model", "retain", "--output_dir", str(out), "--world_config", str(world), "--retain_eval_size",
                 "16", "--attacks", "relearn,quantize", "--quantize_bits", "4", "--relearn_steps", "3",
                 "--retain_logs", "auto"]) == 0
    report = json.loads((out / "eval_report.json").read_text())
    aggregates = report["aggregates"]
    assert {"robustness_relearn_gain_prob", "robustness_quant4_forget_rouge"} <= set(aggregates)
    assert "robustness_quant8_forget_prob" not in aggregates
    assert report["definitions"]["robustness_relearn_gain_prob"]["direction"] == "lower"
    assert any(n.startswith("attacks (relearn, quantize)") for n in report["notes"])
    assert report["runtime"]["attacks"]["shown_rows"] > 0 and report["aggregates"]["privleak"] is not None
