"""Push a run directory (or any prepared set of files) to the Hub in one commit.

``push_run(run_dir, repo_id)`` renders the card, stages exactly the shareable files and makes a single
``HfApi.create_commit``, so a repo never shows half a result. ``dry_run=FOLDER`` writes those same files to a folder
instead. ``revision`` pushes to a branch (created from ``branch_from`` if missing), ``create_pr`` opens a pull
request, ``tag`` tags the new commit: continual runs push one branch or tag per stage (:func:`push_stages`).

Transient failures (HTTP 5xx/429, refused or dropped connections) are retried with exponential backoff, and a retry
never duplicates work: a commit whose answer was lost is found (unchanged files, or the pull request carrying this
push's marker) instead of being made twice; 401/403 and 402 raise :class:`HubAuthError` /
:class:`HubPaymentRequiredError` with what to do. The token comes from ``token=``, ``HF_TOKEN`` or ``hf auth login``;
it is never written anywhere, and a staged file that contains it stops the push. Nothing private is pushed: local
paths in every staged text file are replaced by names that mean something elsewhere (:mod:`hfcl.hub.privacy`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .. import __version__
from ..errors import ConfigError
from ..utils.io import atomic_directory
from ..utils.logging import get_logger
from . import privacy
from .cards import render_model_card, report_dict
from .errors import LOGIN_HINT, HubAuthError, HubError, TokenLeakError, is_transient, translate
from .plots import card_plots
from .run_dir import COMPARISON_FILE, REPORT_FILE, RunDir, is_allowed, read_run_dir

logger = get_logger(__name__)
T = TypeVar("T")
REPO_TYPES = ("model", "dataset", "space")


@dataclass
class PushPlan:
    """Exactly what a push uploads: ``files`` maps paths in the repo to bytes or local files."""

    repo_id: str
    files: dict[str, bytes | Path]
    repo_type: str = "model"
    card: str = ""
    skipped: list[str] = field(default_factory=list)
    commit_message: str = "Upload with hfcl"
    commit_description: str = ""

    def read(self, path: str) -> bytes:
        source = self.files[path]
        return source if isinstance(source, bytes) else Path(source).read_bytes()

    @staticmethod
    def read_text(source: bytes | Path) -> str:
        return (source if isinstance(source, bytes) else Path(source).read_bytes()).decode("utf-8")

    def check_secret(self, secret: str | None) -> None:
        """Raise :class:`TokenLeakError` if any staged file contains ``secret`` (files are streamed in chunks, and of
        safetensors weights only the JSON header, the one place text can live, is read)."""
        if not secret:
            return
        needle = secret.encode()
        leaked = [p for p, source in self.files.items() if contains(source, needle, name=p)]
        if leaked:
            raise TokenLeakError(f"Refusing to push: {', '.join(leaked)} contain(s) your Hub token. Remove it from "
                                 "those files (and revoke the token if it was shared), then push again.")

    def write(self, folder: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write the staged files to ``folder`` atomically (what ``--dry-run`` shows)."""
        with atomic_directory(folder, overwrite=overwrite) as tmp:
            for path, source in self.files.items():
                target = tmp / path
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(source, bytes):
                    target.write_bytes(source)
                else:
                    shutil.copyfile(source, target)
        return Path(folder)


SCAN_CHUNK = 1 << 20


def _safetensors_header(handle) -> bytes | None:
    """The JSON header of a safetensors file (8-byte little-endian length, then JSON); ``None`` if it is not one."""
    head = handle.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "little")
    if not 2 <= size <= 100 * SCAN_CHUNK:
        return None
    header = handle.read(size)
    return header if header[:1] == b"{" and len(header) == size else None


def contains(source: bytes | str | os.PathLike, needle: bytes, name: str = "") -> bool:
    """Whether the staged file ``source`` (bytes or a local path) contains ``needle``, without reading it whole.

    A file is read in 1 MiB chunks that overlap by ``len(needle) - 1`` bytes. Of a ``*.safetensors`` file only the
    header is read: the rest is raw tensor data, where text (a token) cannot be stored by any writer.
    """
    if not needle:
        return False
    if isinstance(source, bytes):
        return needle in source
    with open(source, "rb") as handle:
        if str(name or source).endswith(".safetensors"):
            header = _safetensors_header(handle)
            if header is not None:
                return needle in header
            handle.seek(0)  # not a valid safetensors file: scan all of it
        tail = b""
        while block := handle.read(SCAN_CHUNK):
            if needle in tail + block:
                return True
            tail = block[-(len(needle) - 1):] if len(needle) > 1 else b""
    return False


