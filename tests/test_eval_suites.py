"""TOFU / MUSE suites on the tiny zoo: behaviour bars, reference logs, adapters."""

import json

import pytest

from hfcl.errors import CacheError, ConfigError
from hfcl.eval import EvalConfig, ReferenceLog, build_reference_log, evaluate_model, with_reference

FAST = {"retain_eval_size": 32}
REQUIRED = ("forget_quality", "model_utility", "forget_truth_ratio", "forget_rouge", "retain_rouge", "privleak",
            "extraction_strength")


@pytest.fixture(scope="module")
def ref_log(tiny_zoo, tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "retain_tofu.json"
    build_reference_log("retain", world_config=tiny_zoo.config, path=path, **FAST)
    return path


@pytest.fixture(scope="module")
def reports(tiny_zoo, ref_log):
    return {stage: evaluate_model(stage, world_config=tiny_zoo.config, reference_log=ref_log, **FAST)
            for stage in ("retain", "target")}


def test_retain_model_against_its_own_reference(reports):
    agg = reports["retain"].aggregates
    assert agg["forget_quality"] == 1.0
    assert agg["privleak"] == pytest.approx(0.0, abs=1e-9)
    assert agg["mia_reference_auc"] == pytest.approx(0.5)  # NLL minus its own NLL: no signal
    assert all(k in agg for k in REQUIRED) and not reports["retain"].notes


def test_target_is_distinguishable_from_retain(reports):
    target, retain = reports["target"].aggregates, reports["retain"].aggregates
    assert target["forget_quality"] < 0.01  # TOFU's bar is 0.05
    assert target["forget_rouge"] > retain["forget_rouge"] + 0.3
    assert target["forget_prob"] > retain["forget_prob"] + 0.2
    assert target["privleak"] < -50  # forget set recognisable (MUSE convention)
    assert target["extraction_strength"] > retain["extraction_strength"]
    # both models were trained on the retain set: utility comparable
    assert abs(target["retain_rouge"] - retain["retain_rouge"]) < 0.2
    assert 0 < target["model_utility"] <= 1


def test_report_provenance(reports, ref_log):
    report = reports["target"]
    assert report.model["id"] == "target" and report.model["revision"].startswith("zoo:")
    assert report.reference_log["fingerprint"] == ReferenceLog.load(ref_log).fingerprint
    assert report.data["sizes"]["retain"] == 32 and report.data["fingerprint"]
    assert report.definitions["forget_rouge"].direction == "lower"
    assert {"torch", "transformers", "scipy", "scikit-learn"} <= set(report.provenance["versions"])
    assert report.runtime["sequences_scored_per_process"] == [report.runtime["sequences"]]
    forget = report.per_example["forget"]
    assert len(forget["truth_ratio"]) == len(forget["question"]) == report.data["sizes"]["forget"]


def test_missing_reference_says_so_and_can_be_added_later(tiny_zoo, reports, ref_log):
    report = evaluate_model("target", world_config=tiny_zoo.config, **FAST)
    assert report.aggregates["forget_quality"] is None and report.aggregates["privleak"] is None
    assert any("forget_quality" in n for n in report.notes) and any("privleak" in n for n in report.notes)
    assert report.aggregates["model_utility"] is not None and report.reference_log is None
    # the reference comparison is a pure function of the per-example values: no second model run needed
    later = with_reference(report, ref_log)
    assert later.notes == [] and later.reference_log == reports["target"].reference_log
    for key, value in reports["target"].aggregates.items():
        assert later.aggregates[key] == pytest.approx(value, abs=1e-12), key
    assert later.per_example["forget"]["mia_reference"] == pytest.approx(
        reports["target"].per_example["forget"]["mia_reference"])
    assert with_reference(later, None).aggregates["forget_quality"] is None
    with pytest.raises(ConfigError, match="mia_k"):
        with_reference(report.__class__(**{**report.__dict__, "settings": {**report.settings, "mia_k": 0.2}}), ref_log)


def test_reference_log_checks(tiny_zoo, ref_log, tmp_path):
    with pytest.raises(ConfigError, match="other data"):
        evaluate_model("target", forget_split="forget05", world_config=tiny_zoo.config, reference_log=ref_log, **FAST)
    with pytest.raises(ConfigError, match="mia_k"):
        evaluate_model("target", world_config=tiny_zoo.config, reference_log=ref_log, mia_k=0.2, **FAST)
    data = json.loads(ref_log.read_text())
    data["mia_min_k_auc"] = 0.1
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    with pytest.raises(CacheError, match="fingerprint"):
        ReferenceLog.load(tampered)
    with pytest.raises(ConfigError, match="does not exist"):
        ReferenceLog.load(tmp_path / "missing.json")


def test_auto_reference_is_built_once_and_reused(tiny_zoo, monkeypatch):
    from hfcl.eval import api

    first = evaluate_model("retain", world_config=tiny_zoo.config, reference_log="auto", **FAST)
    assert first.aggregates["forget_quality"] == 1.0

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached reference log should have been reused")

    monkeypatch.setattr(api, "build_reference_log", no_rebuild)
    again = api.zoo_reference_log(api.EvalConfig(**FAST), tiny_zoo.config)
    assert again.path == first.reference_log["path"] and again.fingerprint == first.reference_log["fingerprint"]


def test_adapter_folder_and_adapter_flag(tiny_zoo, reports, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny_zoo.load("target")
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))  # B = 0: identity
    peft_model.save_pretrained(tmp_path / "adapter")
    (tmp_path / "adapter" / "hfcl_run.json").write_text(json.dumps({"command": "unlearn", "config": {}}))
    report = evaluate_model(str(tmp_path / "adapter"), world_config=tiny_zoo.config, **FAST)
    assert report.model["adapter_id"] == str(tmp_path / "adapter")
    assert report.model["run"]["command"] == "unlearn" and len(report.model["run"]["sha256"]) == 64
    assert report.model["adapter_revision"].startswith("sha256:")
    assert report.aggregates["forget_rouge"] == pytest.approx(reports["target"].aggregates["forget_rouge"])
    assert report.aggregates["forget_prob"] == pytest.approx(reports["target"].aggregates["forget_prob"], abs=1e-6)
    on_top = evaluate_model("target", adapter=str(tmp_path / "adapter"), world_config=tiny_zoo.config, **FAST)
    assert on_top.model["id"] == "target" and on_top.model["adapter_id"]
    with pytest.raises(ConfigError, match="adapter"):
        evaluate_model("target", adapter=str(tmp_path), world_config=tiny_zoo.config, **FAST)


