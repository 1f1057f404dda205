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


def test_model_path_hashes_each_file_once_per_process(tiny_zoo, tmp_path, monkeypatch):
    from hfcl.zoo import cache

    calls: list[str] = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda path, *a, **k: calls.append(str(path)) or real(path, *a, **k))
    monkeypatch.setattr(cache, "_VERIFIED", {})  # as in a fresh process
    path = model_path("target", tiny_zoo.config)
    files = json.loads((path / MARKER).read_text())["files"]
    assert sorted(calls) == sorted(str(path / name) for name in files)  # the first look verifies every file
    for _ in range(5):
        assert model_path("target", tiny_zoo.config) == path
    assert len(calls) == len(files)  # the fast path after it hashes nothing

    monkeypatch.setenv("HFCL_CACHE", str(tmp_path))
    tok_dir = model_path("tokenizer", tiny_config(base_epochs=1))
    victim = tok_dir / "tokenizer.json"
    calls.clear()
    assert is_complete(tok_dir) and calls == []
    data = bytearray(victim.read_bytes())
    data[-2] = ord(" ") if data[-2] != ord(" ") else ord("\t")  # same size, other bytes, newer mtime
    victim.write_bytes(bytes(data))
    assert not is_complete(tok_dir) and calls == [str(victim)]  # a changed file is hashed again


def test_waiting_for_another_build_says_so(tmp_path, monkeypatch):
    import logging
    import threading

    from filelock import FileLock

    from hfcl.zoo import build

    monkeypatch.setenv("HFCL_CACHE", str(tmp_path))
    monkeypatch.setattr(build, "LOCK_NOTICE_AFTER", 0.05)
    cfg = tiny_config(base_epochs=1)
    folder = build._folder("tokenizer", cfg, "forget10")
    folder.parent.mkdir(parents=True)
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("hfcl").addHandler(handler)
    held = FileLock(str(folder) + ".lock")
    held.acquire()  # "another process" is building the tokenizer
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(path=model_path("tokenizer", cfg)))
    try:
        worker.start()
        time.sleep(0.5)
        assert "path" not in result  # it waits for the lock...
        assert any("Waiting for another process building tokenizer" in m for m in records), records  # ...and says so
    finally:
        held.release()
        worker.join(60)
        logging.getLogger("hfcl").removeHandler(handler)
    assert result["path"] == folder and is_complete(folder)


def test_build_shows_the_stage_and_a_time_estimate(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("HFCL_CACHE", str(tmp_path))
    cfg = tiny_config(base_epochs=1, n_authors=10, n_holdout=1, min_qa=2, max_qa=2, hidden_size=32,
                      intermediate_size=64, vocab_size=400)
    model_path("base", cfg)
    err = capfd.readouterr().err
    bar = [line for line in err.replace("\r", "\n").splitlines() if "hfcl zoo: training base" in line]
    assert bar, err
    assert "step" in bar[-1] and "<" in bar[-1]  # steps done, elapsed<remaining
    assert "train_runtime" not in err and "Loading weights" not in err and "Writing model shards" not in err


def test_known_noise_is_silenced_in_one_place(tiny_zoo, monkeypatch, capfd):
    import warnings

    from hfcl.utils import logging as hfcl_logging

    monkeypatch.setitem(hfcl_logging._SILENCED, "done", False)
    with warnings.catch_warnings(record=True) as caught:
        assert hfcl_logging.silence_known_noise()
        assert not hfcl_logging.silence_known_noise()  # once
        load_model("target", tiny_zoo.config)
        load_model("retain", tiny_zoo.config)
        warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then ...", UserWarning)
        warnings.warn("something new", UserWarning)
    assert [str(w.message) for w in caught] == ["something new"]  # unknown warnings still show
    assert "Loading weights" not in capfd.readouterr().err
