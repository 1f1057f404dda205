"""`hfcl push RUN_DIR --stages`: every stage of a learn/forget stream on its own branch of the (local) Hub, read back
through the real client: weights load and equal the local stage, the card parses and its model-index numbers equal
the local matrix, one commit per stage chained in order; name collisions are refused before anything is pushed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard, hf_hub_download, snapshot_download
from safetensors.torch import load_file

from hfcl.errors import ConfigError
from hfcl.hub.stages import read_stages, stage_matrix

pytest_plugins = ["hub_fixtures"]


REFS = ["task-1-authors1", "task-2-authors2", "step-3-forget-authors1", "task-4-authors3"]


def test_stage_metrics_are_those_of_the_learned_tasks(learn_forget_run):
    stages, matrix = read_stages(learn_forget_run)
    assert [s.ref for s in stages] == REFS and [s.kind for s in stages] == ["learn", "learn", "forget", "learn"]
    R = np.array(matrix["matrix"])
    two = stage_matrix(stages[1], matrix)  # after A and B: ACC over A, B; BWT = R[2][0] - R[1][0]
    assert two["aggregates"]["final_average_accuracy"] == pytest.approx(R[2, :2].mean())
    assert two["aggregates"]["backward_transfer"] == pytest.approx(R[2, 0] - R[1, 0])
    forget = stage_matrix(stages[2], matrix)  # the forget row counts as the state after B for the learned tasks
    assert forget["forget_rows"] == [3] and len(forget["matrix"]) == 4
    assert forget["aggregates"]["final_average_accuracy"] == pytest.approx(R[3, :2].mean())
    last = stage_matrix(stages[3], matrix)
    assert last["aggregates"]["final_average_accuracy"] == pytest.approx(matrix["acc"])
    assert last["aggregates"]["backward_transfer"] == pytest.approx(matrix["bwt"])


def test_push_stages_round_trip(hub, learn_forget_run, capsys):
    from transformers import AutoModelForCausalLM

    from hfcl.hub.cli import main as push_cli

    repo = f"{hub.user}/learn-forget"
    assert push_cli([str(learn_forget_run), "--hub_model_id", repo, "--stages"]) == 0
    assert "4 stage(s) + main" in capsys.readouterr().out
    api = HfApi()
    refs = api.list_repo_refs(repo)
    assert sorted(b.name for b in refs.branches) == sorted([*REFS, "main"])
    heads = {b.name: b.target_commit for b in refs.branches}
    stages, matrix = read_stages(learn_forget_run)
    for k, stage in enumerate(stages):
        chain = [c.sha for c in hub.commits(repo, stage.ref)]
        assert chain[0] == heads[stage.ref]
        if k:  # one commit per stage, started from the previous stage
            assert chain[1] == heads[REFS[k - 1]]
        folder = snapshot_download(repo, revision=stage.ref)
        model = AutoModelForCausalLM.from_pretrained(folder)
        local = load_file(str(stage.path / "model.safetensors"))
        for name, p in model.state_dict().items():
            if name in local:
                torch.testing.assert_close(p, local[name], rtol=0, atol=0)
        card = ModelCard.load(hf_hub_download(repo, "README.md", revision=stage.ref))
        shown = {r.metric_type: r.metric_value for r in card.data.eval_results}
        expected = stage_matrix(stage, matrix)["aggregates"]
        assert shown["final_average_accuracy"] == pytest.approx(expected["final_average_accuracy"], abs=1e-4)
        assert f"Stage {stage.step} of 4" in card.text and "Accuracy matrix so far" in card.text
        pushed = json.loads(Path(hf_hub_download(repo, "accuracy_matrix.json", revision=stage.ref)).read_text())
        np.testing.assert_allclose(pushed["matrix"], np.array(matrix["matrix"])[:stage.step + 1], atol=1e-9)
        files = api.list_repo_files(repo, revision=stage.ref)
        assert "plots/accuracy_matrix_so_far.png" in files and "continual_state.safetensors" not in files
        assert "training_args.bin" not in files
        if k:
            assert f"tree/{REFS[k - 1]}" in card.text  # the link to the previous stage
    assert "forget event `forget-authors1`" in ModelCard.load(
        hf_hub_download(repo, "README.md", revision=REFS[2])).text
    main_card = ModelCard.load(hf_hub_download(repo, "README.md"))
    assert "## Stages" in main_card.text and all(f"tree/{r}" in main_card.text for r in REFS)
    final = json.loads(Path(hf_hub_download(repo, "accuracy_matrix.json")).read_text())
    assert final["forget_events"][0]["name"] == "forget-authors1" and len(final["matrix"]) == 5

    # the same names again: refused before anything is pushed, unless --overwrite
    before = {b.name: b.target_commit for b in api.list_repo_refs(repo).branches}
    with pytest.raises(ConfigError, match="already has branch"):
        push_cli([str(learn_forget_run), "--hub_model_id", repo, "--stages"])
    assert {b.name: b.target_commit for b in api.list_repo_refs(repo).branches} == before
    assert push_cli([str(learn_forget_run), "--hub_model_id", repo, "--stages", "--overwrite", "true"]) == 0
    assert sorted(b.name for b in api.list_repo_refs(repo).branches) == sorted([*REFS, "main"])

    # the Space's Continual tab reads the same run back from the Hub: stages from branches, models per branch
    from hfcl.space.continual import ContinualRun

    local, remote = ContinualRun(learn_forget_run), ContinualRun(repo)
    assert [s.label for s in remote.stages] == [s.label for s in local.stages]
    assert [s.kind for s in remote.stages] == ["learn", "learn", "forget", "learn"]
    assert remote.answers(remote.stages[2], 24) == local.answers(local.stages[2], 24)


def test_push_stages_bad_input(hub, tmp_path, learn_forget_run):
    from hfcl.hub.cli import main as push_cli

    with pytest.raises(ConfigError, match="not a continual run folder"):
        push_cli([str(tmp_path), "--hub_model_id", f"{hub.user}/x", "--stages"])
    with pytest.raises(ConfigError, match="drop --revision"):
        push_cli([str(learn_forget_run), "--hub_model_id", f"{hub.user}/x", "--stages", "--revision", "dev"])
    dry = tmp_path / "dry"
    assert push_cli([str(learn_forget_run), "--hub_model_id", f"{hub.user}/x", "--stages", "--dry_run_dir", str(dry)]) == 0
    assert sorted(p.name for p in dry.iterdir()) == sorted([*REFS, "main"])
    assert (dry / REFS[2] / "README.md").read_text().count("forget event") >= 1
    assert str(tmp_path) not in (dry / REFS[0] / "hfcl_run.json").read_text()  # no local path leaves the machine
    with pytest.raises(KeyError):  # neither the errors nor the dry run created the repo
        hub.repo(f"{hub.user}/x")
