"""Inference-time guards (ECO, GuardFilter, GuardPrompt): the pieces against hand values, the wrapper's defining
behaviour on the tiny embedded world (flagged prompts changed, the others and the weights untouched), the run folder
that saves, loads, generates, evaluates and pushes, and the unguard attack that tells a guard from a weight change."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hfcl.errors import ConfigError
from hfcl.eval.scoring import generate_batch
from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
from hfcl.unlearn.guard import (
    REFUSAL_MARGIN,
    GuardedModel,
    PromptClassifier,
    common_suffix,
    generation_marker,
    hashed_features,
    mean_answer_prob,
    prompt_bounds,
    search_sigma,
    youden_threshold,
)
from hfcl.zoo import load_model

pytest_plugins = ["hub_fixtures"]  # the fake Hub for the push round trip


def test_prompt_bounds_find_the_marker_with_left_and_right_padding():
    assert common_suffix([[1, 2, 7, 8], [5, 7, 8], [9, 9, 3, 7, 8]]) == [7, 8]
    assert common_suffix([[1, 2], [3]]) == []
    ids = torch.tensor([[0, 0, 4, 5, 7, 8, 6, 6],   # left padded: prompt 4 5 7 8, answer 6 6
                        [4, 7, 8, 6, 2, 0, 0, 0],   # right padded
                        [4, 5, 6, 6, 6, 6, 6, 6]])  # no marker: the whole row is prompt
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0], [1] * 8])
    start, end = prompt_bounds(ids, mask, [7, 8])
    assert start.tolist() == [2, 0, 0] and end.tolist() == [6, 3, 8]
    padded = torch.tensor([[7, 8, 4, 7, 8]])  # a marker made of padding does not count
    start, end = prompt_bounds(padded, torch.tensor([[0, 0, 1, 1, 1]]), [7, 8])
    assert (start.item(), end.item()) == (2, 5)


def test_hashed_features_youden_and_the_sigma_search_against_hand_values():
    ids = torch.tensor([[3, 4, 3, 0]])
    keep = torch.tensor([[True, True, True, False]])
    f = hashed_features(ids, keep, buckets=64)
    assert f.shape == (1, 128) and float(f.norm()) == pytest.approx(1.0)
    raw = f * math.sqrt(2 ** 2 + 1 + 1 + 1)  # unigrams 3 (twice), 4; bigrams (3,4), (4,3): counts 2,1,1,1
    assert sorted(raw[raw > 0.5].round().tolist()) == [1.0, 1.0, 1.0, 2.0]
    # threshold: scores 0.1 0.2 (retain) | 0.7 0.9 (forget) -> the midpoint of the gap, TPR 1 FPR 0
    assert youden_threshold([0.1, 0.7, 0.2, 0.9], [0, 1, 0, 1]) == pytest.approx(0.45)
    sigma, trace = search_sigma(lambda s: math.exp(-s), target=0.2, start=0.1)  # exp(-σ) = 0.2 at σ = ln 5
    assert sigma == pytest.approx(math.log(5), abs=0.05) and len(trace) <= 36
    plateau = lambda s: 0.3 + 0.7 * math.exp(-s)  # noqa: E731 - never reaches 0.2: stops where it stops moving
    sigma, trace = search_sigma(plateau, target=0.2, start=0.1)
    assert plateau(sigma) < 0.31 and sigma < 50 and len(trace) < 36


def test_classifier_separates_prompts_and_chooses_its_threshold_out_of_fold():
    forget = [[1, 10, 11, 12, 2]] * 3 + [[1, 10, 11, 13, 2]] * 3  # the "name" tokens 10 11
    retain = [[1, 20, 21, 12, 2], [1, 22, 23, 13, 2], [1, 24, 25, 12, 2]] * 4
    clf = PromptClassifier.fit(forget + retain, [1] * 6 + [0] * 12)
    assert clf.report["held_out_tpr"] == 1.0 and clf.report["held_out_fpr"] == 0.0
    scores = clf.scores([[1, 10, 11, 14, 2], [1, 26, 27, 12, 2]])  # unseen forget / retain questions
    assert scores[0] >= clf.threshold > scores[1]


def _fit(tiny_zoo, method, tmp_path, **options):
    model, tok = tiny_zoo.load("target")
    splits = tiny_zoo.splits
    config = UnlearningConfig(output_dir=str(tmp_path / method), method=method, report_to="none", use_cpu=True,
                              **options)
    trainer = UnlearningTrainer(model, config, splits["forget"], splits["retain"], processing_class=tok,
                                holdout_dataset=splits["holdout"])
    trainer.train()
    return trainer, model, tok


def _logits(model, tok, question, answer):
    from hfcl.data.formatting import tokenize_example

    ids = torch.tensor([tokenize_example(tok, {"question": question, "answer": answer})["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_eco_corrupts_flagged_prompts_only_and_reaches_the_holdout_target(tiny_zoo, tmp_path):
    trainer, base, tok = _fit(tiny_zoo, "ECO", tmp_path)
    guarded = trainer.unlearned_model()
    assert isinstance(guarded, GuardedModel) and guarded.unguarded() is base
    target, _ = tiny_zoo.load("target")
    for key, value in base.state_dict().items():  # the weights are the target's, bit for bit
        assert torch.equal(value, target.state_dict()[key]), key
    record = trainer.guard_record
    assert record["classifier"]["held_out_tpr"] >= 0.9 and record["classifier"]["held_out_fpr"] <= 0.05
    forget, retain, holdout = (list(tiny_zoo.splits[k]) for k in ("forget", "retain", "holdout"))
    before = mean_answer_prob(base, tok, forget)
    after = mean_answer_prob(guarded, tok, forget)
    aim = mean_answer_prob(base, tok, holdout)
    print(f"ECO σ {record['eco']['sigma']:.3f}: forget p {before:.3f} -> {after:.3f} (holdout {aim:.3f})")
    assert record["eco"]["target_answer_prob"] == pytest.approx(aim, abs=1e-4)
    assert before - after > 0.5  # the corrupted prompts lose most of their answers
    searched = record["eco"]["search"]  # the σ kept scores closest to the holdout's of all it tried
    kept = next(t for t in searched if t["sigma"] == pytest.approx(record["eco"]["sigma"]))
    assert kept["score"] == pytest.approx(after, abs=1e-6)
    assert abs(after - aim) <= min(abs(t["score"] - aim) for t in searched) + 1e-3
    flags = [bool(guarded.flags(torch.tensor([ids]), None)) for ids in
             (trainer.processing_class(r["question"])["input_ids"] for r in retain[:3])]
    assert flags == [False, False, False]
    for row in retain[:5]:  # an unflagged prompt gives exactly the target's logits
        torch.testing.assert_close(_logits(guarded, tok, row["question"], row["answer"]),
                                   _logits(base, tok, row["question"], row["answer"]), rtol=0, atol=0)
    row = forget[0]  # a flagged prompt: the answer's embeddings are left alone, the prompt's are not
    corrupted = guarded._corrupt(*_ids_mask(tok, row), torch.tensor([True]))
    clean = base.get_input_embeddings()(_ids_mask(tok, row)[0])
    changed = (corrupted - clean).abs().sum(-1)[0] > 0
    from hfcl.data.formatting import tokenize_example

    prompt_len = tokenize_example(tok, row)["labels"].count(-100)
    marker = len(generation_marker(tok))
    assert changed[1: prompt_len - marker].all() and not changed[prompt_len - marker:].any()


def _ids_mask(tok, row):
    from hfcl.data.formatting import tokenize_example

    ids = torch.tensor([tokenize_example(tok, row)["input_ids"]])
    return ids, torch.ones_like(ids)


def test_filter_refuses_flagged_prompts_and_prompt_guard_prepends_its_instruction(tiny_zoo, tmp_path):
    trainer, base, tok = _fit(tiny_zoo, "GuardFilter", tmp_path)
    guarded = trainer.unlearned_model()
    forget, retain = tiny_zoo.splits["forget"][0], tiny_zoo.splits["retain"][0]
    from hfcl.data.formatting import prompt_ids

    prompt = lambda r: prompt_ids(tok, [{"role": "user", "content": r["question"]}])  # noqa: E731
    refusal = generate_batch(guarded, [prompt(forget)], tok.pad_token_id, tok.eos_token_id, 12)[0]
    assert tok.decode(refusal, skip_special_tokens=True).strip() == "I don't know."
    assert (generate_batch(guarded, [prompt(retain)], tok.pad_token_id, tok.eos_token_id, 12)
            == generate_batch(base, [prompt(retain)], tok.pad_token_id, tok.eos_token_id, 12))
    logits = _logits(guarded, tok, forget["question"], forget["answer"])[0]
    start = len(prompt(forget)) - 1
    assert float(logits[start].max() - logits[start].min()) == pytest.approx(REFUSAL_MARGIN)
    # GuardPrompt: the wrapper's logits are the target's on instruction + prompt, cut back to the prompt's positions
    trainer, base, tok = _fit(tiny_zoo, "GuardPrompt", tmp_path, guard_instruction="Say nothing about authors.")
    guarded = trainer.unlearned_model()
    assert trainer.guard_record["instruction"] == "Say nothing about authors."
    ids = torch.tensor([prompt(retain)])
    prefix = torch.tensor([guarded.config.prefix])
    assert 0 < prefix.shape[1]
    with torch.no_grad():
        expected = base(input_ids=torch.cat([prefix, ids], 1)).logits[:, prefix.shape[1]:]
        torch.testing.assert_close(guarded(input_ids=ids).logits, expected.float())
    _, _, _ = _fit(tiny_zoo, "GuardPrompt", tmp_path)  # the default instruction names the forget authors
    default = UnlearningConfig(output_dir=str(tmp_path / "d"), method="GuardPrompt", report_to="none")
    from hfcl.unlearn.guard import entity_instruction

    assert tiny_zoo.splits["forget"][0]["author"] in entity_instruction(list(tiny_zoo.splits["forget"]),
                                                                        default.whp_entity_field)


def test_guard_run_folder_loads_generates_evaluates_and_pushes(tiny_zoo, tmp_path, hub):
    from transformers import AutoModelForCausalLM

    from hfcl.eval import evaluate_model
    from hfcl.hub import push_run
    from hfcl.unlearn.cli import main as unlearn_main

    out = tmp_path / "eco"
    assert unlearn_main(["--model", str(tiny_zoo.path("target")), "--method", "ECO", "--output_dir", str(out),
                         "--disable_tqdm", "true"]) == 0
    run = json.loads((out / "hfcl_run.json").read_text())
    assert run["method"] == "ECO" and run["guard"]["eco"]["sigma"] > 0 and run["train_loss"] == 0.0
    assert not (out / "adapter_config.json").exists()  # the CLI's default --lora does not apply: nothing trained
    model, tok = load_model(str(out))
    assert isinstance(model, GuardedModel)
    prompts = [tok("Where?")["input_ids"], tok(tiny_zoo.splits["forget"][0]["question"])["input_ids"]]
    batched = generate_batch(model, prompts, tok.pad_token_id, tok.eos_token_id, 8)
    assert batched == [generate_batch(model, [p], tok.pad_token_id, tok.eos_token_id, 8)[0] for p in prompts]
    from hfcl.space.inference import stream_greedy  # the Space's streamed answer: no cache, same tokens

    *_, streamed = stream_greedy(model, tok, prompts[1], max_new_tokens=8)
    assert streamed == tok.decode(batched[1], skip_special_tokens=True).strip()
    report = evaluate_model(str(out), world_config=tiny_zoo.config, attacks="unguard")
    a = report.aggregates
    assert a["robustness_unguard_gain_prob"] > 0.3  # the weights still know everything the guard hides
    card = (out / "README.md").read_text()
    assert "import hfcl.unlearn.guard" in card and "eco_sigma" in card
    repo = f"{hub.user}/eco"
    push_run(out, repo)
    pulled = AutoModelForCausalLM.from_pretrained(repo)
    ids = tok(tiny_zoo.splits["forget"][0]["question"], return_tensors="pt")
    assert isinstance(pulled, GuardedModel)
    with torch.no_grad():
        torch.testing.assert_close(pulled(**ids).logits, model(**ids).logits)


def test_unguard_attack_is_zero_for_a_model_whose_weights_changed(tiny_zoo):
    from hfcl.eval.attacks import run_attacks
    from hfcl.eval.suites import EvalConfig

    model, tok = tiny_zoo.load("target")
    aggregates, _, _ = run_attacks(model, tok, list(tiny_zoo.splits["forget"])[:6], EvalConfig(attacks="unguard"))
    assert aggregates["robustness_unguard_gain_prob"] == 0.0 and aggregates["robustness_unguard_gain_rouge"] == 0.0
    from hfcl.eval.attacks import unguarded
    from hfcl.unlearn.uld import LogitDifferenceModel, build_assistant

    uld = LogitDifferenceModel.from_models(model, build_assistant(model, 1))  # ULD: the target without its assistant
    assert unguarded(uld) is model and unguarded(model) is model


def test_guards_refuse_what_they_cannot_do_before_any_work(tiny_zoo, tmp_path):
    from peft import LoraConfig

    from hfcl.unlearn.cli import main as unlearn_main

    with pytest.raises(ConfigError, match="trains no weights"):
        UnlearningConfig(output_dir=str(tmp_path), method="ECO", early_stop_steps=1)
    with pytest.raises(ConfigError, match="eco_sigma"):
        UnlearningConfig(output_dir=str(tmp_path), method="ECO", eco_sigma=-1.0)
    model, tok = tiny_zoo.load("target")
    config = UnlearningConfig(output_dir=str(tmp_path / "w"), method="GuardFilter", report_to="none", use_cpu=True)
    with pytest.raises(ConfigError, match="peft_config"):
        UnlearningTrainer(model, config, tiny_zoo.splits["forget"], tiny_zoo.splits["retain"],
                          processing_class=tok, peft_config=LoraConfig(r=2, target_modules=["q_proj"]))
    forget = tmp_path / "forget.jsonl"
    forget.write_text(json.dumps({"question": "Who is X?", "answer": "A writer."}) + "\n")
    with pytest.raises(ConfigError, match="holdout_file"):
        unlearn_main(["--model", "no/such-model", "--method", "ECO", "--forget_file", str(forget),
                      "--retain_file", str(forget), "--output_dir", str(tmp_path / "o")])
