"""``accelerate launch --num_processes 2`` (CPU, gloo; ``--multi_gpu`` falls back to MULTI_CPU without CUDA):
replay + EWC fill the same R as one process.

Every task's examples (8, then 8 + 4 replayed) are a multiple of the global batch (4): otherwise accelerate's
``even_batches`` repeats examples to fill the last step of one process and the runs legitimately differ.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = r'''
import json, sys
import torch
from hfcl.continual import ContinualConfig, run_stream, world_stream
from hfcl.zoo import load_model, tiny_config

out, per_device = sys.argv[1], int(sys.argv[2])
zoo = tiny_config()
stream = world_stream(zoo, n_tasks=2, authors_per_task=1, probe_size=5)
model, tok = load_model("base", zoo)
config = ContinualConfig(output_dir=out + ".run", strategy="replay,ewc", replay_ratio=0.5, ewc_lambda=10.0,
                         per_device_train_batch_size=per_device, num_train_epochs=3, learning_rate=3e-3,
                         lr_scheduler_type="constant", use_cpu=True, seed=0, report_to="none", disable_tqdm=True,
                         per_device_eval_batch_size=8)
result = run_stream(stream, config, model, tok, overwrite=True)
if result.trainer.is_world_process_zero():
    with open(out, "w") as handle:
        json.dump({"R": result.R, "probe": result.probe, "buffer": result.trainer.strategies[0].buffer,
                   "world_size": result.trainer.args.world_size}, handle)
result.trainer.accelerator.wait_for_everyone()
if torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()
'''


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_fill_the_same_matrix(tiny_zoo, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    accelerate = Path(sys.executable).with_name("accelerate")
    _run([sys.executable, str(script), str(tmp_path / "one.json"), "4"], tmp_path)
    _run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
          "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()), str(script),
          str(tmp_path / "two.json"), "2"], tmp_path)
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert one["buffer"] == two["buffer"]
    np.testing.assert_allclose(two["R"], one["R"], atol=2e-3)
    np.testing.assert_allclose(two["probe"], one["probe"], atol=2e-3)
    assert one["R"][1][0] > 5 * one["R"][0][0]  # it trained (0.008 -> 0.087)
