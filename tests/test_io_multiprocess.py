"""Two processes (torchrun, gloo on CPU) write one run folder: only the main process writes, after a barrier, and
every process returns only once the folder is complete.

The fake trainer mimics ``Trainer.save_model`` (writes on the main process only) and makes process 1 the slow one:
an implementation in which every process renames its own temporary folder onto the output then publishes
process 1's folder last, the one without weights (what `hfcl unlearn` under accelerate did, 2 of 4 tries).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r'''
import json, sys, time
from pathlib import Path
import torch.distributed as dist
from hfcl.unlearn.run import save_run_dir

dist.init_process_group("gloo")
rank = dist.get_rank()
out, mode = Path(sys.argv[1]), sys.argv[2]


class Trainer:
    def save_model(self, folder):
        if rank == 1:
            time.sleep(0.5)  # the slow process
            if mode == "fail":
                raise RuntimeError("disk full on rank 1")
        if rank == 0:  # Trainer.save_model writes on the main process only (args.should_save)
            (Path(folder) / "adapter_model.safetensors").write_bytes(b"weights")


class Tokenizer:
    def save_pretrained(self, folder):
        (Path(folder) / "tokenizer.json").write_text("{}")


result = {"rank": rank}
try:
    save_run_dir(out, Trainer(), Tokenizer(), {"command": "test"}, overwrite=False, card=False)
    result["seen"] = sorted(p.name for p in out.iterdir())  # right after return, on every process
except Exception as exc:
    result["error"] = f"{type(exc).__name__}: {exc}"
Path(f"{out}.rank{rank}.json").write_text(json.dumps(result))
dist.barrier()
import os, sys
# End without interpreter teardown: the results are on disk and every rank is past the barrier. Under load, gloo's
# worker threads can abort a process during teardown (SIGABRT, 'terminate called without an active exception',
# seen in CI after the results were written), which would fail a run whose results are fine.
sys.stdout.flush(); sys.stderr.flush()
os._exit(0)
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(script: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script), *args]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _results(out: Path) -> list[dict]:
    return [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_two_processes_publish_one_complete_folder(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    _torchrun(script, str(out), "ok")
    complete = ["adapter_model.safetensors", "hfcl_run.json", "tokenizer.json"]
    assert sorted(p.name for p in out.iterdir()) == complete
    assert [r.get("seen") for r in _results(out)] == [complete, complete]  # both returned after the rename
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.slow
def test_a_failure_on_another_process_publishes_nothing(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    _torchrun(script, str(out), "fail")
    assert not out.exists()
    errors = [r.get("error", "") for r in _results(out)]
    assert "Another process failed" in errors[0] and "disk full on rank 1" in errors[1]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
