"""A card for every registered unlearning method: its text, formula and hyperparameters come from its registry entry."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from hfcl.hub.cards import render_model_card
from hfcl.hub.run_dir import RunDir
from hfcl.unlearn.config import UnlearningConfig
from hfcl.unlearn.methods import METHODS

CONFIG_FIELDS = {f.name for f in dataclasses.fields(UnlearningConfig)}


def run_dir_for(method, tmp_path) -> RunDir:
    """The run directory ``hfcl unlearn`` writes (its ``hfcl_run.json`` config is the real ``UnlearningConfig``)."""
    extra = {"idk_answers": ["I don't know."]} if method.needs_idk else {}
    config = UnlearningConfig(output_dir=str(tmp_path / method.name), method=method.name,
                              salun_sparsity=None if method.guard or method.exact else 0.25,
                              rmu_layer=1 if method.name == "RMU" else None, report_to="none", **extra)
    settings = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
    settings["retain_loss"] = config.retain_kind
    run = {"command": "unlearn", "method": method.name, "method_description": "stale text from an old run",
           "config": settings, "seed": config.seed, "base_model": {"id": "target"}}
    return RunDir(path=tmp_path, kind="adapter", files={}, run=run,
                  adapter_config={"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]})


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_card_has_its_text_formula_and_hyperparameters(name, tmp_path):
    method = METHODS[name]
    assert method.description and method.formula, f"{name} needs a description and a formula for its card"
    assert set(method.card_fields) <= CONFIG_FIELDS, f"{name}: card_fields must be UnlearningConfig fields"
    text = str(render_model_card(run_dir_for(method, tmp_path), f"someone/{name.lower()}"))
    assert method.description in text and "stale text" not in text
    if method.guard:  # nothing trained: the guard's formula and settings, no loss, no training rows
        assert f"Objective: `no weights trained (an inference-time guard around the base model): {method.formula}`" in text
        rows = {line.split("|")[1].strip(" `") for line in text.splitlines() if line.startswith("| `")}
        assert {"method", *method.card_fields} <= rows and not rows & {"learning_rate", "alpha", "salun_sparsity"}
        return
    if method.exact:  # S3T: no loss; the slices' recipe, its own fields and what the deletion did
        assert f"Objective: `no unlearning loss (exact unlearning, trained from the base model): {method.formula}`" in text
        rows = {line.split("|")[1].strip(" `") for line in text.splitlines() if line.startswith("| `")}
        assert {"method", "learning_rate", "num_train_epochs", *method.card_fields} <= rows
        assert not rows & {"alpha", "gamma", "salun_sparsity"}
        return
    total = "L = γ·L_f" if method.retain == "none" else "L = γ·L_f + α·L_r"
    assert f"Objective: `{total} with {method.formula}; " in text
    assert ("no retain term" in text) == (method.retain == "none")
    meta = yaml.safe_load(text.split("---")[1])
    assert {"hfcl", "machine-unlearning", name.lower()} <= set(meta["tags"])
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2].strip(" `")
            for line in text.splitlines() if line.startswith("| `")}
    assert rows["method"] == name and rows["salun_sparsity"] == "0.25"
    assert float(rows["gamma"]) == method.gamma  # the effective forget weight, not "None"
    for key in method.card_fields:
        if key == "beta":
            assert float(rows["beta"]) == method.beta
        elif key == "idk_answers":
            assert "I don't know." in rows[key]
        elif key not in ("trainable_params_regex",) or rows.get(key):
            assert key in rows, f"{name}: {key} missing from the card"
    shown_elsewhere = {"beta", "delta", "rmu_layer", "rmu_steering_coeff", "idk_answers"} - set(method.card_fields)
    assert not shown_elsewhere & set(rows), f"{name} shows another method's hyperparameters"


def test_old_names_still_resolve():
    from hfcl.hub import cards

    assert cards.METHODS["UNDIAL"].endswith("lowered by β.")  # the old table, read from the registry
    assert "base-v2" in cards.ZOO_STAGES and "tokenizer" not in cards.ZOO_STAGES
