"""Every stage of a continual run on the Hub: one branch per stage, each with its own card, the final model on main.

A continual run folder (``hfcl continual``) keeps the model after every step under ``stages/task-K-NAME`` (a learned
task) or ``stages/step-K-NAME`` (a forget event), each with ``stage.json`` (R up to that step). :func:`push_continual`
pushes stage K to the branch named like its folder, started from stage K-1's commit (so a branch's history is the
stream up to it), one commit per stage. Each stage's card has the metrics of the learned tasks so far as model-index
rows (ACC, BWT, forgetting, ...), R so far as a table and a heat map, what that step learned or forgot, and links to
the previous and next stages. Main then gets the final model with the full history and a table of every stage.

A stage name that is already a branch of the repo is refused before anything is pushed unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import privacy
from .push import PushResult, check_repo_id, commit_plan, prepare_push, resolve_token

STAGE_DIR = re.compile(r"(task|step)-(\d+)-(.+)")
STAGE_SKIP = ("continual_state.safetensors", "training_args.bin", "stage.json")  # resume state, not the model
MATRIX_FILE = "accuracy_matrix.json"


@dataclass
class Stage:
    """One stage folder of a continual run: its step (1-based), kind (learn | forget), name, ref and ``stage.json``."""

    path: Path
    step: int
    kind: str
    name: str
    data: dict[str, Any]

    @property
    def ref(self) -> str:
        return self.path.name


def read_stages(run_dir: str | os.PathLike) -> tuple[list[Stage], dict[str, Any]]:
    """The stages of a continual run folder in step order, and its ``accuracy_matrix.json``."""
    root = Path(run_dir)
    if not (root / MATRIX_FILE).is_file() or not (root / "stages").is_dir():
        raise ConfigError(f"--stages: {str(root)!r} is not a continual run folder (it needs {MATRIX_FILE} and "
                          "stages/, as `hfcl continual` writes them).")
    stages = []
    for folder in (root / "stages").iterdir():
        match = STAGE_DIR.fullmatch(folder.name)
        if not folder.is_dir() or not match or not (folder / "stage.json").is_file():
            continue
        data = json.loads((folder / "stage.json").read_text(encoding="utf-8"))
        stages.append(Stage(folder, int(match.group(2)), data.get("kind", "learn"), data.get("name", match.group(3)),
                            data))
    if not stages:
        raise ConfigError(f"--stages: {str(root / 'stages')!r} holds no stage folder (task-K-NAME / step-K-NAME).")
    stages.sort(key=lambda s: s.step)
    return stages, json.loads((root / MATRIX_FILE).read_text(encoding="utf-8"))


def stage_matrix(stage: Stage, matrix: dict[str, Any]) -> dict[str, Any]:
    """R up to ``stage`` (every row, forget rows included) and the continual metrics of the tasks learned so far:
    the rows after each learned task (as the run's own report), the last one replaced by this stage's row, so the
    numbers are those of the model on this branch (after a forget event, the unlearned model)."""
    from ..eval.continual import continual_report

    tasks = list(matrix["tasks"])
    labels = list(matrix.get("rows") or ["before", *[f"after {t}" for t in tasks]])[:stage.step + 1]
    R = [list(map(float, row)) for row in stage.data["R"]][:stage.step + 1]
    learned = [i for i, label in enumerate(labels[1:], start=1) if label.removeprefix("after ") in tasks]
    t = len(learned)
    rows = [0, *learned[:-1], len(R) - 1]  # the last row is this stage's model (after a forget event: that row)
    square = [R[i][:t] for i in rows]
    report = continual_report(square, tasks[:t], task_metric=str(matrix.get("metric", "probability")))
    marked = [i for i, label in enumerate(labels) if i and label.removeprefix("after ") not in tasks]
    return {"tasks": tasks, "rows": labels, "matrix": R, "learned": tasks[:t], "forget_rows": marked,
            "report": report, "aggregates": report.aggregates}


def _stage_card_section(stage: Stage, view: dict[str, Any], repo_id: str, refs: list[str], total: int) -> str:
    """Markdown appended to a stage's card: what the step did, R so far, links to the neighbours."""
    k = refs.index(stage.ref)
    lines = ["", f"## Stage {stage.step} of {total}: "
             + (f"learned `{stage.name}`" if stage.kind == "learn" else f"forget event `{stage.name}`"), ""]
    if stage.kind == "forget":
        event = next((e for e in stage.data.get("forget_events", []) if e.get("name") == stage.name), {})
        if event:
            lines.append(f"Unlearned {event.get('n_forget', '?')} training rows of task `{event.get('task')}` with "
                         f"{event.get('method')} (retain set: {event.get('n_retain', '?')} rows learned and kept). "
                         f"Deleted rows {event['forgotten_before']:.3f} -> {event['forgotten_after']:.3f} "
                         f"(a model that never learned them: {event['never_learned']:.3f}).")
            lines.append("")
    links = []
    if k > 0:
        links.append(f"previous stage: [`{refs[k - 1]}`](https://huggingface.co/{repo_id}/tree/{refs[k - 1]})")
    if k + 1 < len(refs):
        links.append(f"next stage: [`{refs[k + 1]}`](https://huggingface.co/{repo_id}/tree/{refs[k + 1]})")
    links.append(f"final model: [`main`](https://huggingface.co/{repo_id}/tree/main)")
    lines += [" · ".join(links), "", "### Accuracy matrix so far", "", _matrix_markdown(view), ""]
    return "\n".join(lines)


def _matrix_markdown(view: dict[str, Any]) -> str:
    header = "| after | " + " | ".join(view["tasks"]) + " |"
    rule = "|---|" + "---:|" * len(view["tasks"])
    rows = []
    for i, (label, row) in enumerate(zip(view["rows"], view["matrix"])):
        name = label.removeprefix("after ")
        name = f"**{name}** (forget)" if i in view["forget_rows"] else name
        rows.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    return "\n".join([header, rule, *rows])


def _staging(stage: Stage, run_dir: Path, view: dict[str, Any], into: Path) -> Path:
    """A pushable folder for ``stage``: its model, the run's record (with the stage), its report and matrix."""
    from ..utils.io import atomic_write_json
    from .plots import accuracy_matrix

    folder = into / stage.ref
    folder.mkdir()
    for file in stage.path.iterdir():
        if file.is_file() and file.name not in STAGE_SKIP:
            try:
                os.link(file, folder / file.name)
            except OSError:
                shutil.copy2(file, folder / file.name)
    roots = privacy.local_roots([run_dir])
    record = {}
    if (run_dir / "hfcl_run.json").is_file():
        record = json.loads((run_dir / "hfcl_run.json").read_text(encoding="utf-8"))
    record = privacy.scrub({**record, "stage": {"step": stage.step, "kind": stage.kind, "name": stage.name}},
                           run_dir, roots)
    atomic_write_json(folder / "hfcl_run.json", record)
    view["report"].save(folder / "eval_report.json")
    atomic_write_json(folder / MATRIX_FILE, {k: view[k] for k in ("tasks", "rows", "matrix", "learned",
                                                                  "forget_rows", "aggregates")})
    (folder / "plots").mkdir()
    _, png = accuracy_matrix(view["matrix"], view["tasks"], row_labels=view["rows"], marked_rows=view["forget_rows"])
    (folder / "plots" / "accuracy_matrix_so_far.png").write_bytes(png)
    return folder


def check_stage_refs(repo_id: str, refs: list[str], overwrite: bool, token: str | None = None,
                     endpoint: str | None = None) -> list[str]:
    """The stage names that already are branches of ``repo_id``; refused unless ``overwrite``."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi(endpoint=endpoint, token=token)
    try:
        existing = {b.name for b in api.list_repo_refs(repo_id).branches}
    except RepositoryNotFoundError:
        return []
    taken = [r for r in refs if r in existing]
    if taken and not overwrite:
        raise ConfigError(f"{repo_id} already has branch(es) {', '.join(taken)}: pass --overwrite true (overwrite=True) "
                          "to replace them, or push to another --hub_model_id.")
    return taken


def push_continual(run_dir: str | os.PathLike, repo_id: str, *, overwrite: bool = False, private: bool = False,
                   token: str | None = None, endpoint: str | None = None, dry_run: str | os.PathLike | None = None,
                   retries: int = 4, retry_wait: float = 1.0, **card_options: Any) -> list[PushResult]:
    """Push every stage of the continual run ``run_dir`` to its own branch, then the final model to main.

    Returns one :class:`PushResult` per stage, then main's. ``dry_run=FOLDER`` writes each push's exact files to
    ``FOLDER/<branch>`` (and ``FOLDER/main``) and pushes nothing. ``card_options`` go to the card renderer
    (``base_model``, ``license``, ``dataset_id``)."""
    check_repo_id(repo_id)
    root = Path(run_dir)
    stages, matrix = read_stages(root)
    refs = [s.ref for s in stages]
    views = [stage_matrix(s, matrix) for s in stages]  # every stage readable before anything is pushed
    if dry_run is None:
        token = resolve_token(token)
        taken = check_stage_refs(repo_id, refs, overwrite, token, endpoint)
        if taken:
            from huggingface_hub import HfApi

            api = HfApi(endpoint=endpoint, token=token)
            for ref in taken:
                api.delete_branch(repo_id, branch=ref)
    results: list[PushResult] = []
    with tempfile.TemporaryDirectory(prefix=".hfcl-stages-") as tmp:
        for stage, view in zip(stages, views):
            folder = _staging(stage, root, view, Path(tmp))
            plan = prepare_push(folder, repo_id, **card_options)
            plan.card += _stage_card_section(stage, view, repo_id, refs, len(stages))
            plan.files["README.md"] = plan.card.encode("utf-8")
            plan.commit_message = f"Stage {stage.step}/{len(stages)}: {stage.kind} {stage.name} (hfcl continual)"
            if dry_run is not None:
                results.append(PushResult(repo_id=repo_id, repo_type="model", revision=stage.ref,
                                          files=list(plan.files), dry_run_dir=plan.write(Path(dry_run) / stage.ref)))
                continue
            start = results[-1].commit_oid if results else None
            results.append(commit_plan(plan, private=private, revision=stage.ref, branch_from=start, token=token,
                                       endpoint=endpoint, retries=retries, retry_wait=retry_wait))
    plan = prepare_push(root, repo_id, **card_options)
    plan.card += _stages_index(stages, views, repo_id)
    plan.files["README.md"] = plan.card.encode("utf-8")
    if dry_run is not None:
        results.append(PushResult(repo_id=repo_id, repo_type="model", revision="main", files=list(plan.files),
                                  dry_run_dir=plan.write(Path(dry_run) / "main")))
    else:
        results.append(commit_plan(plan, private=private, token=token, endpoint=endpoint, retries=retries,
                                   retry_wait=retry_wait))
    return results


def _stages_index(stages: list[Stage], views: list[dict[str, Any]], repo_id: str) -> str:
    """Main's card section: one line per stage branch with its ACC so far."""
    lines = ["", "## Stages", "", "Every step of the stream is a branch of this repo (its model and its card):", "",
             "| step | stage | branch | ACC so far |", "|---:|---|---|---:|"]
    for stage, view in zip(stages, views):
        acc = view["aggregates"].get("final_average_accuracy")
        lines.append(f"| {stage.step} | {stage.kind} {stage.name} | [`{stage.ref}`](https://huggingface.co/{repo_id}/"
                     f"tree/{stage.ref}) | {'-' if acc is None else f'{acc:.3f}'} |")
    return "\n".join(lines) + "\n"


__all__ = ["Stage", "check_stage_refs", "push_continual", "read_stages", "stage_matrix"]
