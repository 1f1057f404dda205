"""Pushes through the real huggingface_hub client into the in-process fake Hub, then back out with the real client
(snapshot_download, PeftModel/AutoModel.from_pretrained, ModelCard.load): bytes, card, model-index, refs, errors."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from hub_runs import AGGREGATES, make_run_dir, tiny_tokenizer
from huggingface_hub import HfApi, ModelCard, SpaceCard, snapshot_download
from huggingface_hub.repocard_data import model_index_to_eval_results

from hfcl.errors import ConfigError
from hfcl.hub import (
    HubAuthError,
    HubError,
    HubPaymentRequiredError,
    HubUnavailableError,
    PushPlan,
    TokenLeakError,
    commit_plan,
    prepare_push,
    push_run,
    push_space,
    push_stages,
    push_training_output,
    render_space_card,
)
from hfcl.hub.cli import main as push_cli

FAST = {"retry_wait": 0.01}

pytest_plugins = ["hub_fixtures"]  # the fake Hub: `hub` and `local_hub_server` fixtures


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"adapter": make_run_dir(root / "a"), "model": make_run_dir(root / "m", kind="model", seed=1)}


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([[1, 5, 9, 12, 2]])).logits


def user_repo(hub, name: str) -> str:
    return f"{hub.user}/{name}"


def test_adapter_push_round_trip(hub, runs, tmp_path):
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    repo = user_repo(hub, "npo-forget10")
    plan = prepare_push(runs["adapter"], repo)
    result = push_run(runs["adapter"], repo)
    assert result.commit_oid and result.revision == "main"
    commits = hub.commits(repo)
    assert len(commits) == 2 and commits[0].sha == result.commit_oid  # initial commit + exactly ONE push commit
    assert ("POST", f"/{repo}.git/info/lfs/objects/batch", "") in hub.requests  # weights went through LFS

    local = Path(snapshot_download(repo, cache_dir=tmp_path / "cache"))
    pushed = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()} - {".gitattributes"}
    assert pushed == set(plan.files) == set(result.files)
    assert "training_args.bin" not in pushed and not any(p.startswith("checkpoint-") for p in pushed)
    for path in pushed:
        assert (local / path).read_bytes() == plan.read(path), path
    for path in ("adapter_model.safetensors", "adapter_config.json", "eval_report.json", "hfcl_run.json"):
        assert (local / path).read_bytes() == (runs["adapter"] / path).read_bytes()

    base_dir = runs["adapter"].parent / "base"
    expected = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(base_dir), runs["adapter"])
    loaded = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(base_dir), repo)
    assert torch.equal(logits(loaded), logits(expected))
    assert not torch.equal(logits(loaded), logits(LlamaForCausalLM.from_pretrained(base_dir)))

    card = ModelCard.load(repo)
    assert card.data.library_name == "peft" and "machine-unlearning" in card.data.tags
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert {r.metric_type: r.metric_value for r in results} == {k: v for k, v in AGGREGATES.items() if v is not None}
    assert "![forget vs utility](plots/forget_vs_utility.png)" in card.text


def test_full_model_push_loads_with_transformers(hub, runs):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    repo = user_repo(hub, "tiny-full")
    push_run(runs["model"], repo, private=True)
    assert hub.repo(repo).private
    model = AutoModelForCausalLM.from_pretrained(repo)
    assert torch.equal(logits(model), logits(LlamaForCausalLM.from_pretrained(runs["model"])))
    assert AutoTokenizer.from_pretrained(repo).get_vocab() == tiny_tokenizer().get_vocab()
    card = ModelCard.load(repo)
    assert card.data.library_name == "transformers" and "base_model_relation" not in card.data.to_dict()


def test_dry_run_writes_exactly_what_a_push_uploads(hub, runs, tmp_path):
    repo = user_repo(hub, "dry")
    result = push_run(runs["adapter"], repo, dry_run=tmp_path / "preview")
    assert hub.requests == []  # nothing left the machine
    written = {p.relative_to(result.dry_run_dir).as_posix(): p.read_bytes()
               for p in result.dry_run_dir.rglob("*") if p.is_file()}
    push_run(runs["adapter"], repo)
    on_hub = {p: b for p, b in hub.files(repo).items() if p != ".gitattributes"}
    assert written == on_hub


def test_revision_tag_and_pull_request(hub, runs):
    api = HfApi()
    repo = user_repo(hub, "branches")
    main = push_run(runs["model"], repo)
    staged = push_run(runs["adapter"], repo, revision="stage-1", tag="stage-1-final")
    assert staged.revision == "stage-1"
    refs = api.list_repo_refs(repo)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": main.commit_oid, "stage-1": staged.commit_oid}
    assert {t.name: t.target_commit for t in refs.tags} == {"stage-1-final": staged.commit_oid}
    assert "adapter_config.json" in api.list_repo_files(repo, revision="stage-1")
    # stale files of the earlier full-model push are removed on the branch, so it holds exactly one model kind
    assert "config.json" not in api.list_repo_files(repo, revision="stage-1")
    assert "config.json" in api.list_repo_files(repo) and "adapter_config.json" not in api.list_repo_files(repo)

    pr = push_run(runs["adapter"], repo, create_pr=True)
    assert pr.pr_url.endswith("/discussions/1") and pr.pr_revision == "refs/pr/1"
    assert api.list_repo_refs(repo).branches[0].target_commit == main.commit_oid  # main untouched by the PR
    assert "adapter_config.json" in api.list_repo_files(repo, revision="refs/pr/1")


def test_push_stages_one_tag_per_stage_and_idempotent_repush(hub, tmp_path):
    stages = [make_run_dir(tmp_path / f"s{i}", aggregates={**AGGREGATES, "forget_rouge": 0.5 - 0.1 * i},
                           comparisons=False, seed=i) for i in range(2)]
    repo = user_repo(hub, "continual")
    results = push_stages(stages, repo, mode="tag", name="stage-{index}")
    refs = HfApi().list_repo_refs(repo)
    assert {t.name: t.target_commit for t in refs.tags} == {"stage-1": results[0].commit_oid,
                                                           "stage-2": results[1].commit_oid}
    assert refs.branches[0].target_commit == results[1].commit_oid
    files1, files2 = hub.files(repo, "stage-1"), hub.files(repo, "stage-2")
    assert files1["adapter_model.safetensors"] != files2["adapter_model.safetensors"]
    assert files1["eval_report.json"] != files2["eval_report.json"]
    before = len(hub.commits(repo))
    again = push_run(stages[1], repo)  # nothing changed: no new commit, same head
    assert len(hub.commits(repo)) == before and again.commit_oid == results[1].commit_oid

    branches = push_stages(stages, user_repo(hub, "continual-branches"), mode="branch")
    assert [r.revision for r in branches] == ["stage-1", "stage-2"]
    chain = [c.sha for c in hub.commits(user_repo(hub, "continual-branches"), "stage-2")]
    assert branches[0].commit_oid in chain  # stage 2 starts from stage 1


def test_push_training_output_reads_training_arguments(hub, runs):
    from transformers import TrainingArguments

    off = TrainingArguments(output_dir=str(runs["adapter"]), report_to=[])
    assert push_training_output(off) is None and hub.requests == []
    with pytest.raises(ConfigError, match="hub_model_id"):
        push_training_output(TrainingArguments(output_dir=str(runs["adapter"]), push_to_hub=True, report_to=[]))
    repo = user_repo(hub, "trained")
    args = TrainingArguments(output_dir=str(runs["adapter"]), push_to_hub=True, hub_model_id=repo,
                             hub_private_repo=True, hub_revision="run-1", report_to=[])
    result = push_training_output(args)
    assert result.revision == "run-1" and hub.repo(repo).private
    assert "adapter_model.safetensors" in hub.files(repo, "run-1") and len(hub.commits(repo, "run-1")) == 2


def test_auth_errors(hub, runs, monkeypatch):
    repo = user_repo(hub, "auth")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubAuthError, match="hf auth login"):
        push_run(runs["adapter"], repo)
    assert hub.requests == []  # failed before any request
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_valid_token")
    with pytest.raises(HubAuthError, match="401.*hf auth login"):
        push_run(runs["adapter"], repo, **FAST)
    monkeypatch.setenv("HF_TOKEN", hub.token)
    with pytest.raises(HubAuthError, match="403"):
        push_run(runs["adapter"], "somebody-else/model", **FAST)
    with pytest.raises(HubAuthError, match="403"):
        push_run(runs["adapter"], repo, token=hub.read_token, **FAST)
    assert not hub.state.repos


def test_space_push_and_payment_required(hub, tmp_path):
    folder = tmp_path / "space"
    (folder / "__pycache__").mkdir(parents=True)
    (folder / "app.py").write_text("import hfcl.space\n")
    (folder / "requirements.txt").write_text("hfcl[space]\n")
    (folder / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
    card = render_space_card("hfcl demo", models=[user_repo(hub, "npo")], sdk_version="6.31.0")
    repo = user_repo(hub, "demo")
    with pytest.raises(HubPaymentRequiredError, match="paid plan.*hfcl space"):
        push_space(folder, repo, card=card, **FAST)
    assert not hub.state.repos
    hub.state.paid_spaces = True
    result = push_space(folder, repo, card=card, **FAST)
    files = hub.files(repo, repo_type="space")
    assert set(files) == {".gitattributes", "README.md", "app.py", "requirements.txt"} and result.commit_oid
    assert hub.repo(repo, "space").sdk == "gradio"
    assert SpaceCard.load(repo, repo_type="space").data.sdk == "gradio"
    plan = PushPlan(repo_id=user_repo(hub, "static"), repo_type="space",
                    files={"README.md": b"---\nsdk: static\n---\n"})
    assert commit_plan(plan, space_sdk="static", **FAST).commit_oid  # static Spaces are free


def test_transient_errors_are_retried(hub, runs):
    repo = user_repo(hub, "flaky")
    hub.fail("POST", r"/api/repos/create", status=0, times=2)  # connection dropped twice
    hub.fail("POST", r"/commit/", status=503, times=2)
    result = push_run(runs["adapter"], repo, **FAST)
    assert len(hub.commits(repo)) == 2 and hub.commits(repo)[0].sha == result.commit_oid
    assert sum(1 for m, p, _ in hub.requests if m == "POST" and p.endswith("/commit/main")) == 3


def test_lost_commit_answer_is_retried_without_a_second_commit(hub, runs, tmp_path):
    repo = user_repo(hub, "lost")
    push_run(runs["model"], repo)  # an earlier push whose files become stale
    hub.fail("POST", r"/commit/", status=-1)  # the commit lands, its answer is lost
    result = push_run(runs["adapter"], repo, tag="v1", **FAST)
    commits = hub.commits(repo)
    assert len(commits) == 3 and commits[0].sha == result.commit_oid
    assert "config.json" not in hub.files(repo) and "adapter_config.json" in hub.files(repo)
    assert push_run(runs["adapter"], repo, tag="v1").commit_oid == result.commit_oid  # same tag, same commit: ok
    with pytest.raises(HubError, match="already points to commit.*not to the commit just pushed"):
        push_run(runs["model"], repo, tag="v1")  # v1 was the head, so only the new commit reveals the clash
    assert len(hub.commits(repo)) == 4
    with pytest.raises(HubError, match="already points to commit.*Nothing was pushed"):
        push_run(runs["adapter"], repo, tag="v1")  # v1 is behind the head: refused before any commit
    assert len(hub.commits(repo)) == 4


def test_lost_pull_request_answer_opens_one_pull_request(hub, runs):
    repo = user_repo(hub, "lost-pr")
    main = push_run(runs["model"], repo)
    earlier = push_run(runs["adapter"], repo, create_pr=True)  # an earlier PR with the same title and files
    hub.fail("POST", r"/commit/", status=-1)  # the PR is opened, its answer is lost
    result = push_run(runs["adapter"], repo, create_pr=True, **FAST)
    prs = hub.repo(repo).prs
    assert sorted(prs) == [1, 2] and earlier.pr_revision == "refs/pr/1"  # the retry opened no third PR...
    assert result.pr_revision == "refs/pr/2" and result.pr_url.endswith("/discussions/2")  # ...and found its own
    assert result.commit_oid == prs[2]["head"] != main.commit_oid
    assert "hfcl-push-id" in prs[2]["description"] and prs[1]["description"] != prs[2]["description"]
    assert sum(1 for m, p, _ in hub.requests if m == "POST" and p.endswith("/commit/main")) == 3  # no re-POST
    assert hub.commits(repo)[0].sha == main.commit_oid  # main untouched
    hub.fail("POST", r"/commit/", status=503)  # a commit refused outright is simply retried
    push_run(runs["adapter"], repo, create_pr=True, **FAST)
    assert sorted(hub.repo(repo).prs) == [1, 2, 3]


def test_token_scan_streams_files(tmp_path, monkeypatch):
    """The scan finds a token across chunk borders and in a safetensors header, and never reads a file whole."""
    from safetensors.torch import save_file

    import hfcl.hub.push as push_module

    token = "hf_" + "x" * 30
    monkeypatch.setattr(push_module, "SCAN_CHUNK", 64)
    big = tmp_path / "notes.txt"
    big.write_bytes(b"a" * 50 + token.encode() + b"b" * 500)  # straddles the first two 64-byte chunks
    weights = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(4096)}, str(weights), metadata={"note": token})
    clean = tmp_path / "clean.safetensors"
    save_file({"w": torch.zeros(4096)}, str(clean))
    reads: list[int] = []
    real_open = open

    class Spy:
        def __init__(self, handle):
            self.handle = handle

        def read(self, size=-1):
            assert size is not None and size >= 0, "a staged file was read whole"
            reads.append(size)
            return self.handle.read(size)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(push_module, "open", lambda *a, **k: Spy(real_open(*a, **k)), raising=False)
    plan = PushPlan(repo_id="a/b", files={"notes.txt": big, "clean.safetensors": clean})
    with pytest.raises(TokenLeakError, match="notes.txt"):
        plan.check_secret(token)
    with pytest.raises(TokenLeakError, match="model.safetensors"):
        PushPlan(repo_id="a/b", files={"model.safetensors": weights}).check_secret(token)
    reads.clear()
    PushPlan(repo_id="a/b", files={"clean.safetensors": clean}).check_secret(token)
    assert sum(reads) < 200 < clean.stat().st_size  # of the weights only the header was read


def test_persistent_failure_leaves_no_commit(hub, runs):
    repo = user_repo(hub, "down")
    hub.fail("POST", r"/commit/", status=500, times=100)
    with pytest.raises(HubUnavailableError, match="Nothing was committed"):
        push_run(runs["adapter"], repo, retries=2, **FAST)
    assert set(hub.files(repo)) == {".gitattributes"} and len(hub.commits(repo)) == 1
    hub.state.faults.clear()
    hub.state.lfs.clear()
    hub.fail("PUT", r"/__lfs__/upload/", status=400, times=100)  # an LFS upload fails mid-push
    with pytest.raises(HubError, match="Could not commit"):
        push_run(runs["adapter"], repo, retries=0, **FAST)
    assert set(hub.files(repo)) == {".gitattributes"} and len(hub.commits(repo)) == 1


def test_unreachable_endpoint(hub, runs):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed as soon as the block ends: nothing listens there
    with pytest.raises(HubUnavailableError, match="ConnectError"):
        push_run(runs["adapter"], user_repo(hub, "x"), endpoint=f"http://127.0.0.1:{port}", retries=1, **FAST)


def test_xet_enabled_client_with_regular_uploads(hub, runs, monkeypatch):
    """Mode A of the research note: the production (xet-enabled) client, every file inline in the commit."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    hub.state.upload_mode = "regular"
    repo = user_repo(hub, "mode-a")
    plan = prepare_push(runs["adapter"], repo)
    push_run(runs["adapter"], repo)
    assert {p: b for p, b in hub.files(repo).items() if p != ".gitattributes"} == \
        {p: plan.read(p) for p in plan.files}
    assert not any("/info/lfs/" in p or "xet-write-token" in p for _, p, _ in hub.requests)


