"""Continual learning via ``transformers.Trainer``: a task stream, composable strategies, one accuracy matrix.

>>> from hfcl.continual import ContinualConfig, run_stream, world_stream
>>> from hfcl.zoo import load_model
>>> model, tok = load_model("base")                                                    # doctest: +SKIP
>>> result = run_stream(world_stream(), ContinualConfig(output_dir="out/cl", strategy="replay,ewc"),
...                     model, tok)                                                    # doctest: +SKIP
>>> result.summary["forgetting"]                                                       # doctest: +SKIP

Strategies (:data:`STRATEGIES`): naive, replay, ewc, online_ewc, l2, lwf, olora, ema; schedules: per-task re-warm
(a fresh ``train()`` per task), the infinite schedule, ``warmup_stable_decay`` passthrough.
"""

from .callbacks import ForgettingMonitor
from .config import ContinualConfig
from .runner import ContinualResult, run_stream
from .scoring import score_tasks
from .strategies import STRATEGIES, Strategy, Term
from .stream import METRICS, ForgetEvent, Task, TaskStream, WorldStreamConfig, world_stream
from .trainer import ContinualTrainer

__all__ = [
           "METRICS",
           "STRATEGIES",
           "ContinualConfig",
           "ContinualResult",
           "ContinualTrainer",
           "ForgetEvent",
           "ForgettingMonitor",
           "Strategy",
           "Task",
           "TaskStream",
           "Term",
           "WorldStreamConfig",
           "run_stream",
           "score_tasks",
           "world_stream",
]
