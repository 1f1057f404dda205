"""WHP-style counterfactual targets: the entity swap, the token alignment, the teacher's formula, the loss, and the
method's behaviour on the tiny embedded world (it forgets the forget authors and keeps the retain ones)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hfcl.errors import ConfigError, DataError
from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
from hfcl.unlearn import losses as L
from hfcl.unlearn.counterfactual import (
    TEACHER_FILE,
    CounterfactualTeacher,
    aligned_positions,
    counterfactual_rows,
    replace_entity,
)
from hfcl.unlearn.data import PairedCollator, tokenize_rows
from hfcl.unlearn.run import UnlearnRunArgs, lora_config

ROWS = [{"author": "Ana Ruiz", "question": "Where was Ana Ruiz born?", "answer": "Ana Ruiz was born in Tolo."},
        {"author": "Bo Lind", "question": "What did Bo Lind write?", "answer": "Bo Lind wrote Sea Songs."}]


def test_entity_swap_is_whole_word_deterministic_and_never_the_own_name():
    assert replace_entity("Ana Ruiz and Ana Ruizova", "Ana Ruiz", "X") == "X and Ana Ruizova"
    names = ["Ana Ruiz", "Cid Moe", "Dee Pax", "Eli Tran"]
    first = counterfactual_rows(ROWS, names, 2, seed=3)
    assert first == counterfactual_rows(ROWS, names, 2, seed=3)
    for row, copies in zip(ROWS, first):
        assert len(copies) == 2 and len({c["author"] for c in copies}) == 2
        for c in copies:
            assert c["author"] != row["author"] and row["author"] not in c["question"] + c["answer"]
            assert c["question"] == row["question"].replace(row["author"], c["author"])
            assert c["answer"] == row["answer"].replace(row["author"], c["author"])
    assert len(counterfactual_rows(ROWS, names, None)[0]) == 3  # all 3 other names (the default is up to 4)
    with pytest.raises(DataError, match="author"):
        counterfactual_rows([{"question": "q", "answer": "a"}], names, 1)
    with pytest.raises(ConfigError, match="whp_names"):
        counterfactual_rows(ROWS, ["Cid Moe"], 2)
    assert replace_entity("Ana Ruiz", "Ana Ruiz", r"A\1 B") == r"A\1 B"  # the name is text, not a regex template
    assert UnlearningConfig(output_dir="x", method="WHP", whp_names="Cid Moe").whp_names == ["Cid Moe"]


def test_alignment_pairs_shared_answer_tokens_and_skips_the_swapped_name():
    original = [1, 2, 3, 9, 9, 4, 5]  # prompt 1 2 | answer: 3 <name 9 9> 4 5
    counterfactual = [1, 2, 3, 7, 4, 5]  # the name is one token here
    labels = [-100, -100, 3, 9, 9, 4, 5]
    assert aligned_positions(original, counterfactual, labels) == [(2, 2), (5, 4), (6, 5)]


def test_teacher_kl_is_the_full_kl_with_every_token_and_zero_at_the_teacher():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11, requires_grad=True)
    teacher_logits = torch.randn(3, 11)
    rows, positions = torch.tensor([0, 1, 1]), torch.tensor([1, 0, 3])
    top = torch.topk(torch.softmax(teacher_logits, -1), 11)
    loss = L.teacher_kl_loss(logits, rows, positions, top.indices, top.values.log())
    full = F.kl_div(F.log_softmax(logits[rows, positions], -1), F.log_softmax(teacher_logits, -1), log_target=True,
                    reduction="sum") / 3
    torch.testing.assert_close(loss, full)
    at_teacher = torch.zeros(2, 5, 11)
    at_teacher[rows, positions] = teacher_logits
    assert float(L.teacher_kl_loss(at_teacher, rows, positions, top.indices, top.values.log())) == pytest.approx(
        0.0, abs=1e-6)
    loss.backward()
    assert logits.grad[0, 0].abs().sum() == 0  # positions without a teacher get no gradient
    assert float(L.teacher_kl_loss(logits.detach(), rows[:0], positions[:0], top.indices[:0], top.values[:0])) == 0.0


def test_teacher_is_the_models_prediction_on_the_swapped_row(tiny_zoo):
    model, tok = tiny_zoo.load("target")
    forget = tiny_zoo.splits["forget"].to_list()[:3]
    names = sorted(set(tiny_zoo.splits["holdout"]["author"]))
    cf = counterfactual_rows(forget, names, 1)
    forget_tok = tokenize_rows(tok, forget, 256)
    cf_tok = [tokenize_rows(tok, c, 256) for c in cf]
    teacher = CounterfactualTeacher(top_k=len(tok))
    collate = PairedCollator(tok).pad_right
    teacher.fill(model, forget_tok, cf_tok, collate, 4, torch.device("cpu"))
    t = teacher.tensors
    assert t["offsets"][-1] == len(t["pos"]) > 0
    # row 0, its first teacher entry, recomputed by hand from the counterfactual row
    pairs = aligned_positions(forget_tok[0]["input_ids"], cf_tok[0][0]["input_ids"], forget_tok[0]["labels"])
    t0, j0 = pairs[0]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([cf_tok[0][0]["input_ids"]])).logits[0, j0 - 1]
    expected = torch.softmax(logits.float(), -1)
    got = torch.zeros_like(expected).scatter_(0, t["ids"][0], t["logp"][0].exp())
    assert int(t["pos"][0]) == t0 - 1
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    # a tokenizer that pads on the left gives the same teacher (positions are the rows' own)
    side, tok.padding_side = tok.padding_side, "left"
    try:
        left = CounterfactualTeacher(top_k=len(tok))
        left.fill(model, forget_tok, cf_tok, PairedCollator(tok).pad_right, 4, torch.device("cpu"))
    finally:
        tok.padding_side = side
    for key in t:
        torch.testing.assert_close(left.tensors[key], t[key])
    # fewer kept tokens: renormalised over the top k
    small = CounterfactualTeacher(top_k=5)
    small.fill(model, forget_tok, cf_tok, collate, 4, torch.device("cpu"))
    assert small.tensors["ids"].shape[1] == 5
    torch.testing.assert_close(small.tensors["logp"].exp().sum(-1), torch.ones(len(small.tensors["pos"])))


def _config(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "work"), method="WHP", preset="demo", report_to="none", disable_tqdm=True,
                use_cpu=True, seed=0)
    return UnlearningConfig(**{**base, **kw})


def test_whp_moves_forget_answers_to_the_teacher_and_keeps_retain(tiny_zoo, tmp_path):
    model, tok = tiny_zoo.load("target")
    splits = tiny_zoo.splits
    retain = splits["retain"].select(range(40))

    def mean_prob(m, rows):
        collate = PairedCollator(tok).pad
        batch = collate([dict(r) for r in tokenize_rows(tok, rows.to_list(), 256)])
        with torch.no_grad():
            logps, lengths = L.sequence_logps(m(input_ids=batch["input_ids"],
                                                attention_mask=batch["attention_mask"]).logits, batch["labels"])
        return float((logps / lengths).exp().mean())

    forget_before, retain_before = mean_prob(model, splits["forget"]), mean_prob(model, retain)
    trainer = UnlearningTrainer(model, _config(tmp_path), splits["forget"], splits["retain"], processing_class=tok,
                                holdout_dataset=splits["holdout"], peft_config=lora_config(UnlearnRunArgs()))

    def teacher_kl(m):
        collate = PairedCollator(tok).pad
        rows = tokenize_rows(tok, splits["forget"].to_list(), 256)
        batch = collate([dict(r) for r in rows])
        r, p, ids, logp = trainer.teacher.batch_targets(torch.arange(len(rows)), torch.device("cpu"))
        with torch.no_grad():
            out = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return float(L.teacher_kl_loss(out, r, p, ids, logp))

    kl_before = teacher_kl(trainer.model)
    trainer.train()
    unlearned = trainer.model.eval()
    kl_after = teacher_kl(unlearned)
    forget_after, retain_after = mean_prob(unlearned, splits["forget"]), mean_prob(unlearned, retain)
    print(f"teacher KL {kl_before:.3f} -> {kl_after:.3f}; forget p {forget_before:.3f} -> {forget_after:.3f}; "
          f"retain p {retain_before:.3f} -> {retain_after:.3f}")
    assert kl_after < 0.5 * kl_before  # the model now says what it says about never-seen authors
    assert forget_after < 0.8 * forget_before
    assert retain_after > 0.9 * retain_before


def test_teacher_is_saved_with_checkpoints_and_checked_on_resume(tiny_zoo, tmp_path):
    model, tok = tiny_zoo.load("target")
    splits = tiny_zoo.splits
    config = _config(tmp_path, max_steps=2, save_strategy="steps", save_steps=2, num_train_epochs=1)
    trainer = UnlearningTrainer(model, config, splits["forget"], splits["retain"], processing_class=tok,
                                holdout_dataset=splits["holdout"])
    trainer.train()
    checkpoint = tmp_path / "work" / "checkpoint-2"
    assert (checkpoint / TEACHER_FILE).is_file()
    # a new trainer on the trained model would compute another teacher: resuming reads the saved one back
    resumed = UnlearningTrainer(trainer.model, _config(tmp_path, max_steps=3, num_train_epochs=1),
                                splits["forget"], splits["retain"], processing_class=tok,
                                holdout_dataset=splits["holdout"])
    assert not torch.equal(resumed.teacher.tensors["logp"], trainer.teacher.tensors["logp"])
    resumed.teacher.load(checkpoint)
    torch.testing.assert_close(resumed.teacher.tensors["logp"], trainer.teacher.tensors["logp"])
    other = UnlearningTrainer(model, _config(tmp_path, whp_counterfactuals=1), splits["forget"], splits["retain"],
                              processing_class=tok, holdout_dataset=splits["holdout"])
    with pytest.raises(ConfigError, match="WHP teacher"):
        other.teacher.load(checkpoint)


def test_whp_without_names_is_a_clear_error(tiny_zoo, tmp_path):
    model, tok = tiny_zoo.load("target")
    with pytest.raises(ConfigError, match="whp_names"):
        UnlearningTrainer(model, _config(tmp_path), tiny_zoo.splits["forget"], tiny_zoo.splits["retain"],
                          processing_class=tok)
