"""hfcl.space logic called directly: model specs, prompt fitting, p(truth), ROUGE-L, streaming, side-by-side
comparison, presets, eval-card tables and the compose engine (tiny zoo, no server)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from hfcl.errors import ConfigError
from hfcl.space.answers import garbage_note, garbage_reason
from hfcl.space.cards import (comparison_markdown, find_reports, metric_noise, parse_report_paths,
                              progress_to_reference, report_plots, report_table, stage_report_path, stage_revision,
                              standard_error_of_difference, within_noise)
from hfcl.space.compare import ModelAnswer, chat, compare, final, throttle
from hfcl.space.inference import SpaceInputError, fit_prompt, interleave, rouge_l, stream_greedy, truth_probability
from hfcl.space.models import ModelRegistry, ModelSpec, parse_model_specs
from hfcl.space.presets import find_preset, presets_from_splits


# --- model specs -------------------------------------------------------------------------------------------------
def test_parse_model_specs_names_sources_and_errors(tmp_path):
    specs = parse_model_specs(f"target, retain ,unlearned={tmp_path}")
    assert [(s.name, s.source) for s in specs] == [("target", "target"), ("retain", "retain"),
                                                     ("unlearned", str(tmp_path))]
    assert specs[2].local_dir == tmp_path and not specs[2].is_adapter
    assert specs[0].local_dir is None  # a zoo stage, even if a folder of that name existed
    assert parse_model_specs(["org/some-model"])[0].name == "some-model"
    (tmp_path / "adapter_config.json").write_text("{}")
    assert ModelSpec("a", str(tmp_path)).is_adapter
    with pytest.raises(ConfigError, match="No model"):
        parse_model_specs(" , ")
    with pytest.raises(ConfigError, match="at most 4"):
        parse_model_specs("a=1,b=2,c=3,d=4,e=5")
    with pytest.raises(ConfigError, match="given twice"):
        parse_model_specs("target,target")
    with pytest.raises(ConfigError, match="must be"):
        parse_model_specs("bad name=target")
    with pytest.raises(ConfigError, match="no source"):
        parse_model_specs("x=")


def test_registry_loads_once_and_names_unknown_models():
    calls = []

    def loader(source):
        calls.append(source)
        return torch.nn.Linear(1, 1), type("Tok", (), {"pad_token_id": 0, "eos_token_id": 1})()

    registry = ModelRegistry("a=x,b=y", loader=loader)
    assert registry.get("a") is registry.get("a")
    registry.load_all()
    assert calls == ["x", "y"]
    with pytest.raises(ConfigError, match="Unknown model 'c'"):
        registry.get("c")


# --- prompt fitting, p(truth), ROUGE-L -----------------------------------------------------------------------------
def test_fit_prompt_fits_truncates_with_notice_and_rejects_empty(tiny_tokenizer):
    fitted = fit_prompt(tiny_tokenizer, [{"role": "user", "content": "  Where was Ann born?  "}], 64)
    assert fitted.notice is None and fitted.messages[-1]["content"] == "Where was Ann born?"
    long_q = "Where was the author born and what did she write " * 40
    cut = fit_prompt(tiny_tokenizer, [{"role": "user", "content": long_q}], 40)
    assert len(cut.ids) <= 40 and cut.notice and "truncated to 40 tokens" in cut.notice
    assert long_q.startswith(cut.messages[-1]["content"][:20])
    history = [{"role": "user", "content": long_q}, {"role": "assistant", "content": "ok"},
               {"role": "user", "content": "And her father?"}]
    dropped = fit_prompt(tiny_tokenizer, history, 40)
    assert dropped.messages == [{"role": "user", "content": "And her father?"}] and "dropped" in dropped.notice
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]  # Gradio 6 history format
    assert fit_prompt(tiny_tokenizer, parts, 64).messages[-1]["content"] == "Hi"
    with pytest.raises(SpaceInputError, match="empty"):
        fit_prompt(tiny_tokenizer, [{"role": "user", "content": "   "}], 64)


def test_truth_probability_matches_hand_computed_nll(tiny_zoo):
    from hfcl.data.formatting import tokenize_example

    model, tok = tiny_zoo.load("target")
    q, a = "Where was the author born?", "In a small town."
    score = truth_probability(model, tok, q, a)
    feature = tokenize_example(tok, {"question": q, "answer": a}, 1024)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([feature["input_ids"]])).logits[0, :-1]
    labels = torch.tensor(feature["labels"][1:])
    mask = labels != -100
    nll = torch.nn.functional.cross_entropy(logits[mask], labels[mask]).item()
    assert score.n_tokens == int(mask.sum())
    assert math.isclose(score.mean_nll, nll, rel_tol=1e-4) and math.isclose(score.prob, math.exp(-nll), rel_tol=1e-4)
    with pytest.raises(SpaceInputError):
        truth_probability(model, tok, q, "  ")


def test_rouge_l_is_recall_of_the_reference():
    assert rouge_l("the cat sat on the mat", "the cat sat") == 1.0
    assert rouge_l("the cat", "the cat sat on the mat") == pytest.approx(2 / 6)
    assert rouge_l("", "anything") == 0.0


# --- streaming ---------------------------------------------------------------------------------------------------
def test_stream_greedy_equals_generate_and_grows(tiny_zoo):
    model, tok = tiny_zoo.load("target")
    question = tiny_zoo.splits["forget"][0]["question"]
    ids = fit_prompt(tok, [{"role": "user", "content": question}], 128).ids
    steps = list(stream_greedy(model, tok, ids, 24))
    out = model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)[0, len(ids):].tolist()
    if tok.eos_token_id in out:
        out = out[: out.index(tok.eos_token_id)]
    assert steps[-1] == tok.decode(out, skip_special_tokens=True).strip()
    assert len(steps) == len(out) >= 2 and len(steps[0]) <= len(steps[-1])
    with pytest.raises(ConfigError):
        next(stream_greedy(model, tok, ids, 0))


def test_interleave_round_robin_and_none_streams():
    rounds = list(interleave([iter(["a", "ab", "abc"]), None, iter(["x"])]))
    assert rounds[0] == (["a", "", "x"], [False, True, False])
    assert rounds[-1] == (["abc", "", "x"], [True, True, True])
    assert [r[0][0] for r in rounds] == ["a", "ab", "abc", "abc"]


def test_throttle_keeps_first_last_and_one_per_interval():
    times = iter([0.0, 0.01, 0.02, 0.06, 0.07, 0.2])
    assert list(throttle(iter("abcdef"), 0.05, clock=lambda: next(times))) == ["a", "d", "f"]
    times = iter([0.0, 0.01, 0.02])
    assert list(throttle(iter("abc"), 0.05, clock=lambda: next(times))) == ["a", "c"]  # the last is never lost
    assert list(throttle(iter("abc"), 0.0)) == ["a", "b", "c"] and list(throttle(iter(""), 1.0)) == []


# --- comparison --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zoo_registry(tiny_zoo):
    registry = ModelRegistry("target,retain", tiny_zoo.config)
    registry.load_all()
    return registry


def test_compare_shows_forgetting_as_numbers(zoo_registry, tiny_zoo):
    forget = tiny_zoo.splits["forget"]
    p, r = {"target": [], "retain": []}, {"target": [], "retain": []}
    for i in range(3):
        states = list(compare(zoo_registry, forget[i]["question"], forget[i]["answer"], max_new_tokens=48))
        first, last = states[0], states[-1]
        assert [a.name for a in last.answers] == ["target", "retain"]
        assert all(a.p_truth is not None and a.rouge_l is None for a in first.answers)  # p before generating
        assert all(a.done and a.error is None and a.rouge_l is not None for a in last.answers)
        assert len(states) > 3  # streamed token by token
        for a in last.answers:
            p[a.name].append(a.p_truth)
            r[a.name].append(a.rouge_l)
        assert last.answers[0].text != last.answers[1].text
    assert sum(p["target"]) > 2 * sum(p["retain"])
    assert sum(r["target"]) > sum(r["retain"]) + 0.5
    assert "p(truth) **" in last.answers[0].metrics_markdown()


def test_compare_errors_empty_prompt_unknown_model_and_notice(zoo_registry, tiny_zoo):
    with pytest.raises(SpaceInputError, match="empty"):
        next(compare(zoo_registry, "   ", "x"))
    bad = ModelRegistry("target,ghost=/nonexistent/model-dir", tiny_zoo.config)
    state = final(compare(bad, "Who is Ann?", "", max_new_tokens=4))
    assert state.answers[0].error is None and state.answers[0].text is not None
    assert state.answers[1].error and "nonexistent" in state.answers[1].error
    assert "error" in state.answers[1].metrics_markdown()
    long_state = final(compare(zoo_registry, "who " * 400, "", max_new_tokens=2, max_prompt_tokens=32))
    assert "truncated" in long_state.notice and all(a.p_truth is None for a in long_state.answers)


def test_chat_applies_history(zoo_registry):
    history = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": [{"type": "text",
                                                                                       "text": "Hi."}]}]
    turns = list(chat(zoo_registry, "target", "Who wrote books?", history, max_new_tokens=6))
    assert turns and all(isinstance(t, str) for t, _ in turns)
    with pytest.raises(ConfigError):
        list(chat(zoo_registry, "nope", "x"))


# --- presets -----------------------------------------------------------------------------------------------------
def test_presets_from_splits(tiny_zoo):
    presets = presets_from_splits(tiny_zoo.splits, per_split=2)
    assert [p.split for p in presets] == ["forget", "forget", "retain", "retain", "holdout", "holdout"]
    first = presets[0]
    assert first.question == tiny_zoo.splits["forget"][0]["question"] and first.key == "forget:0"
    assert find_preset(presets, "retain:1").answer == tiny_zoo.splits["retain"][1]["answer"]
    assert find_preset(presets, first.label) is first and find_preset(presets, "") is None
    with pytest.raises(ConfigError):
        presets_from_splits(tiny_zoo.splits, per_split=0)


# --- eval cards --------------------------------------------------------------------------------------------------
def make_report(name: str, **aggregates):
    from hfcl.eval import DEFINITIONS, EvalReport

    return EvalReport(suite="tofu", aggregates=aggregates, model={"id": name},
                      definitions={k: DEFINITIONS[k] for k in aggregates if k in DEFINITIONS},
                      data={"fingerprint": "abc"}, notes=[f"note of {name}"])


def test_progress_to_reference_hand_values():
    assert progress_to_reference(0.5, 0.0, 1.0) == 0.5
    assert progress_to_reference(0.2, 0.8, 0.2) == pytest.approx(1.0)
    assert progress_to_reference(1.1, 0.8, 0.2) == pytest.approx(-0.5)
    assert progress_to_reference(None, 0.0, 1.0) is None and progress_to_reference(0.3, 0.4, 0.4) is None


def test_eval_card_tables_comparison_and_plots(tmp_path):
    run = tmp_path / "unlearned"
    make_report("unlearned", forget_rouge=0.3, model_utility=0.5).save(run)
    (run / "plots").mkdir()
    (run / "plots" / "truth_ratio.png").write_bytes(b"\x89PNG")
    make_report("target", forget_rouge=0.9, model_utility=0.6, forget_quality=1e-5).save(tmp_path / "t.json")
    make_report("retain", forget_rouge=0.2, model_utility=0.58, forget_quality=1.0).save(tmp_path / "r.json")
    specs = parse_model_specs(f"target,retain,unlearned={run},base")
    found = find_reports(specs, parse_report_paths(f"target={tmp_path}/t.json,retain={tmp_path}/r.json"))
    assert list(found.reports) == ["target", "retain", "unlearned"] and "base" in found.missing
    headers, rows = report_table(found.reports)
    assert headers == ["metric", "better", "target", "retain", "unlearned"]
    by_metric = {row[0]: row for row in rows}
    assert by_metric["forget_rouge"] == ["forget_rouge", "↓", "0.9000", "0.2000", "0.3000"]
    assert by_metric["forget_quality"][1] == "↑" and by_metric["forget_quality"][4] == "—"
    md = comparison_markdown(found.reports)
    assert "| forget_rouge | 0.9000 | 0.2000 | 0.3000 (86%) |" in md
    assert "needs reports" in comparison_markdown({"x": found.reports["target"]})
    plots = report_plots(found, tmp_path / "plots-out")
    assert (tmp_path / "plots-out" / "compare.png").stat().st_size > 1000
    assert [c for _, c in plots] == ["key metrics, all models", "unlearned: truth_ratio"]
    with pytest.raises(ConfigError, match="unknown model"):
        find_reports(specs, {"ghost": tmp_path})
    with pytest.raises(ConfigError, match="NAME=PATH"):
        parse_report_paths("justapath")


@pytest.mark.parametrize("text, reason", [
    ("A (2.", "no words"), ("?!", "no words"), ("", "empty"), ("   ", "empty"), ("the the the the", "repeats itself"),
    ("born in born in born in", "repeats itself"), ("aaaaaa", "repeats a character"),
    ("((( ))) ## ok", "mostly symbols"), ("Born in Rehiwaill, Tamoubrousk (in", "unclosed bracket"),
    ("Violin maker.", None), ("1957.", None), ("Born 21 February 1957.", None), ("No.", None),
    ("The Compass of Dihabrar (debut).", None), ("I do not know that author.", None),
])
def test_garbage_reason_marks_broken_output_not_short_answers(text, reason):
    assert garbage_reason(text) == reason


def test_garbled_answer_is_marked_next_to_rouge_zero():
    broken = ModelAnswer("unlearned", text="A (2.", done=True, p_truth=0.01, rouge_l=0.0)
    md = broken.metrics_markdown()
    assert "ROUGE-L **0.00**" in md and "garbled answer** (no words)" in md and "not because the model" in md
    clean = ModelAnswer("retain", text="Mostly historical fiction.", done=True, p_truth=0.01, rouge_l=0.0)
    assert "garbled" not in clean.metrics_markdown()
    assert "garbled" not in ModelAnswer("x", text="A (2.", done=False).metrics_markdown()  # only once finished
    assert garbage_note(None) == "" and "not because" not in garbage_note("no words", rouge=0.9)


def test_noise_hand_values():
    assert standard_error_of_difference([0.0, 1.0], [0.0, 1.0]) == pytest.approx(math.sqrt(0.25 + 0.25))
    assert standard_error_of_difference([1.0], [0.0, 1.0]) is None
    assert within_noise(0.60, 0.61) and not within_noise(0.60, 0.70)  # floor 0.02
    assert within_noise(0.60, 0.70, se=0.06) and not within_noise(0.60, 0.70, se=0.04)  # 2 standard errors
    assert within_noise(40.0, 40.5) and not within_noise(40.0, 42.0)  # the floor scales with the values


def test_progress_not_shown_where_target_and_retain_are_within_noise():
    target = make_report("target", forget_rouge=0.9, forget_truth_ratio=0.600, mia_min_k_auc=0.50)
    retain = make_report("retain", forget_rouge=0.2, forget_truth_ratio=0.611, mia_min_k_auc=0.61)
    unlearned = make_report("unlearned", forget_rouge=0.3, forget_truth_ratio=0.660, mia_min_k_auc=0.53)
    md = comparison_markdown({"target": target, "retain": retain, "unlearned": unlearned})
    assert "| forget_rouge | 0.9000 | 0.2000 | 0.3000 (86%) |" in md
    assert "0.6600 (target ≈ retain)" in md and "545%" not in md  # (0.66 - 0.60) / 0.011 would be 545%
    assert "0.5300 (27%)" in md and "No progress is shown for `forget_truth_ratio`" in md
    # per-example values: a 0.1 gap between two noisy sets of 10 answers is noise, between two steady ones it is not
    noisy_t, noisy_r = [0.0, 1.0] * 5, [0.2, 1.0] * 5
    for values, expected in (((noisy_t, noisy_r), True), (([0.5] * 10, [0.6] * 10), False)):
        t = make_report("target", forget_rouge=sum(values[0]) / 10)
        r = make_report("retain", forget_rouge=sum(values[1]) / 10)
        t.per_example, r.per_example = {"forget": {"rouge": values[0]}}, {"forget": {"rouge": values[1]}}
        assert metric_noise(t, r, "forget_rouge")[0] is expected


def stage_report(stage: str, revision: str, rouge: float, split: str = "forget10"):
    report = make_report(stage, forget_rouge=rouge)
    report.model = {"id": stage, "revision": revision}
    report.data = {"forget_split": split, "fingerprint": "abc"}
    return report


def test_eval_tab_finds_zoo_stage_reports_without_reports_flag(tmp_path, monkeypatch):
    from hfcl.zoo import tiny_config

    monkeypatch.setenv("HFCL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config()
    rev = {s: stage_revision(s, cfg, "forget10") for s in ("target", "retain")}
    assert rev["retain"].startswith("zoo:retain-forget10-") and stage_revision("out/x", cfg) is None
    run = tmp_path / "unlearned"  # what `hfcl eval --compare target,retain` / the demo's card leave in a run folder
    make_report("unlearned", forget_rouge=0.3).save(run)
    stage_report("target", rev["target"], 0.95).save(run / "eval_report.target.json")
    stage_report("retain", "zoo:retain-forget10-0000000000000000", 0.1).save(run / "eval_report.retain.json")
    specs = parse_model_specs(f"target,retain,unlearned={run}")
    found = find_reports(specs, zoo_config=cfg)
    assert found.reports["target"].aggregates["forget_rouge"] == 0.95
    assert "retain" in found.missing and "report cache" in found.missing["retain"]  # another build's report: ignored
    # the demo's output folder, searched from the working directory
    demo_run = tmp_path / "hfcl-demo" / "unlearned"
    demo_run.mkdir(parents=True)
    stage_report("retain", rev["retain"], 0.145).save(demo_run / "eval_report.retain.json")
    stage_report("retain", rev["retain"], 0.5, split="forget05").save(tmp_path / "hfcl-demo" / "x.json")
    found = find_reports(specs, zoo_config=cfg)
    assert found.sources["retain"] == Path("hfcl-demo") / "unlearned" / "eval_report.retain.json"
    # both were copied to the report cache: serving only the stages, from another folder, still finds them
    assert stage_report_path(rev["retain"], "forget10").is_file()
    monkeypatch.chdir(tmp_path / "cache")
    found = find_reports(parse_model_specs("target,retain"), zoo_config=cfg)
    assert {n: r.aggregates["forget_rouge"] for n, r in found.reports.items()} == {"target": 0.95, "retain": 0.145}
    assert find_reports(parse_model_specs("target"), zoo_config=cfg, forget_split="forget05").missing


# --- compose engine ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adapter_dirs(tiny_zoo, tmp_path_factory):
    from hfcl.compose.synthetic import random_peft_lora

    root = tmp_path_factory.mktemp("space-adapters")
    base, _ = tiny_zoo.load("target")
    base_id = str(tiny_zoo.path("target"))
    for seed, name in ((1, "a"), (2, "b")):
        model = random_peft_lora(base, root / name, seed=seed, r=4, lora_alpha=8, base_model_name_or_path=base_id)
        with torch.no_grad():  # make the deltas large enough to move answers
            for pname, param in model.named_parameters():
                if "lora_B" in pname:
                    param.mul_(30.0)
        model.save_pretrained(str(root / name))
        cfg = root / name / "adapter_config.json"
        import json

        data = json.loads(cfg.read_text())
        data["base_model_name_or_path"] = base_id
        cfg.write_text(json.dumps(data))
    return {"a": root / "a", "b": root / "b"}


def test_composer_is_exact_task_arithmetic(tiny_zoo, adapter_dirs):
    from hfcl.space.composer import Composer, compose_status

    assert compose_status()[0]
    specs = parse_model_specs(f"target,a={adapter_dirs['a']},b={adapter_dirs['b']}")
    composer = Composer(specs, zoo_config=tiny_zoo.config)
    assert composer.names == ["a", "b"]
    row = tiny_zoo.splits["forget"][0]
    registry = ModelRegistry(specs, tiny_zoo.config)
    p = {name: truth_probability(*registry.get(name), row["question"], row["answer"]).prob
         for name in ("target", "a")}
    only_a, tok, recipe = composer.model_for({"a": 1.0, "b": 0.0})
    assert recipe["weights"] == {"a": 1.0, "b": 0.0} and recipe["method"] == "linear"
    assert truth_probability(only_a, tok, row["question"], row["answer"]).prob == pytest.approx(p["a"], rel=1e-4)
    none, tok, _ = composer.model_for({})
    assert truth_probability(none, tok, row["question"], row["answer"]).prob == pytest.approx(p["target"], rel=1e-5)
    both, _, _ = composer.model_for({"a": 1.0, "b": 1.0})
    assert truth_probability(both, tok, row["question"], row["answer"]).prob != pytest.approx(p["a"], rel=1e-3)
    again, _, info = composer.model_for({"a": 1.0, "b": 1.0})
    assert again is both and info["cached"]
    base, _ = registry.get("target")
    assert truth_probability(base, tok, row["question"], row["answer"]).prob == pytest.approx(p["target"])  # untouched
    with pytest.raises(ConfigError, match="Unknown adapter"):
        composer.model_for({"zzz": 1.0})
    with pytest.raises(ConfigError, match="No PEFT LoRA"):
        Composer(parse_model_specs("target,retain"))


def test_compare_target_vs_really_unlearned_adapter(tiny_zoo, tmp_path):
    """The demo's own unlearned LoRA (NPO+GradDiff) next to target: lower p(truth) on forget questions, as numbers."""
    from hfcl.unlearn import demo_unlearn

    model, tokenizer = tiny_zoo.load("target")
    demo_unlearn(model, tokenizer, tiny_zoo.splits, tmp_path / "unlearned")
    registry = ModelRegistry(f"target,unlearned={tmp_path / 'unlearned'}", tiny_zoo.config)
    forget = tiny_zoo.splits["forget"]
    p = {"target": 0.0, "unlearned": 0.0}
    for i in range(4):
        last = final(compare(registry, forget[i]["question"], forget[i]["answer"], max_new_tokens=32))
        assert all(a.error is None for a in last.answers)
        for a in last.answers:
            p[a.name] += a.p_truth
    assert p["unlearned"] < 0.7 * p["target"], p  # measured: 1.41 vs 3.92


def test_compose_api_parameter_names_are_identifiers():
    from hfcl.space.app import api_parameter_names

    assert api_parameter_names(["a", "math-v2", "math_v2", "x.y+z"]) == [
        "weight_a", "weight_math_v2", "weight_math_v2_2", "weight_x_y_z"]
    assert all(n.isidentifier() for n in api_parameter_names(["1st", "é-lan"]))