@dataclass
class PushResult:
    """Where a push went. ``commit_oid`` is ``None`` for a dry run; ``pr_url`` is set when a PR was opened."""

    repo_id: str
    repo_type: str
    revision: str
    files: list[str]
    commit_oid: str | None = None
    commit_url: str | None = None
    pr_url: str | None = None
    pr_revision: str | None = None
    tag: str | None = None
    repo_url: str | None = None
    dry_run_dir: Path | None = None
    skipped: list[str] = field(default_factory=list)


def report_json(report: Mapping[str, Any]) -> bytes:
    """The bytes of ``eval_report.json`` for a report in dict form (as ``EvalReport.save`` writes it)."""
    return (json.dumps(report, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


# --- planning -----------------------------------------------------------------------------------------------------
def prepare_push(run_dir: str | os.PathLike | RunDir, repo_id: str, *, card: str = "render", report: Any = None,
                 comparisons: Mapping[str, Any] | None = None, base_model: str | Sequence[str] | None = None,
                 license: str | None = None, datasets: Sequence[str] | None = None, tags: Sequence[str] = (),
                 dataset_id: str | None = None, make_plots: bool = True) -> PushPlan:
    """Stage a run directory: allow-listed files, the rendered card (``card="keep"`` keeps its README.md) and the
    card plots drawn from the reports (forget vs utility; the accuracy matrix of a continual run). ``report`` and
    ``comparisons`` replace the run directory's ``eval_report*.json`` (and are staged as those files)."""
    check_repo_id(repo_id)
    run = run_dir if isinstance(run_dir, RunDir) else read_run_dir(run_dir)
    roots = privacy.local_roots([run.path])
    run = private_free(run, roots)
    files: dict[str, bytes | Path] = dict(run.files)
    if not any(p.startswith("tokenizer") or p in ("vocab.json", "vocab.txt") for p in files):
        logger.warning("%s has no tokenizer files: users of %s will need the base model's tokenizer.", run.path,
                       repo_id)
    report_data = privacy.scrub(report_dict(report), run.path, roots) if report is not None else run.report
    compare = {k: privacy.scrub(report_dict(v), run.path, roots) if comparisons is not None else v
               for k, v in (comparisons if comparisons is not None else run.comparisons).items()}
    # reports given explicitly are pushed too, so the repo's eval_report*.json always match its card
    if report is not None:
        files[REPORT_FILE] = report_json(report_data)
    if comparisons is not None:
        files = {p: s for p, s in files.items() if not COMPARISON_FILE.fullmatch(p)}
        files.update({f"eval_report.{name}.json": report_json(data) for name, data in compare.items()})
    mismatch = weights_mismatch(run, report_data)
    if mismatch:
        logger.warning("%s", mismatch)
        report_data = {**report_data, "notes": [*(report_data.get("notes") or []), mismatch]}
    # the card plots are always redrawn from the reports (deterministic bytes), so they never go stale
    generated = card_plots(report_data, compare) if make_plots else {}
    files.update(generated)
    plots = sorted(set(run.plots) | set(generated))
    if card == "keep":
        if run.readme is None:
            raise ConfigError(f"card='keep' but {str(run.path)!r} has no README.md; use card='render'.")
        text = run.readme.read_text(encoding="utf-8")
    elif card == "render":
        text = str(render_model_card(run, repo_id, report=report_data, comparisons=compare, base_model=base_model,
                                     license=license, datasets=datasets, tags=tags, plots=plots,
                                     dataset_id=dataset_id))
    else:
        raise ConfigError(f"card={card!r}: choose 'render' or 'keep'.")
    text = privacy.scrub_text(text, run.path, roots)
    files["README.md"] = text.encode("utf-8")
    files = scrub_staged(files, run.path, roots)  # last line of defence: every staged text file, whatever wrote it
    command = run.run.get("command", "run")
    what = "adapter" if run.kind == "adapter" else "model"
    aggregates = (report_data or {}).get("aggregates") or {}
    summary = ", ".join(f"{k}={v:.4g}" for k, v in list(aggregates.items())[:6] if isinstance(v, (int, float)))
    return PushPlan(repo_id=repo_id, files=dict(sorted(files.items())), card=text, skipped=run.skipped,
                    commit_message=f"Upload {what} from hfcl {command}",
                    commit_description=(f"Pushed by hfcl {__version__}. " + (f"Eval: {summary}." if summary else "")))


def scrub_staged(files: Mapping[str, bytes | Path], root: str | os.PathLike,
                 roots: list[str] | None = None) -> dict[str, bytes | Path]:
    """``files`` with local paths replaced in every text file (:mod:`hfcl.hub.privacy`); binary files unchanged."""
    roots = privacy.local_roots([root]) if roots is None else roots
    cleaned_files: dict[str, bytes | Path] = dict(files)
    for path, source in files.items():
        if privacy.is_text_file(path):
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            cleaned = privacy.scrub_bytes(data, root, roots)
            if cleaned != data:
                cleaned_files[path] = cleaned
                logger.info("Replaced local paths in %s before staging it.", path)
    return cleaned_files


def private_free(run: RunDir, roots: list[str] | None = None) -> RunDir:
    """``run`` with this machine's paths replaced in its metadata and text files (see :mod:`hfcl.hub.privacy`):
    embedded bases become ``hfcl:<stage>@<hash>``, Hub cache snapshots ``org/name`` + revision, paths inside the
    run directory relative paths, any other local path its last component. Weights are staged unchanged."""
    roots = privacy.local_roots([run.path]) if roots is None else roots

    def clean(data: Any) -> Any:
        return privacy.scrub(data, run.path, roots)

    adapter = None
    if run.adapter_config is not None:
        adapter = dict(run.adapter_config)
        base = adapter.get("base_model_name_or_path")
        if isinstance(base, str) and base.startswith("/"):
            named = privacy.symbolic_path(base, run.path)
            if "@" in named and not named.startswith("hfcl:"):  # a Hub cache snapshot: id + revision
                named, _, sha = named.partition("@")
                adapter["revision"] = adapter.get("revision") or sha
            adapter["base_model_name_or_path"] = named
        adapter = clean(adapter)
    files = scrub_staged({p: s for p, s in run.files.items() if p != "adapter_config.json"}, run.path, roots)
    if "adapter_config.json" in run.files:
        files["adapter_config.json"] = run.files["adapter_config.json"]
        if adapter != run.adapter_config:
            files["adapter_config.json"] = (json.dumps(adapter, indent=2, sort_keys=True) + "\n").encode("utf-8")
    files = dict(sorted(files.items()))
    return dataclasses.replace(
        run, files=files, run=clean(run.run), report=clean(run.report),
        comparisons={k: clean(v) for k, v in run.comparisons.items()}, adapter_config=adapter,
        model_config=clean(run.model_config))


def weights_mismatch(run: RunDir, report: Mapping[str, Any] | None) -> str | None:
    """A warning when the report says it evaluated weights (``sha256:`` revision, as ``hfcl eval`` records for local
    folders) other than the ones this run directory pushes; ``None`` when they match or nothing is recorded."""
    from ..utils.io import sha256_file

    model = (report or {}).get("model") or {}
    key, weights = (("adapter_revision", "adapter_model.safetensors") if run.kind == "adapter"
                    else ("revision", "model.safetensors"))
    recorded = model.get(key)
    if not (isinstance(recorded, str) and recorded.startswith("sha256:")) or weights not in run.files:
        return None
    actual = sha256_file(run.files[weights])
    if actual.startswith(recorded.removeprefix("sha256:")):
        return None
    return (f"eval_report.json was computed on weights with {recorded}, but this repo's {weights} has sha256:"
            f"{actual[:16]}: the numbers may describe another model. Re-run `hfcl eval` on this folder.")


def check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"repo_id={repo_id!r} is not a valid Hub repo id: {exc}") from exc
    if "/" not in repo_id:
        raise ConfigError(f"repo_id={repo_id!r}: give it as 'namespace/name' (your user name or an organization).")


# --- committing ---------------------------------------------------------------------------------------------------
def resolve_token(token: str | None = None) -> str:
    """The token from ``token=``, ``HF_TOKEN`` or the ``hf auth login`` store; :class:`HubAuthError` if none."""
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubAuthError(f"No Hugging Face token found, so nothing can be pushed. {LOGIN_HINT}")
    return token


def with_retries(fn: Callable[[], T], action: str, target: str, retries: int = 4, retry_wait: float = 1.0,
                 max_wait: float = 30.0) -> T:
    """Call ``fn``; retry transient Hub errors with exponential backoff; translate failures to hfcl errors.

    Why not ``huggingface_hub.utils.http_backoff``: it retries one HTTP request, and the client already uses it
    for what is safe to resend (preupload, LFS transfers). The calls retried here (``create_repo``,
    ``create_commit``, refs) go through the client's plain session, and a commit POST is not idempotent (the
    client itself does not retry it): between attempts ``fn`` must look again at the repo (stale files, the pull
    request a lost answer opened), which only a loop around the whole operation can do.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if is_transient(exc) and attempt <= retries:
                wait = min(max_wait, retry_wait * 2 ** (attempt - 1))
                logger.warning("%s %s failed (%s); retry %d/%d in %.1fs", action, target, type(exc).__name__,
                               attempt, retries, wait)
                time.sleep(wait)
                continue
            error = translate(exc, action, target, attempts=attempt)
            if error is None:
                raise
            raise error from exc


def commit_plan(plan: PushPlan, *, private: bool = False, revision: str | None = None, create_pr: bool = False,
                tag: str | None = None, branch_from: str | None = None, token: str | None = None,
                endpoint: str | None = None, delete_stale: bool = True, space_sdk: str | None = None,
                commit_message: str | None = None, retries: int = 4, retry_wait: float = 1.0) -> PushResult:
    """Create the repo if needed (and the branch), then commit every staged file in ONE ``create_commit``."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    if plan.repo_type not in REPO_TYPES:
        raise ConfigError(f"repo_type={plan.repo_type!r}: choose one of {', '.join(REPO_TYPES)}.")
    if tag is not None and create_pr:
        raise ConfigError("tag and create_pr cannot be combined: a pull request is not merged yet, tag after merging.")
    token = resolve_token(token)
    plan.check_secret(token)
    api = HfApi(endpoint=endpoint, token=token, library_name="hfcl", library_version=__version__)
    branch = revision or "main"
    target = f"{plan.repo_type} repo {plan.repo_id}" + (f"@{branch}" if branch != "main" else "")

    def call(action: str, fn: Callable[[], T]) -> T:
        return with_retries(fn, action, target, retries=retries, retry_wait=retry_wait)

    repo_url = call("create", lambda: api.create_repo(plan.repo_id, repo_type=plan.repo_type, private=private,
                                                      exist_ok=True, space_sdk=space_sdk))
    if branch != "main" and not branch.startswith("refs/pr/"):
        call("create the branch of", lambda: api.create_branch(plan.repo_id, branch=branch, revision=branch_from,
                                                               repo_type=plan.repo_type, exist_ok=True))
    if tag is not None:  # fail before committing when the tag already names another commit
        def refs():
            try:
                return api.list_repo_refs(plan.repo_id, repo_type=plan.repo_type)
            except RepositoryNotFoundError:
                return None

        existing = call("read the refs of", refs)
        tagged = next((t.target_commit for t in existing.tags if t.name == tag), None) if existing else None
        head = next((b.target_commit for b in existing.branches if b.name == branch), None) if existing else None
        if tagged is not None and tagged != head:
            raise HubError(f"Tag {tag!r} of {plan.repo_id} already points to commit {tagged}. Tags are immutable: "
                           "choose another tag name or delete that tag. Nothing was pushed.")

    def remote_files() -> list[str]:
        try:
            return api.list_repo_files(plan.repo_id, repo_type=plan.repo_type, revision=branch)
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
            return []

    # A pull request is opened by the commit itself, so a retry after a lost answer would open a second one; every
    # PR push carries a marker of its own in its description, and a retry first looks for the PR that carries it.
    description = plan.commit_description
    marker = f"<!-- hfcl-push-id: {uuid.uuid4().hex} -->" if create_pr else ""
    if marker:
        description = f"{description}\n\n{marker}" if description else marker
    attempts = {"commit": 0}

    def commit():
        attempts["commit"] += 1
        if create_pr and attempts["commit"] > 1:
            opened = find_pull_request(api, plan.repo_id, plan.repo_type, marker,
                                       title=commit_message or plan.commit_message)
            if opened is not None:
                logger.info("The pull request of the lost answer was opened: %s", opened.pr_url)
                return opened
        # recomputed on every attempt: if a previous attempt landed but its answer was lost, nothing is stale any
        # more and every file is unchanged, so the retry makes no second commit
        stale = [p for p in remote_files() if p not in plan.files and (p == "README.md" or is_allowed(p))] \
            if delete_stale else []
        operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=s if isinstance(s, bytes) else str(s))
                      for p, s in plan.files.items()]
        operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
        return api.create_commit(plan.repo_id, operations, commit_message=commit_message or plan.commit_message,
                                 commit_description=description, repo_type=plan.repo_type,
                                 revision=branch, create_pr=create_pr)

    info = call("commit to", commit)
    if tag is not None:
        call("tag", lambda: api.create_tag(plan.repo_id, tag=tag, revision=info.oid, repo_type=plan.repo_type,
                                           tag_message=plan.commit_message, exist_ok=True))
        tags = call("read the tags of", lambda: api.list_repo_refs(plan.repo_id, repo_type=plan.repo_type).tags)
        tagged = next((t.target_commit for t in tags if t.name == tag), None)
        if tagged != info.oid:
            raise HubError(f"Tag {tag!r} of {plan.repo_id} already points to commit {tagged}, not to the commit just "
                           f"pushed ({info.oid}). Tags are immutable: choose another tag name or delete that tag.")
    logger.info("Pushed %d file(s) to %s in commit %s", len(plan.files), target, info.oid)
    return PushResult(repo_id=plan.repo_id, repo_type=plan.repo_type, revision=info.pr_revision or branch,
                      files=list(plan.files), commit_oid=info.oid, commit_url=info.commit_url, pr_url=info.pr_url,
                      pr_revision=info.pr_revision, tag=tag, repo_url=str(repo_url), skipped=plan.skipped)


