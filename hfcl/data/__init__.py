"""The embedded fictitious world (TOFU / MUSE schema) and loaders for the real datasets.

>>> from hfcl.data import load_tofu
>>> splits = load_tofu("forget10")
>>> sorted(splits)
['forget', 'holdout', 'real_authors', 'retain', 'world_facts']
"""

from .corpus import real_author_rows, world_fact_rows, world_text
from .formatting import IGNORE_INDEX, example_to_messages, render_prompt, tokenize_example, tokenize_text
from .tofu import (
    FORGET_SPLITS,
    RETAIN_OF,
    get_world,
    load_muse,
    load_tofu,
    to_tofu_schema,
    world_splits,
)
from .world import Author, World, WorldConfig, author_passage, generate_world

__all__ = [
    "FORGET_SPLITS",
    "IGNORE_INDEX",
    "RETAIN_OF",
    "Author",
    "World",
    "WorldConfig",
    "author_passage",
    "example_to_messages",
    "generate_world",
    "get_world",
    "load_muse",
    "load_tofu",
    "real_author_rows",
    "render_prompt",
    "to_tofu_schema",
    "tokenize_example",
    "tokenize_text",
    "world_fact_rows",
    "world_splits",
    "world_text",
]
