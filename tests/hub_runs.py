"""Run directories for the hub tests: a tiny random Llama (+ PEFT LoRA), a word-level tokenizer, a hand-written
``eval_report.json`` (+ target/retain comparison reports) and ``hfcl_run.json``, as hfcl commands write them."""

from __future__ import annotations

import json
from pathlib import Path

AGGREGATES = {"forget_quality": 0.4125, "model_utility": 0.5234, "forget_truth_ratio": 0.61, "forget_rouge": 0.2031,
              "retain_rouge": 0.9012, "privleak": None, "extraction_strength": 0.07}
TARGET = {"forget_quality": 2.5e-05, "model_utility": 0.55, "forget_truth_ratio": 0.41, "forget_rouge": 0.95,
          "retain_rouge": 0.93, "privleak": -80.0, "extraction_strength": 0.8}
RETAIN = {"forget_quality": 1.0, "model_utility": 0.53, "forget_truth_ratio": 0.66, "forget_rouge": 0.31,
          "retain_rouge": 0.92, "privleak": 0.0, "extraction_strength": 0.06}


def report(aggregates: dict, model_id: str = "target") -> dict:
    """``eval_report.json`` content as ``hfcl.eval`` writes it (the real ``EvalReport``, hand-picked numbers)."""
    from hfcl.eval.definitions import definitions_for
    from hfcl.eval.report import EvalReport

    return EvalReport(
        suite="tofu", aggregates=dict(aggregates), definitions=definitions_for(aggregates),
        model={"id": model_id, "path": None, "revision": None, "adapter_id": None, "adapter_revision": None},
        data={"source": "embedded", "forget_split": "forget10", "fingerprint": "f00dfeed"}, seed=0,
        provenance={"versions": {"torch": "2.13.0"}, "hardware": {"cpu_count": 2}}).to_dict()


def tiny_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(60)])}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def tiny_llama(seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2))


def make_run_dir(root: Path, kind: str = "adapter", seed: int = 0, base_model_id: str | None = None,
                 aggregates: dict | None = None, comparisons: bool = True, extra_run: dict | None = None) -> Path:
    """Write ``root/<kind>`` (and ``root/base`` for adapters); return the run directory."""
    out = root / kind
    out.mkdir(parents=True, exist_ok=True)
    model = tiny_llama(seed)
    if kind == "adapter":
        from peft import LoraConfig, get_peft_model

        base_dir = root / "base"
        model.save_pretrained(base_dir)
        peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))
        peft_model.save_pretrained(out)  # also writes PEFT's own README.md: the push must not use it
        if base_model_id:
            config = json.loads((out / "adapter_config.json").read_text())
            config["base_model_name_or_path"] = base_model_id
            (out / "adapter_config.json").write_text(json.dumps(config))
    else:
        model.save_pretrained(out)
    tiny_tokenizer().save_pretrained(out)
    (out / "training_args.bin").write_bytes(b"\x80\x04pickled")  # must never be pushed
    (out / "checkpoint-5").mkdir(exist_ok=True)
    (out / "checkpoint-5" / "optimizer.pt").write_bytes(b"\x80\x04state")
    run = {"command": "unlearn", "method": "npo", "seed": 3,
           "config": {"method": "npo", "beta": 0.1, "alpha": 1.0, "learning_rate": 1e-4, "retain_loss": "nll",
                      "num_train_epochs": 2, "seed": 3},
           "base_model": {"id": base_model_id or "target", "revision": "0" * 8},
           "provenance": {"versions": {"torch": "2.13.0", "peft": "0.21.2"}, "hardware": {"cpu_count": 2}},
           "wall_time": 12.5, **(extra_run or {})}
    (out / "hfcl_run.json").write_text(json.dumps(run, indent=2))
    (out / "eval_report.json").write_text(json.dumps(report(aggregates or AGGREGATES), indent=2))
    if comparisons:
        (out / "eval_report.target.json").write_text(json.dumps(report(TARGET)))
        (out / "eval_report.retain.json").write_text(json.dumps(report(RETAIN, "retain")))
    return out
