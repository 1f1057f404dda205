"""``accelerate launch --num_processes 2`` (CPU, gloo) runs NPO+GradDiff to the same weights as one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = r'''
import sys
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from hfcl.unlearn import UnlearningConfig, UnlearningTrainer

tokenizer_path, out, per_device = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(tokenizer_path)
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2))
forget = [{"question": f"Where was author {i} born?", "answer": f"Author {i} was born in city {i}."} for i in range(8)]
retain = [{"question": f"What did writer {i} write?", "answer": f"Writer {i} wrote book {i}."} for i in range(6)]
args = UnlearningConfig(output_dir=out + ".work", method="NPO", retain_loss="nll",
                        per_device_train_batch_size=per_device,
                        max_steps=2, learning_rate=0.05, optim="sgd", max_grad_norm=0.0, use_cpu=True, seed=0,
                        report_to="none", disable_tqdm=True, save_strategy="no", lr_scheduler_type="constant")
trainer = UnlearningTrainer(model, args, forget, retain, processing_class=tok)
trainer.train()
if trainer.is_world_process_zero():
    torch.save({n: p.detach().clone() for n, p in trainer.model.named_parameters()}, out)
trainer.accelerator.wait_for_everyone()
import os
# End without interpreter teardown: the results are on disk and every rank is past the barrier. Under load, gloo's
# worker threads can abort a process during teardown (SIGABRT, 'terminate called without an active exception',
# seen in CI after the results were written), which would fail a run whose results are fine.
sys.stdout.flush(); sys.stderr.flush()
os._exit(0)
'''


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tiny_tokenizer, tmp_path):
    tokenizer_dir = tmp_path / "tok"
    tiny_tokenizer.save_pretrained(tokenizer_dir)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    accelerate = Path(sys.executable).with_name("accelerate")
    _run([sys.executable, str(script), str(tokenizer_dir), str(tmp_path / "one.pt"), "4"], tmp_path)
    _run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
          "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()), str(script), str(tokenizer_dir),
          str(tmp_path / "two.pt"), "2"], tmp_path)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    for name, value in one.items():
        torch.testing.assert_close(two[name], value, atol=1e-5, rtol=0, msg=name)
    # the two runs must actually have trained: compare with a fresh init of the same seed
    torch.manual_seed(0)
    from transformers import LlamaConfig, LlamaForCausalLM

    init = LlamaForCausalLM(LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))
    moved = any(not torch.allclose(p.detach(), one[n], atol=1e-4) for n, p in init.named_parameters())
    assert moved


# ---- through the CLI: `accelerate launch -m hfcl.cli unlearn` --------------------------------------------------------
#: SGD at a constant rate without clipping is linear in the gradient, so the only difference left between 1x8 and
#: 2x4 is the order of float additions (gloo's all-reduce vs one batch): measured max |diff| ~1e-7 (adamw, the demo
#: preset's optimizer over 36 steps: 6e-6). Before the fix it was 0.1: each process trained alone (world size 1).
CLI_TOLERANCE = 1e-5
CLI_OPTIONS = ["unlearn", "--zoo", "tiny", "--preset", "demo", "--num_train_epochs", "3", "--optim", "sgd",
               "--learning_rate", "0.05", "--max_grad_norm", "0", "--save_strategy", "steps", "--save_steps", "4",
               "--report_to", "none", "--disable_tqdm", "true"]


def _cli_run(launcher: list[str], out: Path, per_device: int, cwd: Path, extra: tuple[str, ...] = ()) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [*launcher, "-m", "hfcl.cli", *CLI_OPTIONS, "--per_device_train_batch_size", str(per_device),
           "--output_dir", str(out), *extra]
    proc = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _adapter(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.mark.slow
def test_cli_two_processes_write_one_complete_run_equal_to_one_process(tiny_zoo, tmp_path):
    """`hfcl unlearn` under `accelerate launch --num_processes 2` (gloo): one complete run folder, written once
    (checkpoints with their reference cache included), whose adapter is the 1-process adapter (2x4 vs 1x8)."""
    import json

    accelerate = Path(sys.executable).with_name("accelerate")
    _cli_run([sys.executable], tmp_path / "one", 8, tmp_path)
    _cli_run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())],
             tmp_path / "two", 4, tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    expected = {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "hfcl_run.json", "README.md", "reference_logps.safetensors"}
    names = {p.name for p in two.iterdir()}
    assert expected <= names and names == {p.name for p in one.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp or work folder left
    records = [json.loads((d / "hfcl_run.json").read_text()) for d in (one, two)]
    assert [r["num_processes"] for r in records] == [1, 2]
    a, b = _adapter(one), _adapter(two)
    assert set(a) == set(b)
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"max |adapter difference| 1x8 vs 2x4: {diff:.3g}")
    assert diff <= CLI_TOLERANCE, f"max |adapter difference| {diff:.3g} between 1x8 and 2x4"
    assert max(float(v.abs().max()) for k, v in a.items() if "lora_B" in k) > 1e-3  # it trained (B starts at 0)


@pytest.mark.slow
def test_cli_two_processes_uld_serves_the_one_process_model(tiny_zoo, tmp_path):
    """ULD under 2 processes: the assistant trains with DDP, the main process writes one target + assistant folder,
    and the served model is the 1-process one (2x4 vs 1x8)."""
    from hfcl.unlearn.uld import LogitDifferenceModel
    from hfcl.zoo import load_model

    accelerate = Path(sys.executable).with_name("accelerate")
    extra = ("--method", "ULD", "--num_train_epochs", "2", "--save_strategy", "no")
    _cli_run([sys.executable], tmp_path / "one", 8, tmp_path, extra)
    _cli_run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())],
             tmp_path / "two", 4, tmp_path, extra)
    (a, tok), (b, _) = load_model(str(tmp_path / "one")), load_model(str(tmp_path / "two"))
    assert isinstance(a, LogitDifferenceModel) and isinstance(b, LogitDifferenceModel)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    ids = tok(tiny_zoo.splits["forget"][0]["question"], return_tensors="pt")
    with torch.no_grad():
        diff = float((a(**ids).logits - b(**ids).logits).abs().max())
    print(f"max |served logit difference| 1x8 vs 2x4: {diff:.3g}")
    assert diff <= 1e-4


@pytest.mark.slow
def test_cli_two_processes_on_an_empty_cache_build_the_zoo_once_and_finish(tmp_path):
    """The first `accelerate launch` of a new user: no zoo built yet. One rank builds (in a fresh process outside
    the launch: a Trainer inside the launch would join the run's process group while the other rank waits for the
    build, and both hung), the other waits for it, and the run completes."""
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HFCL_CACHE": str(tmp_path / "empty-cache")}
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
           "-m", "hfcl.cli", "unlearn", "--zoo", "tiny", "--preset", "demo", "--num_train_epochs", "1",
           "--report_to", "none", "--disable_tqdm", "true", "--output_dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file() and (tmp_path / "run" / "hfcl_run.json").is_file()
    built = [p.name for p in (tmp_path / "empty-cache" / "zoo").iterdir() if not p.name.endswith(".lock")]
    assert sorted(n.split("-")[0] for n in built) == ["base", "target", "tokenizer"]  # one entry each, complete
