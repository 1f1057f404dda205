"""``hfcl eval --compare target,retain`` writes the comparison reports the card reads, and re-renders the card of a
run directory."""

from __future__ import annotations

import json

import pytest
import yaml

from hfcl.cli import main


@pytest.mark.slow
def test_eval_compare_writes_comparison_reports_and_the_card(tiny_zoo, tmp_path, capsys):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny_zoo.load("target")
    run = tmp_path / "run"
    peft = get_peft_model(model, LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    peft.save_pretrained(str(run))  # B = 0: the run behaves exactly like target
    tokenizer.save_pretrained(str(run))
    (run / "README.md").write_text("[More Information Needed]\n")  # PEFT's template card, as a trainer leaves it
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(tiny_zoo.config.to_dict()))
    argv = ["eval", "--model", str(run), "--compare", "target,retain", "--world_config", str(world),
            "--retain_eval_size", "16", "--max_new_tokens", "8", "--no_plots"]
    assert main(argv) == 0
    reports = {name: json.loads((run / f"eval_report{name}.json").read_text())
               for name in ("", ".target", ".retain")}
    this, target, retain = reports[""], reports[".target"], reports[".retain"]
    assert target["model"]["id"] == "target" and retain["model"]["id"] == "retain"
    # the zero LoRA is the target model: the same numbers; retain never saw the forget set
    assert this["aggregates"]["forget_rouge"] == pytest.approx(target["aggregates"]["forget_rouge"], abs=1e-6)
    assert retain["aggregates"]["forget_rouge"] < target["aggregates"]["forget_rouge"]
    card = (run / "README.md").read_text()
    assert "[More Information Needed]" not in card and "model-index" in card
    header = next(line for line in card.splitlines() if line.startswith("| metric"))
    assert "| target |" in header and "| retain |" in header  # the comparison columns
    out = capsys.readouterr().out
    assert "eval_report.target.json" in out and "README.md" in out
    assert main(["eval", "--model", str(run)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["eval", "--model", str(run), "--compare", "a=1,a=2", "--overwrite"]) == 2
    assert "twice" in capsys.readouterr().err
