"""Plots name models by zoo stage or run folder name, never by a local path (eval plots and card plots)."""

from __future__ import annotations

import pytest

from hfcl.eval.plots import model_label


@pytest.mark.parametrize("model, label", [
    ({"id": "target", "revision": "zoo:target-8c21fc6d13b5ebbe"}, "target"),
    ({"id": "/root/.cache/huggingface/hfcl/zoo/retain-forget10-346fda774a7543cb"}, "retain"),
    ({"id": "/root/.cache/huggingface/hfcl/zoo/target-8c21fc6d13b5ebbe", "adapter_id": "/tmp/xyz/runs/ga/"},
     "ga (on target)"),
    ({"id": "/home/me/work/out/full-finetune"}, "full-finetune"),
    ({"id": "meta-llama/Llama-3.2-1B"}, "meta-llama/Llama-3.2-1B"),  # a Hub id is kept whole
    ({}, "model"),
])
def test_model_label(model, label):
    assert model_label(model) == label


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in [ax.title, *ax.texts, *(ax.get_legend().get_texts()
                                                                            if ax.get_legend() else [])]]


def test_eval_plot_titles_and_card_labels_carry_no_local_path(tmp_path, monkeypatch):
    import hfcl.eval.plots as eval_plots
    import hfcl.hub.plots as hub_plots
    from hfcl.eval import EvalReport

    seen: list[str] = []
    real_save, real_png = eval_plots._save, hub_plots._png
    monkeypatch.setattr(eval_plots, "_save", lambda fig, path, plt: (seen.extend(_texts(fig)),
                                                                      real_save(fig, path, plt))[1])
    monkeypatch.setattr(hub_plots, "_png", lambda fig, plt: (seen.extend(_texts(fig)), real_png(fig, plt))[1])
    run = str(tmp_path / "runs" / "npo-lora")
    base = str(tmp_path / "cache" / "zoo" / "target-8c21fc6d13b5ebbe")
    report = EvalReport("tofu", {"forget_rouge": 0.3, "model_utility": 0.5},
                        per_example={"forget": {"truth_ratio": [0.5, 0.7, 0.9]}},
                        model={"id": base, "adapter_id": run})
    written = eval_plots.write_plots(report, tmp_path / "plots")
    assert [p.name for p in written] == ["aggregates.png", "truth_ratio.png"]
    plots = hub_plots.card_plots(report.to_dict(), {"target": {"aggregates": {"forget_rouge": 0.9,
                                                                              "model_utility": 0.6}}})
    assert "plots/forget_vs_utility.png" in plots
    assert "tofu: npo-lora (on target)" in seen and "npo-lora (on target)" in seen and "target" in seen
    assert not [t for t in seen if str(tmp_path) in t or "/" in t]
