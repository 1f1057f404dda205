"""One-call helpers for commands that end with a result to document or share (``hfcl demo``, ``hfcl unlearn``).

``write_eval_card(run_dir, report=..., comparisons=...)`` makes a run directory self-describing without touching the
network: it saves the reports next to the weights, writes the card plot and renders ``README.md``, exactly as
``hfcl push`` would upload them. ``push_demo(run_dir, repo_id, ...)`` shares the same thing (and, optionally, the
forget/retain splits as a dataset repo that the model card then links) in one commit per repo.

>>> write_eval_card("hfcl-demo/npo", report=npo, comparisons={"target": target, "retain": retain})   # doctest: +SKIP
>>> push_demo("hfcl-demo/npo", "me/hfcl-demo", report=npo, comparisons={...}, splits=splits)      # doctest: +SKIP
>>> push_training_output(trainer.args)   # after training: `--push_to_hub --hub_model_id me/x`   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..utils.io import atomic_write_bytes, atomic_write_text
from ..utils.logging import get_logger
from .cards import report_dict
from .push import PushResult, prepare_push, push_run, report_json
from .run_dir import REPORT_FILE

logger = get_logger(__name__)
LOCAL_REPO = "your-username/{name}"  # the repo id shown in a local card's "How to use" until it is pushed


def write_eval_card(run_dir: str | os.PathLike, repo_id: str | None = None, *, report: Any = None,
                    comparisons: Mapping[str, Any] | None = None, **card: Any) -> Path:
    """Render the run directory's card locally and return the path of its ``README.md``; nothing is pushed.

    ``report`` (an ``EvalReport``, its dict or a path) is saved as ``eval_report.json`` and each of
    ``comparisons`` (``{"target": report, "retain": report}``) as ``eval_report.<name>.json``; without them the
    run directory's own report files are used. The card plots (forget vs utility; the accuracy matrix of a
    continual run) are drawn into ``plots/``. Every file is written atomically. ``repo_id`` only changes the card's
    usage snippet (default ``your-username/<folder name>``). Other keyword arguments are card options of
    :func:`prepare_push` (``base_model``, ``license``, ``datasets``, ``tags``, ``dataset_id``).
    """
    root = Path(run_dir)
    plan = prepare_push(root, repo_id or LOCAL_REPO.format(name=root.resolve().name), report=report,
                        comparisons=comparisons, **card)
    # the reports given here are saved as they are (local files may name local paths; only pushes are scrubbed)
    if report is not None:
        atomic_write_bytes(root / REPORT_FILE, report_json(report_dict(report)))
    for name, data in (comparisons or {}).items():
        atomic_write_bytes(root / f"eval_report.{name}.json", report_json(report_dict(data)))
    for path, source in plan.files.items():
        if path.startswith("plots/") and isinstance(source, bytes):  # the card plots
            atomic_write_bytes(root / path, source)
    readme = root / "README.md"
    atomic_write_text(readme, plan.card)
    logger.info("Wrote the card of %s to %s", root, readme)
    return readme


def push_demo(run_dir: str | os.PathLike, repo_id: str, *, report: Any = None,
              comparisons: Mapping[str, Any] | None = None, splits: Mapping[str, Any] | None = None,
              dataset_repo_id: str | None = None, write_card: bool = True, **push: Any) -> dict[str, PushResult]:
    """Share the demo's result: the run directory (weights, tokenizer, card, reports, plots) to ``repo_id``, and
    when ``splits`` is given (``load_tofu(...)`` or a mapping of split names to ``Dataset``s) those splits to
    ``dataset_repo_id`` (default ``<repo_id>-data``), pushed first so the model card's ``datasets`` and
    ``model-index`` point at them. Returns ``{"model": PushResult, "dataset": PushResult}`` (no ``dataset`` without
    splits). ``write_card`` also writes the card locally (:func:`write_eval_card`). Other keyword arguments go to
    :func:`push_run` and :func:`~hfcl.hub.datasets.push_splits` (``private``, ``revision``, ``create_pr``,
    ``dry_run``, ``token``, ``endpoint``, ``retries``...); with ``dry_run=FOLDER`` the dataset preview goes to
    ``FOLDER-dataset`` and nothing is pushed.
    """
    from .datasets import push_splits

    card = {k: push.pop(k) for k in ("base_model", "license", "tags", "dataset_id", "datasets") if k in push}
    results: dict[str, PushResult] = {}
    if splits is not None:
        dataset_repo_id = dataset_repo_id or f"{repo_id}-data"
        options = {k: v for k, v in push.items() if k in ("private", "revision", "create_pr", "token", "endpoint",
                                                         "retries", "retry_wait")}
        if push.get("dry_run") is not None:
            options["dry_run"] = Path(push["dry_run"]).with_name(Path(push["dry_run"]).name + "-dataset")
        results["dataset"] = push_splits(splits, dataset_repo_id, pretty_name=f"{repo_id.split('/')[-1]} data",
                                         summary="The forget/retain splits the model in "
                                                 f"[{repo_id}](https://huggingface.co/{repo_id}) was unlearned and "
                                                 "evaluated on (TOFU schema, generated by hfcl).", **options)
        card.setdefault("dataset_id", dataset_repo_id)
        card.setdefault("datasets", [dataset_repo_id])
    if write_card:
        write_eval_card(run_dir, repo_id, report=report, comparisons=comparisons, **card)
    results["model"] = push_run(run_dir, repo_id, report=report, comparisons=comparisons, **card, **push)
    return results


def push_training_output(args: Any, output_dir: str | os.PathLike | None = None, *, repo_id: str | None = None,
                         **push: Any) -> PushResult | None:
    """Push a trainer's finished run directory the hfcl way (one commit, rendered card, safetensors only) using the
    Hub fields of its ``TrainingArguments``: ``push_to_hub``, ``hub_model_id``, ``hub_private_repo``,
    ``hub_revision`` and ``hub_token``. Returns ``None`` when ``args.push_to_hub`` is off and no ``repo_id`` is
    given. Commands that call this should build their ``Trainer`` with ``push_to_hub=False`` so the Trainer does not
    push a second, generic card (and PEFT's card is not overwritten, see research/hub_ecosystem.md §2).
    """
    from ..errors import ConfigError

    repo_id = repo_id or getattr(args, "hub_model_id", None)
    if repo_id is None and not getattr(args, "push_to_hub", False):
        return None
    if not repo_id:
        raise ConfigError("push_to_hub is set but hub_model_id is empty: pass --hub_model_id namespace/name.")
    push.setdefault("private", bool(getattr(args, "hub_private_repo", None)))
    push.setdefault("revision", getattr(args, "hub_revision", None))
    push.setdefault("token", getattr(args, "hub_token", None))
    return push_run(output_dir or args.output_dir, repo_id, **push)
