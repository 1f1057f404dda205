"""Task streams, configs, strategies' pure parts and schedules: validation before any training, formulas by hand."""

from __future__ import annotations

import math
import random

import pytest

from hfcl.continual import ContinualConfig, Task, TaskStream, world_stream
from hfcl.continual.schedules import infinite_factor
from hfcl.continual.strategies.replay import replay_count, reservoir_update
from hfcl.errors import ConfigError, DataError
from hfcl.zoo import tiny_config

QA = [{"question": "Q1?", "answer": "A1."}, {"question": "Q2?", "answer": "A2."}]


def test_world_stream_disjoint_tasks_and_probe():
    stream = world_stream(tiny_config(), n_tasks=4, authors_per_task=1, probe_size=10)
    assert stream.names == ["authors1", "authors2", "authors3", "authors4"]
    questions = [{r["question"] for r in t.train} for t in stream.tasks]
    assert all(len(q) == 8 for q in questions)  # tiny world: 8 QA pairs per author
    for i in range(4):
        for j in range(i + 1, 4):
            assert not questions[i] & questions[j]
    assert len(stream.probe.eval) == 10 and stream.probe.train == []
    assert world_stream(tiny_config(), n_tasks=2, authors_per_task=2, probe_size=0).probe is None
    with pytest.raises(ConfigError, match="authors"):
        world_stream(tiny_config(), n_tasks=20, authors_per_task=2)


def test_stream_validation_errors():
    with pytest.raises(DataError, match="no task"):
        TaskStream(tasks=[])
    with pytest.raises(DataError, match="empty train"):
        TaskStream(tasks=[Task("a", train=[])])
    mixed = [{"prompt": "p", "completion": "c"}]
    with pytest.raises(DataError, match="columns do not match"):
        TaskStream(tasks=[Task("a", train=QA), Task("b", train=mixed)])
    with pytest.raises(DataError, match="columns"):
        TaskStream(tasks=[Task("a", train=[{"text": "x"}])])
    with pytest.raises(ConfigError, match="unknown metric 'rogue'.*did you mean 'rouge'"):
        TaskStream(tasks=[Task("a", train=QA, metric="rogue")])
    with pytest.raises(DataError, match="used twice"):
        TaskStream(tasks=[Task("a", train=QA), Task("a", train=QA)])


def test_stream_yaml_and_typos(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"question": "Q?", "answer": "A."}\n')
    good = tmp_path / "s.yaml"
    good.write_text("metric: rouge\ntasks:\n  - name: a\n    train: a.jsonl\n  - name: b\n    train: a.jsonl\n"
                    "    metric: exact_match\nprobe:\n  eval: a.jsonl\n")
    stream = TaskStream.from_yaml(good)
    assert stream.names == ["a", "b"] and stream.metrics == ["rouge", "exact_match"]
    assert stream.tasks[0].eval == stream.tasks[0].train and stream.probe.metric == "rouge"
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - name: a\n    trian: a.jsonl\n")
    with pytest.raises(ConfigError, match=r"'trian' \(did you mean 'train'\?\).*Valid keys: name, train, eval"):
        TaskStream.from_yaml(bad)
    bad.write_text("taks: []\n")
    with pytest.raises(ConfigError, match="did you mean 'tasks'"):
        TaskStream.from_yaml(bad)
    bad.write_text("tasks:\n  - name: a\n    train: missing.jsonl\n")
    with pytest.raises(DataError, match="does not exist"):
        TaskStream.from_yaml(bad)


def test_config_errors(tmp_path):
    out = str(tmp_path)
    assert ContinualConfig(output_dir=out, strategy="Replay, EWC").strategy_names == ["replay", "ewc"]
    assert ContinualConfig(output_dir=out, strategy=["naive", "l2"]).strategy_names == ["l2"]
    with pytest.raises(ConfigError, match="Unknown strategy 'ewk'"):
        ContinualConfig(output_dir=out, strategy="replay,ewk")
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="replay_ratio"):
            ContinualConfig(output_dir=out, strategy="replay", replay_ratio=bad)
    ContinualConfig(output_dir=out, strategy="replay", replay_ratio=1.0)
    with pytest.raises(ConfigError, match="schedule"):
        ContinualConfig(output_dir=out, schedule="forever")
    with pytest.raises(ConfigError, match="one of 'ewc' and 'online_ewc'"):
        ContinualConfig(output_dir=out, strategy="ewc,online_ewc")


