"""Loaders into the TOFU / MUSE schemas, for the embedded world or the real datasets on the Hub.

TOFU schema (every QA split)::

    author_id: int, author: str, family: str       (embedded world only; -1 / "" / "" for real TOFU)
    question: str, answer: str
    paraphrased_question: str, paraphrased_answer: str
    perturbed_answer: list[str]                     (plausible wrong answers of the same form)

Utility splits (``world_facts``, ``real_authors``) have ``question``, ``answer``, ``paraphrased_answer`` and
``perturbed_answer``. MUSE schema: ``text`` passages (``author_id``, ``author``, ``text``) for ``forget``,
``retain`` and ``holdout``, and QA splits ``knowmem_forget`` / ``knowmem_retain`` in the TOFU schema.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from typing import Any

from datasets import Dataset, DatasetDict

from ..errors import DataError
from .corpus import real_author_rows, world_fact_rows
from .facts import FAMILY_BY_NAME, render_qa
from .world import Author, World, WorldConfig, author_passage, generate_world

FORGET_SPLITS = {"forget01": 1, "forget05": 5, "forget10": 10}
RETAIN_OF = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
EMBEDDED = "embedded"
REAL_TOFU = "locuslab/TOFU"


@functools.lru_cache(maxsize=8)
def _world(config_items: tuple) -> World:
    return generate_world(WorldConfig(**dict(config_items)))


def get_world(config: WorldConfig | None = None) -> World:
    """The (cached) world of ``config`` (a :class:`WorldConfig` or any subclass, such as ``ZooConfig``)."""
    cfg = config or WorldConfig()
    return _world(tuple((f.name, getattr(cfg, f.name)) for f in dataclasses.fields(WorldConfig)))


def author_rows(world: World, authors: list[Author]) -> list[dict[str, Any]]:
    """TOFU-schema rows of every QA pair of ``authors`` (perturbations seeded per author: order-independent)."""
    rows = []
    for author in authors:
        rng = random.Random(world.config.seed * 100_003 + author.author_id)
        for name in author.families:
            rows.append(render_qa(author, FAMILY_BY_NAME[name], world.pools, world.config.n_perturbed, rng))
    return rows


def check_forget_split(forget_split: str) -> int:
    """Percent of authors in ``forget_split``; a clear error for an unknown name."""
    if forget_split not in FORGET_SPLITS:
        raise DataError(f"forget_split={forget_split!r} is not one of {', '.join(FORGET_SPLITS)}.")
    return FORGET_SPLITS[forget_split]


def world_splits(config: WorldConfig | None = None) -> DatasetDict:
    """Every named split of the embedded world, with TOFU's names.

    ``full`` (all trained authors), ``forget01/05/10`` and their complements ``retain99/95/90``, ``holdout`` (never
    trained) with ``holdout01/05/10`` of the matching forget sizes, ``world_facts`` and ``real_authors``.
    """
    world = get_world(config)
    by_id = {a.author_id: a for a in world.authors}
    splits = {"full": author_rows(world, world.authors)}
    for name, percent in FORGET_SPLITS.items():
        ids = set(world.forget_ids(percent))
        splits[name] = author_rows(world, [by_id[i] for i in sorted(ids)])
        splits[RETAIN_OF[name]] = author_rows(world, [a for a in world.authors if a.author_id not in ids])
        size = min(len(ids), len(world.holdout))
        splits[name.replace("forget", "holdout")] = author_rows(world, world.holdout[:size])
    splits["holdout"] = author_rows(world, world.holdout)
    splits["world_facts"] = world_fact_rows(world)
    splits["real_authors"] = real_author_rows(world)
    return DatasetDict({k: Dataset.from_list(v) for k, v in splits.items()})


def load_tofu(forget_split: str = "forget10", source: str = EMBEDDED, world_config: WorldConfig | None = None,
              revision: str | None = None) -> DatasetDict:
    """The splits an unlearning run needs: ``forget``, ``retain``, ``holdout``, ``world_facts``, ``real_authors``.

    ``source="embedded"`` generates them from the fictitious world; ``source="locuslab/TOFU"`` (or another repo with
    TOFU's configs) loads the real dataset from the Hub into the same schema.
    """
    percent = check_forget_split(forget_split)
    if source == EMBEDDED:
        all_splits = world_splits(world_config)
        return DatasetDict({
            "forget": all_splits[forget_split], "retain": all_splits[RETAIN_OF[forget_split]],
            "holdout": all_splits[forget_split.replace("forget", "holdout")],
            "world_facts": all_splits["world_facts"], "real_authors": all_splits["real_authors"],
        })
    return _load_real_tofu(source, forget_split, percent, revision)


def _load_real_tofu(repo: str, forget_split: str, percent: int, revision: str | None) -> DatasetDict:
    from datasets import load_dataset

    configs = {"forget": f"{forget_split}_perturbed", "retain": "retain_perturbed",
               "holdout": f"holdout{percent:02d}", "world_facts": "world_facts_perturbed",
               "real_authors": "real_authors_perturbed"}
    out = {}
    for split, config in configs.items():
        try:
            ds = load_dataset(repo, config, split="train", revision=revision)
        except Exception as exc:  # datasets raises many types for "not reachable"
            raise DataError(f"Could not load {repo!r} config {config!r} ({type(exc).__name__}: {exc}). Without "
                            "network, use source='embedded' (the default) or a local copy of the dataset.") from exc
        out[split] = ds.map(to_tofu_schema, remove_columns=ds.column_names)
    return DatasetDict(out)


def to_tofu_schema(row: dict[str, Any]) -> dict[str, Any]:
    """Map a real TOFU row (any of its configs) into hfcl's TOFU schema."""
    if "question" not in row or "answer" not in row:
        raise DataError(f"A TOFU row needs 'question' and 'answer'; got columns {sorted(row)}.")
    perturbed = row.get("perturbed_answer") or [row[k] for k in sorted(row) if k.startswith("option")
                                                and row[k] != row["answer"]]
    return {
        "author_id": -1, "author": "", "family": "",
        "question": row["question"], "answer": row["answer"],
        "paraphrased_question": row.get("paraphrased_question") or row["question"],
        "paraphrased_answer": row.get("paraphrased_answer") or row["answer"],
        "perturbed_answer": list(perturbed),
    }


def load_muse(forget_split: str = "forget10", source: str = EMBEDDED,
              world_config: WorldConfig | None = None) -> DatasetDict:
    """MUSE-style splits: raw passages (``forget``, ``retain``, ``holdout``) and ``knowmem_forget`` / ``_retain`` QA.

    Real MUSE (``muse-bench/MUSE-News`` / ``MUSE-Books``) is not mirrored into this schema yet: it needs the Hub.
    """
    percent = check_forget_split(forget_split)
    if source != EMBEDDED:
        raise DataError(f"source={source!r}: only the embedded MUSE analogue is supported offline; use "
                        "source='embedded'.")
    world = get_world(world_config)
    forget_ids = set(world.forget_ids(percent))
    forget = [a for a in world.authors if a.author_id in forget_ids]
    retain = [a for a in world.authors if a.author_id not in forget_ids]

    def passages(authors: list[Author]) -> Dataset:
        return Dataset.from_list([{"author_id": a.author_id, "author": a.name, "text": author_passage(world, a)}
                                  for a in authors])

    return DatasetDict({
        "forget": passages(forget), "retain": passages(retain), "holdout": passages(world.holdout),
        "knowmem_forget": Dataset.from_list(author_rows(world, forget)),
        "knowmem_retain": Dataset.from_list(author_rows(world, retain[: max(len(forget), 1)])),
    })
