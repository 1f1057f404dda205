"""Shared fixtures: an isolated cache, the tiny embedded zoo (built once per session), and the tiny world's splits.

Every test runs offline against models built here. ``HFCL_CACHE`` points at a session folder (set before any hfcl
import, so subprocesses launched by tests inherit it); set ``HFCL_TEST_CACHE`` to reuse a folder across runs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

os.environ["HFCL_CACHE"] = os.environ.get("HFCL_TEST_CACHE") or tempfile.mkdtemp(prefix="hfcl-test-cache-")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from hfcl.zoo import ZooConfig, build_zoo, load_model, model_path, tiny_config  # noqa: E402


@dataclass
class TinyZoo:
    """The reduced embedded default: ``path(stage)``, ``load(stage)`` and the forget10 ``splits`` of its world."""

    config: ZooConfig = field(default_factory=tiny_config)

    def path(self, stage: str, forget_split: str = "forget10") -> Path:
        return model_path(stage, self.config, forget_split)

    def load(self, stage: str, forget_split: str = "forget10"):
        return load_model(stage, self.config, forget_split)

    @cached_property
    def splits(self):
        from hfcl.data import load_tofu

        return load_tofu("forget10", world_config=self.config)


@pytest.fixture(scope="session")
def tiny_zoo() -> TinyZoo:
    """Tiny zoo with tokenizer, base, target and retain built (about half a minute on 2 cores, once per session)."""
    zoo = TinyZoo()
    build_zoo(zoo.config)  # target and retain train side by side, one process per core
    return zoo


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The tiny zoo's embedded tokenizer alone (trained in well under a second)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path("tokenizer", tiny_config()))


@pytest.fixture(scope="session")
def learn_forget_run(tiny_zoo, tmp_path_factory) -> Path:
    """`hfcl continual` on the tiny stream learn A, learn B, forget one author of A, learn C (replay; ~10 s)."""
    from hfcl.cli import main

    out = tmp_path_factory.mktemp("learn-forget") / "lf"
    assert main(["continual", "--zoo", "tiny", "--preset", "demo", "--n_tasks", "3", "--authors_per_task", "2",
                 "--probe_size", "5", "--num_train_epochs", "2", "--forget_after", "2", "--strategy", "replay",
                 "--output_dir", str(out), "--disable_tqdm", "true", "--use_cpu", "true"]) == 0
    return out
