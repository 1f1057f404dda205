"""Streams that learn and forget: a deletion request between tasks unlearns rows of a learned task, the strategies
never bring them back, the other tasks survive, resume crosses a forget step, and bad events fail before training.

The tiny stream: 3 tasks x 2 authors (16 rows each), "forget-authors1" deletes the first author of task 1 (8 rows)
after task 2 (learn A, learn B, forget half of A, learn C), with NPO + GradDiff's demo preset.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hfcl.continual import ContinualConfig, ForgetEvent, Task, TaskStream, run_stream, world_stream
from hfcl.errors import ConfigError, DataError

FAST = {"learning_rate": 3e-3, "num_train_epochs": 10, "per_device_train_batch_size": 8, "use_cpu": True,
        "disable_tqdm": True, "seed": 0, "logging_steps": 1000, "per_device_eval_batch_size": 32}
QA = [{"question": f"Q{i}?", "answer": f"A{i}."} for i in range(4)]


def stream_of(tiny_zoo, forget_after=2):
    return world_stream(tiny_zoo.config, n_tasks=3, authors_per_task=2, probe_size=5, forget_after=forget_after)


def go(tiny_zoo, out, stream, **kw):
    model, tok = tiny_zoo.load("base")
    extra = {k: kw.pop(k) for k in ("stop_after", "write") if k in kw}
    config = ContinualConfig(output_dir=str(out), **{**FAST, "strategy": "replay,ewc", "replay_ratio": 0.5,
                                                      "ewc_lambda": 10.0, **kw})
    return run_stream(stream, config, model, tok, overwrite=True, **{"write": False, **extra})


@pytest.mark.slow
def test_forget_event_deletes_rows_and_spares_the_rest(tiny_zoo, tmp_path):
    stream = stream_of(tiny_zoo)
    assert [s.name for s in stream.steps] == ["authors1", "authors2", "forget-authors1", "authors3"]
    run = go(tiny_zoo, tmp_path / "forget", stream)
    plain = go(tiny_zoo, tmp_path / "plain", stream_of(tiny_zoo, forget_after=0))
    assert len(run.R) == 5 and len(plain.R) == 4 and run.forget_rows == [3]
    assert run.labels == ["before", "after authors1", "after authors2", "after forget-authors1", "after authors3"]
    (event,) = run.forget_events
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in event.items()}, default=str))
    assert event["n_forget"] == 8 and event["n_retain"] == 24  # 8 kept rows of A + 16 of B
    # the deleted rows fall most of the way back to a model that never saw them (measured 0.45 -> 0.04; 0.008)
    assert event["forgotten_after"] < 0.25 * event["forgotten_before"], event
    assert event["forgotten_after"] < event["never_learned"] + 0.1
    # ... and stay down while task C trains with replay (the buffer no longer holds them)
    assert event["forgotten_final"] < 0.25 * event["forgotten_before"], event
    buffer = run.trainer.strategies[0].buffer
    assert buffer and not [x for x in buffer if tuple(x) in {(0, i) for i in range(8)}]
    assert {tuple(x) for x in buffer if x[0] == 0} <= {(0, i) for i in range(8, 16)}
    # the kept half of A is remembered far better than the deleted half, and B and C (one-sided, absolute 0.1)
    # are no worse than in the same stream without the deletion (measured: B 0.31 vs 0.16, C 0.04 vs 0.09)
    assert event["kept_after"] > event["forgotten_after"] + 0.2, event
    for j in (1, 2):
        assert run.R[-1][j] >= plain.R[-1][j] - 0.1, (j, run.R[-1], plain.R[-1])
    assert set(event["collateral"]) == {"authors2"}
    # the continual metrics use the learn rows only: R's forget row is skipped
    learn = np.array(run.R)[[0, 1, 2, 4]]
    assert run.summary["acc"] == pytest.approx(learn[-1].mean())


@pytest.mark.slow
def test_resume_after_a_forget_step_reaches_the_same_matrix(tiny_zoo, tmp_path):
    stream = stream_of(tiny_zoo)
    kw = {"num_train_epochs": 4, "save_strategy": "steps", "save_steps": 2}
    full = go(tiny_zoo, tmp_path / "full", stream, **kw)
    part = go(tiny_zoo, tmp_path / "a", stream, stop_after=3, **kw)
    assert len(part.R) == 4 and (tmp_path / ".a.work" / "stages" / "step-3-forget-authors1" / "stage.json").is_file()
    resumed = go(tiny_zoo, tmp_path / "a", stream, resume_from_checkpoint="true", **kw)
    np.testing.assert_allclose(resumed.R, full.R, atol=1e-5)
    assert resumed.trainer.deleted == {0: list(range(8))}
    assert resumed.trainer.strategies[0].buffer == full.trainer.strategies[0].buffer
    assert resumed.forget_events[0]["forgotten_after"] == pytest.approx(full.forget_events[0]["forgotten_after"])


def test_cli_learns_and_forgets(tiny_zoo, tmp_path, capsys):
    from hfcl.cli import main

    out = tmp_path / "lf"
    rc = main(["continual", "--zoo", "tiny", "--preset", "demo", "--n_tasks", "3", "--authors_per_task", "2",
               "--probe_size", "5", "--num_train_epochs", "3", "--forget_after", "2", "--strategy", "replay",
               "--output_dir", str(out), "--disable_tqdm", "true", "--use_cpu", "true"])
    assert rc == 0
    shown = capsys.readouterr().out
    assert "Forget events" in shown and "forget-authors1 (NPO)" in shown
    data = json.loads((out / "accuracy_matrix.json").read_text())
    assert np.array(data["matrix"]).shape == (5, 3)
    assert data["rows"][3] == "after forget-authors1"
    (event,) = data["forget_events"]
    assert event["task"] == "authors1" and event["after"] == "authors2" and event["method"] == "NPO"
    assert event["forgotten_after"] < event["forgotten_before"]
    stages = sorted(p.name for p in (out / "stages").iterdir())
    assert stages == ["step-3-forget-authors1", "task-1-authors1", "task-2-authors2", "task-4-authors3"]
    record = json.loads((out / "hfcl_run.json").read_text())
    assert [e["name"] for e in record["stream"]["forgets"]] == ["forget-authors1"]
    assert (out / "plots" / "accuracy_matrix.png").stat().st_size > 1000


def test_forget_events_validate_before_training(tiny_zoo, tmp_path):
    a, b = Task("a", train=QA[:2]), Task("b", train=QA[2:])
    with pytest.raises(DataError, match="never learned"):
        TaskStream(tasks=[a, b], forgets=[ForgetEvent(task="c")])
    with pytest.raises(DataError, match="only learned later"):
        TaskStream(tasks=[a, b], forgets=[ForgetEvent(task="b", after="a")])
    with pytest.raises(DataError, match="not training rows of task 'a'"):
        TaskStream(tasks=[a, b], forgets=[ForgetEvent(task="a", rows=[QA[3]])])
    with pytest.raises(DataError, match="rows is empty"):
        TaskStream(tasks=[a, b], forgets=[ForgetEvent(task="a", rows=[])])
    with pytest.raises(DataError, match="used twice"):
        TaskStream(tasks=[a, b], forgets=[ForgetEvent(task="a", name="b")])
    stream = TaskStream(tasks=[a, b], forgets=[ForgetEvent(task="a", after="a", rows=[QA[1]])])
    assert [s.name for s in stream.steps] == ["a", "forget-a", "b"] and stream.forget_indices(stream.forgets[0]) == [1]
    model, tok = tiny_zoo.load("base")
    out = tmp_path / "x"
    with pytest.raises(ConfigError, match="O-LoRA"):
        run_stream(stream, ContinualConfig(output_dir=str(out), strategy="olora", **FAST), model, tok,
                   peft_config=_lora())
    bad = TaskStream(tasks=[a, b], forgets=[ForgetEvent(task="a", options={"npo_bta": 0.1})])
    with pytest.raises(ConfigError, match="npo_bta"):
        run_stream(bad, ContinualConfig(output_dir=str(out), **FAST), model, tok)
    bad = TaskStream(tasks=[a, b], forgets=[ForgetEvent(task="a", method="ULD")])
    with pytest.raises(ConfigError, match="would not change"):  # ULD leaves the weights alone: refused before work
        run_stream(bad, ContinualConfig(output_dir=str(out), **FAST), model, tok)
    bad = TaskStream(tasks=[a, b], forgets=[ForgetEvent(task="a", method="WHP")])
    with pytest.raises(ConfigError, match="whp_names"):
        run_stream(bad, ContinualConfig(output_dir=str(out), **FAST), model, tok)
    assert not out.exists()
    bad = TaskStream(tasks=[a, b], forgets=[ForgetEvent(task="a", method="NOP")])
    with pytest.raises(ConfigError, match="NPO"):
        run_stream(bad, ContinualConfig(output_dir=str(out), **FAST), model, tok)
    assert not out.exists() and not (tmp_path / ".x.work").exists()


def test_stream_yaml_forget_items(tmp_path):
    rows = "".join(json.dumps(r) + "\n" for r in QA)
    (tmp_path / "a.jsonl").write_text(rows)
    (tmp_path / "gone.jsonl").write_text(json.dumps(QA[0]) + "\n")
    path = tmp_path / "s.yaml"
    path.write_text("tasks:\n  - name: a\n    train: a.jsonl\n  - name: b\n    train: a.jsonl\n"
                    "  - forget: a\n    rows: gone.jsonl\n    method: GradDiff\n    preset: demo\n"
                    "    options: {learning_rate: 1.0e-3}\n  - name: c\n    train: a.jsonl\n")
    stream = TaskStream.from_yaml(path)
    assert [s.name for s in stream.steps] == ["a", "b", "forget-a", "c"]
    (event,) = stream.forgets
    assert (event.after, event.method, event.preset, event.options) == ("b", "GradDiff", "demo",
                                                                        {"learning_rate": 1e-3})
    assert stream.forget_indices(event) == [0]
    path.write_text("tasks:\n  - forget: a\n  - name: a\n    train: a.jsonl\n")
    with pytest.raises(DataError, match="before any task is learned"):
        TaskStream.from_yaml(path)
    path.write_text("tasks:\n  - name: a\n    train: a.jsonl\n  - forget: a\n    metod: NPO\n")
    with pytest.raises(ConfigError, match="did you mean 'method'"):
        TaskStream.from_yaml(path)


def _lora():
    from peft import LoraConfig

    return LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM")