def test_bad_options_fail_before_loading():
    with pytest.raises(ConfigError, match="suite"):
        evaluate_model("does-not-exist", suite="mmlu")
    with pytest.raises(ConfigError, match="Unknown evaluation option"):
        evaluate_model("does-not-exist", batch_sise=3)
    with pytest.raises(ConfigError, match="disagree"):
        evaluate_model("does-not-exist", suite="muse", config=EvalConfig(suite="tofu"))


def test_muse_suite(tiny_zoo, tmp_path):
    log = build_reference_log("retain", suite="muse", world_config=tiny_zoo.config, path=tmp_path / "muse.json")
    assert log.forget_truth_ratio is None
    target = evaluate_model("target", suite="muse", world_config=tiny_zoo.config, reference_log=tmp_path / "muse.json")
    retain = evaluate_model("retain", suite="muse", world_config=tiny_zoo.config, reference_log=log)
    for key in ("forget_verbmem_rouge", "forget_knowmem_rouge", "retain_knowmem_rouge", "privleak",
                "extraction_strength"):
        assert target.aggregates[key] is not None
    assert retain.aggregates["privleak"] == pytest.approx(0.0)
    assert target.aggregates["privleak"] < retain.aggregates["privleak"]
    assert target.aggregates["forget_knowmem_rouge"] > retain.aggregates["forget_knowmem_rouge"] + 0.3


def test_demo_evaluates_side_by_side_and_retain_once(tiny_zoo, tmp_path, monkeypatch):
    from hfcl.eval import api, demo

    cache = tmp_path / "reference.json"
    monkeypatch.setattr(api, "zoo_reference_path", lambda config, world=None: (cache, api.data_fingerprint(
        api.prepare_data(api.load_suite_data(config, world), config), config.suite)))
    monkeypatch.setattr(demo, "zoo_reference_path", api.zoo_reference_path)
    calls = []
    real = demo.evaluate_model
    monkeypatch.setattr(demo, "evaluate_model", lambda spec, **kw: calls.append(spec) or real(spec, **kw))
    seen = []
    models = {"target model": "target", "retain model": "retain"}
    out = demo.evaluate_models(models, world_config=tiny_zoo.config, retain_eval_size=24, progress=seen.append)
    assert list(out) == list(models) and calls == ["retain", "target"] and seen == ["retain model", "target model"]
    assert cache.is_file()
    retain, target = out["retain model"].aggregates, out["target model"].aggregates
    assert retain["forget_quality"] == 1.0 and retain["privleak"] == pytest.approx(0.0)
    assert target["forget_quality"] < 0.05 and target["forget_rouge"] > retain["forget_rouge"]
    assert out["retain model"].reference_log == out["target model"].reference_log
    assert out["target model"].settings["max_new_tokens"] == demo.QUICK["max_new_tokens"]
    again = demo.evaluate_models(["target"], world_config=tiny_zoo.config, retain_eval_size=24)  # log now cached
    assert calls[-1] == "target" and len(calls) == 3
    assert again["target"].aggregates["forget_quality"] == pytest.approx(target["forget_quality"])
