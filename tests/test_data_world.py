"""The fictitious world: determinism, TOFU schema, split disjointness, formatting."""

from __future__ import annotations

import pytest

from hfcl.data import (
    FORGET_SPLITS,
    WorldConfig,
    generate_world,
    load_muse,
    load_tofu,
    to_tofu_schema,
    tokenize_example,
    world_splits,
)
from hfcl.errors import ConfigError, DataError

SMALL = WorldConfig(seed=7, n_authors=30, n_holdout=5, min_qa=10, max_qa=14, n_countries=6, n_real_authors=6)


@pytest.fixture(scope="module")
def splits():
    return world_splits(SMALL)


def test_generator_is_deterministic_and_seed_sensitive():
    a, b = generate_world(SMALL), generate_world(SMALL)
    assert [x.name for x in a.authors] == [x.name for x in b.authors]
    assert [x.attributes for x in a.authors] == [x.attributes for x in b.authors]
    other = generate_world(WorldConfig(**{**SMALL.to_dict(), "seed": 8}))
    assert [x.name for x in other.authors] != [x.name for x in a.authors]


def test_splits_are_identical_across_calls(splits):
    again = world_splits(WorldConfig(**SMALL.to_dict()))
    for name in splits:
        assert splits[name].to_list() == again[name].to_list()


def test_tofu_schema(splits):
    columns = {"author_id", "author", "family", "question", "answer", "paraphrased_question", "paraphrased_answer",
               "perturbed_answer"}
    for name in ("full", "forget10", "retain90", "holdout"):
        assert set(splits[name].column_names) == columns
    for row in splits["full"]:
        assert len(row["perturbed_answer"]) == SMALL.n_perturbed
        assert row["answer"] not in row["perturbed_answer"]
        assert len(set(row["perturbed_answer"])) == SMALL.n_perturbed
        assert row["paraphrased_answer"] != row["answer"]
    per_author = {}
    for row in splits["full"]:
        per_author[row["author_id"]] = per_author.get(row["author_id"], 0) + 1
    assert set(per_author.values()) <= set(range(SMALL.min_qa, SMALL.max_qa + 1))
    for name in ("world_facts", "real_authors"):
        assert len(splits[name]) > 0
        assert {"question", "answer", "paraphrased_answer", "perturbed_answer"} <= set(splits[name].column_names)


def test_author_level_splits_are_disjoint_nested_and_complete(splits):
    authors = lambda name: set(splits[name]["author_id"])  # noqa: E731
    full, holdout = authors("full"), authors("holdout")
    assert not full & holdout
    for forget, retain in (("forget01", "retain99"), ("forget05", "retain95"), ("forget10", "retain90")):
        assert not authors(forget) & authors(retain)
        assert authors(forget) | authors(retain) == full
        assert len(authors(forget)) == max(1, round(SMALL.n_authors * FORGET_SPLITS[forget] / 100))
        assert not authors(forget.replace("forget", "holdout")) & full
    assert authors("forget01") <= authors("forget05") <= authors("forget10")
    forget_q = set(splits["forget10"]["question"])
    assert not forget_q & set(splits["retain90"]["question"])


def test_load_tofu_and_muse_shapes():
    tofu = load_tofu("forget05", world_config=SMALL)
    assert sorted(tofu) == ["forget", "holdout", "real_authors", "retain", "world_facts"]
    muse = load_muse("forget10", world_config=SMALL)
    assert set(muse) == {"forget", "retain", "holdout", "knowmem_forget", "knowmem_retain"}
    forget_authors = set(tofu["forget"]["author_id"])
    first = muse["forget"][0]
    assert first["author"] in first["text"] and len(first["text"].split()) > 60
    assert not set(muse["holdout"]["author_id"]) & set(muse["retain"]["author_id"])
    assert forget_authors  # forget05 of 30 authors has at least one author


def test_bad_inputs_are_clear():
    with pytest.raises(DataError, match="forget_split"):
        load_tofu("forget42", world_config=SMALL)
    with pytest.raises(ConfigError, match="n_authors"):
        WorldConfig(n_authors=3)
    with pytest.raises(ConfigError, match="min_qa"):
        WorldConfig(min_qa=15, max_qa=12)
    with pytest.raises(ConfigError, match="n_perturbed"):
        WorldConfig(n_countries=5, n_perturbed=5)
    with pytest.raises(DataError, match="question"):
        to_tofu_schema({"prompt": "x"})


def test_real_tofu_rows_map_into_schema():
    row = to_tofu_schema({"question": "Q?", "answer": "A.", "option1": "A.", "option2": "B.", "option3": "C."})
    assert row["perturbed_answer"] == ["B.", "C."] and row["paraphrased_answer"] == "A."


def test_tokenize_example_masks_prompt_in_every_format(tiny_tokenizer):
    tok = tiny_tokenizer
    for example in ({"question": "Where was X born?", "answer": "In Tarsk."},
                    {"prompt": "Where was X born?", "completion": "In Tarsk."},
                    {"messages": [{"role": "user", "content": "Where was X born?"},
                                  {"role": "assistant", "content": "In Tarsk."}]}):
        out = tokenize_example(tok, example, max_length=64)
        answer_ids = [t for t, l in zip(out["input_ids"], out["labels"]) if l != -100]
        assert tok.decode(answer_ids, skip_special_tokens=True) == "In Tarsk."
        assert answer_ids[-1] == tok.eos_token_id
        assert out["input_ids"][0] == tok.bos_token_id and out["input_ids"].count(tok.bos_token_id) == 1
    with pytest.raises(DataError, match="assistant"):
        tokenize_example(tok, {"messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(DataError, match="max_length"):
        tokenize_example(tok, {"question": "word " * 50, "answer": "x"}, max_length=8)
