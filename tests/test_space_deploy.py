"""The deployable Space folder: ``spaces/`` equals what hfcl generates, its metadata is valid, its ``app.py`` builds
the app from Space variables, and ``push-space`` uploads it in one commit to the fake Hub (402 explained)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hfcl.errors import ConfigError
from hfcl.space.deploy import SpaceFolderConfig, push_main, push_space_app, space_files, write_space_folder

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces"
FAST = {"retry_wait": 0.01}

pytest_plugins = ["hub_fixtures"]  # the fake Hub: `hub` fixture


def test_repository_space_folder_is_the_generated_one():
    files = space_files()
    assert sorted(p.name for p in SPACE_DIR.iterdir() if p.is_file()) == sorted(files)
    for name, text in files.items():
        assert (SPACE_DIR / name).read_text(encoding="utf-8") == text, f"spaces/{name} is stale: regenerate it " \
            "with hfcl.space.deploy.write_space_folder('spaces', overwrite=True)"


def test_space_readme_metadata_is_valid():
    import gradio
    from huggingface_hub import SpaceCard

    data = SpaceCard.load(SPACE_DIR / "README.md").data.to_dict()
    assert data["sdk"] == "gradio" and (SPACE_DIR / data["app_file"]).is_file()
    assert data["python_version"] == "3.12"  # quoted in YAML: transformers 5 needs Python >= 3.11
    assert data["sdk_version"] == gradio.__version__
    assert "hfcl[space]" in (SPACE_DIR / "requirements.txt").read_text()


def test_space_app_file_builds_the_app_from_variables(tiny_zoo, monkeypatch):
    import runpy

    import gradio as gr

    monkeypatch.setenv("HFCL_MODELS", "target,unlearned=retain")
    monkeypatch.setenv("HFCL_PRESET", "tiny")
    namespace = runpy.run_path(str(SPACE_DIR / "app.py"), run_name="space_app")  # not __main__: no launch
    demo = namespace["demo"]
    assert isinstance(demo, gr.Blocks) and demo.hfcl_registry.names == ["target", "unlearned"]
    assert demo.hfcl_registry.spec("unlearned").source == "retain"


def test_custom_defaults_are_baked_in_and_hub_models_listed(tmp_path):
    config = SpaceFolderConfig(models="target,unlearned=me/unlearned-model", preset="tiny", sdk_version="6.0.0")
    out = write_space_folder(tmp_path / "space", config)
    app = (out / "app.py").read_text()
    assert "os.environ.setdefault('HFCL_MODELS', 'target,unlearned=me/unlearned-model')" in app
    assert "os.environ.setdefault('HFCL_PRESET', 'tiny')" in app and "HFCL_FORGET_SPLIT'," not in app
    from huggingface_hub import SpaceCard

    data = SpaceCard.load(out / "README.md").data
    assert data.models == ["me/unlearned-model"] and data.sdk_version == "6.0.0"
    compile(app, "app.py", "exec")
    with pytest.raises(ConfigError, match="at most 4"):
        space_files(SpaceFolderConfig(models="a=1,b=2,c=3,d=4,e=5"))
    with pytest.raises(Exception):
        write_space_folder(out, config)  # exists and overwrite=False


def test_push_space_one_commit_and_payment_required(hub, tmp_path, capsys):
    from huggingface_hub import SpaceCard

    from hfcl.hub import HubPaymentRequiredError

    repo = f"{hub.user}/unlearning"
    with pytest.raises(HubPaymentRequiredError, match="paid plan"):
        push_space_app(repo, **FAST)
    assert not hub.state.repos
    hub.state.paid_spaces = True
    result = push_space_app(repo, **FAST)
    files = hub.files(repo, repo_type="space")
    assert {"README.md", "app.py", "requirements.txt"} <= set(files) and result.commit_oid
    assert len(hub.commits(repo, repo_type="space")) == 2  # the initial commit + one upload
    assert files["app.py"].decode() == space_files()["app.py"]
    assert SpaceCard.load(repo, repo_type="space").data.sdk == "gradio"
    assert push_main(["--repo_id", repo, "--dry_run", str(tmp_path / "dry")]) == 0
    assert "dry run written" in capsys.readouterr().out
    assert (tmp_path / "dry").exists()
