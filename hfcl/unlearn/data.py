"""Forget/retain data: validation, tokenization (answer tokens only), refusal answers and paired batches.

Each training example pairs one forget example with one retain example (the retain set cycles when it is shorter,
and its pairing rotates every epoch so a longer retain set is fully used). An epoch is one pass over the forget set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DataCollatorForSeq2Seq

from ..data.formatting import example_to_messages, tokenize_example
from ..errors import DataError

IDK_ANSWERS = (
    "I don't know.",
    "I'm not sure about that.",
    "I have no information about that.",
    "I can't answer that question.",
    "That is not something I know.",
    "I'm afraid I don't have that information.",
)
FORMATS = ("question+answer (TOFU)", "prompt+completion", "messages (conversational)")


def _rows(dataset) -> list[dict[str, Any]]:
    if dataset is None:
        return []
    if hasattr(dataset, "to_list"):
        return dataset.to_list()
    return [dict(r) for r in dataset]


def _check_columns(rows: list[dict[str, Any]], name: str) -> None:
    for i, row in enumerate(rows):
        ok = ("question" in row and "answer" in row) or "messages" in row or ("prompt" in row and "completion" in row)
        if not ok:
            raise DataError(f"{name} example {i} has columns {sorted(row)}; every example needs one of: "
                            f"{', '.join(FORMATS)}.")
        _check_text(row, name, i)


def _check_text(row: dict[str, Any], name: str, i: int) -> None:
    """The texts an example trains on must be non-empty strings (``answer=None`` would train on the word 'None')."""
    if "question" in row and "answer" in row:
        fields = {"question": row["question"], "answer": row["answer"]}
    elif "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{name} example {i}: 'messages' must be a non-empty list of {{role, content}} dicts.")
        fields = {f"messages[{j}].content": (m or {}).get("content") if isinstance(m, dict) else None
                  for j, m in enumerate(messages)}
    else:
        fields = {k: row[k] for k in ("prompt", "completion") if isinstance(row[k], (str, type(None)))}
    for key, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{name} example {i}: {key} is {value!r}; it must be a non-empty string (drop or fill "
                            "the rows with missing values).")


def _prompt_key(row: dict[str, Any]) -> str:
    messages, _ = example_to_messages(row)
    return json.dumps(messages, sort_keys=True)


def validate_unlearning_data(forget, retain, needs_retain: bool) -> tuple[list[dict], list[dict]]:
    """Rows of ``forget`` and ``retain`` after checking them; every problem is a :class:`DataError`."""
    forget_rows, retain_rows = _rows(forget), _rows(retain)
    if not forget_rows:
        raise DataError("The forget dataset is empty; pass at least one example to unlearn.")
    _check_columns(forget_rows, "forget")
    if needs_retain and not retain_rows:
        raise DataError("The retain term needs a non-empty retain_dataset; pass one or set retain_loss='none'.")
    _check_columns(retain_rows, "retain")
    forget_keys = {_prompt_key(r) for r in forget_rows}
    overlap = [r for r in retain_rows if _prompt_key(r) in forget_keys]
    if overlap:
        first = example_to_messages(overlap[0])[0][-1]["content"]
        raise DataError(f"{len(overlap)} retain example(s) ask the same question as a forget example (first: "
                        f"{first!r}); remove them from the retain set: a question cannot be forgotten and kept.")
    return forget_rows, retain_rows


def idk_example(row: dict[str, Any], index: int, answers: Sequence[str]) -> dict[str, Any]:
    """The forget example with its answer replaced by a refusal (``idk_answer`` column, else ``answers[i % n]``)."""
    refusal = row.get("idk_answer") or answers[index % len(answers)]
    messages, _ = example_to_messages(row)
    return {"messages": messages + [{"role": "assistant", "content": str(refusal)}]}


def tokenize_rows(tokenizer, rows: list[dict[str, Any]], max_length: int) -> list[dict[str, list[int]]]:
    return [tokenize_example(tokenizer, r, max_length) for r in rows]


class PairedUnlearningDataset(torch.utils.data.Dataset):
    """Item ``i`` = ``{"index": i, "forget": ..., "retain": ..., "idk": ...}`` (tokenized; parts present if given)."""

    def __init__(self, forget: list[dict], retain: list[dict] | None = None, idk: list[dict] | None = None,
                 seed: int = 0):
        self.forget, self.retain, self.idk = forget, retain or [], idk or []
        gen = torch.Generator().manual_seed(seed)
        self._order = torch.randperm(len(self.retain), generator=gen).tolist() if self.retain else []
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Rotate the retain pairing (called by the trainer at each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.forget)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {"index": i, "forget": self.forget[i]}
        if self.retain:
            item["retain"] = self.retain[self._order[(i + self.epoch * len(self.forget)) % len(self.retain)]]
        if self.idk:
            item["idk"] = self.idk[i]
        return item


class PairedCollator:
    """Pads each part separately (right padding, labels padded with -100) and stacks the forget indices."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")

    def pad_right(self, rows) -> dict[str, Any]:
        """``rows`` (tokenized examples) padded on the right whatever the tokenizer's side: positions stay the
        rows' own (what the WHP teacher's alignment needs)."""
        side, self.tokenizer.padding_side = self.tokenizer.padding_side, "right"
        try:
            return self.pad([dict(r) for r in rows])
        finally:
            self.tokenizer.padding_side = side

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {"index": torch.tensor([it["index"] for it in items], dtype=torch.long)}
        side, self.tokenizer.padding_side = self.tokenizer.padding_side, "right"
        try:
            for part in ("forget", "retain", "idk"):
                if part in items[0]:
                    batch[part] = self.pad([dict(it[part]) for it in items])
        finally:
            self.tokenizer.padding_side = side
        return batch


__all__ = [
    "IDK_ANSWERS",
    "PairedCollator",
    "PairedUnlearningDataset",
    "idk_example",
    "tokenize_rows",
    "validate_unlearning_data",
]
