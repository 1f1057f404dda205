"""Experience replay: a reservoir buffer over dataset indices, mixed into each new task at data level."""

from __future__ import annotations

import random
from typing import Any

import torch

from .base import Strategy


def reservoir_update(buffer: list, seen: int, items, capacity: int, rng: random.Random) -> int:
    """Vitter's algorithm R: after the call ``buffer`` is a uniform sample of every item seen so far.

    For the n-th item (1-based): append while the buffer is not full, else replace a random slot with probability
    ``capacity / n``. Returns the new count of items seen.
    """
    for item in items:
        seen += 1
        if len(buffer) < capacity:
            buffer.append(item)
        else:
            slot = rng.randrange(seen)
            if slot < capacity:
                buffer[slot] = item
    return seen


def replay_count(n_new: int, ratio: float) -> int:
    """Replayed examples mixed into a task of ``n_new`` examples (``ratio`` per new example, at least one)."""
    return max(1, round(ratio * n_new))


class ReplayMix(torch.utils.data.Dataset):
    """A task's rows followed by ``m`` replay slots whose examples are drawn again every epoch.

    Drawing per epoch (seeded by ``(seed, task, epoch)``) spreads the same replay budget over more of the buffer.
    """

    def __init__(self, rows: list[dict], buffer: list[tuple[int, int]], task_rows: list[list[dict]], m: int,
                 seed: str):
        self.rows, self.buffer, self.task_rows, self.m, self.seed = rows, list(buffer), task_rows, m, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        draw = random.Random(f"{self.seed}-{self.epoch}")
        if self.m <= len(self.buffer):
            self.picked = draw.sample(self.buffer, self.m)
        else:
            self.picked = [self.buffer[i % len(self.buffer)] for i in range(self.m)]

    def __len__(self) -> int:
        return len(self.rows) + self.m

    def __getitem__(self, i: int) -> dict:
        if i < len(self.rows):
            return dict(self.rows[i])
        t, j = self.picked[i - len(self.rows)]
        return dict(self.task_rows[t][j])


class Replay(Strategy):
    """Rehearsal: task ``k`` trains on its rows plus ``replay_ratio`` × as many rows drawn from the buffer.

    The buffer holds ``(task, row)`` indices (never tensors); it is a uniform reservoir sample of all earlier tasks'
    training rows, updated at each task's end. Each epoch of task ``k`` draws its replayed rows afresh (seeded by
    ``(seed, k, epoch)``); the task's examples per epoch grow by ``replay_ratio`` exactly.
    """

    name = "replay"

    def __init__(self, args) -> None:
        super().__init__(args)
        self.buffer: list[tuple[int, int]] = []
        self.seen = 0
        self.rng = random.Random(args.seed)
        self.last_mix: list[tuple[int, int]] = []

    def training_rows(self, trainer, task_index, rows):
        if not self.buffer:
            self.last_mix = []
            return rows
        m = replay_count(len(rows), self.args.replay_ratio)
        mix = ReplayMix(rows, self.buffer, trainer.task_rows, m, f"{self.args.seed}-{task_index}")
        self.last_mix = mix.picked
        return mix

    def end_task(self, trainer, task_index):
        n = len(trainer.task_rows[task_index])
        self.seen = reservoir_update(self.buffer, self.seen, [(task_index, i) for i in range(n)],
                                     self.args.replay_buffer_size, self.rng)

    def on_forget(self, trainer, task_index, indices):
        """Deleted rows leave the buffer at once: replaying them would train the deleted data back in."""
        gone = {(task_index, i) for i in indices}
        self.buffer = [x for x in self.buffer if tuple(x) not in gone]

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"buffer": [list(x) for x in self.buffer], "seen": self.seen,
                "rng": [version, list(internal), gauss]}

    def load_state_dict(self, state):
        self.buffer = [tuple(x) for x in state["buffer"]]
        self.seen = int(state["seen"])
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
