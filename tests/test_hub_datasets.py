"""Generated forget/retain splits pushed as a Hub dataset in one commit and loaded back with ``load_dataset``."""

from __future__ import annotations

import pytest
import yaml
from datasets import load_dataset
from huggingface_hub import DatasetCard

from hfcl.errors import DataError
from hfcl.hub import prepare_dataset_push, push_splits
from hub_server import validate_metadata

pytest_plugins = ["hub_fixtures"]  # the fake Hub: `hub` and `local_hub_server` fixtures


@pytest.fixture(scope="module")
def world():
    from hfcl.data import load_tofu
    from hfcl.zoo import tiny_config

    return load_tofu("forget10", world_config=tiny_config())


def qa(world):
    return {name: world[name] for name in ("forget", "retain", "holdout")}


def test_dataset_push_and_load_dataset_round_trip(hub, world, tmp_path):
    repo = f"{hub.user}/tofu-tiny"
    configs = {"default": qa(world), "utility": {n: world[n] for n in ("world_facts", "real_authors")}}
    result = push_splits(configs, repo, generator={"seed": 0, "n_authors": 10})
    assert result.repo_type == "dataset" and len(hub.commits(repo, repo_type="dataset")) == 2  # ONE push commit
    assert set(result.files) == {"README.md", "data/forget-00000-of-00001.parquet",
                                 "data/retain-00000-of-00001.parquet", "data/holdout-00000-of-00001.parquet",
                                 "utility/world_facts-00000-of-00001.parquet",
                                 "utility/real_authors-00000-of-00001.parquet"}

    loaded = load_dataset(repo, cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"forget", "retain", "holdout"}
    for name in loaded:
        assert loaded[name].features == world[name].features
        assert loaded[name].to_list() == world[name].to_list()
    assert any(m == "GET" and "/resolve/" in p and p.endswith("forget-00000-of-00001.parquet")
               for m, p, _ in hub.requests)  # the rows really came back through the (fake) Hub
    utility = load_dataset(repo, "utility", cache_dir=str(tmp_path / "cache"))
    assert utility["world_facts"].to_list() == world["world_facts"].to_list()

    card = DatasetCard.load(repo, repo_type="dataset")
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0" and "machine-unlearning" in meta["tags"]
    assert {c["config_name"] for c in meta["configs"]} == {"default", "utility"}
    assert f"| `forget` | {len(world['forget'])} | to be unlearned |" in card.text
    assert "- `perturbed_answer` (" in card.text and "`seed`" in card.text
    assert validate_metadata(str(card)) == []


def test_dataset_dry_run_revision_and_errors(hub, world, tmp_path):
    repo = f"{hub.user}/tofu-rev"
    preview = push_splits(qa(world), repo, dry_run=tmp_path / "preview")
    assert hub.requests == []
    meta = yaml.safe_load((preview.dry_run_dir / "README.md").read_text().split("---")[1])
    assert [s["name"] for s in meta["dataset_info"]["splits"]] == ["forget", "retain", "holdout"]
    push_splits(qa(world), repo)
    push_splits({"forget": world["forget"]}, repo, revision="forget-only")
    loaded = load_dataset(repo, revision="forget-only", cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"forget"} and len(loaded["forget"]) == len(world["forget"])
    grouped = prepare_dataset_push(dict(world), repo)  # a flat DatasetDict: one config per schema
    assert {p for p in grouped.files if p.endswith(".parquet")} == {
        "data/forget-00000-of-00001.parquet", "data/retain-00000-of-00001.parquet",
        "data/holdout-00000-of-00001.parquet", "utility/world_facts-00000-of-00001.parquet",
        "utility/real_authors-00000-of-00001.parquet"}
    with pytest.raises(DataError, match="other columns"):
        prepare_dataset_push({"qa": {"forget": world["forget"], "world_facts": world["world_facts"]}}, repo)
    with pytest.raises(DataError, match="empty"):
        prepare_dataset_push({"forget": world["forget"].select([])}, repo)
