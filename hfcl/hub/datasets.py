"""Push generated forget/retain splits as a Hub dataset (Parquet + card) in one commit.

``datasets`` writes the Parquet shards (``Dataset.to_parquet``) and the card metadata that ``load_dataset`` reads
(``configs`` with the data files per split and ``dataset_info`` with features and sizes); hfcl adds the card body
and commits shards and card together, with the same dry-run, branch/PR, retry and error handling as model pushes.
(``DatasetDict.push_to_hub`` cannot take a custom card in the same commit.)
"""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import DataError
from .push import PushPlan, PushResult, check_repo_id, commit_plan
from .repo_cards import render_dataset_card

TOFU_COLUMNS = {
    "author_id": "id of the fictitious author the row is about (splits are author-level)",
    "author": "the author's name", "family": "fact family the question asks about (birthplace, genre, ...)",
    "question": "the question", "answer": "the true answer",
    "paraphrased_question": "a paraphrase of the question", "paraphrased_answer": "a paraphrase of the answer",
    "perturbed_answer": "five plausible wrong answers of the same form (for the truth ratio)",
    "text": "a raw passage about the author (verbatim-memory and membership tests)",
}


def _size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "n>1M"


UTILITY_SPLITS = ("world_facts", "real_authors")


def group_by_columns(splits: Mapping[str, Any], config_name: str = "default") -> dict[str, dict[str, Any]]:
    """Split a flat ``{split: Dataset}`` mapping into configs of splits with the same columns (a Hub config has one
    schema): the first group is ``config_name``, TOFU's utility sets become ``utility``, any other group is named
    after its first split. ``load_tofu(...)`` gives ``default`` (forget/retain/holdout) and ``utility``."""
    groups: list[dict[str, Any]] = []
    for name, ds in splits.items():
        features = getattr(ds, "features", None)
        group = next((g for g in groups if getattr(next(iter(g.values())), "features", None) == features), None)
        if group is None:
            groups.append({name: ds})
        else:
            group[name] = ds
    configs: dict[str, dict[str, Any]] = {}
    for i, group in enumerate(groups):
        name = config_name if i == 0 else ("utility" if set(group) <= set(UTILITY_SPLITS) else next(iter(group)))
        configs[name if name not in configs else f"{name}_{i}"] = group
    return configs


def _as_configs(splits: Mapping[str, Any], config_name: str) -> dict[str, dict[str, Any]]:
    from datasets import Dataset

    if splits and all(isinstance(v, Mapping) for v in splits.values()):
        configs = {str(k): dict(v) for k, v in splits.items()}
    else:
        configs = group_by_columns(splits, config_name)
    for name, config in configs.items():
        if not config:
            raise DataError(f"Config {name!r} has no splits to push.")
        bad = [s for s, ds in config.items() if not isinstance(ds, Dataset)]
        if bad:
            raise DataError(f"Split(s) {', '.join(bad)} of config {name!r} are not datasets.Dataset objects.")
        empty = [s for s, ds in config.items() if len(ds) == 0]
        if empty:
            raise DataError(f"Split(s) {', '.join(empty)} of config {name!r} are empty; nothing to push.")
        first = next(iter(config.values())).features
        differ = [s for s, ds in config.items() if ds.features != first]
        if differ:
            raise DataError(f"Split(s) {', '.join(differ)} have other columns than the first split of config "
                            f"{name!r}; push them as another config: {{'{name}': {{...}}, 'other': {{...}}}} (or "
                            "pass a flat {split: Dataset} mapping, which is grouped by columns).")
    return configs