def find_pull_request(api: Any, repo_id: str, repo_type: str, marker: str, title: str | None = None,
                      limit: int = 20) -> Any:
    """The ``CommitInfo`` of the open pull request of ``repo_id`` whose description holds ``marker``, else ``None``.

    Looks at the newest ``limit`` open pull requests (of the token's user, titled ``title`` when given); only
    their candidates' details are fetched. Used before retrying a ``create_pr`` commit whose answer was lost.
    """
    from huggingface_hub import CommitInfo
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        user = api.whoami().get("name")
    except Exception:  # noqa: BLE001 - the filter is an optimisation only
        user = None
    try:
        candidates = []
        for discussion in api.get_repo_discussions(repo_id, repo_type=repo_type, discussion_type="pull_request",
                                                   discussion_status="open", author=user):
            if title is None or discussion.title == title:
                candidates.append(discussion)
            if len(candidates) >= limit:
                break
        for discussion in candidates:
            details = api.get_discussion_details(repo_id, discussion.num, repo_type=repo_type)
            if not any(marker in (getattr(event, "content", "") or "") for event in details.events):
                continue
            ref = f"refs/pr/{discussion.num}"
            refs = api.list_repo_refs(repo_id, repo_type=repo_type, include_pull_requests=True)
            oid = next((r.target_commit for r in refs.pull_requests or [] if r.ref == ref), None)
            prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]
            return CommitInfo(commit_url=f"{api.endpoint}/{prefix}{repo_id}/commit/{oid}",
                              commit_message=discussion.title, commit_description=marker, oid=oid,
                              pr_url=discussion.url, _endpoint=api.endpoint)
    except RepositoryNotFoundError:
        return None
    return None


