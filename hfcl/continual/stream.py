"""Task streams: an ordered list of tasks (train set, eval set, metric) plus an optional general-knowledge probe.

A stream may also carry deletion requests (:class:`ForgetEvent`): after a given task, unlearn rows of a task learned
before (with any of hfcl's unlearning methods, the retain set being everything learned and not deleted so far).

A stream comes from Python (:class:`Task`, :class:`TaskStream`, :class:`ForgetEvent`), from YAML (:meth:`TaskStream.from_yaml`) or from the
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
      - forget: medicine           # a deletion request: unlearn rows of a task learned earlier
        rows: data/delete_me.jsonl # optional (default: every row of the task); each must be one of its train rows
        method: NPO                # optional: any hfcl unlearning method (default NPO, retain loss nll)
        options: {beta: 1.0}       # optional: UnlearningConfig values for this event
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
FORGET_KEYS = ("forget", "name", "rows", "method", "preset", "options")
ROW_COLUMNS = tuple(dict.fromkeys(c for cols in FORMATS.values() for c in cols))


def row_key(row: Mapping[str, Any]) -> str:
    """A row's identity for deletion: its content in the format's columns (other columns are ignored)."""
    import json

    return json.dumps({c: row[c] for c in ROW_COLUMNS if c in row}, sort_keys=True, default=str)


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


def question_answer(row: Mapping[str, Any]) -> dict[str, str]:
    """A row as ``{"question", "answer"}`` strings, whatever its format (messages: the last user and assistant
    turns), for showing examples (the Space's Continual tab)."""
    if "question" in row:
        return {"question": str(row["question"]), "answer": str(row["answer"])}
    if "prompt" in row:
        return {"question": str(row["prompt"]), "answer": str(row["completion"])}
    turns = list(row.get("messages") or [])
    user = [t.get("content", "") for t in turns if t.get("role") == "user"]
    assistant = [t.get("content", "") for t in turns if t.get("role") == "assistant"]
    return {"question": str(user[-1] if user else ""), "answer": str(assistant[-1] if assistant else "")}


def stream_examples(stream: TaskStream, n: int = 3) -> dict[str, Any]:
    """``stream_examples.json``: the first ``n`` eval rows of every task, and of the rows each forget event deletes,
    as question/answer pairs (what the Space asks every stage's model)."""
    out: dict[str, Any] = {"tasks": {t.name: [question_answer(r) for r in t.eval[:n]] for t in stream.tasks},
                           "forget_events": {}}
    for event in stream.forgets:
        task = stream.tasks[stream.task_index(event.task)]
        rows = [task.train[i] for i in stream.forget_indices(event)][:n]
        out["forget_events"][event.name] = {"task": event.task, "rows": [question_answer(r) for r in rows]}
    return out


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
class ForgetEvent:
    """A deletion request in a stream: after task ``after`` is learned, unlearn ``rows`` of the learned task ``task``.

    ``rows`` default to every training row of ``task``; each must be one of them (matched on content). ``method``
    is any hfcl unlearning method (``hfcl unlearn --method``), ``preset`` its recipe (``"demo"``), ``options`` more
    :class:`~hfcl.unlearn.UnlearningConfig` values. The retain set is every row learned and not deleted so far.
    """

    task: str
    after: str | None = None
    rows: Any = None
    name: str | None = None
    method: str = "NPO"
    preset: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.name or f"forget-{self.task}"
        self.rows = None if self.rows is None else _rows(self.rows, f"forget event {self.name!r} rows")
        if not isinstance(self.options, Mapping):
            raise ConfigError(f"forget event {self.name!r}: options must be a mapping of UnlearningConfig values.")
        self.options = dict(self.options)


@dataclass
class TaskStream:
    """An ordered list of :class:`Task` and an optional probe :class:`Task` (eval rows only)."""

    tasks: list[Task]
    probe: Task | None = None
    name: str = "stream"
    meta: dict[str, Any] = field(default_factory=dict)
    forgets: list[ForgetEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.forgets = list(self.forgets)
        self.validate()

    @property
    def steps(self) -> list[Task | ForgetEvent]:
        """Learn and forget steps in the order they run: each task, then the forget events placed after it."""
        out: list[Task | ForgetEvent] = []
        for task in self.tasks:
            out.append(task)
            out.extend(e for e in self.forgets if e.after == task.name)
        return out

    def task_index(self, name: str) -> int:
        return self.names.index(name)

    def forget_indices(self, event: ForgetEvent) -> list[int]:
        """Indices into ``task``'s train rows of the rows ``event`` deletes (validated to exist)."""
        task = self.tasks[self.task_index(event.task)]
        if event.rows is None:
            return list(range(len(task.train)))
        keys = {row_key(r) for r in event.rows}
        return [i for i, r in enumerate(task.train) if row_key(r) in keys]

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
        self._validate_forgets(seen, formats)
        if self.probe is not None:
            _check_metric(self.probe.metric, "probe")
            if not self.probe.eval:
                raise DataError("The probe has no eval rows; remove it or give it examples.")
            self._format_of(self.probe.eval, "probe")

    def _validate_forgets(self, task_names: set[str], formats: dict[str, str]) -> None:
        """Every forget event deletes existing rows of a task learned at or before the step it follows."""
        order = self.names
        seen: set[str] = set()
        for event in self.forgets:
            if not isinstance(event, ForgetEvent):
                raise DataError(f"Stream forget item {event!r} is a {type(event).__name__}, not a ForgetEvent.")
            where = f"forget event {event.name!r}"
            if event.name in task_names or event.name in seen:
                raise DataError(f"{where}: its name is used twice (tasks and events need distinct names).")
            seen.add(event.name)
            if event.task not in task_names:
                raise DataError(f"{where}: task {event.task!r} is never learned in this stream (tasks: "
                                f"{', '.join(order)}).")
            if event.after is None:
                event.after = order[-1]
            if event.after not in task_names:
                raise DataError(f"{where}: after={event.after!r} is not a task of this stream.")
            if order.index(event.task) > order.index(event.after):
                raise DataError(f"{where}: it runs after {event.after!r} but task {event.task!r} is only learned "
                                "later; a forget event can delete only what was learned before it.")
            if event.rows is not None:
                if not event.rows:
                    raise DataError(f"{where}: rows is empty; give the rows to delete or leave it unset (all rows).")
                task = self.tasks[order.index(event.task)]
                known = {row_key(r) for r in task.train}
                missing = [r for r in event.rows if row_key(r) not in known]
                if missing:
                    raise DataError(f"{where}: {len(missing)} of its {len(event.rows)} rows are not training rows "
                                    f"of task {event.task!r} (first: {dict(missing[0])}); a forget set must be "
                                    "contained in what was learned.")

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

        tasks, forgets = [], []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ConfigError(f"{where}: task {i} must be a mapping with keys {', '.join(TASK_KEYS)}.")
            if "forget" in item:
                _check_keys(item, FORGET_KEYS, f"{where} forget event {i}")
                if not tasks:
                    raise DataError(f"{where}: item {i} forgets {item['forget']!r} before any task is learned.")
                rows = item.get("rows")
                forgets.append(ForgetEvent(task=str(item["forget"]), after=tasks[-1].name,
                                           rows=resolve(rows) if rows is not None else None,
                                           name=item.get("name"), method=str(item.get("method", "NPO")),
                                           preset=item.get("preset"), options=item.get("options") or {}))
                continue
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
        return cls(tasks=tasks, probe=probe, name=str(data.get("name", "stream")), forgets=forgets)

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
                **({"forgets": [{"name": e.name, "task": e.task, "after": e.after, "method": e.method,
                                 "n_rows": len(self.forget_indices(e)), "options": e.options}
                                for e in self.forgets]} if self.forgets else {}),
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
    forget_after: int = field(default=0, metadata={
        "help": "Embedded stream: after learning task N, a deletion request unlearns the first --forget_authors "
                "authors of task 1 (0 = no forget event). E.g. --n_tasks 3 --forget_after 2: learn A, learn B, "
                "forget part of A, learn C."})
    forget_authors: int = field(default=1, metadata={
        "help": "Embedded stream: authors of task 1 the forget event deletes (fewer than --authors_per_task, so "
                "the kept ones show the collateral)."})
    forget_method: str = field(default="NPO", metadata={
        "help": "Unlearning method of the embedded forget event (any `hfcl unlearn --method`; retain loss nll)."})


def world_stream(world_config=None, n_tasks: int = 4, authors_per_task: int = 2, probe_size: int = 20,
                 metric: str = "probability", forget_after: int = 0, forget_authors: int = 1,
                 forget_method: str = "NPO") -> TaskStream:
    """The embedded default stream: ``n_tasks`` disjoint groups of fictitious authors (new knowledge for the zoo's
    ``base`` model, which never saw them) and a probe of ``probe_size`` world facts the base learned in pretraining.

    ``forget_after=k`` adds a deletion request after task ``k``: unlearn the first ``forget_authors`` authors of task 1
    with ``forget_method`` (``n_tasks=3, forget_after=2``: learn A, learn B, forget part of A, learn C).

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
    if forget_after and not 1 <= forget_after <= n_tasks:
        raise ConfigError(f"forget_after={forget_after} must name a task of the stream (1..{n_tasks}) or be 0.")
    if forget_after and not 1 <= forget_authors < authors_per_task:
        raise ConfigError(f"forget_authors={forget_authors} must be >= 1 and below authors_per_task="
                          f"{authors_per_task} (the kept authors of the task show what the deletion spared).")
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
    forgets = []
    if forget_after:
        group = world.authors[:forget_authors]
        rows = [{"question": r["question"], "answer": r["answer"]} for r in author_rows(world, group)]
        forgets.append(ForgetEvent(task="authors1", after=f"authors{forget_after}", rows=rows,
                                   name="forget-authors1", method=forget_method))
    return TaskStream(tasks=tasks, probe=probe, name="embedded-world", forgets=forgets,
                      meta={"world": {"n_tasks": n_tasks, "authors_per_task": authors_per_task,
                                      "probe_size": probe_size, "world_seed": world.config.seed,
                                      "forget_after": forget_after, "forget_authors": forget_authors}})


__all__ = ["METRICS", "ForgetEvent", "Task", "TaskStream", "WorldStreamConfig", "row_format", "world_stream"]