def prepare_dataset_push(splits: Mapping[str, Any], repo_id: str, *, config_name: str = "default",
                         license: str = "apache-2.0", pretty_name: str | None = None, summary: str | None = None,
                         generator: Mapping[str, Any] | None = None, tags: Sequence[str] = (),
                         language: Sequence[str] = ("en",)) -> PushPlan:
    """Stage Parquet shards (``data/<split>-00000-of-00001.parquet``, ``<config>/...`` for other configs) and the
    dataset card. ``splits`` maps split names to ``Dataset``s (grouped into configs by their columns, see
    :func:`group_by_columns`) or config names to such mappings."""
    from datasets import SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    check_repo_id(repo_id)
    if not splits:
        raise DataError("No splits to push: pass a DatasetDict or a mapping of split names to Dataset objects.")
    configs = _as_configs(splits, config_name)
    files: dict[str, bytes] = {}
    infos, data_files = {}, {}
    for config, config_splits in configs.items():
        folder = "data" if config == "default" else config
        split_dict = SplitDict()
        sizes = 0
        for name, ds in config_splits.items():
            buffer = io.BytesIO()
            ds.to_parquet(buffer)
            files[f"{folder}/{name}-00000-of-00001.parquet"] = buffer.getvalue()
            sizes += len(buffer.getvalue())
            split_dict.add(SplitInfo(name=name, num_bytes=ds.data.nbytes, num_examples=len(ds)))
        info = copy.deepcopy(next(iter(config_splits.values())).info)
        info.splits = split_dict
        info.download_size = sizes
        info.dataset_size = sum(s.num_bytes for s in split_dict.values())
        info.size_in_bytes = info.download_size + info.dataset_size
        infos[config] = info
        data_files[config] = {"data_files": [{"split": n, "path": f"{folder}/{n}-*"} for n in config_splits]}
    all_splits = {n: ds for config_splits in configs.values() for n, ds in config_splits.items()}
    rows = sum(len(ds) for ds in all_splits.values())
    card_data = DatasetCardData(
        license=license, language=list(language), pretty_name=pretty_name or repo_id.split("/")[-1],
        size_categories=[_size_category(rows)], task_categories=["question-answering", "text-generation"],
        tags=["hfcl", "machine-unlearning", "tofu", "synthetic", *tags])
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    MetadataConfigs(data_files).to_dataset_card_data(card_data)
    first_config = next(iter(configs))
    card = str(render_dataset_card(card_data, repo_id, all_splits, title=pretty_name, summary=summary,
                                   generator=generator, config_name=first_config,
                                   first_split=next(iter(configs[first_config])),
                                   column_descriptions=TOFU_COLUMNS))
    files["README.md"] = card.encode("utf-8")
    return PushPlan(repo_id=repo_id, files=dict(sorted(files.items())), repo_type="dataset", card=card,
                    commit_message=f"Upload {len(all_splits)} split(s) ({rows} rows) with hfcl",
                    commit_description="Splits: " + ", ".join(f"{n} ({len(d)})" for n, d in all_splits.items()))


def push_splits(splits: Mapping[str, Any], repo_id: str, *, private: bool = False, revision: str | None = None,
                create_pr: bool = False, tag: str | None = None, dry_run: str | os.PathLike | None = None,
                token: str | None = None, endpoint: str | None = None, retries: int = 4, retry_wait: float = 1.0,
                **card: Any) -> PushResult:
    """Push ``splits`` (e.g. ``load_tofu("forget10")``) to the dataset repo ``repo_id`` in one commit; load them back
    with ``datasets.load_dataset(repo_id)``. Card options (``license``, ``pretty_name``, ``summary``,
    ``generator``, ``tags``, ``config_name``) go to :func:`prepare_dataset_push`."""
    plan = prepare_dataset_push(splits, repo_id, **card)
    if dry_run is not None:
        from huggingface_hub import get_token

        plan.check_secret(token or get_token())
        return PushResult(repo_id=repo_id, repo_type="dataset", revision=revision or "main", files=list(plan.files),
                          dry_run_dir=plan.write(dry_run))
    # other configs' shards may live in the repo: only this config's folder and the card are replaced
    return commit_plan(plan, private=private, revision=revision, create_pr=create_pr, tag=tag, token=token,
                       endpoint=endpoint, delete_stale=False, retries=retries, retry_wait=retry_wait)