def push_run(run_dir: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
             create_pr: bool = False, tag: str | None = None, branch_from: str | None = None,
             dry_run: str | os.PathLike | None = None, token: str | None = None, endpoint: str | None = None,
             commit_message: str | None = None, card: str = "render", report: Any = None,
             comparisons: Mapping[str, Any] | None = None, base_model: str | Sequence[str] | None = None,
             license: str | None = None, datasets: Sequence[str] | None = None, tags: Sequence[str] = (),
             dataset_id: str | None = None, delete_stale: bool = True, retries: int = 4,
             retry_wait: float = 1.0) -> PushResult:
    """Push a run directory (PEFT adapter or full model + tokenizer + card + ``eval_report.json`` + plots +
    ``hfcl_run.json``) to ``repo_id`` in one commit.

    ``revision``: a branch (created from ``branch_from`` or ``main`` when missing); ``create_pr``: open a pull
    request against it instead of committing; ``tag``: tag the new commit (for example ``stage-3``);
    ``dry_run``: write the exact files to that folder and push nothing; ``delete_stale``: remove files of an
    earlier hfcl push (allow-listed names only) that this run no longer has. Card options: see
    :func:`hfcl.hub.cards.render_model_card`.
    """
    plan = prepare_push(run_dir, repo_id, card=card, report=report, comparisons=comparisons, base_model=base_model,
                        license=license, datasets=datasets, tags=tags, dataset_id=dataset_id)
    if dry_run is not None:
        from huggingface_hub import get_token

        plan.check_secret(token or get_token())
        folder = plan.write(dry_run)
        return PushResult(repo_id=repo_id, repo_type="model", revision=revision or "main", files=list(plan.files),
                          dry_run_dir=folder, skipped=plan.skipped)
    return commit_plan(plan, private=private, revision=revision, create_pr=create_pr, tag=tag,
                       branch_from=branch_from, token=token, endpoint=endpoint, delete_stale=delete_stale,
                       commit_message=commit_message, retries=retries, retry_wait=retry_wait)


