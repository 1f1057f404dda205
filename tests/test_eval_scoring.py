"""The shared teacher-forced pass and batched generation agree with straightforward per-example computation."""

import numpy as np
import pytest
import torch

from hfcl.data import tokenize_example
from hfcl.eval.scoring import ScoringPlan, plan_batches, score_batch


@pytest.fixture(scope="module")
def target(tiny_zoo):
    return tiny_zoo.load("target")


QA = [("What genre is Ada known for?", "War fiction, above all."),
      ("Who wrote the book?", "It was written by a diplomat from a distant land."),
      ("Where?", "Here."),
      ("What genre is Ada known for?", "Nature writing, above all.")]


def test_plan_batches_cover_everything_once():
    lengths = [5, 9, 3, 9, 7, 1, 4]
    batches = plan_batches(lengths, batch_size=3, max_tokens=20)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(b) <= 3 and len(b) * max(lengths[i] for i in b) <= 20 for b in batches)
    assert plan_batches(lengths, 3, 20) == batches  # deterministic


def test_plan_deduplicates(target):
    _, tok = target
    plan = ScoringPlan(tok)
    first = plan.qa(*QA[0])
    assert plan.qa(*QA[0]) == first and plan.qa(*QA[1]) != first
    assert len(plan.features) == 2
    assert plan.question_prompt("Q?") == plan.question_prompt("Q?")


def test_batched_scores_match_single_and_model_loss(target):
    model, tok = target
    plan = ScoringPlan(tok)
    ids = [plan.qa(q, a) for q, a in QA]
    batched = plan.score(model, batch_size=4, distributed=False)
    for i, (q, a) in zip(ids, QA):
        feature = tokenize_example(tok, {"question": q, "answer": a})
        single = score_batch(model, [feature], tok.pad_token_id, tok.eos_token_id)[0]
        np.testing.assert_allclose(batched[i].logprobs, single.logprobs, atol=1e-4)
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([feature["input_ids"]]), labels=torch.tensor([feature["labels"]])).loss
        assert batched[i].avg_nll == pytest.approx(float(loss), abs=1e-4)
        assert batched[i].ends_with_eos
        assert len(batched[i].content().logprobs) == len(batched[i].logprobs) - 1


def test_distribution_statistics_match_full_softmax(target):
    model, tok = target
    feature = tokenize_example(tok, {"question": QA[1][0], "answer": QA[1][1]})
    score = score_batch(model, [feature], tok.pad_token_id, tok.eos_token_id)[0]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([feature["input_ids"]])).logits[0, :-1]
    labels = torch.tensor(feature["labels"][1:])
    keep = labels != -100
    logp = torch.log_softmax(logits[keep].double(), -1)
    p = logp.exp()
    mu = (p * logp).sum(-1)
    np.testing.assert_allclose(score.mu, mu.numpy(), atol=1e-4)
    np.testing.assert_allclose(score.var, ((p * logp ** 2).sum(-1) - mu ** 2).numpy(), atol=1e-4)
    np.testing.assert_array_equal(score.correct, (logp.argmax(-1) == labels[keep]).numpy())


def test_batched_generation_matches_one_by_one_and_stops_at_eos(target):
    model, tok = target
    questions = [q for q, _ in QA[:3]] + ["What is the capital of the country?", "Which river flows there?"]
    plan = ScoringPlan(tok)
    for q in questions:
        plan.question_prompt(q)
    batched = plan.generate(model, max_new_tokens=24, batch_size=8, distributed=False)
    for i, q in enumerate(questions):
        one = ScoringPlan(tok)
        one.question_prompt(q)
        assert one.generate(model, max_new_tokens=24, batch_size=1, distributed=False) == [batched[i]]
    assert all(tok.eos_token not in text and tok.pad_token not in text for text in batched)
