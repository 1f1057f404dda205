"""Share on the Hub: cards rendered from eval reports, one-commit pushes of run directories and dataset splits.

>>> from hfcl.hub import push_run
>>> push_run("out/npo", "me/npo-forget10")                     # adapter + tokenizer + card + report + plots
>>> push_run("out/npo", "me/npo-forget10", dry_run="preview")  # the exact files, written locally
>>> push_run("out/stage2", "me/cl", tag="stage-2")              # one tag (or revision=branch) per continual stage
>>> push_continual("out/cl", "me/cl")                # every stage of a continual run on its own branch, then main
>>> write_eval_card("out/npo", report=report, comparisons={"target": t, "retain": r})  # README.md, no network
"""

from .cards import benchmark_eval_results, eval_results_from_report, render_model_card
from .datasets import prepare_dataset_push, push_splits
from .errors import (
    HubAuthError,
    HubError,
    HubPaymentRequiredError,
    HubUnavailableError,
    RunDirError,
    TokenLeakError,
)
from .push import PushPlan, PushResult, commit_plan, prepare_push, push_run, push_space, push_stages
from .repo_cards import render_dataset_card, render_space_card
from .run_dir import RunDir, read_run_dir
from .share import push_demo, push_training_output, write_eval_card
from .stages import push_continual

__all__ = [
    "HubAuthError",
    "HubError",
    "HubPaymentRequiredError",
    "HubUnavailableError",
    "PushPlan",
    "PushResult",
    "RunDir",
    "RunDirError",
    "TokenLeakError",
    "benchmark_eval_results",
    "commit_plan",
    "eval_results_from_report",
    "prepare_dataset_push",
    "prepare_push",
    "push_continual",
    "push_demo",
    "push_run",
    "push_space",
    "push_splits",
    "push_stages",
    "push_training_output",
    "read_run_dir",
    "render_dataset_card",
    "render_model_card",
    "render_space_card",
    "write_eval_card",
]
