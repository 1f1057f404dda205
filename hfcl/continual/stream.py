"""Task streams: an ordered list of tasks (train set, eval set, metric) plus an optional general-knowledge probe.

A stream comes from Python (:class:`Task`, :class:`TaskStream`), from YAML (:meth:`TaskStream.from_yaml`) or from the
embedded fictitious world (:func:`world_stream`): disjoint groups of fictitious authors learned one after another,
and a probe of world facts the base model already knows. Everything is validated before any training starts.

YAML::

    metric: probability            # default metric of every task: probability | rouge | exact_match
    tasks:
      - name: medicine
        train: data/medicine.jsonl # a .json/.jsonl/.csv/.parquet file or an inline list of rows
        eval: data/medicine_test.jsonl   # optional (default: the train rows)
        metric: rouge              # optional, overrides the stream's metric
      - name: law
        train: [{question: "...", answer: "..."}]
    probe:                         # optional: scored after every stage, not a column of R
      eval: data/general.jsonl
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError

METRICS = ("probability", "rouge", "exact_match")
FORMATS = {"tofu": ("question", "answer"), "prompt_completion": ("prompt", "completion"), "messages": ("messages",)}
STREAM_KEYS = ("name", "metric", "tasks", "probe")
TASK_KEYS = ("name", "train", "eval", "metric")
PROBE_KEYS = ("name", "eval", "metric")


def _rows(data: Any, where: str) -> list[dict[str, Any]]:
    if data is None:
        return []
    if isinstance(data, (str, os.PathLike)):
        return _read_file(Path(data), where)
    if hasattr(data, "to_list"):
        return data.to_list()
    try:
        return [dict(r) for r in data]
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: expected a dataset, a list of rows or a file path, got {type(data).__name__}.") \
            from exc


def _read_file(path: Path, where: str) -> list[dict[str, Any]]:
    kinds = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
    if not path.is_file():
        raise DataError(f"{where}: data file {str(path)!r} does not exist.")
    if path.suffix not in kinds:
        raise DataError(f"{where}: data file {str(path)!r} must end in {', '.join(kinds)}.")
    from datasets import load_dataset

    return load_dataset(kinds[path.suffix], data_files=str(path), split="train").to_list()


def row_format(row: Mapping[str, Any]) -> str | None:
    """The input format of one row (``tofu``, ``prompt_completion`` or ``messages``), None if it has none."""
    for name, cols in FORMATS.items():
        if all(c in row for c in cols):
            return name
    return None


def _check_metric(metric: str, where: str) -> str:
    if metric not in METRICS:
        close = difflib.get_close_matches(str(metric), METRICS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown metric {metric!r}{hint}; choose one of {', '.join(METRICS)}.")
    return metric


def _check_keys(data: Mapping[str, Any], valid: Sequence[str], where: str) -> None:
    unknown = [k for k in data if k not in valid]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"Unknown key(s) in {where}: {', '.join(hints)}. Valid keys: {', '.join(valid)}.")


@dataclass
class Task:
    """One task of a stream: rows to train on, rows to score, and the metric of its column in R.

    Rows are TOFU (``question``/``answer``), prompt-completion or conversational (``messages``); the loss is on
    answer tokens only. ``eval`` defaults to the training rows (knowledge acquisition: are the facts learned?).
    """

    name: str
    train: Any
    eval: Any = None
    metric: str = "probability"

    def __post_init__(self) -> None:
        self.train = _rows(self.train, f"task {self.name!r} train")
        self.eval = _rows(self.eval, f"task {self.name!r} eval") if self.eval is not None else list(self.train)


@dataclass
class TaskStream:
    """An ordered list of :class:`Task` and an optional probe :class:`Task` (eval rows only)."""

    tasks: list[Task]
    probe: Task | None = None
    name: str = "stream"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def metrics(self) -> list[str]:
        return [t.metric for t in self.tasks]

    def __len__(self) -> int:
        return len(self.tasks)

    def validate(self) -> None:
        """Raise :class:`DataError` / :class:`ConfigError` for anything that would fail later."""
        if not self.tasks:
            raise DataError("The stream has no task; give at least one.")
        seen: set[str] = set()
        formats: dict[str, str] = {}
        for i, task in enumerate(self.tasks):
            if not isinstance(task, Task):
                raise DataError(f"Stream item {i} is a {type(task).__name__}, not a Task.")
            if not task.name or task.name in seen:
                raise DataError(f"Task {i}: name {task.name!r} is empty or used twice; names label R's columns.")
            seen.add(task.name)
            _check_metric(task.metric, f"task {task.name!r}")
            for part in ("train", "eval"):
                rows = getattr(task, part)
                if not rows:
                    raise DataError(f"Task {task.name!r} has an empty {part} set; every task needs examples.")
                formats[f"{task.name}.{part}"] = self._format_of(rows, f"task {task.name!r} {part}")
        if len(set(formats.values())) > 1:
            listing = ", ".join(f"{k}: {v} ({'/'.join(FORMATS[v])})" for k, v in formats.items())
            raise DataError(f"The tasks' columns do not match ({listing}); convert every task to one format.")
        if self.probe is not None:
            _check_metric(self.probe.metric, "probe")
            if not self.probe.eval:
                raise DataError("The probe has no eval rows; remove it or give it examples.")
            self._format_of(self.probe.eval, "probe")

    @staticmethod
    def _format_of(rows: list[dict[str, Any]], where: str) -> str:
        found = {row_format(r) for r in rows}
        if None in found:
            bad = next(r for r in rows if row_format(r) is None)
            raise DataError(f"{where}: a row has columns {sorted(bad)}; every row needs one of "
                            f"{', '.join('+'.join(c) for c in FORMATS.values())}.")
        if len(found) > 1:
            raise DataError(f"{where}: rows mix formats {sorted(found)}; use one format per stream.")
        return found.pop()

    # ---- construction --------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str | os.PathLike = ".", where: str = "stream") -> \
            TaskStream:
        """Build from a mapping (the YAML schema in this module's docstring); relative paths are from ``base_dir``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping with a 'tasks' list, got {type(data).__name__}.")
        _check_keys(data, STREAM_KEYS, where)
        default_metric = _check_metric(data.get("metric", "probability"), where)
        items = data.get("tasks")
        if not isinstance(items, list) or not items:
            raise DataError(f"{where}: 'tasks' must be a non-empty list of tasks (each with name and train).")

        def resolve(value: Any) -> Any:
            if isinstance(value, str):
                path = Path(value)
                return path if path.is_absolute() else Path(base_dir) / path
            return value

        tasks = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ConfigError(f"{where}: task {i} must be a mapping with keys {', '.join(TASK_KEYS)}.")
            _check_keys(item, TASK_KEYS, f"{where} task {i}")
            if "train" not in item:
                raise DataError(f"{where}: task {i} ({item.get('name', '?')!r}) has no 'train' data.")
            tasks.append(Task(name=str(item.get("name", f"task{i + 1}")), train=resolve(item["train"]),
                              eval=resolve(item.get("eval")), metric=item.get("metric", default_metric)))
        probe = None
        if data.get("probe") is not None:
            item = data["probe"]
            _check_keys(item, PROBE_KEYS, f"{where} probe")
            if "eval" not in item:
                raise DataError(f"{where}: the probe needs 'eval' rows.")
            probe = Task(name=str(item.get("name", "probe")), train=[], eval=resolve(item["eval"]),
                         metric=item.get("metric", default_metric))
        return cls(tasks=tasks, probe=probe, name=str(data.get("name", "stream")))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TaskStream:
        """Read a stream YAML file (paths inside it are relative to the file)."""
        from ..config import read_yaml

        return cls.from_dict(read_yaml(path), base_dir=Path(path).parent, where=f"stream {str(path)!r}")

    def describe(self) -> dict[str, Any]:
        """What ``hfcl_run.json`` records about the stream."""
        from ..utils.io import stable_hash

        return {"name": self.name, "tasks": [{"name": t.name, "metric": t.metric, "n_train": len(t.train),
                                              "n_eval": len(t.eval), "fingerprint": stable_hash(t.train)}
                                             for t in self.tasks],
                "probe": None if self.probe is None else {"name": self.probe.name, "metric": self.probe.metric,
                                                          "n_eval": len(self.probe.eval)},
                **self.meta}


@dataclass
class WorldStreamConfig:
    """Sizes of the embedded default stream built from the fictitious world."""

    n_tasks: int = field(default=4, metadata={"help": "Tasks in the embedded stream (disjoint author groups)."})
    authors_per_task: int = field(default=2, metadata={"help": "Fictitious authors per task of the embedded stream."})
    probe_size: int = field(default=20, metadata={
        "help": "World-fact questions in the general-knowledge probe of the embedded stream (0 = no probe)."})
    metric: str = field(default="probability", metadata={
        "help": "Task metric of the embedded stream: probability (length-normalised answer probability), rouge "
                "(ROUGE-L recall of the greedy answer) or exact_match."})


def world_stream(world_config=None, n_tasks: int = 4, authors_per_task: int = 2, probe_size: int = 20,
                 metric: str = "probability") -> TaskStream:
    """The embedded default stream: ``n_tasks`` disjoint groups of fictitious authors (new knowledge for the zoo's
    ``base`` model, which never saw them) and a probe of ``probe_size`` world facts the base learned in pretraining.

    ``world_config`` is a :class:`~hfcl.data.WorldConfig` or a :class:`~hfcl.zoo.ZooConfig` (``tiny_config()`` for
    tests); the default is the default world.
    """
    from ..data import get_world, world_fact_rows
    from ..data.tofu import author_rows

    if n_tasks < 1 or authors_per_task < 1 or probe_size < 0:
        raise ConfigError(f"n_tasks={n_tasks} and authors_per_task={authors_per_task} must be >= 1, probe_size="
                          f"{probe_size} >= 0.")
    cfg = world_config.world_config() if hasattr(world_config, "world_config") else world_config
    world = get_world(cfg)
    need = n_tasks * authors_per_task
    if need > len(world.authors):
        raise ConfigError(f"The embedded stream needs n_tasks x authors_per_task = {need} authors but the world has "
                          f"{len(world.authors)}; lower one of them.")
    tasks = []
    for k in range(n_tasks):
        group = world.authors[k * authors_per_task:(k + 1) * authors_per_task]
        rows = [{"question": r["question"], "answer": r["answer"]} for r in author_rows(world, group)]
        tasks.append(Task(name=f"authors{k + 1}", train=rows, metric=metric))
    probe = None
    if probe_size:
        facts = world_fact_rows(world)
        step = max(1, len(facts) // probe_size)
        rows = [{"question": r["question"], "answer": r["answer"]} for r in facts[::step][:probe_size]]
        probe = Task(name="world_facts", train=[], eval=rows, metric=metric)
    return TaskStream(tasks=tasks, probe=probe, name="embedded-world",
                      meta={"world": {"n_tasks": n_tasks, "authors_per_task": authors_per_task,
                                      "probe_size": probe_size, "world_seed": world.config.seed}})


__all__ = ["METRICS", "Task", "TaskStream", "WorldStreamConfig", "row_format", "world_stream"]
