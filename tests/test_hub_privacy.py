"""Nothing private leaves the machine: a real unlearn run on the tiny zoo, evaluated and pushed to the fake Hub, holds
no local path (HF cache, HFCL_CACHE, home, temp or run folder) in any pushed file; embedded bases are named
``hfcl:<stage>@<hash>`` and ``hfcl.zoo.load_model`` resolves that name (the adapter loads back from the Hub)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch
from huggingface_hub import snapshot_download

from hfcl.errors import ModelNotAvailableError
from hfcl.hub import privacy, push_run
from hfcl.zoo import load_model, model_path, stage_key
from hfcl.zoo.cache import cache_root, zoo_ref

pytest_plugins = ["hub_fixtures"]  # the fake Hub: `hub` and `local_hub_server` fixtures

EVAL = {"retain_eval_size": 8, "max_new_tokens": 8, "distributed": False}


@pytest.fixture(scope="module")
def run_dir(tiny_zoo, tmp_path_factory) -> Path:
    """``hfcl unlearn`` (2 steps of NPO on a LoRA) + ``hfcl eval`` of its output, as a user runs them."""
    from hfcl.eval import evaluate_model
    from hfcl.unlearn import UnlearningConfig
    from hfcl.unlearn.run import UnlearnRunArgs, unlearn

    out = tmp_path_factory.mktemp("private-runs") / "npo"
    run = UnlearnRunArgs(model="target", lora_r=2, lora_alpha=4, forget_check=False)
    config = UnlearningConfig(output_dir=str(out), method="NPO", max_steps=2, learning_rate=1e-3,
                              per_device_train_batch_size=4, report_to="none", disable_tqdm=True,
                              save_strategy="no", logging_steps=1)
    unlearn(run, config, zoo_config=tiny_zoo.config)
    report = evaluate_model(str(out), world_config=tiny_zoo.config, **EVAL)
    report.save(out)
    return out


def private_roots(run_dir: Path) -> list[str]:
    from huggingface_hub import constants

    roots = {str(cache_root()), os.environ["HFCL_CACHE"], constants.HF_HUB_CACHE, os.path.expanduser("~"),
             tempfile.gettempdir(), str(run_dir), str(run_dir.parent)}
    roots |= {os.path.realpath(r) for r in roots}
    return sorted(r for r in roots if r not in ("", "/"))


def test_local_files_do_carry_local_paths(run_dir):
    """The premise of the test below: without scrubbing, these files would leak (so the grep can fail)."""
    leaky = {name for name in ("adapter_config.json", "eval_report.json", "hfcl_run.json")
             if privacy.find_local_paths((run_dir / name).read_bytes(), private_roots(run_dir))}
    assert {"adapter_config.json", "eval_report.json"} <= leaky, leaky


def test_pushed_files_hold_no_local_path(hub, run_dir, tiny_zoo, tmp_path):
    repo = f"{hub.user}/private-npo"
    result = push_run(run_dir, repo, retry_wait=0.01)
    pushed = hub.files(repo)
    assert {"README.md", "adapter_config.json", "eval_report.json", "hfcl_run.json"} <= set(pushed), set(pushed)
    roots = private_roots(run_dir)
    hits = {path: privacy.find_local_paths(data, roots) for path, data in pushed.items()}
    assert {p: h for p, h in hits.items() if h} == {}
    preview = push_run(run_dir, repo, dry_run=tmp_path / "preview").dry_run_dir  # the dry run shows the same
    assert not [p for p in preview.rglob("*") if p.is_file() and privacy.find_local_paths(p.read_bytes(), roots)]

    target_key = stage_key("target", tiny_zoo.config)
    adapter = json.loads(pushed["adapter_config.json"])
    assert adapter["base_model_name_or_path"] == f"hfcl:target@{target_key}"
    run = json.loads(pushed["hfcl_run.json"])
    assert run["base_model"]["id"] == run["base_model"]["local_path"] == f"hfcl:target@{target_key}"
    assert f"hfcl:target@{target_key}" in json.dumps(json.loads(pushed["eval_report.json"])["model"])

    # the adapter loads back from the Hub (a snapshot or the repo id) through the symbolic base name
    local = snapshot_download(repo, revision=result.commit_oid, cache_dir=tmp_path / "cache")
    expected, _ = load_model(str(run_dir), tiny_zoo.config)
    ids = torch.tensor([[1, 5, 9, 12, 2]])
    for source in (local, repo):
        model, _ = load_model(source, tiny_zoo.config)
        with torch.no_grad():
            assert torch.equal(model(ids).logits, expected(ids).logits), source


def test_zoo_references_resolve(tiny_zoo):
    folder = model_path("target", tiny_zoo.config)
    ref = zoo_ref(folder)
    assert ref == f"hfcl:target@{stage_key('target', tiny_zoo.config)}"
    assert zoo_ref(folder / "config.json") == ref + "/config.json"
    assert Path(load_model(ref, tiny_zoo.config)[0].name_or_path) == folder
    from hfcl.zoo import resolve

    assert resolve(ref) == str(folder)  # found in the cache without being told the recipe
    assert resolve(f"hfcl:retain-forget10@{stage_key('retain', tiny_zoo.config)}", tiny_zoo.config) == \
        str(model_path("retain", tiny_zoo.config))
    with pytest.raises(ModelNotAvailableError, match="recipe this machine does not have"):
        resolve("hfcl:target@0123456789abcdef")
    with pytest.raises(ModelNotAvailableError, match="unknown zoo stage"):
        resolve("hfcl:nonsense@0123456789abcdef")


def test_symbolic_names(tmp_path, tiny_zoo):
    from huggingface_hub import constants

    run = tmp_path / "run"
    snapshot = f"{constants.HF_HUB_CACHE}/models--org--name/snapshots/{'a' * 40}"
    text = (f'{{"out": "{run}/checkpoint-5", "self": "{run}", "base": "{snapshot}", '
            f'"other": "{os.path.expanduser("~")}/secret/models/my-base", "url": "https://huggingface.co/a/b", '
            f'"rel": "plots/x.png", "zoo": "{model_path("base", tiny_zoo.config)}"}}')
    data = json.loads(privacy.scrub_text(text, run))
    assert data == {"out": "checkpoint-5", "self": ".", "base": f"org/name@{'a' * 40}", "other": "my-base",
                    "url": "https://huggingface.co/a/b", "rel": "plots/x.png",
                    "zoo": f"hfcl:base@{stage_key('base', tiny_zoo.config)}"}
