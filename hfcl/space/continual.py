"""The Space's Continual tab: a continual run (``hfcl continual``'s folder, or a Hub repo pushed with
``hfcl push --stages``), one stage at a time.

For a stage: the heat map of R up to it (forget rows framed in red), what the step learned or forgot, and the
answers of that stage's model to a few questions of every task (and to rows a forget event deleted) next to the
previous stage's answers. Stage models are loaded on demand and the last few are kept.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

KEEP_MODELS = 3  # stage models kept in memory (a stage view needs two)


@dataclass
class StageRef:
    """One stage: its step (1-based), kind, name and where its model is (a local folder or a Hub branch)."""

    step: int
    kind: str
    name: str
    ref: str
    local: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.step} · {'forget' if self.kind == 'forget' else 'learn'} {self.name}"


class ContinualRun:
    """A continual run to browse: ``source`` is a local run folder or a Hub repo id (branches = stages)."""

    def __init__(self, source: str | os.PathLike, loader: Any = None) -> None:
        self.source = str(source)
        self.local = Path(source).is_dir()
        root = Path(source) if self.local else Path(self._download_main())
        matrix_file = root / "accuracy_matrix.json"
        if not matrix_file.is_file():
            raise ConfigError(f"--continual {self.source!r}: no accuracy_matrix.json; give an `hfcl continual` run "
                              "folder or a Hub repo pushed with `hfcl push --stages`.")
        self.matrix = json.loads(matrix_file.read_text(encoding="utf-8"))
        examples = root / "stream_examples.json"
        self.examples = json.loads(examples.read_text(encoding="utf-8")) if examples.is_file() else {"tasks": {}}
        self.stages = self._local_stages(root) if self.local else self._hub_stages()
        if not self.stages:
            raise ConfigError(f"--continual {self.source!r}: no stages found (stages/task-K-NAME folders, or "
                              "branches named like them).")
        self._loader = loader
        self.start: StageRef | None = None  # the model before the stream (a local run's starting folder)
        record = root / "hfcl_run.json"
        if self.local and record.is_file():
            path = (json.loads(record.read_text(encoding="utf-8")).get("base_model") or {}).get("path")
            if path and Path(path).is_dir():
                self.start = StageRef(0, "start", "before", "start", Path(path))
        self._models: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._plots = tempfile.mkdtemp(prefix="hfcl-space-continual-")

    # --- where things are -----------------------------------------------------------------------------------------
    def _download_main(self) -> str:
        from huggingface_hub import snapshot_download

        return snapshot_download(self.source, allow_patterns=["accuracy_matrix.json", "stream_examples.json"])

    @staticmethod
    def _local_stages(root: Path) -> list[StageRef]:
        from ..hub.stages import read_stages

        stages, _ = read_stages(root)
        return [StageRef(s.step, s.kind, s.name, s.ref, s.path) for s in stages]

    def _hub_stages(self) -> list[StageRef]:
        from huggingface_hub import HfApi

        from ..hub.stages import STAGE_DIR

        labels = list(self.matrix.get("rows") or [])
        tasks = set(self.matrix.get("tasks") or [])
        out = []
        for branch in HfApi().list_repo_refs(self.source).branches:
            match = STAGE_DIR.fullmatch(branch.name)
            if match:
                name, step = match.group(3), int(match.group(2))
                if step < len(labels):
                    name = labels[step].removeprefix("after ")
                kind = "learn" if match.group(1) == "task" and name in tasks else "forget"
                out.append(StageRef(step, kind, name, branch.name))
        return sorted(out, key=lambda s: s.step)

    def stage(self, label_or_step: str | int) -> StageRef:
        for s in self.stages:
            if label_or_step in (s.step, s.label, s.ref, str(s.step)):
                return s
        raise ConfigError(f"Unknown stage {label_or_step!r}; choose one of {', '.join(s.label for s in self.stages)}.")

    def model(self, stage: StageRef):
        """``(model, tokenizer)`` of a stage (loaded once; the last :data:`KEEP_MODELS` are kept)."""
        with self._lock:
            if stage.ref in self._models:
                self._models.move_to_end(stage.ref)
                return self._models[stage.ref]
        if self._loader is not None:
            pair = self._loader(stage)
        else:
            from ..zoo import load_model

            if stage.local is not None:
                path = str(stage.local)
            else:
                from huggingface_hub import snapshot_download

                path = snapshot_download(self.source, revision=stage.ref)
            pair = load_model(path)
        pair[0].eval()
        with self._lock:
            self._models[stage.ref] = pair
            while len(self._models) > KEEP_MODELS:
                self._models.popitem(last=False)
        return pair

    # --- what a stage shows ---------------------------------------------------------------------------------------
    def heatmap(self, stage: StageRef) -> str:
        """PNG path: R up to ``stage``, forget rows framed."""
        from ..hub.plots import accuracy_matrix

        rows = stage.step + 1
        labels = list(self.matrix.get("rows") or [])[:rows]
        tasks = list(self.matrix["tasks"])
        marked = [i for i, label in enumerate(labels) if i and label.removeprefix("after ") not in tasks]
        _, png = accuracy_matrix(self.matrix["matrix"][:rows], tasks, row_labels=labels or None, marked_rows=marked)
        path = Path(self._plots) / f"R-{stage.step}.png"
        path.write_bytes(png)
        return str(path)

    def describe(self, stage: StageRef) -> str:
        """Markdown: what the step did and its scores on every task."""
        row = self.matrix["matrix"][stage.step]
        previous = self.matrix["matrix"][stage.step - 1]
        scores = ", ".join(f"`{t}` {v:.3f} ({v - p:+.3f})" for t, v, p in zip(self.matrix["tasks"], row, previous))
        if stage.kind == "forget":
            event = next((e for e in self.matrix.get("forget_events") or [] if e.get("name") == stage.name), {})
            what = (f"**Forget event `{stage.name}`**: unlearned {event.get('n_forget', '?')} rows of task "
                    f"`{event.get('task', '?')}` with {event.get('method', '?')}; deleted rows "
                    f"{event.get('forgotten_before', float('nan')):.3f} → {event.get('forgotten_after', float('nan')):.3f}"
                    f" (never learned: {event.get('never_learned', float('nan')):.3f}).")
        else:
            what = f"**Learned task `{stage.name}`**."
        return f"Stage {stage.step} of {len(self.stages)}. {what}\n\nScores after it (change): {scores}"

    def questions(self) -> list[tuple[str, dict[str, str]]]:
        """``(group, {question, answer})`` asked at every stage: each task's examples, then deleted rows."""
        out = [(task, qa) for task, rows in (self.examples.get("tasks") or {}).items() for qa in rows]
        for name, event in (self.examples.get("forget_events") or {}).items():
            out += [(f"{name} (deleted)", qa) for qa in event.get("rows", [])]
        return out

    def answers(self, stage: StageRef, max_new_tokens: int = 40) -> list[list[str]]:
        """Rows ``[group, question, truth, previous stage's answer, this stage's answer]``."""
        from ..zoo.train import greedy_answers

        qs = self.questions()
        if not qs:
            return []
        questions = [qa["question"] for _, qa in qs]
        model, tok = self.model(stage)
        now = greedy_answers(model, tok, questions, max_new_tokens=max_new_tokens)
        k = self.stages.index(stage)
        previous = self.stages[k - 1] if k > 0 else self.start
        if previous is not None:
            before_model, before_tok = self.model(previous)
            before = greedy_answers(before_model, before_tok, questions, max_new_tokens=max_new_tokens)
        else:
            before = ["(the model before the stream is not part of the run)"] * len(qs)
        return [[group, qa["question"], qa["answer"], b, a] for (group, qa), b, a in zip(qs, before, now)]


ANSWER_HEADERS = ["task", "question", "truth", "previous stage", "this stage"]

__all__ = ["ANSWER_HEADERS", "ContinualRun", "StageRef"]
