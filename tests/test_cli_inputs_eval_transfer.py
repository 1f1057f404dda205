"""Issue 11, silent wrong results: an adapter evaluated on a base it was not trained on, and a transfer whose source
gain is nothing ("gain retained -188%"). Both now say so: a clear error naming the right base, or "n/a"."""

from __future__ import annotations

import json
import logging
import math

import pytest

from hfcl.errors import IncompatibleAdaptersError
from hfcl.eval.api import check_adapter_base
from hfcl.transfer.api import NO_GAIN, evaluate_transfer, format_gain, source_base_name
from hfcl.transfer.errors import TransferError
from hfcl.transfer.task import GAIN_FLOOR, gain_noise, gain_retained
from hfcl.utils.recorded_base import base_identity, same_base
from hfcl.zoo.build import stage_key


@pytest.fixture(scope="module")
def zero_adapter(tiny_zoo, tmp_path_factory):
    """A freshly initialised LoRA (B = 0, so it changes nothing) saved as trained on the tiny ``target``."""
    from peft import get_peft_model

    from hfcl.transfer.task import lora_config, save_task_adapter

    model, tokenizer = tiny_zoo.load("target")
    peft = get_peft_model(model, lora_config(r=2, alpha=4))
    return save_task_adapter(peft, tokenizer, tmp_path_factory.mktemp("ad") / "on-target", tiny_zoo.path("target"))