def test_reservoir_is_uniform_and_bounded():
    counts = [0] * 20
    for seed in range(3000):
        buffer: list[int] = []
        seen = reservoir_update(buffer, 0, range(10), 5, random.Random(seed))
        seen = reservoir_update(buffer, seen, range(10, 20), 5, random.Random(seed + 10_000))
        assert seen == 20 and len(buffer) == 5 and len(set(buffer)) == 5
        for item in buffer:
            counts[item] += 1
    expected = 3000 * 5 / 20  # every item kept with probability K/n
    assert all(abs(c - expected) < 0.15 * expected for c in counts)
    assert replay_count(80, 0.1) == 8 and replay_count(3, 0.1) == 1


def test_infinite_schedule_shape():
    kw = {"warmup": 4, "cooldown": 10, "constant": 0.5, "minimum": 0.05, "anneal_ratio": 0.2}
    f = [infinite_factor(g, g, 100, **kw) for g in range(100)]
    assert f[0] == pytest.approx(0.25) and f[3] == pytest.approx(1.0)  # linear warmup to the peak
    assert f[4] == pytest.approx(1.0) and f[9] == pytest.approx(0.5 + 0.25 * (1 + math.cos(math.pi * 5 / 10)))
    assert all(v == pytest.approx(0.5) for v in f[14:80])  # constant
    assert f[99] == pytest.approx(0.05) and f[80] == pytest.approx(0.5 * 0.1 ** (1 / 20))  # exponential anneal
    # the next task starts again from the constant (its own anneal at its end)
    assert infinite_factor(100, 0, 50, **kw) == pytest.approx(0.5)


@pytest.mark.parametrize("weighted", [True, False])
def test_quadratic_gradient_equals_autograd(weighted):
    """The penalty gradient added to .grad once per optimizer step is autograd's gradient of coef * Σ w (θ − θ*)²
    (existing gradients kept, frozen parameters untouched, a bf16 parameter cast), and its value is the penalty."""
    import torch

    from hfcl.continual.strategies.base import Quadratic, add_quadratic_grad_, squared_distance

    gen = torch.Generator().manual_seed(0)
    params = {n: torch.nn.Parameter(torch.randn(shape, generator=gen)) for n, shape in
              (("a", (3, 4)), ("b", (5,)), ("frozen", (2, 2)))}
    params["half"] = torch.nn.Parameter(torch.randn(4, generator=gen).to(torch.bfloat16))
    params["frozen"].requires_grad_(False)
    anchor = {n: (p.detach().float() + 0.1 * torch.randn(p.shape, generator=gen)) for n, p in params.items()}
    weight = {n: torch.rand(p.shape, generator=gen) for n, p in params.items()} if weighted else None
    q = Quadratic("ewc", 0.7, anchor, weight)
    params["a"].grad = torch.ones(3, 4)  # a gradient from the backward pass is kept, the penalty's added to it
    value = add_quadratic_grad_(params, q, grad_scale=1.0, with_value=True)
    ref = {n: p.detach().float().clone().requires_grad_(p.requires_grad) for n, p in params.items()}
    penalty = 0.7 * squared_distance(ref, anchor, weight)
    penalty.backward()
    assert float(value) == pytest.approx(float(penalty), rel=1e-5)
    torch.testing.assert_close(params["a"].grad, ref["a"].grad + 1.0)
    torch.testing.assert_close(params["b"].grad, ref["b"].grad)
    torch.testing.assert_close(params["half"].grad.float(), ref["half"].grad, rtol=1e-2, atol=1e-2)
    assert params["frozen"].grad is None
