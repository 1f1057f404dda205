"""`accelerate launch` with 2 CPU processes (gloo) gives the single-process aggregates; each sequence scored once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfcl.eval import evaluate_model

SCRIPT = """
import json, sys
from hfcl.zoo import tiny_config
from hfcl.eval import evaluate_model
from hfcl.eval.scoring import _process_info
report = evaluate_model("target", world_config=tiny_config(), retain_eval_size=16, batch_size=8)
if _process_info(True)[0] == 0:
    json.dump({"aggregates": report.aggregates, "per_example": report.per_example, "runtime": report.runtime},
              open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_two_processes_equal_one(tiny_zoo, tmp_path):
    script = tmp_path / "run_eval.py"
    script.write_text(SCRIPT)
    out = tmp_path / "two.json"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text())
    one = evaluate_model("target", world_config=tiny_zoo.config, retain_eval_size=16, batch_size=8)
    assert two["runtime"]["num_processes"] == 2
    counts = two["runtime"]["sequences_scored_per_process"]
    assert len(counts) == 2 and min(counts) > 0 and sum(counts) == one.runtime["sequences"]
    assert sum(two["runtime"]["prompts_generated_per_process"]) == one.runtime["prompts"]
    assert set(two["aggregates"]) == set(one.aggregates)
    for key, value in one.aggregates.items():
        assert two["aggregates"][key] == (None if value is None else pytest.approx(value, rel=1e-6, abs=1e-9)), key
    assert two["per_example"]["forget"]["generation"] == one.per_example["forget"]["generation"]