def fake_adapter(folder, base=None, run_base=None):
    """An adapter folder that records ``base`` (adapter_config.json) and/or ``run_base`` (hfcl_run.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": base}))
    if run_base is not None:
        (folder / "hfcl_run.json").write_text(json.dumps({"command": "unlearn", "base_model": {"id": run_base}}))
    return folder


# --- 1. eval --adapter on another base --------------------------------------------------------------------------
def test_eval_refuses_an_adapter_recorded_on_another_zoo_stage(tmp_path, monkeypatch):
    from hfcl.eval import api
    from hfcl.eval.cli import main

    adapter = fake_adapter(tmp_path / "a", base=f"hfcl:base@{stage_key('base')}")

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the base check")

    monkeypatch.setattr(api, "prepare_data", no_work)
    monkeypatch.setattr("hfcl.eval.cli.check_model_files", lambda *s: None)
    with pytest.raises(IncompatibleAdaptersError) as info:
        main(["--model", "target", "--adapter", str(adapter), "--output_dir", str(tmp_path / "out")])
    text = str(info.value)
    assert "hfcl:base@" in text and "'target'" in text and "--model base" in text and "--force" in text

    class Reached(Exception):
        pass

    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(api, "prepare_data", reached)  # --force: the check lets the evaluation start
    with pytest.raises(Reached):
        main(["--model", "target", "--adapter", str(adapter), "--output_dir", str(tmp_path / "out"), "--force"])


def test_eval_base_check_reads_folders_refs_and_hfcl_run(tiny_zoo, tmp_path, caplog):
    cfg = tiny_zoo.config
    on_base = fake_adapter(tmp_path / "folder", base=str(tiny_zoo.path("base")))  # a zoo cache folder
    with pytest.raises(IncompatibleAdaptersError, match="--model base"):
        check_adapter_base("target", on_base, cfg)
    assert check_adapter_base("base", on_base, cfg) is None
    assert check_adapter_base(str(tiny_zoo.path("base")), on_base, cfg) is None  # the same folder by path
    # the recipe matters too: the tiny target is not the default recipe's target
    tiny_target = fake_adapter(tmp_path / "ref", base=f"hfcl:target@{stage_key('target', cfg)}")
    assert check_adapter_base("target", tiny_target, cfg) is None
    with pytest.raises(IncompatibleAdaptersError, match=f"--model hfcl:target@{stage_key('target', cfg)}"):
        check_adapter_base("target", tiny_target)
    # no base in adapter_config.json: hfcl_run.json's base_model is read
    run = fake_adapter(tmp_path / "run", base=None, run_base="retain")
    with pytest.raises(IncompatibleAdaptersError, match="--model retain"):
        check_adapter_base("target", run, cfg)
    # --force: a warning, no error
    with caplog.at_level(logging.WARNING, logger="hfcl"):
        assert "--model base" in check_adapter_base("target", on_base, cfg, force=True)
    assert "Evaluating anyway" in caplog.text


@pytest.mark.parametrize("base", [None, "/no/such/machine/models/base", "someone/some-model"])
def test_eval_base_check_is_silent_when_provenance_is_unknown(tmp_path, base):
    adapter = fake_adapter(tmp_path / "a", base=base)
    assert check_adapter_base("target", adapter) is None


def test_same_base_identities(tmp_path):
    assert same_base(base_identity("target"), base_identity(f"hfcl:target@{stage_key('target')}")) is True
    assert same_base(base_identity("target"), base_identity("hfcl:base")) is False
    assert same_base(base_identity("target"), base_identity("hfcl:target")) is None  # hash unknown
    assert same_base(base_identity("org/a"), base_identity("org/b")) is False
    assert same_base(base_identity("org/a"), base_identity("target")) is None  # different kinds: unknown
    (tmp_path / "x").mkdir()
    assert same_base(base_identity(str(tmp_path / "x")), base_identity(str(tmp_path / "x") + "/")) is True


# --- 2. transfer: the source base and a gain of nothing ---------------------------------------------------------
def test_gain_retained_is_nan_when_the_source_gain_is_not_above_noise():
    assert gain_retained(0.6, 0.2, 0.9, 0.1) == pytest.approx(0.5)
    assert math.isnan(gain_retained(0.08, 0.04, 0.01, 0.03))  # negative source gain: was -200%
    assert math.isnan(gain_retained(0.08, 0.04, 0.035, 0.03))  # below the floor
    assert math.isnan(gain_retained(0.08, 0.04, 0.2, 0.1, noise=0.15))
    # noise = max(floor, 2 * standard error of the paired differences)
    with_adapter, alone = [0.5, 0.1, 0.9, 0.3], [0.1, 0.2, 0.3, 0.4]  # differences 0.4 -0.1 0.6 -0.1
    diffs = [0.4, -0.1, 0.6, -0.1]
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3)
    assert gain_noise(with_adapter, alone) == pytest.approx(2 * sd / 2)
    assert gain_noise([0.2, 0.2], [0.1, 0.1]) == GAIN_FLOOR
    assert format_gain({"gain_retained": None}) == "gain retained: " + NO_GAIN
    assert format_gain({"gain_retained": 0.1937}) == "gain retained 19%"


def test_transfer_of_an_adapter_that_gains_nothing_reports_na(tiny_zoo, zero_adapter, tmp_path, capsys):
    from hfcl.transfer.cli import main

    tiny_zoo.path("base-v2")
    out = tmp_path / "moved"
    assert main(["--adapter", str(zero_adapter), "--target_base", "base-v2", "--zoo", "tiny",
                 "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gain retained: n/a (the adapter gains nothing on its own base)" in printed and "%" not in printed
    run = json.loads((out / "hfcl_run.json").read_text())
    ev = run["evaluation"]
    assert ev["gain_retained"] is None and ev["gain_note"] == NO_GAIN and abs(ev["source_gain"]) < ev["gain_noise"]
    # the source base is the one the adapter records (target), not base
    assert run["transfer"]["source_base"]["path"] == str(tiny_zoo.path("target"))


def test_transfer_source_base_comes_from_the_record_and_a_wrong_one_is_refused(tiny_zoo, zero_adapter, tmp_path):
    cfg = tiny_zoo.config
    assert source_base_name(zero_adapter, None, cfg) == str(tiny_zoo.path("target"))
    with pytest.raises(TransferError, match="--source_base target"):
        source_base_name(zero_adapter, "base", cfg)
    assert source_base_name(zero_adapter, "target", cfg) == "target"
    # adapter_config names a folder of another machine: hfcl_run.json's record is used
    moved = fake_adapter(tmp_path / "moved", base="/other/machine/zoo/target-0123456789abcdef",
                         run_base=f"hfcl:target@{stage_key('target', cfg)}")
    assert source_base_name(moved, None, cfg) == f"hfcl:target@{stage_key('target', cfg)}"
    with pytest.raises(TransferError, match="does not record its base"):
        source_base_name(fake_adapter(tmp_path / "none"), None, cfg)


def test_evaluate_transfer_with_zero_gain_has_no_percentage(tiny_zoo, zero_adapter):
    from peft import PeftModel

    from hfcl.transfer.task import sentence_task

    rows = sentence_task(tiny_zoo.config)["test"].select(range(6))
    source_model, tokenizer = tiny_zoo.load("target")
    source = PeftModel.from_pretrained(source_model, zero_adapter)
    target = PeftModel.from_pretrained(tiny_zoo.load("base-v2")[0], zero_adapter)
    ev = evaluate_transfer(source, tokenizer, target, tokenizer, rows)
    assert ev["source_gain"] == pytest.approx(0.0, abs=1e-6)
    assert ev["gain_retained"] is None and ev["gain_note"] == NO_GAIN