def push_stages(run_dirs: Sequence[str | os.PathLike], repo_id: str, *, mode: str = "tag",
                name: str = "stage-{index}", **kwargs: Any) -> list[PushResult]:
    """Push the stages of a continual run in order, one ref per stage.

    ``mode="tag"``: every stage is a commit on ``main`` (which ends at the last stage) tagged ``name``;
    ``mode="branch"``: every stage goes to its own branch ``name``, each started from the previous stage.
    ``name`` is formatted with ``index`` (1-based) and ``dir`` (the stage folder's name).
    """
    if mode not in ("tag", "branch"):
        raise ConfigError(f"mode={mode!r}: choose 'tag' or 'branch'.")
    results: list[PushResult] = []
    for index, run_dir in enumerate(run_dirs, start=1):
        ref = name.format(index=index, dir=Path(run_dir).name)
        if mode == "tag":
            results.append(push_run(run_dir, repo_id, tag=ref, **kwargs))
        else:
            start = results[-1].revision if results else None
            results.append(push_run(run_dir, repo_id, revision=ref, branch_from=start, **kwargs))
    return results


def push_space(folder: str | os.PathLike, repo_id: str, *, card: Any = None, private: bool = False,
               revision: str | None = None, create_pr: bool = False, dry_run: str | os.PathLike | None = None,
               token: str | None = None, endpoint: str | None = None, space_sdk: str = "gradio",
               retries: int = 4, retry_wait: float = 1.0) -> PushResult:
    """Create a Space (``space_sdk``) and upload ``folder`` (``app.py``, ``requirements.txt``, ...) in one commit;
    ``card`` (a :func:`~hfcl.hub.cards.render_space_card` result or text) becomes its README.md. A free account gets
    :class:`HubPaymentRequiredError` (402) for Gradio/Docker Spaces."""
    check_repo_id(repo_id)
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"Space folder {str(root)!r} does not exist.")
    files: dict[str, bytes | Path] = {
        p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(root).parts)
        and p.suffix != ".pyc"}
    if card is not None:
        files["README.md"] = str(card).encode("utf-8")
    if "README.md" not in files:
        raise ConfigError(f"{str(root)!r} has no README.md and no card was given: a Space needs its metadata card.")
    files = scrub_staged(files, root)
    plan = PushPlan(repo_id=repo_id, files=files, repo_type="space", card=PushPlan.read_text(files["README.md"]),
                    commit_message="Upload Space with hfcl")
    if dry_run is not None:
        from huggingface_hub import get_token

        plan.check_secret(token or get_token())
        return PushResult(repo_id=repo_id, repo_type="space", revision=revision or "main", files=list(files),
                          dry_run_dir=plan.write(dry_run))
    return commit_plan(plan, private=private, revision=revision, create_pr=create_pr, token=token,
                       endpoint=endpoint, delete_stale=False, space_sdk=space_sdk, retries=retries,
                       retry_wait=retry_wait)


def ensure_not_in(secret: str | None, folder: str | os.PathLike) -> None:
    """Raise :class:`TokenLeakError` if any file under ``folder`` contains ``secret`` (used by tests and the CLI)."""
    if not secret:
        return
    needle = secret.encode()
    leaked = [str(p) for p in Path(folder).rglob("*") if p.is_file() and contains(p, needle)]
    if leaked:
        raise TokenLeakError(f"The Hub token appears in: {', '.join(leaked)}")


__all__ = [
    "HubError",
    "PushPlan",
    "PushResult",
    "check_repo_id",
    "commit_plan",
    "ensure_not_in",
    "prepare_push",
    "push_run",
    "push_space",
    "push_stages",
    "resolve_token",
    "with_retries",
]
