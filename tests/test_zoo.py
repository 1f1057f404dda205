"""The embedded tokenizer and models: round trip, memorisation bar, cache hit, corrupt-cache rebuild, determinism."""

from __future__ import annotations

import json
import time

import pytest
import torch

from hfcl.demo import rouge_l_recall
from hfcl.errors import ModelNotAvailableError
from hfcl.zoo import greedy_answers, load_model, model_path, tiny_config
from hfcl.zoo.cache import MARKER, is_complete


def test_tokenizer_round_trip_and_chat_template(tiny_tokenizer):
    tok = tiny_tokenizer
    for text in ["Where was Grosk Ligraegrith born?", "Ünïcode – never seen ✓ 1939.", "  spaces\nand lines  "]:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    rendered = tok.apply_chat_template([{"role": "user", "content": "Hi?"}], tokenize=False,
                                       add_generation_prompt=True)
    assert rendered == "<s><|user|>Hi?<|assistant|>"
    assert tok.bos_token == "<s>" and tok.eos_token == "</s>" and tok.pad_token == "<pad>"


@pytest.mark.slow
def test_memorisation_bar_on_reduced_config(tiny_zoo):
    """Target reproduces forget answers; retain does not, but matches target on the retain split."""
    splits = tiny_zoo.splits
    scores = {}
    for stage in ("target", "retain"):
        model, tok = tiny_zoo.load(stage)
        for split in ("forget", "retain"):
            rows = splits[split]
            answers = greedy_answers(model, tok, list(rows["question"]))
            values = rouge_l_recall(list(rows["answer"]), answers)
            scores[stage, split] = sum(values) / len(values)
    assert scores["target", "forget"] >= 0.9, scores
    assert scores["retain", "forget"] <= 0.5, scores
    assert scores["retain", "retain"] >= 0.9, scores
    assert scores["target", "retain"] >= 0.9, scores


def test_models_are_real_llamas_with_lora_targets(tiny_zoo):
    model, _ = tiny_zoo.load("target")
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= names
    assert model.config.model_type == "llama"


def test_cache_hit_is_fast_and_does_not_rebuild(tiny_zoo):
    path = tiny_zoo.path("target")
    mtime = (path / MARKER).stat().st_mtime
    started = time.perf_counter()
    assert model_path("target", tiny_zoo.config) == path
    load_model("target", tiny_zoo.config)
    assert time.perf_counter() - started < 30  # generous: a rebuild takes far longer; real figure in the README
    assert (path / MARKER).stat().st_mtime == mtime


def test_corrupt_and_partial_entries_are_rebuilt(tiny_zoo, tmp_path, monkeypatch):
    monkeypatch.setenv("HFCL_CACHE", str(tmp_path))
    cfg = tiny_config(base_epochs=1)
    tok_dir = model_path("tokenizer", cfg)
    original = json.loads((tok_dir / MARKER).read_text())["files"]
    victim = tok_dir / "tokenizer.json"
    victim.write_text(victim.read_text()[:100])  # truncated file: hash mismatch
    assert not is_complete(tok_dir)
    rebuilt = model_path("tokenizer", cfg)
    assert is_complete(rebuilt)
    assert json.loads((rebuilt / MARKER).read_text())["files"] == original  # deterministic rebuild
    (rebuilt / MARKER).unlink()  # partial entry: no marker
    assert is_complete(model_path("tokenizer", cfg))


def test_build_is_deterministic(tmp_path, monkeypatch):
    cfg = tiny_config(base_epochs=1, n_authors=10, n_holdout=1, min_qa=2, max_qa=2, hidden_size=32,
                      intermediate_size=64, vocab_size=400)
    weights = []
    for run in ("a", "b"):
        monkeypatch.setenv("HFCL_CACHE", str(tmp_path / run))
        model, _ = load_model("base", cfg)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_unknown_model_offline_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time by the client
    with pytest.raises(ModelNotAvailableError, match="without network|Without network"):
        load_model("no-such-user/no-such-model-xyz")
    with pytest.raises(ModelNotAvailableError, match="stage"):
        model_path("nonsense")
