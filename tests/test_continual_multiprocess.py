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
import os, sys
# End without interpreter teardown: the results are on disk and every rank is past the barrier. Under load, gloo's
# worker threads can abort a process during teardown (SIGABRT, 'terminate called without an active exception',
# seen in CI after the results were written), which would fail a run whose results are fine.
sys.stdout.flush(); sys.stderr.flush()
os._exit(0)
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


CLI_OPTIONS = ["continual", "--zoo", "tiny", "--strategy", "replay,ewc", "--n_tasks", "2", "--authors_per_task", "1",
               "--probe_size", "5", "--replay_ratio", "0.5", "--ewc_lambda", "0.05", "--num_train_epochs", "3",
               "--optim", "sgd", "--learning_rate", "0.02", "--max_grad_norm", "0", "--lr_scheduler_type",
               "constant", "--per_device_eval_batch_size", "8", "--report_to", "none", "--disable_tqdm", "true"]


@pytest.mark.slow
def test_cli_replay_ewc_two_processes_equal_one(tiny_zoo, tmp_path):
    """`hfcl continual --strategy replay,ewc` under `accelerate launch --config_file hfcl/configs/accelerate/ddp.yaml
    --num_processes 2` (the shipped config) writes one complete run folder whose final weights equal the 1-process
    run's (2x2 vs 1x4; SGD, so only float summation order differs)."""
    from safetensors.torch import load_file

    import hfcl

    accelerate = Path(sys.executable).with_name("accelerate")
    ddp_yaml = Path(hfcl.__file__).parent / "configs" / "accelerate" / "ddp.yaml"  # the shipped config, as documented
    runs = {"one": ([sys.executable], 4),
            "two": ([str(accelerate), "launch", "--config_file", str(ddp_yaml), "--num_processes", "2",
                     "--main_process_port", str(_free_port())], 2)}
    for name, (launcher, per_device) in runs.items():
        _run([*launcher, "-m", "hfcl.cli", *CLI_OPTIONS, "--per_device_train_batch_size", str(per_device),
              "--output_dir", str(tmp_path / name)], tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    names = {p.name for p in two.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "hfcl_run.json", "accuracy_matrix.json",
            "eval_report.json", "stages", "plots"} <= names == {p.name for p in one.iterdir()}
    assert sorted(p.name for p in (two / "stages").iterdir()) == sorted(p.name for p in (one / "stages").iterdir())
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work or temp folder left
    hardware = [json.loads((d / "hfcl_run.json").read_text())["provenance"]["hardware"] for d in (one, two)]
    assert [h["processes"] for h in hardware] == [1, 2]
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"continual replay+ewc max |weight difference| 1x4 vs 2x2: {diff:.3g}")
    assert diff <= 1e-5
    R1 = json.loads((one / "accuracy_matrix.json").read_text())["matrix"]
    R2 = json.loads((two / "accuracy_matrix.json").read_text())["matrix"]
    np.testing.assert_allclose(R2, R1, atol=1e-5)
    assert R1[1][0] > 2 * R1[0][0]  # it learned task 1 (0.008 -> 0.040)