def test_cli_dry_run_and_push(hub, runs, tmp_path, capsys):
    repo = user_repo(hub, "cli")
    assert push_cli([str(runs["adapter"]), "--repo-id", repo, "--dry-run", "--dry_run_dir",
                     str(tmp_path / "preview")]) == 0
    out = capsys.readouterr().out
    assert "What was done" in out and "adapter_model.safetensors" in out and "training_args.bin" in out
    assert not hub.state.repos
    local = shutil.copytree(runs["adapter"], tmp_path / "card")
    assert push_cli([str(local), "--card_only"]) == 0
    assert "card written" in capsys.readouterr().out and hub.requests == []
    card = ModelCard.load(local / "README.md")
    assert card.data.library_name == "peft" and "your-username/card" in card.text
    assert (local / "plots" / "forget_vs_utility.png").is_file()
    with pytest.raises(ConfigError, match="--hub_model_id is required"):
        push_cli([str(local)])
    assert push_cli([str(runs["adapter"]), "--repo-id", repo, "--revision", "exp", "--tag", "v1"]) == 0
    assert "pushed" in capsys.readouterr().out
    assert {b.name for b in HfApi().list_repo_refs(repo).branches} == {"main", "exp"}


def test_token_never_written(hub, runs, tmp_path, caplog, capsys):
    # a run record that carries the token is refused before anything is pushed or written
    leaky = make_run_dir(tmp_path / "leaky", comparisons=False, extra_run={"hub_token": hub.token})
    with pytest.raises(TokenLeakError):
        push_run(leaky, user_repo(hub, "leak"))
    with pytest.raises(TokenLeakError):
        push_run(leaky, user_repo(hub, "leak"), dry_run=tmp_path / "leak-preview")
    assert not hub.state.repos and not (tmp_path / "leak-preview").exists()
    shutil.rmtree(leaky.parent)

    # everything a normal push writes, logs, prints or uploads is token-free
    hfcl_logger = logging.getLogger("hfcl")
    hfcl_logger.addHandler(caplog.handler)
    old_level = hfcl_logger.level
    hfcl_logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        push_run(runs["adapter"], user_repo(hub, "clean"), dry_run=tmp_path / "preview")
        push_run(runs["adapter"], user_repo(hub, "clean"), revision="b", tag="t")
        assert push_cli([str(runs["adapter"]), "--repo-id", user_repo(hub, "clean"), "--create-pr"]) == 0
        hub.fail("POST", r"/commit/", status=503)
        push_run(runs["model"], user_repo(hub, "clean"), revision="c", **FAST)
        snapshot_download(user_repo(hub, "clean"), cache_dir=tmp_path / "cache")
    finally:
        hfcl_logger.removeHandler(caplog.handler)
        hfcl_logger.setLevel(old_level)
    needle = hub.token.encode()
    assert "retry 1/4" in caplog.text  # the log did record the retried failure
    assert hub.token not in caplog.text and hub.token not in str(capsys.readouterr())
    written = [p for root in (tmp_path, runs["adapter"].parent, Path(os.environ["HF_HUB_CACHE"]))
               for p in root.rglob("*") if p.is_file()]
    assert len(written) > 20
    assert [p for p in written if needle in p.read_bytes()] == []
    for revision in ("main", "b", "c", "refs/pr/1"):
        assert not any(needle in data for data in hub.files(user_repo(hub, "clean"), revision).values())


def test_invalid_card_metadata_is_rejected_before_upload(hub, runs, tmp_path):
    run = shutil.copytree(runs["adapter"], tmp_path / "run")
    (run / "README.md").write_text("---\nmodel-index:\n- name: x\n  results:\n  - task: {}\n---\nbad\n")
    with pytest.raises(HubError, match="task.type"):
        push_run(run, user_repo(hub, "badcard"), card="keep", **FAST)
    assert set(hub.files(user_repo(hub, "badcard"))) == {".gitattributes"}
    assert not any("lfs" in p for _, p, _ in hub.requests)  # rejected before any upload
